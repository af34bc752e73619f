//! A backfill: a range of hours, several downloads at once, the bookmark untouched.

use events::jobs::{HourOutcome, HourResult, IngestRun, Job, RunKind, RunStatus, StopReason};
use events::Hour;
use futures::StreamExt;

use super::record::new_run_id;
use super::{Ingest, Stored};
use crate::fetch::Placing;

impl Ingest {
    /// Ingests `from..=to` with `parallel` downloads at once, leaving the bookmark alone. Hours
    /// already stored are skipped unless `force`; GHArchive's known gaps are recorded as missing
    /// without a request. The run is an error if any other hour failed or was missing.
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
            let known_gap = events::known_gap(result.hour).is_some();
            if result.outcome == HourOutcome::Failed
                || (result.outcome == HourOutcome::Missing && !known_gap)
            {
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
        // GHArchive's own issues report these hours lost for good: recorded, never fetched.
        if let Some(issue) = events::known_gap(hour) {
            let mut result = HourResult::new(hour, HourOutcome::Missing);
            result.error = Some(format!("permanently missing from GHArchive ({issue})"));
            return result;
        }
        let placing = match force {
            true => Placing::Replace,
            false => Placing::Once,
        };
        match self.store_hour(hour, placing).await {
            Stored::Done(result) | Stored::Failed(result, _) => result,
            Stored::NotFound(mut result) => {
                let location = self.fetcher.source.location(hour);
                result.error = Some(format!("{location} is missing (404)"));
                result
            }
        }
    }
}
