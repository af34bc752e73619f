//! A run: every due hour after the bookmark, oldest first, each stored then bookmarked by a
//! conditional write; and a backfill of a range, the bookmark untouched.
//!
//! Exactly once, in order: a run first takes the job's lease (a conditional write on `version`),
//! so no two runs work on the job at once; every bookmark move is conditional on the version the
//! run last read, and checks that the run still holds the lease, so a run that lost its lease
//! (it outlived it) stops instead of writing over another's progress. An hour stored by a run
//! that died before moving the bookmark is found in the bucket by the next run and not fetched
//! again. Every change to the job item is one of the rules in [`crate::changes`], written by
//! `adapters::update_job` (bounded retries, a fresh read after each failed write).
//!
//! Whatever fails, the run writes its record: an error (DynamoDB's included) ends the run with
//! status `error` and the message, and the record is written with retries.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use adapters::{update_job, JobStore, RunLog, WriteRetry};
use chrono::{DateTime, Duration, Utc};
use events::jobs::{
    BookmarkStatus, HourOutcome, HourResult, IngestRun, Job, ParkedHour, RunKind, RunStatus,
    StopReason,
};
use events::Hour;

use crate::changes::{self, Claim, Writer};
use crate::config::IngestConfig;
use crate::fetch::{Fetched, Fetcher, Placing};
use crate::Failure;

mod backfill;
mod queued;
mod record;

use record::{fail, new_run_id, note_error};

/// Receives every hour's result as it happens: progress for people, and in local mode the
/// stand-in for the S3 notification that starts the transform.
pub type Notify = tokio::sync::mpsc::UnboundedSender<HourResult>;

pub struct Ingest {
    pub config: IngestConfig,
    pub fetcher: Fetcher,
    /// The job's item: bookmark, lease, hours set aside.
    pub jobs: Arc<dyn JobStore>,
    /// Where each run's record goes.
    pub runs: Arc<dyn RunLog>,
    pub notify: Option<Notify>,
}

/// What became of the next hour, for the run loop.
enum Step {
    /// Stored (or found stored, or parked): move the bookmark past it. With the parked entry
    /// when the run itself gives up on the hour.
    Advance(HourResult, BookmarkStatus, Option<ParkedHour>),
    /// Stop the run here, with the hour's result if it has one.
    Stop(Option<HourResult>, StopReason, RunStatus),
    /// The hour failed in a way that counts against it (missing long after it ended, or
    /// broken): count the run in the job, so that a later run can park it, and stop.
    Fail(HourResult, String),
}

/// What storing one hour came to.
enum Stored {
    /// Ingested, or found already stored.
    Done(HourResult),
    /// The source has no such file (404).
    NotFound(HourResult),
    Failed(HourResult, Failure),
}

impl Ingest {
    /// One scheduled run. `deadline` is the Lambda's, when there is one. The returned record is
    /// also written to `job_run_details`; an error means that record could not be written.
    pub async fn run(&self, deadline: Option<SystemTime>) -> anyhow::Result<IngestRun> {
        let run_id = new_run_id();
        let mut record = self.new_record(&run_id, RunKind::Scheduled, self.config.now());
        if let Err(e) = self.work(&run_id, &mut record, deadline).await {
            tracing::error!(run_id, error = format!("{e:#}"), "the run failed");
            fail(&mut record, format!("{e:#}"));
        }
        self.finish(record).await
    }

    /// The run's work: claim the job, try the queued hours, then follow the bookmark.
    async fn work(
        &self,
        run_id: &str,
        record: &mut IngestRun,
        deadline: Option<SystemTime>,
    ) -> anyhow::Result<()> {
        let job = match self.claim(run_id).await? {
            (Claim::Held, job) => job,
            (Claim::Busy(lease), _) => {
                tracing::info!(job_id = self.config.job_id, holder = %lease.run_id, "another run holds the job; nothing to do");
                record.status = RunStatus::Busy;
                record.stop = StopReason::Busy;
                return Ok(());
            }
        };
        record.bookmark_before = job.bookmark_hour();
        let job = self.retry_queued(job, run_id, record, deadline).await?;
        let (stop, status) = self.follow_bookmark(job, run_id, record, deadline).await?;
        record.stop = stop;
        if status != RunStatus::Ok {
            record.status = status;
        }
        Ok(())
    }

