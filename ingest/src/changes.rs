//! Every change a run or an operator makes to the job item, as a function of the item as stored.
//!
//! Each goes through `adapters::update_job`, which reads the item, asks one of these what to
//! make of it, and writes that conditionally on the version read; when the write does not go
//! through (another writer, a lost reply, an error) it reads again and asks again. So each rule
//! here first recognises its own change already in place (by the run id, or the operator's
//! time stamp), and otherwise builds on the item as it is now, not as the run last saw it.

use anyhow::bail;
use chrono::{DateTime, Utc};
use events::jobs::{
    Bookmark, BookmarkStatus, FailingHour, Job, LateSource, Lease, ParkedHour, QueuedHour,
};
use events::Hour;
use serde::Serialize;

use adapters::Decision;

/// Who writes, and when: a run's id and its lease's end, or an operator's command.
pub struct Writer<'a> {
    pub run_id: &'a str,
    pub now: DateTime<Utc>,
    /// Epoch ms: a run's lease, renewed by each of its writes, lasts until then.
    pub lease_until: i64,
}

impl Writer<'_> {
    fn lease(&self) -> Lease {
        Lease {
            run_id: self.run_id.to_string(),
            expires_at: self.lease_until,
        }
    }

    fn by(&self) -> String {
        format!("run {}", self.run_id)
    }
}

/// What claiming the job came to.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// This run holds the job.
    Held,
    /// Another run holds it.
    Busy(Lease),
}

/// Takes the job's lease for the run, creating the job (from the ingest's `BASELINE_DAYS`) if
/// there is no item. A job without a bookmark gets its baseline day pinned, so that its start
/// does not move from one day to the next.
pub fn claim(
    current: Option<&Job>,
    w: &Writer,
    job_id: &str,
    default_days: u32,
) -> anyhow::Result<Decision<Claim>> {
    let now_ms = w.now.timestamp_millis();
    let mut job = match current {
        None => Job::new(job_id, default_days, w.now),
        Some(job) => match job.live_lease(now_ms) {
            Some(lease) if lease.run_id == w.run_id => return Ok(Decision::Keep(Claim::Held)),
            Some(lease) => return Ok(Decision::Keep(Claim::Busy(lease.clone()))),
            None => job.clone(),
        },
    };
    if job.job_run_bookmark_details.is_none() && job.baseline_day.is_none() {
        let days = job.baseline_days.unwrap_or(default_days);
        job.baseline_day = Some(w.now.date_naive() - chrono::Duration::days(days.into()));
    }
    job.lease = Some(w.lease());
    Ok(Decision::Write(job, Claim::Held))
}

/// The item, if this run still holds it; an error saying so otherwise.
fn held<'a>(current: Option<&'a Job>, w: &Writer) -> anyhow::Result<&'a Job> {
    let Some(job) = current else {
        bail!("the job item was deleted under the run");
    };
    match &job.lease {
        Some(lease) if lease.run_id == w.run_id => Ok(job),
        Some(lease) => bail!(
            "lost the job to run {} (this run's lease ran out)",
            lease.run_id
        ),
        None => bail!("lost the job: its lease was removed under the run"),
    }
}

/// Where an hour the bookmark moves past without it goes, when the run itself sets it aside.
#[derive(Debug, Clone, PartialEq)]
pub enum Aside {
    /// Nowhere new: it was stored, is parked already, or is one of GHArchive's known gaps.
    Nothing,
    /// Parked: it failed on `MISSING_HOUR_ATTEMPTS` runs (missing long after it ended, or
    /// served broken).
    Parked(ParkedHour),
    /// Queued for every run to try first: the source did not deliver it, for reasons that are
    /// not the hour's, while it served the hours around it.
    Queued(QueuedHour),
}

/// How the bookmark moves past an hour: its status, where the hour goes if the run sets it
/// aside, and the sources that did not deliver it while another did.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub status: BookmarkStatus,
    pub aside: Aside,
    pub late: Vec<LateSource>,
}

