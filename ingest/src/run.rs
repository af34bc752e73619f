//! A run: every due hour after the bookmark, oldest first, each stored then bookmarked by a
//! conditional write; and a backfill of a range, the bookmark untouched.
//!
//! Exactly once, in order: a run first takes the job's lease (a conditional write on `version`),
//! so no two runs work on the job at once; every bookmark move is conditional on the version the
//! run last wrote, so a run that lost its lease (it outlived it) stops instead of writing over
//! another's progress. An hour stored by a run that died before moving the bookmark is found in
//! the bucket by the next run and not fetched again.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use adapters::JobStore;
use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use events::jobs::{
    Bookmark, BookmarkStatus, HourOutcome, HourResult, IngestRun, Job, Lease, MissingHour, RunKind,
    RunStatus, StopReason,
};
use events::Hour;
use futures::StreamExt;
use rand::Rng;

use crate::config::IngestConfig;
use crate::fetch::{Fetched, Fetcher};

/// Receives every hour's result as it happens: progress for people, and in local mode the
/// stand-in for the S3 notification that starts the transform.
pub type Notify = tokio::sync::mpsc::UnboundedSender<HourResult>;

pub struct Ingest {
    pub config: IngestConfig,
    pub fetcher: Fetcher,
    pub jobs: Arc<dyn JobStore>,
    pub notify: Option<Notify>,
}

/// What became of the next hour, for the run loop.
enum Step {
    /// Stored (or found stored, or skipped): move the bookmark past it.
    Advance(HourResult, BookmarkStatus),
    /// Stop the run here, with the hour's result if it has one.
    Stop(Option<HourResult>, StopReason, RunStatus),
    /// A long-past hour is missing: note the attempt in the job, so that a later run can give
    /// up on it, and stop.
    Missing(HourResult, MissingHour),
}

impl Ingest {
    /// One scheduled run. `deadline` is the Lambda's, when there is one. The returned record is
    /// also written to `job_run_details`.
    pub async fn run(&self, deadline: Option<SystemTime>) -> anyhow::Result<IngestRun> {
        let run_id = new_run_id();
        let started_at = self.config.now();
        let mut record = self.new_record(&run_id, RunKind::Scheduled, started_at);
        let Some(mut job) = self.claim(&run_id).await? else {
            record.status = RunStatus::Busy;
            record.stop = StopReason::Busy;
            return self.finish(record, None).await;
        };
        record.bookmark_before = job.bookmark_hour();

        let (stop, status) = loop {
            let now = self.config.now();
            let next = match &job.job_run_bookmark_details {
                Some(bookmark) => bookmark.last_run_file_name.next(),
                None => self
                    .config
                    .start_hour
                    .unwrap_or_else(|| job.baseline_hour(now)),
            };
            if self.config.until.is_some_and(|until| next > until) {
                break (StopReason::Until, RunStatus::Ok);
            }
            if record.hours.len() >= self.config.max_hours_per_run as usize {
                break (StopReason::MaxHours, RunStatus::Ok);
            }
            if deadline.is_some_and(|d| self.deadline_near(d)) {
                break (StopReason::Deadline, RunStatus::Ok);
            }
            if next.end() > now {
                break (StopReason::CaughtUp, RunStatus::Ok);
            }
            match self.step(next, &job, now).await {
                Step::Advance(result, status) => {
                    let mut moved = job.clone();
                    moved.job_run_bookmark_details = Some(Bookmark {
                        last_run_file_name: next,
                        status,
                        updated_at: self.config.now(),
                        run_id: run_id.clone(),
                    });
                    moved.missing_hour = None;
                    moved.lease = Some(self.lease(&run_id));
                    moved.version += 1;
                    let written = self.jobs.put_job(&moved, Some(job.version)).await?;
                    self.report(&mut record, result);
                    if !written {
                        record.error = Some(format!(
                            "lost the job to another run before bookmarking {next}"
                        ));
                        tracing::error!(%next, run_id, "lost the job lease; stopping");
                        record.status = RunStatus::Error;
                        record.stop = StopReason::Failed;
                        return self.finish(record, None).await;
                    }
                    job = moved;
                }
                Step::Stop(result, stop, status) => {
                    if let Some(result) = result {
                        record.error = result.error.clone();
                        self.report(&mut record, result);
                    }
                    break (stop, status);
                }
                Step::Missing(result, missing) => {
                    record.error = result.error.clone();
                    self.report(&mut record, result);
                    let mut noted = job.clone();
                    noted.missing_hour = Some(missing);
                    noted.version += 1;
                    if self.jobs.put_job(&noted, Some(job.version)).await? {
                        job = noted;
                    }
                    break (StopReason::Failed, RunStatus::Error);
                }
            }
        };
        record.status = status;
        record.stop = stop;
        self.finish(record, Some(job)).await
    }

