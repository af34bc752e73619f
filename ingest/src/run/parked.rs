//! Parked hours are not given up: after the bookmark, a run tries again the few whose next try
//! is due (an hour after they were parked, then six hours, a day, a week, and weekly on), so an
//! hour the source serves again is fetched within a week with nobody asking. An hour parked for
//! good (`elt skip --forever`) and GHArchive's known gaps are never tried.

use events::jobs::{HourOutcome, IngestRun, Job, StopReason};
use events::Hour;

use super::store::Probe;
use super::{Flow, Ingest, Until};
use crate::changes::{self, Tried};
use crate::fate::{self, Retried, Verdict};
use crate::fetch::Placing;

/// Parked hours a run tries at most: they never hold up the bookmark's hours for long.
pub const PARKED_TRIES_PER_RUN: usize = 4;

impl Ingest {
    /// Tries the parked hours that are due, the longest due first.
    pub(super) async fn retry_parked(
        &self,
        mut job: Job,
        run_id: &str,
        record: &mut IngestRun,
        until: Until,
    ) -> anyhow::Result<Flow> {
        let now = self.config.now();
        let mut due: Vec<(chrono::DateTime<chrono::Utc>, Hour)> = job
            .parked_hours
            .iter()
            .filter(|p| p.due(now) && events::known_gap(p.hour).is_none())
            .filter_map(|p| Some((p.next_try()?, p.hour)))
            .collect();
        due.sort();
        for (_, hour) in due.into_iter().take(PARKED_TRIES_PER_RUN) {
            if until.deadline.is_some_and(|d| self.deadline_near(d)) {
                return Ok(Flow::Stop(StopReason::Deadline));
            }
            let stored = self.store_hour(hour, Placing::IfAbsent, until).await;
            let verdict = self.verdict_of(hour, &stored, Probe::Never).await;
            let late = stored.late_sources(self.config.now());
            let mut result = stored.result;
            let reason = result.error.clone().unwrap_or_default();
            let tried = match fate::retried(verdict) {
                Retried::Done => Tried::Stored,
                Retried::Again { .. } => Tried::Failed {
                    reason: &reason,
                    counts: false,
                    park_after: 0,
                },
                Retried::Stop => {
                    self.report(record, result);
                    if verdict == Verdict::Interrupted {
                        return Ok(Flow::Stop(StopReason::Deadline));
                    }
                    anyhow::bail!("trying parked {hour} again: {reason}");
                }
            };
            job = self
                .change(|current| {
                    changes::settle_parked(current, &self.writer(run_id), hour, tried, &late)
                })
                .await?
                .1;
            match tried {
                Tried::Stored => tracing::info!(%hour, "a parked hour arrived after all"),
                Tried::Failed { .. } => {
                    let next = job.parked(hour).and_then(|p| p.next_try());
                    let next = next.map_or("never".into(), |t| {
                        t.format("%Y-%m-%d %H:%M UTC").to_string()
                    });
                    result.outcome = HourOutcome::Skipped;
                    result.error = Some(format!(
                        "parked; tried again, still not there (next try {next}): {reason}"
                    ));
                    tracing::warn!(%hour, next, reason, "a parked hour is still not served");
                }
            }
            self.report(record, result);
        }
        Ok(Flow::Go(Box::new(job)))
    }
}