impl Moved {
    pub fn new(status: BookmarkStatus, aside: Aside) -> Moved {
        Moved {
            status,
            aside,
            late: Vec::new(),
        }
    }

    pub fn late(self, late: Vec<LateSource>) -> Moved {
        Moved { late, ..self }
    }
}

/// Adds `late` to the job's lagging sources (each hour and source once).
fn add_late(job: &mut Job, late: &[LateSource]) {
    for entry in late {
        let known = job
            .late_sources
            .iter()
            .any(|l| l.hour == entry.hour && l.source == entry.source);
        if !known {
            job.late_sources.push(entry.clone());
        }
    }
    job.late_sources
        .sort_by(|a, b| (a.hour, &a.source).cmp(&(b.hour, &b.source)));
}

/// Moves the bookmark from `from` to `to` (the next hour): ingested, skipped (the hour is parked,
/// or known to be lost), or queued (see [`Moved`]).
pub fn advance(
    current: Option<&Job>,
    w: &Writer,
    from: Option<Hour>,
    to: Hour,
    moved: &Moved,
) -> anyhow::Result<Decision<()>> {
    let status = moved.status;
    let job = held(current, w)?;
    let mine = |b: &Bookmark| b.last_run_file_name == to && b.run_id.as_deref() == Some(w.run_id);
    if job.job_run_bookmark_details.as_ref().is_some_and(mine) {
        return Ok(Decision::Keep(()));
    }
    if job.bookmark_hour() != from {
        bail!(
            "the bookmark moved under the run (to {}) before it could bookmark {to}",
            job.bookmark_hour().map_or("none".into(), |h| h.to_string())
        );
    }
    let mut job = job.clone();
    job.job_run_bookmark_details = Some(Bookmark {
        last_run_file_name: to,
        status,
        updated_at: Some(w.now),
        run_id: Some(w.run_id.to_string()),
    });
    job.failing_hour = job.failing_hour.filter(|f| f.hour > to);
    add_late(&mut job, &moved.late);
    match (status, &moved.aside) {
        // The hour arrived: whatever parked it no longer holds.
        (BookmarkStatus::Ingested, _) => job.parked_hours.retain(|p| p.hour != to),
        (_, Aside::Parked(entry)) if job.parked(to).is_none() => {
            job.parked_hours.push(entry.clone());
            job.parked_hours.sort_by_key(|p| p.hour);
        }
        (_, Aside::Queued(entry)) if job.queued(to).is_none() => {
            job.retry_hours.push(entry.clone());
            job.retry_hours.sort_by_key(|q| q.hour);
        }
        _ => {}
    }
    job.lease = Some(w.lease());
    Ok(Decision::Write(job, ()))
}

/// Counts a failed run against `hour`, the next hour (the bookmark still at `from`). Answers the
/// number of runs that have failed on it.
pub fn count_failure(
    current: Option<&Job>,
    w: &Writer,
    from: Option<Hour>,
    hour: Hour,
    reason: &str,
) -> anyhow::Result<Decision<u32>> {
    let job = held(current, w)?;
    if let Some(f) = &job.failing_hour {
        if f.hour == hour && f.run_id.as_deref() == Some(w.run_id) {
            return Ok(Decision::Keep(f.attempts));
        }
    }
    if job.bookmark_hour() != from {
        bail!("the bookmark moved under the run while {hour} failed");
    }
    let attempts = match &job.failing_hour {
        Some(f) if f.hour == hour => f.attempts.saturating_add(1),
        _ => 1,
    };
    let mut job = job.clone();
    job.failing_hour = Some(FailingHour {
        hour,
        attempts,
        reason: reason.to_string(),
        run_id: Some(w.run_id.to_string()),
    });
    job.lease = Some(w.lease());
    Ok(Decision::Write(job, attempts))
}

/// What became of a run's try of a queued or parked hour.
#[derive(Clone, Copy)]
pub enum Tried<'a> {
    Stored,
    /// Failed. `counts`: the failure is the hour's own (missing long after it ended, or served
    /// broken); a queued hour is parked once `park_after` runs have counted.
    Failed {
        reason: &'a str,
        counts: bool,
        park_after: u32,
    },
}

