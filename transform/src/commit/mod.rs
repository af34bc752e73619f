//! Committing an hour: one run's whole output, never a mix of two, and no event its neighbours
//! already hold.
//!
//! A run stages everything under its own folder, `_staging/TABLE/HOUR/RUN/` (outside the table,
//! expired by a lifecycle rule), then commits in two steps on the hour's commit record
//! ([`HourCommit`] in the job store):
//!
//! 1. **claim** (here): the record is written as `committing`, naming the run's parts,
//!    conditional on the generation the run read and on the neighbouring hours' generations it
//!    read (their `event_id`s were dropped from this run's rows). A live claim of another run is
//!    waited for first. Of two runs, one wins; the other gives way when the winner read the same
//!    or a newer raw object, and otherwise claims over it; when a neighbour has committed one of
//!    its events meanwhile (or no longer holds one it dropped), the hour is done again
//!    ([`NeighbourCommitted`]). The rules are in `rules.rs`.
//! 2. **complete** (`complete.rs`): after renewing the claim's lease by a write conditional on
//!    its generation (so a run that was taken over stops), one Delta commit adds the run's parts
//!    (written in place, under names of their own run) and removes the hour's earlier ones
//!    ([`lake_table::commit::commit_hour`]: a reader sees the table before or after it, never a mix);
//!    then the quarantine is moved into place and the record is marked `committed`.
//!
//! A crash leaves the record `committing`; the next run of the hour takes over once its lease has
//! run out, and its commit removes every part the interrupted run or its predecessors named. The
//! table's transaction for the hour (its generation) stops a run that lost its claim from
//! landing over a newer one, whatever its requests' timing.

mod complete;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use adapters::commits::Expected;
use anyhow::Context;
use chrono::Utc;
use events::commits::{
    any_older, commit_key, decode_event_ids, encode_event_ids, event_ids_prefix, staging_prefix,
    CommitCounts, CommitState, HourCommit, SourceVersion,
};
use events::{Hour, SourceCount};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

pub(crate) use self::complete::discard;
use self::rules::{
    all_within, backoff, live_claim, meeting, newer_source, replaced, sorted_overlap, Meeting,
};
use crate::parts::Staged;
use crate::{Lake, TransformOptions};

/// Refused claims before the commit gives up (each is followed by a fresh read).
const CLAIM_ATTEMPTS: u32 = 30;
/// Looks at another run's live claim (about 2 s apart) before giving up waiting for it: longer
/// than a transform Lambda can run.
const MAX_WAITS: u32 = 600;

/// A neighbouring hour committed events this run also holds, or no longer holds events this run
/// dropped for it, while the run went on: transform the hour again.
#[derive(Debug, thiserror::Error)]
#[error("{hour} committed anew while this run went on, and this run's rows depend on it; the hour must be done again")]
pub struct NeighbourCommitted {
    pub hour: Hour,
}

/// The hour's state as the run found it before transforming.
pub(crate) struct Begun {
    key: String,
    prior: Option<HourCommit>,
    neighbours: Vec<Neighbour>,
    /// The neighbours' committed `event_id`s.
    pub committed_nearby: Arc<HashSet<i64>>,
}

struct Neighbour {
    hour: Hour,
    key: String,
    generation: Option<u64>,
    /// Sorted.
    ids: Vec<i64>,
}

pub(crate) enum Start {
    Go(Box<Begun>),
    /// A newer upload of the raw object is already committed: nothing to do.
    Superseded {
        reason: String,
        generation: u64,
    },
}

/// What a run hands to the commit.
pub(crate) struct Outputs {
    pub parts: Vec<Staged>,
    pub quarantine: Option<Staged>,
    /// Sorted.
    pub event_ids: Vec<i64>,
    /// The `event_id`s dropped because a neighbour held them, sorted.
    pub dropped_ids: Vec<i64>,
    pub counts: CommitCounts,
    pub by_source: Vec<SourceCount>,
    /// The parts' columns (the table's schema when the table is new).
    pub schema: datafusion::arrow::datatypes::SchemaRef,
}

pub(crate) enum Committed {
    Done { generation: u64, parts: Vec<String> },
    Superseded { reason: String, generation: u64 },
}

enum Claim {
    /// The claim, and the event-id list of the record it replaced.
    Won(Box<HourCommit>, Option<String>),
    Superseded {
        reason: String,
        generation: u64,
    },
}

/// One run of one hour.
pub(crate) struct Run<'a> {
    pub lake: &'a Lake,
    pub hour: Hour,
    pub options: &'a TransformOptions,
    pub run_id: &'a str,
    /// The raw files read, the first source's first (never empty).
    pub sources: &'a [SourceVersion],
}

