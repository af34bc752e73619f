//! A run: the queued hours first, then every due hour after the bookmark, oldest first, each
//! stored then bookmarked by a conditional write; then the sources that lag behind another and
//! the parked hours whose next try is due. And a backfill of a range, the bookmark untouched.
//!
//! Exactly once, in order: a run first takes the job's lease (a conditional write on `version`),
//! so no two runs work on the job at once; every bookmark move is conditional on the version the
//! run last read, and checks that the run still holds the lease, so a run that lost its lease
//! (it outlived it) stops instead of writing over another's progress. An hour stored by a run
//! that died before moving the bookmark is found in the bucket by the next run and not fetched
//! again. Every change to the job item is one of the rules in [`crate::changes`], written by
//! `adapters::update_job` (bounded retries, a fresh read after each failed write). What becomes
//! of an hour the sources did not deliver is decided in [`crate::fate`].
//!
//! Whatever fails, the run writes its record: an error (DynamoDB's included) ends the run with
//! status `error` and the message, and the record is written with retries. A transfer under way
//! when the run's deadline comes is cut off early enough to write it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use adapters::{update_job, JobStore, RunLog, WriteRetry};
use chrono::{DateTime, Utc};
use events::jobs::{
    BookmarkStatus, HourOutcome, HourResult, IngestRun, Job, ParkedHour, QueuedHour, RunKind,
    RunStatus, StopReason,
};
use events::Hour;

use crate::changes::{self, Aside, Claim, Moved, Writer};
use crate::config::IngestConfig;
use crate::fate::{self, NextHour};
use crate::fetch::{Fetcher, Placing};

mod backfill;
mod late;
mod parked;
mod queued;
mod record;
mod store;

pub use backfill::MAX_PARALLEL_DOWNLOADS;
use record::{fail, new_run_id, note_error};
use store::Probe;

/// Receives every hour's result as it happens: progress for people, and in local mode the
/// stand-in for the S3 notification that starts the transform.
pub type Notify = tokio::sync::mpsc::UnboundedSender<HourResult>;

/// Time kept at the end of a Lambda invocation to release the job and write the run record: a
/// transfer still under way then is cut off.
const RECORD_RESERVE: Duration = Duration::from_secs(20);

pub struct Ingest {
    pub config: IngestConfig,
    pub fetcher: Fetcher,
    /// The job's item: bookmark, lease, hours set aside.
    pub jobs: Arc<dyn JobStore>,
    /// Where each run's record goes.
    pub runs: Arc<dyn RunLog>,
    pub notify: Option<Notify>,
}

/// The run's limits: the Lambda's deadline (none for `elt`), and the instant transfers are cut
/// off at (that deadline less [`RECORD_RESERVE`]).
#[derive(Clone, Copy)]
pub(crate) struct Until {
    pub deadline: Option<SystemTime>,
    pub transfers: Option<tokio::time::Instant>,
}

impl Until {
    pub fn new(deadline: Option<SystemTime>) -> Until {
        let transfers = deadline.map(|d| {
            let left = d
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(RECORD_RESERVE);
            tokio::time::Instant::now() + left
        });
        Until {
            deadline,
            transfers,
        }
    }
}

/// Whether the loops over queued, late and parked hours go on.
pub(crate) enum Flow {
    Go(Box<Job>),
    /// The run's deadline came: stop here (the bookmark is where it is).
    Stop(StopReason),
}

/// What the run does after the bookmark's next hour.
enum Step {
    /// Move the bookmark past it.
    Advance(Moved),
    /// Count the run against it (the hour's own fault), and stop.
    Count(String),
    Stop(StopReason, RunStatus),
}