/// Settles a queued hour after this run tried it (`late`: the sources that did not deliver it
/// while another did). Answers true when it was parked.
pub fn settle_queued(
    current: Option<&Job>,
    w: &Writer,
    hour: Hour,
    tried: Tried,
    late: &[LateSource],
) -> anyhow::Result<Decision<bool>> {
    let job = held(current, w)?;
    let Some(entry) = job.queued(hour) else {
        // Done already (a lost reply), or an operator parked it meanwhile.
        return Ok(Decision::Keep(job.parked(hour).is_some()));
    };
    let mut job = job.clone();
    job.lease = Some(w.lease());
    add_late(&mut job, late);
    let Tried::Failed {
        reason,
        counts,
        park_after,
    } = tried
    else {
        job.retry_hours.retain(|q| q.hour != hour);
        return Ok(Decision::Write(job, false));
    };
    if entry.run_id.as_deref() == Some(w.run_id) {
        return Ok(Decision::Keep(false));
    }
    let attempts = match counts {
        true => entry.attempts.saturating_add(1),
        false => entry.attempts,
    };
    job.retry_hours.retain(|q| q.hour != hour);
    let parked = counts && attempts >= park_after;
    if parked {
        let entry = ParkedHour::new(hour, reason.to_string(), w.now, w.by(), attempts);
        job.parked_hours.push(entry);
        job.parked_hours.sort_by_key(|p| p.hour);
    } else {
        job.retry_hours.push(QueuedHour {
            attempts,
            tries: entry.tries.saturating_add(1),
            reason: Some(reason.to_string()),
            run_id: Some(w.run_id.to_string()),
            ..entry.clone()
        });
        job.retry_hours.sort_by_key(|q| q.hour);
    }
    Ok(Decision::Write(job, parked))
}

/// Settles a parked hour after this run tried it again by itself: stored, it is no longer
/// parked; failed, its try is kept in its history and its next try moves further out.
pub fn settle_parked(
    current: Option<&Job>,
    w: &Writer,
    hour: Hour,
    tried: Tried,
    late: &[LateSource],
) -> anyhow::Result<Decision<()>> {
    let job = held(current, w)?;
    let Some(entry) = job.parked(hour) else {
        // Done already (a lost reply), or an operator took it back meanwhile.
        return Ok(Decision::Keep(()));
    };
    let mut job = job.clone();
    job.lease = Some(w.lease());
    add_late(&mut job, late);
    let Tried::Failed { reason, .. } = tried else {
        job.parked_hours.retain(|p| p.hour != hour);
        return Ok(Decision::Write(job, ()));
    };
    if entry.history.last().is_some_and(|t| t.by == w.by()) {
        return Ok(Decision::Keep(()));
    }
    if let Some(entry) = job.parked_hours.iter_mut().find(|p| p.hour == hour) {
        entry.tried(w.now, w.by(), reason.to_string());
    }
    Ok(Decision::Write(job, ()))
}

/// What became of a run's try of a lagging source.
#[derive(Debug, Clone, PartialEq)]
pub enum LateTry {
    /// Delivered, or given up on (the hour is past `MISSING_AFTER_HOURS`): no longer tried.
    Settled,
    /// Not yet (what it answered): tried again by the next run.
    Again(String),
}

/// Settles a lagging source of `hour` after this run tried it.
pub fn settle_late(
    current: Option<&Job>,
    w: &Writer,
    hour: Hour,
    source: &str,
    tried: &LateTry,
) -> anyhow::Result<Decision<()>> {
    let job = held(current, w)?;
    let same = |l: &LateSource| l.hour == hour && l.source == source;
    let Some(entry) = job.late_sources.iter().position(same) else {
        return Ok(Decision::Keep(()));
    };
    let mut job = job.clone();
    job.lease = Some(w.lease());
    match tried {
        LateTry::Settled => {
            job.late_sources.remove(entry);
        }
        LateTry::Again(reason) => {
            let entry = &mut job.late_sources[entry];
            entry.tries = entry.tries.saturating_add(1);
            entry.reason.clone_from(reason);
        }
    }
    Ok(Decision::Write(job, ()))
}

