//! The queued hours, tried first by every run, apart from the bookmark: hours an operator took
//! back (`elt retry`), and hours a run set aside because the source did not deliver them for
//! reasons that are not the hour's. Only the hour's own fault counts against one; at
//! `MISSING_HOUR_ATTEMPTS` such runs it is parked.

use events::jobs::{HourOutcome, IngestRun, Job, StopReason};
use events::Hour;

use super::record::{fail, note_error};
use super::store::Probe;
use super::{Flow, Ingest, Until};
use crate::changes::{self, Tried};
use crate::fate::{self, Retried, Verdict};
use crate::fetch::Placing;

impl Ingest {
    /// Tries the queued hours, oldest first: each stored one leaves the queue; one that keeps
    /// failing by its own fault is parked. They never hold up the bookmark.
    pub(super) async fn retry_queued(
        &self,
        mut job: Job,
        run_id: &str,
        record: &mut IngestRun,
        until: Until,
    ) -> anyhow::Result<Flow> {
        let queued: Vec<Hour> = job.retry_hours.iter().map(|q| q.hour).collect();
        for hour in queued {
            if let Some(stop) = self.limit_reached(record, until) {
                if stop == StopReason::Deadline {
                    return Ok(Flow::Stop(stop));
                }
                break;
            }
            let stored = self.store_hour(hour, Placing::IfAbsent, until).await;
            let verdict = self.verdict_of(hour, &stored, Probe::Broken).await;
            let late = stored.late_sources(self.config.now());
            let mut result = stored.result;
            let reason = result.error.clone().unwrap_or_default();
            let counts = match fate::retried(verdict) {
                Retried::Done => None,
                Retried::Again { counts } => Some(counts),
                Retried::Stop => {
                    self.report(record, result);
                    if verdict == Verdict::Interrupted {
                        return Ok(Flow::Stop(StopReason::Deadline));
                    }
                    anyhow::bail!("retrying {hour}: {reason}");
                }
            };
            let park_after = self.config.missing_hour_attempts;
            let tried = match counts {
                None => Tried::Stored,
                Some(counts) => Tried::Failed {
                    reason: &reason,
                    counts,
                    park_after,
                },
            };
            let (parked, stored) = self
                .change(|current| {
                    changes::settle_queued(current, &self.writer(run_id), hour, tried, &late)
                })
                .await?;
            job = stored;
            if let Some(counts) = counts {
                let what = match (parked, counts) {
                    (true, _) => "SKIPPED again (parked)",
                    (false, true) => "counted against it; queued for the next run",
                    (false, false) => "not the hour's fault, not counted; queued for the next run",
                };
                result.error = Some(format!("retry failed, {what}: {reason}"));
                result.outcome = match parked {
                    true => HourOutcome::Skipped,
                    false => HourOutcome::Queued,
                };
                tracing::warn!(%hour, parked, counts, reason, "a queued hour failed again");
                match counts {
                    true => fail(record, format!("retrying {hour}: {reason}")),
                    false => note_error(
                        record,
                        Some(format!("{hour} (queued, not counted against it): {reason}")),
                    ),
                }
            }
            self.report(record, result);
        }
        Ok(Flow::Go(Box::new(job)))
    }
}
