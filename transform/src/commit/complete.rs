//! The second step of a commit, and what follows it: under a claim that is renewed (and so
//! checked) before each step, the hour's Delta commit, then the quarantine moved into place and
//! the record marked `committed`; then clearing what earlier runs of the hour left.

use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use events::commits::{event_ids_prefix, staging_prefix, CommitState, HourCommit};
use futures::TryStreamExt;
use lake_table::commit::{DataFile, HourResult, Landed};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::rules::backoff;
use super::{dropped_key, Outputs, Run};
use crate::parts::Staged;

/// Attempts at each step of moving objects into place (object_store retries HTTP errors
/// already; these cover what it gives up on, so that a commit is seldom left half done).
const STEP_ATTEMPTS: u32 = 4;

impl Run<'_> {
    /// Commits the run's parts to the table (in place of the hour's earlier ones), moves the
    /// quarantine into place, marks the record `committed`. `base`: the log's version before
    /// the claim; `compacted_nearby`: whether the hour's partitions hold compacted files.
    pub(super) async fn complete(
        &self,
        claim: HourCommit,
        outputs: &Outputs,
        base: Option<u64>,
        compacted_nearby: bool,
    ) -> anyhow::Result<HourCommit> {
        self.pause().await;
        let mut claim = self.renew(claim).await?;
        let version = self
            .commit_to_table(&claim, outputs, base, compacted_nearby)
            .await?;
        if let Some(staged) = &outputs.quarantine {
            self.pause().await;
            claim = self.renew(claim).await?;
            self.move_into_place(staged)
                .await
                .with_context(|| format!("moving {} into place", staged.target))?;
        }
        if outputs.quarantine.is_none() {
            self.pause().await;
            claim = self.renew(claim).await?;
            let path = Path::from(self.hour.rejects_key(&self.options.rejects_prefix));
            self.remove(&path)
                .await
                .with_context(|| format!("removing {path}, which this commit replaces"))?;
        }
        self.pause().await;
        let done = HourCommit {
            state: CommitState::Committed,
            updated_at: Utc::now(),
            table_version: Some(version),
            ..claim
        };
        self.write_own(&done).await?;
        lake_table::upkeep::checkpoint_if_due(&self.table(), version).await;
        Ok(done)
    }

    /// The hour's Delta commit: the run's parts added, those its claim replaces removed, the
    /// hour's transaction at the claim's generation. Returns the table's version.
    async fn commit_to_table(
        &self,
        claim: &HourCommit,
        outputs: &Outputs,
        base: Option<u64>,
        compacted_nearby: bool,
    ) -> anyhow::Result<u64> {
        let adds: Vec<DataFile> = outputs
            .parts
            .iter()
            .filter_map(|p| p.data.clone())
            .collect();
        let result = HourResult {
            hour: self.hour,
            generation: claim.generation,
            run_id: self.run_id,
            adds: &adds,
            removes: &claim.replaced,
            parts_schema: &outputs.schema,
            info: serde_json::json!({
                "hour": self.hour,
                "run_id": self.run_id,
                "generation": claim.generation,
                "source": claim.source,
                "more_sources": claim.more_sources,
                "counts": claim.counts,
                "by_source": claim.by_source,
                "quarantine": claim.quarantine,
                "event_ids": claim.event_ids,
                "dropped_ids": claim.dropped_ids,
            }),
            compacted_nearby,
        };
        match lake_table::commit::commit_hour(&self.table(), base, &result).await? {
            Landed::At(version) => Ok(version),
            Landed::TakenOver {
                generation,
                version,
            } => anyhow::bail!(
                "another run took {} over while this one was committing it (generation {generation}, table version {version})",
                self.hour
            ),
        }
    }

    /// Extends the claim's lease by a write conditional on its generation: it fails when
    /// another run has taken the hour over, so a run that outlived its lease stops before it
    /// moves another object.
    async fn renew(&self, claim: HourCommit) -> anyhow::Result<HourCommit> {
        let lease = chrono::Duration::from_std(self.options.commit_lease).unwrap_or_default();
        // Always later than the lease it renews, so that every renewal is a write of its own.
        let lease_until = (Utc::now() + lease)
            .timestamp_millis()
            .max(claim.lease_until + 1);
        let renewed = HourCommit {
            lease_until,
            ..claim
        };
        self.write_own(&renewed).await?;
        Ok(renewed)
    }

    /// Writes a new state of the run's own claim (same generation); a reply lost after the
    /// write went through is recognised by reading the record back.
    async fn write_own(&self, record: &HourCommit) -> anyhow::Result<()> {
        let commits = &self.lake.commits;
        let written = commits
            .put_commit(record, Some(record.generation), &[])
            .await;
        if let Ok(true) = written {
            return Ok(());
        }
        let current = commits.get_commit(&record.job_id).await?;
        if current.as_ref() == Some(record) {
            return Ok(());
        }
        written?;
        anyhow::bail!(
            "another run took {} over while this one was committing it",
            self.hour
        )
    }

    /// Renames a staged object to its target, again if a step fails. A rename whose reply was
    /// lost shows as the staged object gone and a target of its size there.
    async fn move_into_place(&self, staged: &Staged) -> object_store::Result<()> {
        let store = &self.lake.store;
        let mut size = None;
        let mut attempt = 0;
        loop {
            let step = match size {
                Some(_) => store.rename(&staged.staging, &staged.target).await,
                None => match store.head(&staged.staging).await {
                    Ok(meta) => {
                        size = Some(meta.size);
                        store.rename(&staged.staging, &staged.target).await
                    }
                    Err(e) => Err(e),
                },
            };
            let error = match step {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if let (object_store::Error::NotFound { .. }, Some(size), true) =
                (&error, size, attempt > 0)
            {
                if store
                    .head(&staged.target)
                    .await
                    .is_ok_and(|m| m.size == size)
                {
                    return Ok(());
                }
            }
            if attempt + 1 >= STEP_ATTEMPTS {
                return Err(error);
            }
            tracing::warn!(target = %staged.target, %error, attempt, "moving a part into place failed; again");
            tokio::time::sleep(backoff(attempt + 1)).await;
            attempt += 1;
        }
    }

    /// Deletes `path` if it is there, again if a step fails.
    async fn remove(&self, path: &Path) -> object_store::Result<()> {
        let mut attempt = 0;
        loop {
            match delete_if_present(&self.lake.store, path).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt + 1 >= STEP_ATTEMPTS => return Err(e),
                Err(error) => {
                    tracing::warn!(%path, %error, attempt, "removing a replaced object failed; again");
                    tokio::time::sleep(backoff(attempt + 1)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Slows each step of a commit when asked (tests interrupt commits in the middle).
    async fn pause(&self) {
        if !self.options.commit_step_delay.is_zero() {
            tokio::time::sleep(self.options.commit_step_delay).await;
        }
    }

    /// Another run's result stands: this run's staged objects and ids go.
    pub(super) async fn give_way(&self, outputs: &Outputs, ids_key: &str) {
        discard(&self.lake.store, &outputs.parts).await;
        discard(&self.lake.store, outputs.quarantine.as_slice()).await;
        for key in [ids_key.to_string(), dropped_key(ids_key)] {
            if let Err(error) = delete_if_present(&self.lake.store, &Path::from(key.as_str())).await
            {
                tracing::warn!(key, %error, "could not remove this run's event ids");
            }
        }
    }

    /// Best effort, after a commit: the replaced record's event-id list, and staged objects and
    /// event-id lists of earlier runs of the hour that are older than the stale age (younger
    /// ones may belong to a run still going).
    pub(super) async fn clean_up(&self, ids_key: &str, replaced_ids: Option<String>) {
        let store = &self.lake.store;
        if let Some(old) = replaced_ids.filter(|old| old != ids_key) {
            for old in [dropped_key(&old), old] {
                if let Err(error) = delete_if_present(store, &Path::from(old.as_str())).await {
                    tracing::warn!(old, %error, "could not remove the replaced event ids");
                }
            }
        }
        let dropped = dropped_key(ids_key);
        let prefixes = [
            staging_prefix(&self.options.curated_prefix, self.hour),
            event_ids_prefix(&self.options.curated_prefix, self.hour),
        ];
        let stale_before =
            Utc::now() - chrono::Duration::from_std(self.options.stale_after).unwrap_or_default();
        for prefix in prefixes {
            let listed: Result<Vec<_>, _> = store
                .list(Some(&Path::from(prefix.as_str())))
                .try_collect()
                .await;
            let listed = match listed {
                Ok(listed) => listed,
                Err(error) => {
                    tracing::warn!(prefix, %error, "could not list earlier runs' leftovers");
                    continue;
                }
            };
            for meta in listed {
                let own = meta.location.as_ref() == ids_key || meta.location.as_ref() == dropped;
                if own || meta.last_modified >= stale_before {
                    continue;
                }
                if let Err(error) = delete_if_present(store, &meta.location).await {
                    tracing::warn!(path = %meta.location, %error, "could not remove a leftover");
                }
            }
        }
    }
}

pub(super) async fn delete_if_present(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> object_store::Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Best-effort removal of staged objects after a failure; the failure itself is what is reported.
pub(crate) async fn discard(store: &Arc<dyn ObjectStore>, staged: &[Staged]) {
    for s in staged {
        if let Err(error) = delete_if_present(store, &s.staging).await {
            tracing::warn!(path = %s.staging, %error, "could not remove a staged object");
        }
    }
}