/// Gives the lease up, if this run holds it.
pub fn release(current: Option<&Job>, run_id: &str) -> anyhow::Result<Decision<()>> {
    match current {
        Some(job) if job.lease.as_ref().is_some_and(|l| l.run_id == run_id) => {
            let mut job = job.clone();
            job.lease = None;
            Ok(Decision::Write(job, ()))
        }
        _ => Ok(Decision::Keep(())),
    }
}

/// What `elt skip` and `elt retry` changed, printed as a JSON line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorChange {
    pub job_id: String,
    pub hour: Hour,
    /// `parked`, `queued` or `unparked`.
    pub action: &'static str,
    /// What happens next, in words.
    pub detail: String,
    pub bookmark_before: Option<Hour>,
    pub bookmark_after: Option<Hour>,
}

/// Where a job's next run starts: `--from` for a job without a bookmark, and the ingest's
/// `BASELINE_DAYS` for one without a baseline.
#[derive(Clone, Copy)]
pub struct Start {
    pub from: Option<Hour>,
    pub default_days: u32,
}

fn existing<'a>(current: Option<&'a Job>, job_id: &str) -> anyhow::Result<&'a Job> {
    current.ok_or_else(|| {
        anyhow::anyhow!(
            "job {job_id} does not exist yet: seed it (infra/init.sh) or run the ingest once"
        )
    })
}

/// An operator's command, as the item records it: `elt skip 1a2b3c4d`. The id tells a command's
/// own write (its reply lost) from another's.
pub type Operator<'a> = &'a str;

/// How `elt skip` parks an hour.
#[derive(Clone, Copy)]
pub struct Skip<'a> {
    pub reason: &'a str,
    /// For good: never tried again (`--forever`); otherwise runs try it again at growing
    /// intervals, as they do an hour they parked themselves.
    pub forever: bool,
}

/// `elt skip HOUR`: parks the hour by hand. The next hour due: the bookmark moves past it now
/// (unless a run holds the job: that run passes it by, if it has not fetched it yet). A later
/// hour: runs pass it by when they get there. A queued hour: taken out of the queue. With
/// `forever`, a parked hour is parked for good.
pub fn park_by_hand(
    current: Option<&Job>,
    (job_id, by): (&str, Operator),
    hour: Hour,
    skip: Skip,
    now: DateTime<Utc>,
    start: Start,
) -> anyhow::Result<Decision<OperatorChange>> {
    let job = existing(current, job_id)?;
    let next = job.next_hour(start.from, now, start.default_days);
    let mut change = OperatorChange {
        job_id: job_id.to_string(),
        hour,
        action: if skip.forever {
            "parked_for_good"
        } else {
            "parked"
        },
        detail: String::new(),
        bookmark_before: job.bookmark_hour(),
        bookmark_after: job.bookmark_hour(),
    };
    if let Some(parked) = job.parked(hour) {
        return park_again(job, parked, (by, skip), change);
    }
    if hour < next && job.queued(hour).is_none() {
        bail!(
            "{hour} is behind the bookmark ({}): it is done, nothing to skip",
            next.previous()
        );
    }
    let mut job = job.clone();
    job.retry_hours.retain(|q| q.hour != hour);
    let mut entry = ParkedHour::new(hour, skip.reason.to_string(), now, by.to_string(), 0);
    if skip.forever {
        entry.forever = true;
        entry.next_try_at = None;
    }
    job.parked_hours.push(entry);
    job.parked_hours.sort_by_key(|p| p.hour);
    let held = job
        .live_lease(now.timestamp_millis())
        .map(|l| l.run_id.clone());
    change.detail = match (hour == next, held) {
        (true, None) => {
            job.job_run_bookmark_details = Some(Bookmark {
                last_run_file_name: hour,
                status: BookmarkStatus::Skipped,
                updated_at: Some(now),
                run_id: None,
            });
            job.failing_hour = job.failing_hour.filter(|f| f.hour != hour);
            change.bookmark_after = Some(hour);
            "the bookmark moved past it; the next run starts after it".into()
        }
        (true, Some(run)) => format!(
            "run {run} holds the job: it passes the hour by unless it has fetched it already"
        ),
        (false, _) if hour < next => "taken out of the retry queue".into(),
        (false, _) => "runs pass it by when they get there".into(),
    };
    Ok(Decision::Write(job, change))
}

