//! A backfill: a range of hours, several downloads at once, the bookmark untouched.

use events::jobs::{HourOutcome, HourResult, IngestRun, Job, RunKind, RunStatus, StopReason};
use events::Hour;
use futures::StreamExt;

use super::record::new_run_id;
use super::{Ingest, Stored};

impl Ingest {
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
        self.finish(record).await
    }

    async fn backfill_hour(&self, hour: Hour, force: bool) -> HourResult {
        match self.store_hour(hour, !force).await {
            Stored::Done(result) | Stored::Failed(result, _) => result,
            Stored::NotFound(mut result) => {
                let location = self.fetcher.source.location(hour);
                result.error = Some(format!("{location} is missing (404)"));
                result
            }
        }
    }
}