    /// Every due hour after the bookmark, oldest first, until a reason to stop.
    async fn follow_bookmark(
        &self,
        mut job: Job,
        run_id: &str,
        record: &mut IngestRun,
        deadline: Option<SystemTime>,
    ) -> anyhow::Result<(StopReason, RunStatus)> {
        loop {
            let now = self.config.now();
            let next = self.next_hour(&job, now);
            if self.config.until.is_some_and(|until| next > until) {
                return Ok((StopReason::Until, RunStatus::Ok));
            }
            if let Some(stop) = self.limit_reached(record, deadline) {
                return Ok((stop, RunStatus::Ok));
            }
            if next.end() > now {
                return Ok((StopReason::CaughtUp, RunStatus::Ok));
            }
            let from = job.bookmark_hour();
            match self.step(next, &job, now, run_id).await {
                Step::Advance(result, status, parked) => {
                    self.report(record, result);
                    job = self
                        .change(|current| {
                            let w = self.writer(run_id);
                            changes::advance(current, &w, from, next, status, parked.as_ref())
                        })
                        .await?
                        .1;
                }
                Step::Stop(result, stop, status) => {
                    if let Some(result) = result {
                        note_error(
                            record,
                            result.error.as_ref().map(|e| format!("{next}: {e}")),
                        );
                        self.report(record, result);
                    }
                    return Ok((stop, status));
                }
                Step::Fail(result, reason) => {
                    note_error(
                        record,
                        result.error.as_ref().map(|e| format!("{next}: {e}")),
                    );
                    self.report(record, result);
                    self.change(|current| {
                        let w = self.writer(run_id);
                        changes::count_failure(current, &w, from, next, &reason)
                    })
                    .await?;
                    return Ok((StopReason::Failed, RunStatus::Error));
                }
            }
        }
    }

    /// Why the run must start no further hour, if it must not.
    fn limit_reached(
        &self,
        record: &IngestRun,
        deadline: Option<SystemTime>,
    ) -> Option<StopReason> {
        if record.hours.len() >= self.config.max_hours_per_run as usize {
            return Some(StopReason::MaxHours);
        }
        if deadline.is_some_and(|d| self.deadline_near(d)) {
            return Some(StopReason::Deadline);
        }
        None
    }

    fn next_hour(&self, job: &Job, now: DateTime<Utc>) -> Hour {
        job.next_hour(self.config.start_hour, now, self.config.baseline_days)
    }

    /// Fetches `next` (unless it is parked, or already stored) and decides what the run does
    /// about it.
    async fn step(&self, next: Hour, job: &Job, now: DateTime<Utc>, run_id: &str) -> Step {
        if let Some(parked) = job.parked(next) {
            let mut result = HourResult::new(next, HourOutcome::Skipped);
            result.error = Some(format!("parked ({}): {}", parked.by, parked.reason));
            tracing::warn!(hour = %next, by = parked.by, "passing a parked hour by");
            return Step::Advance(result, BookmarkStatus::Skipped, None);
        }
        let (mut result, reason) = match self.store_hour(next, Placing::IfAbsent).await {
            Stored::Done(result) => return Step::Advance(result, BookmarkStatus::Ingested, None),
            Stored::NotFound(result) => {
                let late =
                    now - next.end() > Duration::hours(self.config.missing_after_hours.into());
                if !late {
                    tracing::info!(%next, "not published yet; stopping");
                    return Step::Stop(None, StopReason::NotPublished, RunStatus::Ok);
                }
                let location = self.fetcher.source.location(next);
                (
                    result,
                    format!("{location} is missing (404) though the hour ended long ago"),
                )
            }
            Stored::Failed(mut result, failure) => {
                if let Err(note) = self.counts_against(next, failure).await {
                    result.error = Some(format!("{}{note}", result.error.unwrap_or_default()));
                    return Step::Stop(Some(result), StopReason::Failed, RunStatus::Error);
                }
                let reason = result.error.clone().unwrap_or_default();
                (result, reason)
            }
        };
        let attempts = match &job.failing_hour {
            Some(f) if f.hour == next => f.attempts + 1,
            _ => 1,
        };
        let limit = self.config.missing_hour_attempts;
        if attempts < limit {
            result.error = Some(format!(
                "{reason} (run {attempts} of {limit} before it is parked)"
            ));
            tracing::error!(hour = %next, attempts, reason, "the next hour failed; counted against it");
            return Step::Fail(result, reason);
        }
        result.outcome = HourOutcome::Skipped;
        result.error = Some(format!(
            "SKIPPED (parked after {attempts} failed runs; `elt retry {next}` takes it back): {reason}"
        ));
        tracing::error!(hour = %next, attempts, reason, "SKIPPED: parked a GHArchive hour that failed on every run; the bookmark moves past it");
        let parked = ParkedHour {
            hour: next,
            reason,
            parked_at: now,
            by: format!("run {run_id}"),
            attempts,
        };
        Step::Advance(result, BookmarkStatus::Skipped, Some(parked))
    }

