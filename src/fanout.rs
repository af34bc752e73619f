//! A backfill fanned out on a queue: the range cut into messages, the plan kept in the run log
//! (for `elt status`), and the backfill's progress read back from the stores themselves.

use std::sync::Arc;

use adapters::queue::SqsQueue;
use adapters::{CommitStore, RunLog};
use events::backfill::{split, BackfillChunk, BackfillMessage, BackfillPlan, BACKFILL_JOB_ID};
use events::commits::{commit_key, CommitState};
use events::Hour;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use serde::Serialize;

/// Enqueues `from..=to` on `queue` in chunks of `hours_per_message`, after recording the plan.
pub async fn fan_out(
    queue: &SqsQueue,
    runs: &dyn RunLog,
    (from, to): (Hour, Hour),
    hours_per_message: u32,
    force: bool,
) -> anyhow::Result<BackfillPlan> {
    anyhow::ensure!(from <= to, "the range {from} .. {to} is empty");
    let now = chrono::Utc::now();
    let id = format!("bf-{}-{}", now.format("%Y%m%dT%H%M%S"), std::process::id());
    let chunks = split(from, to, hours_per_message);
    let bodies = chunks
        .iter()
        .map(|&(from, to)| {
            let backfill = BackfillChunk {
                id: id.clone(),
                from,
                to,
                force,
            };
            serde_json::to_string(&BackfillMessage { backfill })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let plan = BackfillPlan {
        job_id: BACKFILL_JOB_ID.to_string(),
        job_run_time: now.timestamp_millis(),
        run_id: id,
        created_at: now,
        from,
        to,
        hours: Hour::range(from, to).count() as u64,
        messages: bodies.len() as u64,
        hours_per_message,
        force,
        queue_url: queue.url.clone(),
    };
    // The plan first: a backfill whose messages are out is always one `elt status` can show.
    runs.add_run(&plan.clone().into()).await?;
    // A hundred sends of ten at a time, a few at once.
    futures::stream::iter(bodies.chunks(100))
        .map(|bodies| queue.send_batch(bodies))
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(plan)
}

/// Where a backfill stands.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub backfill: String,
    pub from: Hour,
    pub to: Hour,
    pub planned: u64,
    /// Hours whose raw file is stored.
    pub ingested: u64,
    /// Hours whose commit is complete.
    pub transformed: u64,
    /// Hours GHArchive's issues report lost: recorded as missing, never fetched.
    pub known_missing: u64,
    /// Messages waiting, being worked on, and given up (in the dead-letter queue).
    pub messages_waiting: u64,
    pub messages_in_flight: u64,
    pub messages_failed: u64,
    pub hours_per_minute: f64,
    pub eta_seconds: Option<f64>,
}

/// The stores a backfill's progress is read from.
pub struct ProgressSources {
    pub raw: Arc<dyn ObjectStore>,
    pub raw_prefix: String,
    pub commits: Arc<dyn CommitStore>,
    pub curated_prefix: String,
    pub queue: Option<SqsQueue>,
}

impl ProgressSources {
    /// `plan`'s progress: raw files listed, commit records read, the queue's counts.
    pub async fn progress(&self, plan: &BackfillPlan) -> anyhow::Result<Progress> {
        let hours: Vec<Hour> = Hour::range(plan.from, plan.to).collect();
        let ingested = self.stored_hours(plan.from, plan.to).await?;
        let transformed = futures::stream::iter(&hours)
            .map(|&hour| self.committed(hour))
            .buffer_unordered(16)
            .try_fold(0u64, |n, done| async move { Ok(n + u64::from(done)) })
            .await?;
        let known_missing = hours.iter().filter(|&&h| events::known_gap(h).is_some());
        let known_missing = known_missing.count() as u64;
        let (waiting, in_flight, failed) = self.queue_counts().await?;
        let minutes = (chrono::Utc::now() - plan.created_at).num_seconds().max(1) as f64 / 60.0;
        let hours_per_minute = ingested as f64 / minutes;
        let left = plan.hours.saturating_sub(ingested + known_missing);
        let eta_seconds = (hours_per_minute > 0.0).then(|| left as f64 / hours_per_minute * 60.0);
        Ok(Progress {
            backfill: plan.run_id.clone(),
            from: plan.from,
            to: plan.to,
            planned: plan.hours,
            ingested,
            transformed,
            known_missing,
            messages_waiting: waiting,
            messages_in_flight: in_flight,
            messages_failed: failed,
            hours_per_minute,
            eta_seconds,
        })
    }

    /// Raw hour files of `from..=to` in the raw store.
    async fn stored_hours(&self, from: Hour, to: Hour) -> anyhow::Result<u64> {
        let prefix = object_store::path::Path::from(self.raw_prefix.trim_end_matches('/'));
        let mut listing = self.raw.list(Some(&prefix));
        let mut stored = std::collections::BTreeSet::new();
        while let Some(meta) = listing.try_next().await? {
            let name = meta.location.filename().unwrap_or_default();
            if let Ok((hour, _)) = Hour::from_file_name(name) {
                if from <= hour && hour <= to {
                    stored.insert(hour);
                }
            }
        }
        Ok(stored.len() as u64)
    }

    async fn committed(&self, hour: Hour) -> anyhow::Result<bool> {
        let key = commit_key(&self.curated_prefix, hour);
        let record = self.commits.get_commit(&key).await?;
        Ok(record.is_some_and(|r| r.state == CommitState::Committed))
    }

    async fn queue_counts(&self) -> anyhow::Result<(u64, u64, u64)> {
        let Some(queue) = &self.queue else {
            return Ok((0, 0, 0));
        };
        let depth = queue.depth().await?;
        let failed = match &depth.dead_letter_arn {
            Some(arn) => {
                let url = queue.url_of(arn).await?;
                queue.sibling(&url).depth().await?.waiting
            }
            None => 0,
        };
        Ok((depth.waiting, depth.in_flight, failed))
    }
}