impl Ingest {
    /// One scheduled run. `deadline` is the Lambda's, when there is one. The returned record is
    /// also written to `job_run_details`; an error means that record could not be written.
    pub async fn run(&self, deadline: Option<SystemTime>) -> anyhow::Result<IngestRun> {
        let run_id = new_run_id();
        let mut record = self.new_record(&run_id, RunKind::Scheduled, self.config.now());
        if let Err(e) = self.work(&run_id, &mut record, Until::new(deadline)).await {
            tracing::error!(run_id, error = format!("{e:#}"), "the run failed");
            fail(&mut record, format!("{e:#}"));
        }
        self.finish(record).await
    }

    /// The run's work: claim the job, try the queued hours, follow the bookmark, then try the
    /// sources that lag and the parked hours that are due.
    async fn work(&self, run_id: &str, record: &mut IngestRun, until: Until) -> anyhow::Result<()> {
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
        let job = match self.retry_queued(job, run_id, record, until).await? {
            Flow::Go(job) => *job,
            Flow::Stop(stop) => {
                record.stop = stop;
                return Ok(());
            }
        };
        let (job, stop, status) = self.follow_bookmark(job, run_id, record, until).await?;
        record.stop = stop;
        if status != RunStatus::Ok {
            record.status = status;
        }
        let went_well = matches!(
            stop,
            StopReason::CaughtUp
                | StopReason::NotPublished
                | StopReason::Until
                | StopReason::MaxHours
        );
        if went_well {
            if let Flow::Go(job) = self.retry_late(job, run_id, record, until).await? {
                self.retry_parked(*job, run_id, record, until).await?;
            }
        }
        Ok(())
    }

    /// Every due hour after the bookmark, oldest first, until a reason to stop; the item as the
    /// run left it, and why it stopped.
    async fn follow_bookmark(
        &self,
        mut job: Job,
        run_id: &str,
        record: &mut IngestRun,
        until: Until,
    ) -> anyhow::Result<(Job, StopReason, RunStatus)> {
        loop {
            let now = self.config.now();
            let next = self.next_hour(&job, now);
            if self.config.until.is_some_and(|until| next > until) {
                return Ok((job, StopReason::Until, RunStatus::Ok));
            }
            if let Some(stop) = self.limit_reached(record, until) {
                return Ok((job, stop, RunStatus::Ok));
            }
            if next.end() > now {
                return Ok((job, StopReason::CaughtUp, RunStatus::Ok));
            }
            let from = job.bookmark_hour();
            let (result, step) = self.step(next, &job, run_id, until).await;
            if let Some(result) = result {
                if !matches!(step, Step::Advance(_)) || result.outcome == HourOutcome::Queued {
                    let error = result.error.as_ref().map(|e| format!("{next}: {e}"));
                    note_error(record, error);
                }
                self.report(record, result);
            }
            match step {
                Step::Advance(moved) => {
                    let rule = |current: Option<&Job>| {
                        changes::advance(current, &self.writer(run_id), from, next, &moved)
                    };
                    job = self.change(rule).await?.1;
                }
                Step::Count(reason) => {
                    self.change(|current| {
                        let w = self.writer(run_id);
                        changes::count_failure(current, &w, from, next, &reason)
                    })
                    .await?;
                    return Ok((job, StopReason::Failed, RunStatus::Error));
                }
                Step::Stop(stop, status) => return Ok((job, stop, status)),
            }
        }
    }

    /// Why the run must start no further hour, if it must not.
    fn limit_reached(&self, record: &IngestRun, until: Until) -> Option<StopReason> {
        if record.hours.len() >= self.config.max_hours_per_run as usize {
            return Some(StopReason::MaxHours);
        }
        if until.deadline.is_some_and(|d| self.deadline_near(d)) {
            return Some(StopReason::Deadline);
        }
        None
    }

    fn next_hour(&self, job: &Job, now: DateTime<Utc>) -> Hour {
        job.next_hour(self.config.start_hour, now, self.config.baseline_days)
    }

