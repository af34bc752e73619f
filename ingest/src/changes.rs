//! Every change a run or an operator makes to the job item, as a function of the item as stored.
//!
//! Each goes through `adapters::update_job`, which reads the item, asks one of these what to
//! make of it, and writes that conditionally on the version read; when the write does not go
//! through (another writer, a lost reply, an error) it reads again and asks again. So each rule
//! here first recognises its own change already in place (by the run id, or the operator's
//! time stamp), and otherwise builds on the item as it is now, not as the run last saw it.

use anyhow::bail;
use chrono::{DateTime, Utc};
use events::jobs::{Bookmark, BookmarkStatus, FailingHour, Job, Lease, ParkedHour, QueuedHour};
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

/// Moves the bookmark from `from` to `to` (the next hour): ingested, or skipped because the hour
/// is parked (`parked`: the entry for an hour the run itself gives up on).
pub fn advance(
    current: Option<&Job>,
    w: &Writer,
    from: Option<Hour>,
    to: Hour,
    status: BookmarkStatus,
    parked: Option<&ParkedHour>,
) -> anyhow::Result<Decision<()>> {
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
    match (status, parked) {
        // The hour arrived: whatever parked it no longer holds.
        (BookmarkStatus::Ingested, _) => job.parked_hours.retain(|p| p.hour != to),
        (BookmarkStatus::Skipped, Some(entry)) if job.parked(to).is_none() => {
            job.parked_hours.push(entry.clone())
        }
        (BookmarkStatus::Skipped, _) => {}
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
        Some(f) if f.hour == hour => f.attempts + 1,
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

/// What became of a queued hour's try.
#[derive(Clone, Copy)]
pub enum Tried<'a> {
    Stored,
    /// Failed: queued for the next run, or parked again once `park_after` runs have failed.
    Failed {
        reason: &'a str,
        park_after: u32,
    },
}

/// Settles a queued hour after this run tried it. Answers true when it was parked again.
pub fn settle_queued(
    current: Option<&Job>,
    w: &Writer,
    hour: Hour,
    tried: Tried,
) -> anyhow::Result<Decision<bool>> {
    let job = held(current, w)?;
    let Some(entry) = job.queued(hour) else {
        // Done already (a lost reply), or an operator parked it meanwhile.
        return Ok(Decision::Keep(job.parked(hour).is_some()));
    };
    let mut job = job.clone();
    job.lease = Some(w.lease());
    let Tried::Failed { reason, park_after } = tried else {
        job.retry_hours.retain(|q| q.hour != hour);
        return Ok(Decision::Write(job, false));
    };
    if entry.run_id.as_deref() == Some(w.run_id) {
        return Ok(Decision::Keep(false));
    }
    let attempts = entry.attempts + 1;
    job.retry_hours.retain(|q| q.hour != hour);
    let parked = attempts >= park_after;
    if parked {
        job.parked_hours.push(ParkedHour {
            hour,
            reason: reason.to_string(),
            parked_at: w.now,
            by: w.by(),
            attempts,
        });
    } else {
        job.retry_hours.push(QueuedHour {
            hour,
            queued_at: entry.queued_at,
            by: entry.by.clone(),
            attempts,
            reason: Some(reason.to_string()),
            run_id: Some(w.run_id.to_string()),
        });
        job.retry_hours.sort_by_key(|q| q.hour);
    }
    Ok(Decision::Write(job, parked))
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

/// `elt skip HOUR`: parks the hour by hand. The next hour due: the bookmark moves past it now
/// (unless a run holds the job: that run passes it by, if it has not fetched it yet). A later
/// hour: runs pass it by when they get there. A queued hour: taken out of the queue.
pub fn park_by_hand(
    current: Option<&Job>,
    (job_id, by): (&str, Operator),
    hour: Hour,
    reason: &str,
    now: DateTime<Utc>,
    start: Start,
) -> anyhow::Result<Decision<OperatorChange>> {
    let job = existing(current, job_id)?;
    let next = job.next_hour(start.from, now, start.default_days);
    let mut change = OperatorChange {
        job_id: job_id.to_string(),
        hour,
        action: "parked",
        detail: String::new(),
        bookmark_before: job.bookmark_hour(),
        bookmark_after: job.bookmark_hour(),
    };
    if let Some(parked) = job.parked(hour) {
        if parked.by == by {
            change.detail = "parked (this command's own write)".into();
            return Ok(Decision::Keep(change));
        }
        bail!(
            "{hour} is parked already ({}, {}): {}",
            parked.by,
            parked.parked_at.format("%Y-%m-%d %H:%M UTC"),
            parked.reason
        );
    }
    if hour < next && job.queued(hour).is_none() {
        bail!(
            "{hour} is behind the bookmark ({}): it is done, nothing to skip",
            next.previous()
        );
    }
    let mut job = job.clone();
    job.retry_hours.retain(|q| q.hour != hour);
    job.parked_hours.push(ParkedHour {
        hour,
        reason: reason.to_string(),
        parked_at: now,
        by: by.to_string(),
        attempts: 0,
    });
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
        job.retry_hours.push(QueuedHour {
            hour,
            queued_at: now,
            by: by.to_string(),
            attempts: 0,
            reason: None,
            run_id: None,
        });
        job.retry_hours.sort_by_key(|q| q.hour);
    }
    Ok(Decision::Write(job, change))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(s: &str) -> Hour {
        s.parse().unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-03-10T00:30:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn writer(run_id: &str) -> Writer<'_> {
        Writer {
            run_id,
            now: now(),
            lease_until: now().timestamp_millis() + 60_000,
        }
    }

    const START: Start = Start {
        from: None,
        default_days: 3,
    };

    /// A job bookmarked at `bookmark`, held by `holder` (a live lease) if given.
    fn job(bookmark: Option<&str>, holder: Option<&str>) -> Job {
        let mut job = Job::new("j", 3, now());
        job.job_run_bookmark_details = bookmark.map(|b| Bookmark {
            last_run_file_name: hour(b),
            status: BookmarkStatus::Ingested,
            updated_at: None,
            run_id: None,
        });
        job.lease = holder.map(|run_id| Lease {
            run_id: run_id.into(),
            expires_at: now().timestamp_millis() + 1000,
        });
        job
    }

    fn written<T>(decision: anyhow::Result<Decision<T>>) -> (Job, T) {
        match decision.unwrap() {
            Decision::Write(job, value) => (job, value),
            Decision::Keep(_) => panic!("expected a write"),
        }
    }

    fn kept<T>(decision: anyhow::Result<Decision<T>>) -> T {
        match decision.unwrap() {
            Decision::Keep(value) => value,
            Decision::Write(..) => panic!("expected no write"),
        }
    }

    #[test]
    fn a_claim_creates_takes_over_or_finds_the_job_busy() {
        let w = writer("r1");
        let (created, answer) = written(claim(None, &w, "j", 2));
        assert_eq!(answer, Claim::Held);
        assert_eq!(
            created.baseline_day.map(|d| d.to_string()).as_deref(),
            Some("2024-03-08")
        );

        let seeded: Job = serde_json::from_str(r#"{"job_id": "j", "baseline_days": 1}"#).unwrap();
        let (claimed, _) = written(claim(Some(&seeded), &w, "j", 2));
        assert_eq!(
            claimed.baseline_day.map(|d| d.to_string()).as_deref(),
            Some("2024-03-09"),
            "pinned"
        );
        assert_eq!(claimed.lease.unwrap().run_id, "r1");

        assert_eq!(
            kept(claim(Some(&job(None, Some("r1"))), &w, "j", 2)),
            Claim::Held,
            "a lost reply"
        );
        assert!(
            matches!(kept(claim(Some(&job(None, Some("r2"))), &w, "j", 2)), Claim::Busy(l) if l.run_id == "r2")
        );
        let mut expired = job(None, Some("r2"));
        expired.lease.as_mut().unwrap().expires_at = 0;
        assert_eq!(written(claim(Some(&expired), &w, "j", 2)).1, Claim::Held);
    }

    #[test]
    fn advancing_needs_the_lease_and_the_bookmark_the_run_saw() {
        let w = writer("r1");
        let from = Some(hour("2024-03-05-1"));
        let to = hour("2024-03-05-2");
        let mut held = job(Some("2024-03-05-1"), Some("r1"));
        held.failing_hour = Some(FailingHour {
            hour: to,
            attempts: 2,
            reason: "x".into(),
            run_id: None,
        });
        held.parked_hours.push(ParkedHour {
            hour: to,
            reason: "by hand".into(),
            parked_at: now(),
            by: "elt skip".into(),
            attempts: 0,
        });
        let (moved, ()) = written(advance(
            Some(&held),
            &w,
            from,
            to,
            BookmarkStatus::Ingested,
            None,
        ));
        assert_eq!(moved.bookmark_hour(), Some(to));
        assert!(
            moved.failing_hour.is_none() && moved.parked_hours.is_empty(),
            "it arrived after all"
        );
        kept(advance(
            Some(&moved),
            &w,
            from,
            to,
            BookmarkStatus::Ingested,
            None,
        ));

        let other = job(Some("2024-03-05-1"), Some("r2"));
        let lost = advance(Some(&other), &w, from, to, BookmarkStatus::Ingested, None);
        assert!(lost
            .err()
            .unwrap()
            .to_string()
            .contains("lost the job to run r2"));
        let moved_by_someone = job(Some("2024-03-05-4"), Some("r1"));
        assert!(advance(
            Some(&moved_by_someone),
            &w,
            from,
            to,
            BookmarkStatus::Ingested,
            None
        )
        .is_err());

        let parked = ParkedHour {
            hour: to,
            reason: "broken".into(),
            parked_at: now(),
            by: "run r1".into(),
            attempts: 3,
        };
        let held = job(Some("2024-03-05-1"), Some("r1"));
        let (skipped, ()) = written(advance(
            Some(&held),
            &w,
            from,
            to,
            BookmarkStatus::Skipped,
            Some(&parked),
        ));
        assert_eq!(skipped.parked_hours, [parked]);
        assert_eq!(
            skipped.job_run_bookmark_details.unwrap().status,
            BookmarkStatus::Skipped
        );
    }

    #[test]
    fn a_failed_run_counts_once() {
        let w = writer("r1");
        let from = Some(hour("2024-03-05-1"));
        let next = hour("2024-03-05-2");
        let held = job(Some("2024-03-05-1"), Some("r1"));
        let (once, attempts) = written(count_failure(Some(&held), &w, from, next, "broken"));
        assert_eq!(attempts, 1);
        assert_eq!(
            kept(count_failure(Some(&once), &w, from, next, "broken")),
            1,
            "a lost reply"
        );
        let mut next_run = once.clone();
        next_run.lease.as_mut().unwrap().run_id = "r2".into();
        let (twice, attempts) = written(count_failure(
            Some(&next_run),
            &writer("r2"),
            from,
            next,
            "broken",
        ));
        assert_eq!(
            (attempts, twice.failing_hour.unwrap().reason.as_str()),
            (2, "broken")
        );
    }

    #[test]
    fn queued_hours_leave_the_queue_or_are_parked_again() {
        let w = writer("r1");
        let h = hour("2024-03-01-5");
        let mut held = job(Some("2024-03-05-1"), Some("r1"));
        held.retry_hours.push(QueuedHour {
            hour: h,
            queued_at: now(),
            by: "elt retry a".into(),
            attempts: 1,
            reason: None,
            run_id: Some("r0".into()),
        });
        let (done, parked) = written(settle_queued(Some(&held), &w, h, Tried::Stored));
        assert!(!parked && done.retry_hours.is_empty());
        assert!(
            !kept(settle_queued(Some(&done), &w, h, Tried::Stored)),
            "a lost reply"
        );

        let failed = Tried::Failed {
            reason: "broken",
            park_after: 3,
        };
        let (again, parked) = written(settle_queued(Some(&held), &w, h, failed));
        assert!(!parked);
        assert_eq!(again.queued(h).unwrap().attempts, 2);
        assert!(
            !kept(settle_queued(Some(&again), &w, h, failed)),
            "counted once per run"
        );
        let mut third = again.clone();
        third.lease.as_mut().unwrap().run_id = "r3".into();
        let (parked_job, parked) = written(settle_queued(Some(&third), &writer("r3"), h, failed));
        assert!(parked && parked_job.retry_hours.is_empty());
        assert_eq!(parked_job.parked(h).unwrap().attempts, 3);
    }

    #[test]
    fn skip_parks_the_next_hour_at_once_and_later_hours_ahead() {
        let idle = job(Some("2024-03-05-1"), None);
        let next = hour("2024-03-05-2");
        let (skipped, change) = written(park_by_hand(
            Some(&idle),
            ("j", "elt skip a"),
            next,
            "known bad",
            now(),
            START,
        ));
        assert_eq!(
            (change.action, change.bookmark_after),
            ("parked", Some(next))
        );
        assert_eq!(
            skipped.job_run_bookmark_details.as_ref().unwrap().status,
            BookmarkStatus::Skipped
        );
        assert_eq!(skipped.parked(next).unwrap().reason, "known bad");
        kept(park_by_hand(
            Some(&skipped),
            ("j", "elt skip a"),
            next,
            "known bad",
            now(),
            START,
        ));

        let later = hour("2024-03-05-7");
        let (ahead, change) = written(park_by_hand(
            Some(&idle),
            ("j", "elt skip a"),
            later,
            "x",
            now(),
            START,
        ));
        assert_eq!(
            (ahead.bookmark_hour(), change.bookmark_after),
            (idle.bookmark_hour(), idle.bookmark_hour())
        );
        assert!(ahead.parked(later).is_some());

        let busy = job(Some("2024-03-05-1"), Some("r9"));
        let (parked, change) = written(park_by_hand(
            Some(&busy),
            ("j", "elt skip a"),
            next,
            "x",
            now(),
            START,
        ));
        assert_eq!(
            parked.bookmark_hour(),
            busy.bookmark_hour(),
            "a run holds the job"
        );
        assert!(change.detail.contains("run r9"), "{}", change.detail);
    }

    #[test]
    fn skip_refuses_hours_done_or_parked_already() {
        let idle = job(Some("2024-03-05-1"), None);
        let next = hour("2024-03-05-2");
        let (skipped, _) = written(park_by_hand(
            Some(&idle),
            ("j", "elt skip a"),
            next,
            "x",
            now(),
            START,
        ));
        let behind = park_by_hand(
            Some(&idle),
            ("j", "elt skip a"),
            hour("2024-03-05-0"),
            "x",
            now(),
            START,
        );
        assert!(behind
            .err()
            .unwrap()
            .to_string()
            .contains("behind the bookmark"));
        let older = skipped.clone();
        assert!(
            park_by_hand(Some(&older), ("j", "elt skip b"), next, "x", now(), START)
                .err()
                .unwrap()
                .to_string()
                .contains("parked already")
        );
        assert!(
            park_by_hand(None, ("j", "elt skip a"), next, "x", now(), START)
                .err()
                .unwrap()
                .to_string()
                .contains("does not exist")
        );
    }

    #[test]
    fn retry_queues_a_parked_hour_behind_and_unparks_one_ahead() {
        let mut parked = job(Some("2024-03-05-5"), None);
        for (h, by) in [("2024-03-05-2", "run r1"), ("2024-03-05-9", "elt skip")] {
            parked.parked_hours.push(ParkedHour {
                hour: hour(h),
                reason: "x".into(),
                parked_at: now(),
                by: by.into(),
                attempts: 0,
            });
        }
        let (queued, change) = written(requeue(
            Some(&parked),
            ("j", "elt retry a"),
            hour("2024-03-05-2"),
            now(),
            START,
        ));
        assert_eq!(change.action, "queued");
        assert!(
            queued.parked(hour("2024-03-05-2")).is_none()
                && queued.queued(hour("2024-03-05-2")).is_some()
        );
        assert_eq!(
            kept(requeue(
                Some(&queued),
                ("j", "elt retry a"),
                hour("2024-03-05-2"),
                now(),
                START
            ))
            .action,
            "queued",
            "a lost reply"
        );
        assert!(requeue(
            Some(&queued),
            ("j", "elt retry b"),
            hour("2024-03-05-2"),
            now(),
            START
        )
        .err()
        .unwrap()
        .to_string()
        .contains("queued already"));

        let (unparked, change) = written(requeue(
            Some(&parked),
            ("j", "elt retry a"),
            hour("2024-03-05-9"),
            now(),
            START,
        ));
        assert_eq!(change.action, "unparked");
        assert!(unparked.retry_hours.is_empty() && unparked.parked(hour("2024-03-05-9")).is_none());

        let error = requeue(
            Some(&parked),
            ("j", "elt retry a"),
            hour("2024-03-05-3"),
            now(),
            START,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.contains("not parked (parked: 2024-03-05-2, 2024-03-05-9)"),
            "{error}"
        );
        assert!(error.contains("--force"), "{error}");
    }

    #[test]
    fn release_gives_up_only_the_runs_own_lease() {
        let (released, ()) = written(release(Some(&job(None, Some("r1"))), "r1"));
        assert!(released.lease.is_none());
        kept(release(Some(&job(None, Some("r2"))), "r1"));
        kept(release(Some(&released), "r1"));
        kept(release(None, "r1"));
    }
}
