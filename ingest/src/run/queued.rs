//! The hours an operator queued for another try (`elt retry`): tried first, apart from the
//! bookmark.

use std::time::SystemTime;

use events::jobs::{HourOutcome, IngestRun, Job};
use events::Hour;

use super::record::fail;
use super::{Ingest, Stored};
use crate::changes::{self, Tried};
use crate::fetch::Placing;
use crate::Failure;

impl Ingest {
    /// Tries the hours an operator queued (`elt retry`), oldest first: each stored one leaves
    /// the queue; one that keeps failing is parked again. They never hold up the bookmark.
    pub(super) async fn retry_queued(
        &self,
        mut job: Job,
        run_id: &str,
        record: &mut IngestRun,
        deadline: Option<SystemTime>,
    ) -> anyhow::Result<Job> {
        let queued: Vec<Hour> = job.retry_hours.iter().map(|q| q.hour).collect();
        for hour in queued {
            if self.limit_reached(record, deadline).is_some() {
                break;
            }
            let (mut result, reason) = match self.store_hour(hour, Placing::Replace).await {
                Stored::Done(result) => (result, None),
                Stored::NotFound(mut result) => {
                    let reason = format!("{} is missing (404)", self.fetcher.source.location(hour));
                    result.error = Some(reason.clone());
                    (result, Some(reason))
                }
                Stored::Failed(result, Failure::Ours) => {
                    let error = result.error.clone().unwrap_or_default();
                    self.report(record, result);
                    anyhow::bail!("retrying {hour}: {error}");
                }
                Stored::Failed(result, _) => {
                    let reason = result.error.clone().unwrap_or_default();
                    (result, Some(reason))
                }
            };
            let park_after = self.config.missing_hour_attempts;
            let tried = match &reason {
                None => Tried::Stored,
                Some(reason) => Tried::Failed { reason, park_after },
            };
            let (parked, stored) = self
                .change(|current| {
                    changes::settle_queued(current, &self.writer(run_id), hour, tried)
                })
                .await?;
            job = stored;
            if let Some(reason) = reason {
                let what = if parked {
                    "SKIPPED again (parked)"
                } else {
                    "queued for the next run"
                };
                result.error = Some(format!("retry failed, {what}: {reason}"));
                tracing::error!(%hour, parked, reason, "a queued hour failed again");
                fail(record, format!("retrying {hour}: {reason}"));
                if parked {
                    result.outcome = HourOutcome::Skipped;
                }
            }
            self.report(record, result);
        }
        Ok(job)
    }
}
