//! A backfill: a range of hours, several downloads at once, the bookmark untouched.

use std::time::SystemTime;

use events::jobs::{HourOutcome, HourResult, IngestRun, Job, RunKind, RunStatus, StopReason};
use events::Hour;
use futures::StreamExt;

use super::record::new_run_id;
use super::{Ingest, Until};
use crate::fate::Answer;
use crate::fetch::Placing;

/// The most downloads a backfill runs at once, from the command line or a backfill message.
pub const MAX_PARALLEL_DOWNLOADS: usize = 16;

impl Ingest {
    /// Ingests `from..=to` with `parallel` downloads at once (at most
    /// [`MAX_PARALLEL_DOWNLOADS`]), leaving the bookmark alone, until `deadline` (the Lambda's,
    /// when there is one): hours not begun before it are failed as not started, and a transfer
    /// under way is cut off early enough to write the run record. Hours already stored are
    /// skipped unless `force`; GHArchive's known gaps are recorded as missing without a
    /// request. The run is an error if any other hour failed or was missing.
    pub async fn backfill(
        &self,
        (from, to): (Hour, Hour),
        parallel: usize,
        force: bool,
        deadline: Option<SystemTime>,
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
        let until = Until::new(deadline);
        let mut results = futures::stream::iter(Hour::range(from, to))
            .map(|hour| self.backfill_hour(hour, force, until))
            .buffered(parallel.clamp(1, MAX_PARALLEL_DOWNLOADS));
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
        record.stop = match until.deadline.is_some_and(|d| self.deadline_near(d)) {
            true => StopReason::Deadline,
            false => StopReason::RangeDone,
        };
        self.finish(record).await
    }

    async fn backfill_hour(&self, hour: Hour, force: bool, until: Until) -> HourResult {
        // GHArchive's own issues report these hours lost for good: recorded, never fetched.
        if let Some(issue) = events::known_gap(hour) {
            let mut result = HourResult::new(hour, HourOutcome::Missing);
            result.error = Some(format!("permanently missing from GHArchive ({issue})"));
            return result;
        }
        if until.deadline.is_some_and(|d| self.deadline_near(d)) {
            let mut result = HourResult::new(hour, HourOutcome::Failed);
            result.error = Some("not started: the invocation's deadline is near".into());
            return result;
        }
        let placing = match force {
            true => Placing::Replace,
            false => Placing::Once,
        };
        let stored = self.store_hour(hour, placing, until).await;
        let lag_may_pass = stored.lag_may_pass();
        let not_found = stored.answer == Answer::NotFound;
        let mut result = stored.result;
        // A source that failed in a way another delivery may mend, while another stored the
        // hour, fails the hour too, so that the message comes back for it (the stored source is
        // skipped then). A source without the hour (404) does not.
        if lag_may_pass {
            result.outcome = HourOutcome::Failed;
        }
        if not_found && result.error.is_none() {
            result.error = Some(format!("{hour} is missing (404)"));
        }
        result
    }
}