    /// Fetches `next` (unless it is parked, known to be lost, or already stored) and decides
    /// what the run does about it ([`fate::next_hour`]).
    async fn step(
        &self,
        next: Hour,
        job: &Job,
        run_id: &str,
        until: Until,
    ) -> (Option<HourResult>, Step) {
        let skipped = Moved::new(BookmarkStatus::Skipped, Aside::Nothing);
        if let Some(issue) = events::known_gap(next) {
            let mut result = HourResult::new(next, HourOutcome::Missing);
            result.error = Some(format!(
                "lost for good from GHArchive ({issue}): not fetched"
            ));
            return (Some(result), Step::Advance(skipped));
        }
        if let Some(parked) = job.parked(next) {
            let mut result = HourResult::new(next, HourOutcome::Skipped);
            result.error = Some(format!("parked ({}): {}", parked.by, parked.reason));
            tracing::warn!(hour = %next, by = parked.by, "passing a parked hour by");
            return (Some(result), Step::Advance(skipped));
        }
        let stored = self.store_hour(next, Placing::IfAbsent, until).await;
        let verdict = self.verdict_of(next, &stored, Probe::Always).await;
        let late = stored.late_sources(self.config.now());
        let mut result = stored.result;
        let reason = result.error.clone().unwrap_or_default();
        if let Some(note) = fate::not_counted_note(verdict) {
            result.error = Some(format!("{reason} ({note})"));
        }
        let failed_runs = match &job.failing_hour {
            Some(f) if f.hour == next => f.attempts.saturating_add(1),
            _ => 1,
        };
        let limit = self.config.missing_hour_attempts;
        let step = match fate::next_hour(verdict, failed_runs, limit) {
            NextHour::Advance => {
                Step::Advance(Moved::new(BookmarkStatus::Ingested, Aside::Nothing).late(late))
            }
            NextHour::Queue => {
                result.outcome = HourOutcome::Queued;
                tracing::warn!(hour = %next, reason, "the source did not deliver the hour; queued for every run to try, the bookmark moves on");
                let entry = QueuedHour {
                    tries: 1,
                    ..QueuedHour::new(
                        next,
                        self.config.now(),
                        format!("run {run_id}"),
                        Some(reason),
                    )
                };
                Step::Advance(Moved::new(BookmarkStatus::Queued, Aside::Queued(entry)).late(late))
            }
            NextHour::Count => {
                result.error = Some(format!(
                    "{reason} (run {failed_runs} of {limit} before it is parked)"
                ));
                tracing::error!(hour = %next, failed_runs, reason, "the next hour failed; counted against it");
                Step::Count(reason)
            }
            NextHour::Park => {
                result.outcome = HourOutcome::Skipped;
                result.error = Some(format!(
                    "SKIPPED (parked after {failed_runs} failed runs; runs try it again at growing intervals, `elt retry {next}` at once): {reason}"
                ));
                tracing::error!(hour = %next, failed_runs, reason, "SKIPPED: parked a GHArchive hour that failed on every run; the bookmark moves past it");
                let entry = ParkedHour::new(
                    next,
                    reason,
                    self.config.now(),
                    format!("run {run_id}"),
                    failed_runs,
                );
                Step::Advance(Moved::new(BookmarkStatus::Skipped, Aside::Parked(entry)))
            }
            NextHour::Stop(StopReason::NotPublished, status) => {
                tracing::info!(%next, "not published yet; stopping");
                return (None, Step::Stop(StopReason::NotPublished, status));
            }
            NextHour::Stop(stop, status) => Step::Stop(stop, status),
        };
        (Some(result), step)
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
        let lease_ms = i64::try_from(self.config.lease_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        Writer {
            run_id,
            now,
            lease_until: now.timestamp_millis().saturating_add(lease_ms),
        }
    }

    fn deadline_near(&self, deadline: SystemTime) -> bool {
        let margin = Duration::from_secs(self.config.deadline_margin_seconds);
        deadline
            .duration_since(SystemTime::now())
            .map_or(true, |left| left < margin)
    }
}

#[cfg(test)]
mod tests;
