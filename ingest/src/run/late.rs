//! Sources that lag: an hour stored from one source that another has not delivered yet (a
//! mirror that publishes later, or was down). Each run tries such a source again; once it
//! delivers, its raw file is stored and the transform commits the hour again with the union.
//! After `MISSING_AFTER_HOURS` past the hour's end a source that still has nothing is given up
//! for that hour (`elt backfill` over the range later takes whatever it has since).

use chrono::Duration;
use events::jobs::{HourOutcome, HourResult, IngestRun, Job, LateSource, StopReason};

use super::record::note_error;
use super::{Flow, Ingest, Until};
use crate::changes::{self, LateTry};
use crate::fate::Answer;
use crate::fetch::Placing;
use crate::Failure;

impl Ingest {
    /// Tries each lagging source once; stops trying a source that turns out unreachable.
    pub(super) async fn retry_late(
        &self,
        mut job: Job,
        run_id: &str,
        record: &mut IngestRun,
        until: Until,
    ) -> anyhow::Result<Flow> {
        let mut down: Vec<String> = Vec::new();
        for late in job.late_sources.clone() {
            if until.deadline.is_some_and(|d| self.deadline_near(d)) {
                return Ok(Flow::Stop(StopReason::Deadline));
            }
            if down.contains(&late.source) {
                continue;
            }
            let (tried, result) = self.try_late(&late, until).await;
            if let Some(result) = result {
                if result
                    .sources
                    .first()
                    .is_some_and(|s| s.outcome == HourOutcome::Failed)
                {
                    down.push(late.source.clone());
                }
                if let Some(error) = &result.error {
                    note_error(
                        record,
                        Some(format!("{} from {}: {error}", late.hour, late.source)),
                    );
                }
                self.report(record, result);
            }
            let rule = |current: Option<&Job>| {
                let w = self.writer(run_id);
                changes::settle_late(current, &w, late.hour, &late.source, &tried)
            };
            job = self.change(rule).await?.1;
        }
        Ok(Flow::Go(Box::new(job)))
    }

    /// One try of a lagging source, and its result for the record (none when the source is no
    /// longer configured).
    async fn try_late(&self, late: &LateSource, until: Until) -> (LateTry, Option<HourResult>) {
        let Some(origin) = self.fetcher.origins.iter().find(|o| o.name == late.source) else {
            tracing::info!(hour = %late.hour, source = late.source, "a lagging source is no longer configured; dropped");
            return (LateTry::Settled, None);
        };
        let deadline = self.fetcher.deadline(until.transfers);
        let got = self
            .store_from(late.hour, origin, Placing::IfAbsent, deadline)
            .await;
        let mut result = HourResult::new(late.hour, got.result.outcome);
        result.key = got.result.key.clone();
        result.bytes = got.result.bytes;
        result.source_bytes = got.result.source_bytes;
        result.attempts = got.result.attempts;
        let expired = self.config.now() - late.hour.end()
            > Duration::hours(self.config.missing_after_hours.into());
        let tried = match got.answer {
            Answer::Stored => LateTry::Settled,
            Answer::Failed(Failure::Ours | Failure::Interrupted) => {
                LateTry::Again(late.reason.clone())
            }
            _ if expired => {
                result.error = Some(format!(
                    "given up on this source for the hour ({}h after it ended): {}",
                    self.config.missing_after_hours,
                    got.result.error.clone().unwrap_or_default()
                ));
                LateTry::Settled
            }
            _ => {
                result.error = got.result.error.clone();
                LateTry::Again(result.error.clone().unwrap_or_default())
            }
        };
        result.sources = vec![got.result];
        (tried, Some(result))
    }
}