    /// Fetches `next` (unless it is already stored) and decides what the run does about it.
    async fn step(&self, next: Hour, job: &Job, now: DateTime<Utc>) -> Step {
        match self.store_hour(next, true).await {
            Some(result) if result.outcome == HourOutcome::Failed => {
                Step::Stop(Some(result), StopReason::Failed, RunStatus::Error)
            }
            Some(result) => Step::Advance(result, BookmarkStatus::Ingested),
            None => {
                let mut result = HourResult::new(next, HourOutcome::Missing);
                let late =
                    now - next.end() > Duration::hours(self.config.missing_after_hours.into());
                if !late {
                    tracing::info!(%next, "not published yet; stopping");
                    return Step::Stop(None, StopReason::NotPublished, RunStatus::Ok);
                }
                let attempts = match &job.missing_hour {
                    Some(m) if m.hour == next => m.attempts + 1,
                    _ => 1,
                };
                let location = self.fetcher.source.location(next);
                if attempts >= self.config.missing_hour_attempts {
                    result.outcome = HourOutcome::Skipped;
                    result.error = Some(format!(
                        "SKIPPED: {location} was still missing (404) after {attempts} runs; the bookmark moves past it"
                    ));
                    tracing::error!(hour = %next, %location, attempts, "SKIPPED a missing GHArchive hour; the bookmark moves past it");
                    Step::Advance(result, BookmarkStatus::Skipped)
                } else {
                    result.error = Some(format!(
                        "{location} is missing (404) though the hour ended long ago (run {attempts} of {} before it is skipped)",
                        self.config.missing_hour_attempts
                    ));
                    tracing::error!(hour = %next, %location, attempts, "a long-past GHArchive hour is missing");
                    Step::Missing(
                        result,
                        MissingHour {
                            hour: next,
                            attempts,
                        },
                    )
                }
            }
        }
    }

    /// Ingests `from..=to` with `parallel` downloads at once, leaving the bookmark alone. Hours
    /// already stored are skipped unless `force`.
    pub async fn backfill(
        &self,
        from: Hour,
        to: Hour,
        parallel: usize,
        force: bool,
    ) -> anyhow::Result<IngestRun> {
        let started_at = self.config.now();
        anyhow::ensure!(from <= to, "the range {from} .. {to} is empty");
        anyhow::ensure!(
            to.end() <= started_at,
            "{to} is not over yet: backfill hours that have ended"
        );
        let mut record = self.new_record(&new_run_id(), RunKind::Backfill, started_at);
        let job = self.jobs.get_job(&self.config.job_id).await?;
        record.bookmark_before = job.as_ref().and_then(Job::bookmark_hour);
        record.bookmark_after = record.bookmark_before;
        let mut results = futures::stream::iter(Hour::range(from, to))
            .map(|hour| self.backfill_hour(hour, force))
            .buffered(parallel.max(1));
        while let Some(result) = results.next().await {
            if matches!(result.outcome, HourOutcome::Failed | HourOutcome::Missing) {
                record.status = RunStatus::Error;
                record.error.get_or_insert_with(|| {
                    format!(
                        "{}: {}",
                        result.hour,
                        result.error.clone().unwrap_or_default()
                    )
                });
            }
            self.report(&mut record, result);
        }
        record.stop = StopReason::RangeDone;
        self.finish(record, None).await
    }

    async fn backfill_hour(&self, hour: Hour, force: bool) -> HourResult {
        self.store_hour(hour, !force).await.unwrap_or_else(|| {
            let mut result = HourResult::new(hour, HourOutcome::Missing);
            result.error = Some(format!(
                "{} is missing (404)",
                self.fetcher.source.location(hour)
            ));
            result
        })
    }