    /// Whether a failure to fetch `hour` counts against the hour; when it does not, a note for
    /// the record saying why: the fault is ours (storage), or the source serves neither the hour
    /// before nor the hour after as gzip (an outage, or an error page for every file, which must
    /// not park hours).
    async fn counts_against(&self, hour: Hour, failure: Failure) -> Result<(), String> {
        if failure == Failure::Ours {
            return Err(" (our side: not counted against the hour)".into());
        }
        let source = &self.fetcher.source;
        let after_is_over = hour.next().end() <= self.config.now();
        if source.serves(hour.previous()).await
            || (after_is_over && source.serves(hour.next()).await)
        {
            return Ok(());
        }
        Err(format!(
            " (not counted against the hour: the source does not serve {} or {} whole either, an outage?)",
            hour.previous(),
            hour.next()
        ))
    }

    /// Stores `hour` as `placing` says (or finds it stored).
    async fn store_hour(&self, hour: Hour, placing: Placing) -> Stored {
        let started = Instant::now();
        let mut result = HourResult::new(hour, HourOutcome::Ingested);
        result.key = Some(self.fetcher.key(hour));
        if placing != Placing::Replace {
            match self.fetcher.existing(hour).await {
                Ok(Some(size)) => {
                    result.outcome = HourOutcome::AlreadyPresent;
                    result.bytes = size;
                    return Stored::Done(result);
                }
                Ok(None) => {}
                Err(e) => {
                    result.outcome = HourOutcome::Failed;
                    result.error = Some(format!("{e:#}"));
                    return Stored::Failed(result, Failure::Ours);
                }
            }
        }
        let (fetched, attempts) = self.fetcher.fetch(hour, placing).await;
        result.attempts = attempts;
        result.seconds = started.elapsed().as_secs_f64();
        match fetched {
            Fetched::Stored(stored) => {
                if stored.already_present {
                    result.outcome = HourOutcome::AlreadyPresent;
                }
                result.bytes = stored.bytes;
                result.source_bytes = stored.source_bytes;
                Stored::Done(result)
            }
            Fetched::NotFound => {
                result.outcome = HourOutcome::Missing;
                Stored::NotFound(result)
            }
            Fetched::Failed(e) => {
                result.outcome = HourOutcome::Failed;
                result.error = Some(e.message);
                Stored::Failed(result, e.kind)
            }
        }
    }

    /// Changes the job item by `rule` (one of [`changes`]); answers the rule's answer and the
    /// item as stored after it.
    async fn change<T: Send>(
        &self,
        rule: impl FnMut(Option<&Job>) -> anyhow::Result<adapters::Decision<T>> + Send,
    ) -> anyhow::Result<(T, Job)> {
        let job_id = &self.config.job_id;
        let updated = update_job(&*self.jobs, job_id, WriteRetry::default(), rule).await?;
        let job = updated
            .job
            .ok_or_else(|| anyhow::anyhow!("job {job_id} has no item after a write"))?;
        Ok((updated.value, job))
    }

    /// The job's lease for this run (the item created from the configuration when the job is
    /// new), or the lease of the run that holds it.
    async fn claim(&self, run_id: &str) -> anyhow::Result<(Claim, Job)> {
        let (claim, job) = self
            .change(|current| {
                let w = self.writer(run_id);
                changes::claim(current, &w, &self.config.job_id, self.config.baseline_days)
            })
            .await?;
        if claim == Claim::Held && job.version == 0 {
            tracing::info!(job_id = job.job_id, baseline_day = ?job.baseline_day, "created the job");
        }
        Ok((claim, job))
    }

    /// This run as a writer of the job item, now; its lease lasts `LEASE_SECONDS` from now.
    fn writer<'a>(&self, run_id: &'a str) -> Writer<'a> {
        let now = self.config.now();
        let seconds = i64::try_from(self.config.lease_seconds).unwrap_or(i64::MAX / 2000);
        Writer {
            run_id,
            now,
            lease_until: now.timestamp_millis() + seconds * 1000,
        }
    }

    fn deadline_near(&self, deadline: SystemTime) -> bool {
        let margin = std::time::Duration::from_secs(self.config.deadline_margin_seconds);
        deadline
            .duration_since(SystemTime::now())
            .map_or(true, |left| left < margin)
    }
}

#[cfg(test)]
mod tests;