impl Run<'_> {
    /// The run's token in its parts' names (the run id without punctuation).
    pub fn part_token(&self) -> String {
        self.run_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect()
    }

    /// The table the hour is committed to.
    pub fn table(&self) -> lake_table::Table {
        self.lake.table(&self.options.curated_prefix)
    }

    /// The run's staging folder: `_staging/ghactivity/2024-03-05-14/RUN/`.
    pub fn staging_dir(&self) -> String {
        format!(
            "{}{}/",
            staging_prefix(&self.options.curated_prefix, self.hour),
            self.run_id
        )
    }

    /// Reads the hour's record and its neighbours' (and their `event_id`s).
    pub async fn begin(&self) -> anyhow::Result<Start> {
        let key = commit_key(&self.options.curated_prefix, self.hour);
        let prior = self.lake.commits.get_commit(&key).await?;
        if let Some(prior) = prior
            .as_ref()
            .filter(|p| any_older(self.sources, p.inputs()))
        {
            return Ok(Start::Superseded {
                reason: newer_source(prior),
                generation: prior.generation,
            });
        }
        let mut neighbours = Vec::new();
        for hour in [self.hour.previous(), self.hour.next()] {
            neighbours.push(self.neighbour(hour).await?);
        }
        let committed_nearby = neighbours
            .iter()
            .flat_map(|n| n.ids.iter().copied())
            .collect();
        Ok(Start::Go(Box::new(Begun {
            key,
            prior,
            neighbours,
            committed_nearby: Arc::new(committed_nearby),
        })))
    }

    /// A neighbouring hour's generation and committed `event_id`s. A list gone under the reader's
    /// feet means the neighbour committed again (its record is read afresh), or, for a claim, that
    /// its run gave up before moving anything into place (the record unchanged: it holds no
    /// event). A finished commit whose list is gone is an error: its events cannot be told.
    async fn neighbour(&self, hour: Hour) -> anyhow::Result<Neighbour> {
        let key = commit_key(&self.options.curated_prefix, hour);
        let mut record = self.lake.commits.get_commit(&key).await?;
        for attempt in 0..CLAIM_ATTEMPTS {
            let ids = match record.as_ref().and_then(|r| r.event_ids.as_deref()) {
                Some(ids_key) => self.read_event_ids(ids_key).await?,
                None => Some(Vec::new()),
            };
            let again = self.lake.commits.get_commit(&key).await?;
            let unchanged =
                again.as_ref().map(|r| r.generation) == record.as_ref().map(|r| r.generation);
            if unchanged {
                if ids.is_none() {
                    // A finished commit's list is never removed while its record stands.
                    anyhow::ensure!(
                        record
                            .as_ref()
                            .is_some_and(|r| r.state == CommitState::Committing),
                        "the event ids of {hour}'s commit are gone: transform {hour} again first"
                    );
                    tracing::warn!(%hour, "a claim of the neighbouring hour names event ids that are gone; taken as holding none");
                }
                return Ok(Neighbour {
                    hour,
                    key,
                    generation: record.map(|r| r.generation),
                    ids: ids.unwrap_or_default(),
                });
            }
            record = again;
            tokio::time::sleep(backoff(attempt)).await;
        }
        anyhow::bail!("the commit record of {hour} kept changing while it was read")
    }

    /// The list at `key`, or `None` when it is gone.
    async fn read_event_ids(&self, key: &str) -> anyhow::Result<Option<Vec<i64>>> {
        let read = match self.lake.store.get(&Path::from(key)).await {
            Ok(found) => found.bytes().await,
            Err(e) => Err(e),
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => {
                return Err(anyhow::Error::from(e)
                    .context(format!("reading the committed event ids {key}")))
            }
        };
        decode_event_ids(&bytes)
            .map(Some)
            .with_context(|| format!("{key} is not a list of event ids"))
    }

    /// Commits the run's staged outputs (see the module's documentation).
    pub async fn commit(&self, begun: Box<Begun>, outputs: Outputs) -> anyhow::Result<Committed> {
        let ids_key = format!(
            "{}{}.ids",
            event_ids_prefix(&self.options.curated_prefix, self.hour),
            self.run_id
        );
        self.lake
            .store
            .put(
                &Path::from(ids_key.as_str()),
                PutPayload::from(encode_event_ids(&outputs.event_ids)),
            )
            .await
            .with_context(|| format!("writing {ids_key}"))?;
        let dropped_key = self.write_dropped_ids(&ids_key, &outputs).await?;
        let ours: Vec<String> = outputs.parts.iter().map(|p| p.target.to_string()).collect();
        let (near, compacted_nearby) = self.parts_near(&ours).await?;
        let template = HourCommit {
            job_id: begun.key.clone(),
            hour: self.hour,
            generation: 0,
            state: CommitState::Committing,
            run_id: self.run_id.to_string(),
            updated_at: Utc::now(),
            lease_until: 0,
            source: self.sources.first().cloned().unwrap_or_default(),
            more_sources: self.sources.iter().skip(1).cloned().collect(),
            by_source: outputs.by_source.clone(),
            parts: ours,
            quarantine: outputs.quarantine.as_ref().map(|q| q.target.to_string()),
            event_ids: Some(ids_key.clone()),
            dropped_ids: dropped_key,
            table_version: None,
            replaced: Vec::new(),
            staging: self.staging_dir(),
            counts: outputs.counts,
        };
        // The log's version before the claim: any commit of the hour by a run that takes over
        // from this one comes after it.
        let base = lake_table::log::latest_version(&self.table()).await?;
        let (record, replaced_ids) = match self.claim(begun, template, &near, &outputs).await {
            Ok(Claim::Won(record, replaced_ids)) => (*record, replaced_ids),
            Ok(Claim::Superseded { reason, generation }) => {
                self.give_way(&outputs, &ids_key).await;
                return Ok(Committed::Superseded { reason, generation });
            }
            Err(e) if e.downcast_ref::<NeighbourCommitted>().is_some() => {
                self.give_way(&outputs, &ids_key).await;
                return Err(e);
            }
            // The claim's outcome is unknown (its write may yet land): what it names stays, for
            // the next run of the hour to take over or clear.
            Err(e) => return Err(e),
        };
        let done = self
            .complete(record, &outputs, base, compacted_nearby)
            .await?;
        self.clean_up(&ids_key, replaced_ids).await;
        Ok(Committed::Done {
            generation: done.generation,
            parts: done.parts,
        })
    }

    /// The `event_id`s the run dropped for its neighbours, beside its own list (`None` when it
    /// dropped none).
    async fn write_dropped_ids(
        &self,
        ids_key: &str,
        outputs: &Outputs,
    ) -> anyhow::Result<Option<String>> {
        if outputs.dropped_ids.is_empty() {
            return Ok(None);
        }
        let key = dropped_key(ids_key);
        self.lake
            .store
            .put(
                &Path::from(key.as_str()),
                PutPayload::from(encode_event_ids(&outputs.dropped_ids)),
            )
            .await
            .with_context(|| format!("writing {key}"))?;
        Ok(Some(key))
    }

    /// Writes the record as `committing` (see the module's documentation).
    async fn claim(
        &self,
        mut begun: Box<Begun>,
        template: HourCommit,
        near: &BTreeSet<String>,
        outputs: &Outputs,
    ) -> anyhow::Result<Claim> {
        let commits = &self.lake.commits;
        let lease = chrono::Duration::from_std(self.options.commit_lease).unwrap_or_default();
        let mut refusals = 0;
        let mut waits = 0;
        while refusals < CLAIM_ATTEMPTS {
            if begun
                .prior
                .as_ref()
                .is_some_and(|p| live_claim(p, self.run_id, Utc::now()))
            {
                if let Some(gave_way) = self.wait_for_claim(&mut begun, waits).await? {
                    return Ok(gave_way);
                }
                waits += 1;
                continue;
            }
            let now = Utc::now();
            let record = HourCommit {
                generation: begun.prior.as_ref().map_or(1, |p| p.generation + 1),
                replaced: replaced(&template.parts, near, begun.prior.as_ref()),
                updated_at: now,
                lease_until: (now + lease).timestamp_millis(),
                ..template.clone()
            };
            let expected = begun.prior.as_ref().map(|p| p.generation);
            let unchanged: Vec<Expected> = begun
                .neighbours
                .iter()
                .map(|n| (n.key.clone(), n.generation))
                .collect();
            let written = commits.put_commit(&record, expected, &unchanged).await;
            // Re-read in every case but a clean success: a reply lost after a write that
            // succeeded shows as our own record.
            let replaced_ids = begun.prior.as_ref().and_then(|p| p.event_ids.clone());
            if let Ok(true) = written {
                return Ok(Claim::Won(Box::new(record), replaced_ids));
            }
            let current = commits.get_commit(&begun.key).await?;
            if current
                .as_ref()
                .is_some_and(|c| c.run_id == record.run_id && c.generation == record.generation)
            {
                return Ok(Claim::Won(Box::new(record), replaced_ids));
            }
            written?;
            refusals += 1;
            self.refresh_neighbours(&mut begun, outputs).await?;
            let Some(current) = current else {
                begun.prior = None;
                continue;
            };
            match meeting(&current, expected, self.sources) {
                Meeting::Again => tokio::time::sleep(backoff(refusals)).await,
                Meeting::GiveWay(reason) => return Ok(superseded(reason, &current)),
                Meeting::Replace => begun.prior = Some(current),
            }
        }
        anyhow::bail!(
            "could not commit {} after {CLAIM_ATTEMPTS} refused claims",
            self.hour
        )
    }

    /// Waits a while for another run's live claim (`begun.prior`), then reads the record again:
    /// whatever the claim became is met afresh. `Some` when this run gives way (the claim
    /// finished from the same raw object, or a newer one).
    async fn wait_for_claim(&self, begun: &mut Begun, waits: u32) -> anyhow::Result<Option<Claim>> {
        let Some(claim) = begun.prior.clone() else {
            return Ok(None);
        };
        tracing::info!(hour = %self.hour, holder = claim.run_id, "another run is committing the hour; waiting");
        anyhow::ensure!(
            waits < MAX_WAITS,
            "run {} kept its claim of {} for too long",
            claim.run_id,
            self.hour
        );
        tokio::time::sleep(backoff(waits)).await;
        match self.lake.commits.get_commit(&begun.key).await? {
            Some(current) if current != claim => match meeting(&current, None, self.sources) {
                Meeting::GiveWay(reason) => return Ok(Some(superseded(reason, &current))),
                Meeting::Again | Meeting::Replace => begun.prior = Some(current),
            },
            current => begun.prior = current,
        }
        Ok(None)
    }

    /// After a refused claim: takes in neighbours that committed since they were read, or asks
    /// for the hour to be done again when one now holds an event this run also holds, or no
    /// longer holds one this run dropped for it.
    async fn refresh_neighbours(&self, begun: &mut Begun, outputs: &Outputs) -> anyhow::Result<()> {
        let mut changed = false;
        for neighbour in &mut begun.neighbours {
            let fresh = self.neighbour(neighbour.hour).await?;
            if fresh.generation == neighbour.generation {
                continue;
            }
            if sorted_overlap(&fresh.ids, &outputs.event_ids) {
                return Err(NeighbourCommitted { hour: fresh.hour }.into());
            }
            *neighbour = fresh;
            changed = true;
        }
        let lists: Vec<&[i64]> = begun.neighbours.iter().map(|n| n.ids.as_slice()).collect();
        if changed && !all_within(&outputs.dropped_ids, &lists) {
            let hour = begun.neighbours.first().map_or(self.hour, |n| n.hour);
            return Err(NeighbourCommitted { hour }.into());
        }
        Ok(())
    }

    /// Keys of this hour's parts found in the partitions this run writes and in the days either
    /// side of the hour's name (where a file's rows fall), other than `ours`; and whether those
    /// partitions hold compacted files (which may hold the hour's earlier rows).
    async fn parts_near(&self, ours: &[String]) -> anyhow::Result<(BTreeSet<String>, bool)> {
        let prefix = &self.options.curated_prefix;
        let day = self.hour.date();
        let mut partitions: BTreeSet<String> = [day.previous(), day, day.next()]
            .iter()
            .map(|d| d.partition_prefix(prefix))
            .collect();
        partitions.extend(
            ours.iter()
                .filter_map(|key| key.rsplit_once('/').map(|(folder, _)| format!("{folder}/"))),
        );
        let mut found = BTreeSet::new();
        let mut compacted = false;
        for partition in partitions {
            let listed: Vec<String> = self
                .lake
                .store
                .list(Some(&Path::from(partition.as_str())))
                .map_ok(|meta| meta.location.to_string())
                .try_collect()
                .await
                .with_context(|| format!("listing {partition}"))?;
            let name = |key: &str| key.rsplit('/').next().unwrap_or_default().to_string();
            compacted |= listed
                .iter()
                .any(|key| lake_table::compact::is_compacted_name(&name(key)));
            found.extend(
                listed.into_iter().filter(|key| {
                    self.hour.part_index(&name(key)).is_some() && !ours.contains(key)
                }),
            );
        }
        Ok((found, compacted))
    }
}

/// The key of a run's dropped `event_id`s, from the key of its own: `RUN.ids` → `RUN.dropped`.
pub(crate) fn dropped_key(ids_key: &str) -> String {
    let stem = ids_key.strip_suffix(".ids").unwrap_or(ids_key);
    format!("{stem}.dropped")
}

fn superseded(reason: String, current: &HourCommit) -> Claim {
    Claim::Superseded {
        reason,
        generation: current.generation,
    }
}