    /// Stores `hour` (or finds it stored, when `skip_existing`): its result, `ingested`,
    /// `already_present` or `failed`; `None` when the source has no such file (404).
    async fn store_hour(&self, hour: Hour, skip_existing: bool) -> Option<HourResult> {
        let started = Instant::now();
        let mut result = HourResult::new(hour, HourOutcome::Ingested);
        result.key = Some(self.fetcher.key(hour));
        if skip_existing {
            match self.fetcher.existing(hour).await {
                Ok(Some(size)) => {
                    result.outcome = HourOutcome::AlreadyPresent;
                    result.bytes = size;
                    return Some(result);
                }
                Ok(None) => {}
                Err(e) => {
                    result.outcome = HourOutcome::Failed;
                    result.error = Some(format!("{e:#}"));
                    return Some(result);
                }
            }
        }
        let (fetched, attempts) = self.fetcher.fetch(hour).await;
        result.attempts = attempts;
        result.seconds = started.elapsed().as_secs_f64();
        match fetched {
            Fetched::Stored(stored) => {
                result.bytes = stored.bytes;
                result.source_bytes = stored.source_bytes;
            }
            Fetched::NotFound => return None,
            Fetched::Failed(e) => {
                result.outcome = HourOutcome::Failed;
                result.error = Some(e.message);
            }
        }
        Some(result)
    }

    /// The job's item, created from the configuration when the job is new; then the job's lease
    /// for this run, or `None` when another run holds it.
    async fn claim(&self, run_id: &str) -> anyhow::Result<Option<Job>> {
        let job_id = &self.config.job_id;
        loop {
            let job = match self.jobs.get_job(job_id).await? {
                Some(job) => job,
                None => {
                    let job = Job::new(job_id, self.config.baseline_days, self.config.now());
                    if !self.jobs.put_job(&job, None).await? {
                        continue; // another run created it first
                    }
                    tracing::info!(job_id, baseline_day = ?job.baseline_day, "created the job");
                    job
                }
            };
            let now_ms = self.config.now().timestamp_millis();
            if let Some(lease) = job.lease.as_ref().filter(|l| l.expires_at > now_ms) {
                tracing::info!(job_id, holder = %lease.run_id, "another run holds the job; nothing to do");
                return Ok(None);
            }
            let mut claimed = job.clone();
            claimed.lease = Some(self.lease(run_id));
            claimed.version += 1;
            if self.jobs.put_job(&claimed, Some(job.version)).await? {
                return Ok(Some(claimed));
            }
        }
    }

    fn lease(&self, run_id: &str) -> Lease {
        let seconds = i64::try_from(self.config.lease_seconds).unwrap_or(i64::MAX / 2000);
        Lease {
            run_id: run_id.to_string(),
            expires_at: self.config.now().timestamp_millis() + seconds * 1000,
        }
    }

    fn deadline_near(&self, deadline: SystemTime) -> bool {
        let margin = std::time::Duration::from_secs(self.config.deadline_margin_seconds);
        deadline
            .duration_since(SystemTime::now())
            .map_or(true, |left| left < margin)
    }

    fn new_record(&self, run_id: &str, kind: RunKind, started_at: DateTime<Utc>) -> IngestRun {
        IngestRun {
            job_id: self.config.job_id.clone(),
            job_run_time: started_at.timestamp_millis(),
            run_id: run_id.to_string(),
            kind,
            started_at,
            ended_at: started_at,
            status: RunStatus::Ok,
            stop: StopReason::CaughtUp,
            bookmark_before: None,
            bookmark_after: None,
            hours_ingested: 0,
            bytes: 0,
            hours: Vec::new(),
            error: None,
        }
    }

    /// Adds an hour's result to the record and tells the listener.
    fn report(&self, record: &mut IngestRun, result: HourResult) {
        if result.outcome == HourOutcome::Ingested {
            record.hours_ingested += 1;
            record.bytes += result.bytes;
        }
        if let Some(notify) = &self.notify {
            let _ = notify.send(result.clone());
        }
        record.hours.push(result);
    }

    /// Releases the lease (if `job` holds it) and writes the run record.
    async fn finish(&self, mut record: IngestRun, job: Option<Job>) -> anyhow::Result<IngestRun> {
        if let Some(job) = job {
            record.bookmark_after = job.bookmark_hour();
            let mut released = job.clone();
            released.lease = None;
            released.version += 1;
            if !self.jobs.put_job(&released, Some(job.version)).await? {
                tracing::warn!(
                    run_id = record.run_id,
                    "the lease was taken over before the run released it"
                );
            }
        }
        record.ended_at = self.config.now().max(record.started_at);
        let value = serde_json::to_value(&record)?;
        record.job_run_time = self
            .jobs
            .add_run(&record.job_id, record.job_run_time, &value)
            .await
            .context("recording the run")?;
        let level_error = record.status == RunStatus::Error;
        if level_error {
            tracing::error!(run_id = record.run_id, stop = ?record.stop, hours = record.hours.len(), error = ?record.error, "run failed");
        } else {
            tracing::info!(run_id = record.run_id, stop = ?record.stop, hours_ingested = record.hours_ingested, bytes = record.bytes, "run done");
        }
        Ok(record)
    }
}

fn new_run_id() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}