/// `elt skip` of an hour that is parked already: only `--forever` changes it (it is then never
/// tried again); this command's own earlier write is recognised.
fn park_again(
    job: &Job,
    parked: &ParkedHour,
    (by, skip): (Operator, Skip),
    mut change: OperatorChange,
) -> anyhow::Result<Decision<OperatorChange>> {
    if parked.by == by {
        change.detail = "parked (this command's own write)".into();
        return Ok(Decision::Keep(change));
    }
    let when = parked.parked_at.format("%Y-%m-%d %H:%M UTC");
    if parked.forever || !skip.forever {
        let how = if parked.forever { " for good" } else { "" };
        bail!(
            "{} is parked{how} already ({}, {when}): {}",
            parked.hour,
            parked.by,
            parked.reason
        );
    }
    let mut job = job.clone();
    if let Some(entry) = job.parked_hours.iter_mut().find(|p| p.hour == parked.hour) {
        entry.forever = true;
        entry.next_try_at = None;
        entry.by = by.to_string();
        entry.reason = format!("{} (parked {when}: {})", skip.reason, parked.reason);
    }
    change.detail = "parked for good: runs never try it again (`elt retry` takes it back)".into();
    Ok(Decision::Write(job, change))
}

/// `elt retry HOUR`: takes a parked hour back. Behind the bookmark it is queued, and the next run
/// fetches it first; ahead of the bookmark it is simply no longer passed by.
pub fn requeue(
    current: Option<&Job>,
    (job_id, by): (&str, Operator),
    hour: Hour,
    now: DateTime<Utc>,
    start: Start,
) -> anyhow::Result<Decision<OperatorChange>> {
    let job = existing(current, job_id)?;
    if let Some(issue) = events::known_gap(hour) {
        bail!("{hour} is lost for good from GHArchive ({issue}): it is never fetched");
    }
    let next = job.next_hour(start.from, now, start.default_days);
    let mut change = OperatorChange {
        job_id: job_id.to_string(),
        hour,
        action: "queued",
        detail: "the next run fetches it first".into(),
        bookmark_before: job.bookmark_hour(),
        bookmark_after: job.bookmark_hour(),
    };
    if let Some(queued) = job.queued(hour) {
        if queued.by == by {
            return Ok(Decision::Keep(change));
        }
        bail!(
            "{hour} is queued already (since {}): the next run fetches it",
            queued.queued_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    if job.parked(hour).is_none() {
        if hour >= next {
            change.action = "unparked";
            change.detail = "not parked: runs fetch it when they get there".into();
            return Ok(Decision::Keep(change));
        }
        let parked: Vec<String> = job
            .parked_hours
            .iter()
            .map(|p| p.hour.to_string())
            .collect();
        bail!(
            "{hour} is not parked (parked: {}); to fetch a stored hour again: elt backfill --from {hour} --to {hour} --force",
            if parked.is_empty() { "none".into() } else { parked.join(", ") }
        );
    }
    let mut job = job.clone();
    job.parked_hours.retain(|p| p.hour != hour);
    if hour >= next {
        change.action = "unparked";
        change.detail = "runs fetch it when they get there".into();
    } else {
        job.retry_hours
            .push(QueuedHour::new(hour, now, by.to_string(), None));
        job.retry_hours.sort_by_key(|q| q.hour);
    }
    Ok(Decision::Write(job, change))
}

#[cfg(test)]
mod tests;
