//! The run's record: made when the run starts, filled in hour by hour, and written to the run
//! log when it ends, retried; the lease released on the way.

use adapters::WriteRetry;
use backon::Retryable;
use chrono::{DateTime, Utc};
use events::jobs::{
    lag_hours, HourOutcome, HourResult, IngestRun, Job, RunKind, RunRecord, RunStatus, StopReason,
};
use rand::Rng;

use super::Ingest;
use crate::changes;

/// Attempts at writing the run record before the run reports that it could not.
const RECORD_ATTEMPTS: u32 = 3;

impl Ingest {
    /// A new run's record, before it has done anything.
    pub(super) fn new_record(
        &self,
        run_id: &str,
        kind: RunKind,
        started_at: DateTime<Utc>,
    ) -> IngestRun {
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
            bookmark_lag_hours: None,
            hours_ingested: 0,
            bytes: 0,
            hours: Vec::new(),
            error: None,
            set_aside: None,
        }
    }

    /// Adds an hour's result to the record and tells the listener.
    pub(super) fn report(&self, record: &mut IngestRun, result: HourResult) {
        if result.outcome == HourOutcome::Ingested {
            record.hours_ingested = record.hours_ingested.saturating_add(1);
            record.bytes = record.bytes.saturating_add(result.bytes);
        }
        if let Some(notify) = &self.notify {
            let _ = notify.send(result.clone());
        }
        record.hours.push(result);
    }

    /// Releases the lease (if this run holds it), notes the bookmark and its lag, and writes the
    /// run record, retried; an error if the record could not be written.
    pub(super) async fn finish(&self, mut record: IngestRun) -> anyhow::Result<IngestRun> {
        if record.kind == RunKind::Scheduled {
            let run_id = record.run_id.clone();
            match self
                .change(|current| changes::release(current, &run_id))
                .await
            {
                Ok(((), job)) => {
                    let next = self.next_hour(&job, self.config.now());
                    record.bookmark_lag_hours = Some(lag_hours(next, self.config.now()));
                    record.set_aside = Some(job.set_aside());
                    if record.status != RunStatus::Busy {
                        record.bookmark_after = job.bookmark_hour();
                    }
                    log_set_aside(&job);
                }
                Err(e) => fail(&mut record, format!("releasing the job: {e:#}")),
            }
        }
        record.ended_at = self.config.now().max(record.started_at);
        record.job_run_time = self.write_record(&record).await?;
        if record.status == RunStatus::Error {
            tracing::error!(run_id = record.run_id, stop = ?record.stop, hours = record.hours.len(), error = ?record.error, "run failed");
        } else {
            tracing::info!(run_id = record.run_id, stop = ?record.stop, hours_ingested = record.hours_ingested, bytes = record.bytes, "run done");
        }
        Ok(record)
    }

    /// Writes the run record to `job_run_details`, trying `RECORD_ATTEMPTS` times; answers the
    /// `job_run_time` it was stored at.
    async fn write_record(&self, record: &IngestRun) -> anyhow::Result<i64> {
        let stored = RunRecord::Ingest(record.clone());
        let retry = WriteRetry {
            attempts: RECORD_ATTEMPTS,
            ..WriteRetry::default()
        };
        let written = (|| self.runs.add_run(&stored))
            .retry(retry.backoff())
            .sleep(tokio::time::sleep)
            .notify(|e, _| {
                let error = format!("{e:#}");
                tracing::warn!(
                    run_id = record.run_id,
                    error,
                    "writing the run record failed; retrying"
                );
            })
            .await;
        written.map_err(|e| {
            // The whole record in the log, as JSON, so that it is not lost.
            let json = serde_json::to_string(record).unwrap_or_default();
            tracing::error!(record = %json, error = format!("{e:#}"), "the run record could not be written");
            anyhow::anyhow!(
                "the run record could not be written to the run table after {RECORD_ATTEMPTS} attempts ({e:#}); the run ended {:?} with {} hours ingested{}",
                record.status,
                record.hours_ingested,
                record.error.as_ref().map(|e| format!(", error: {e}")).unwrap_or_default()
            )
        })
    }
}

/// One log line per hour the job holds apart, for the dashboard's list of parked and queued
/// hours (a Logs Insights query over the ingest's log group).
fn log_set_aside(job: &Job) {
    for parked in &job.parked_hours {
        let next_try = parked.next_try().map(|t| t.to_rfc3339());
        let last_try = parked.history.last().map(|t| t.at.to_rfc3339());
        tracing::info!(
            hour = %parked.hour, next_try, last_try, tries = parked.tries, forever = parked.forever,
            by = parked.by, reason = parked.reason, "parked hour"
        );
    }
    for queued in &job.retry_hours {
        tracing::info!(
            hour = %queued.hour, by = queued.by, tries = queued.tries, attempts = queued.attempts,
            reason = queued.reason, "queued hour"
        );
    }
}

/// Marks the run failed with `error`, after any error it already had.
pub(super) fn fail(record: &mut IngestRun, error: String) {
    record.status = RunStatus::Error;
    if record.stop != StopReason::Busy {
        record.stop = StopReason::Failed;
    }
    note_error(record, Some(error));
}

/// Adds `error` to the run's error, if there is one.
pub(super) fn note_error(record: &mut IngestRun, error: Option<String>) {
    let Some(error) = error else {
        return;
    };
    record.error = Some(match record.error.take() {
        Some(earlier) if earlier != error => format!("{earlier}; {error}"),
        _ => error,
    });
}

pub(super) fn new_run_id() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}
