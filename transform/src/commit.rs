//! Committing an hour: one run's whole output, never a mix of two, and no event its neighbours
//! already hold.
//!
//! A run stages everything under its own folder, `_staging/TABLE/HOUR/RUN/` (outside the table,
//! expired by a lifecycle rule), then commits in two steps on the hour's commit record
//! ([`HourCommit`] in the job store):
//!
//! 1. **claim**: the record is written as `committing`, naming the run's parts, conditional on
//!    the generation the run read and on the neighbouring hours' generations it read (their
//!    `event_id`s were dropped from this run's rows). Of two runs, one wins; the other gives way
//!    (the same or an older raw object is already committed), waits for a live commit, takes over
//!    one whose lease ran out, or, when a neighbour committed one of its events meanwhile, is done
//!    again ([`NeighbourCommitted`]).
//! 2. **complete**: each staged object is moved into place (checking before each that the record
//!    is still the run's), the parts of earlier runs not written again are removed, and the record
//!    is marked `committed`.
//!
//! A crash leaves the record `committing`; the next run of the hour takes over once its lease has
//! run out, and removes every part the interrupted run or its predecessors left.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use adapters::commits::Expected;
use anyhow::Context;
use chrono::Utc;
use events::commits::{
    commit_key, decode_event_ids, encode_event_ids, event_ids_prefix, staging_prefix, CommitCounts,
    CommitState, HourCommit, SourceVersion,
};
use events::Hour;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::parts::Staged;
use crate::{Lake, TransformOptions};

/// Claim attempts before the commit gives up (a failed attempt is followed by a fresh read).
const CLAIM_ATTEMPTS: u32 = 30;
/// Attempts at each step of moving objects into place (object_store retries HTTP errors
/// already; these cover what it gives up on, so that a commit is seldom left half done).
const STEP_ATTEMPTS: u32 = 4;

/// A neighbouring hour committed one of this run's events after the run read its neighbours:
/// transform the hour again (it then drops that event).
#[derive(Debug, thiserror::Error)]
#[error("{hour} committed events this run also holds while it ran; the hour must be done again")]
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
    pub counts: CommitCounts,
}

pub(crate) enum Committed {
    Done { generation: u64, parts: Vec<String> },
    Superseded { reason: String, generation: u64 },
}

/// One run of one hour.
pub(crate) struct Run<'a> {
    pub lake: &'a Lake,
    pub hour: Hour,
    pub options: &'a TransformOptions,
    pub run_id: &'a str,
    pub source: &'a SourceVersion,
}

impl Run<'_> {
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
        if let Some(prior) = prior.as_ref().filter(|p| self.source.older_than(&p.source)) {
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

    /// A neighbouring hour's generation and committed `event_id`s. A list removed under the
    /// reader's feet means the neighbour committed again: its record is read afresh.
    async fn neighbour(&self, hour: Hour) -> anyhow::Result<Neighbour> {
        let key = commit_key(&self.options.curated_prefix, hour);
        for _ in 0..CLAIM_ATTEMPTS {
            let record = self.lake.commits.get_commit(&key).await?;
            let ids = match record.as_ref().and_then(|r| r.event_ids.as_deref()) {
                Some(ids_key) => match self.read_event_ids(ids_key).await? {
                    Some(ids) => ids,
                    None => continue,
                },
                None => Vec::new(),
            };
            return Ok(Neighbour {
                hour,
                key,
                generation: record.map(|r| r.generation),
                ids,
            });
        }
        anyhow::bail!("the event ids of {hour} kept changing while they were read")
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
        let ours: Vec<String> = outputs.parts.iter().map(|p| p.target.to_string()).collect();
        let near = self.parts_near(&ours).await?;
        let template = HourCommit {
            job_id: begun.key.clone(),
            hour: self.hour,
            generation: 0,
            state: CommitState::Committing,
            run_id: self.run_id.to_string(),
            updated_at: Utc::now(),
            lease_until: 0,
            source: self.source.clone(),
            parts: ours,
            quarantine: outputs.quarantine.as_ref().map(|q| q.target.to_string()),
            event_ids: Some(ids_key.clone()),
            replaced: Vec::new(),
            staging: self.staging_dir(),
            counts: outputs.counts,
        };
        let claim = self.claim(begun, template, &near, &outputs.event_ids).await;
        let (record, replaced_ids) = match claim {
            Ok(Claim::Won(record, replaced_ids)) => (*record, replaced_ids),
            Ok(Claim::Superseded { reason, generation }) => {
                self.give_way(&outputs, &ids_key).await;
                return Ok(Committed::Superseded { reason, generation });
            }
            Err(e) => {
                self.give_way(&outputs, &ids_key).await;
                return Err(e);
            }
        };
        self.complete(&record, &outputs).await?;
        self.clean_up(&ids_key, replaced_ids).await;
        Ok(Committed::Done {
            generation: record.generation,
            parts: record.parts,
        })
    }

    /// Writes the record as `committing` (see the module's documentation).
    async fn claim(
        &self,
        mut begun: Box<Begun>,
        template: HourCommit,
        near: &BTreeSet<String>,
        our_ids: &[i64],
    ) -> anyhow::Result<Claim> {
        let commits = &self.lake.commits;
        let lease = chrono::Duration::from_std(self.options.commit_lease).unwrap_or_default();
        let give_up_at = Utc::now() + lease * 2 + chrono::Duration::seconds(30);
        for attempt in 0..CLAIM_ATTEMPTS {
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
            self.refresh_neighbours(&mut begun, our_ids).await?;
            let Some(current) = current else {
                begun.prior = None;
                continue;
            };
            match after_refusal(&current, expected, self.source, now, now < give_up_at) {
                AfterRefusal::Again => {}
                AfterRefusal::GiveWay(reason) => return Ok(superseded(reason, &current)),
                AfterRefusal::Wait => {
                    tracing::info!(hour = %self.hour, holder = current.run_id, "another run is committing the hour; waiting");
                    tokio::time::sleep(backoff(attempt).min(Duration::from_secs(2))).await;
                }
                AfterRefusal::Replace => begun.prior = Some(current),
            }
        }
        anyhow::bail!(
            "could not commit {} after {CLAIM_ATTEMPTS} attempts",
            self.hour
        )
    }

    /// After a failed claim: takes in neighbours that committed since they were read, or asks
    /// for the hour to be done again when one committed an event this run also holds.
    async fn refresh_neighbours(&self, begun: &mut Begun, our_ids: &[i64]) -> anyhow::Result<()> {
        for neighbour in &mut begun.neighbours {
            let fresh = self.neighbour(neighbour.hour).await?;
            if fresh.generation == neighbour.generation {
                continue;
            }
            if sorted_overlap(&fresh.ids, our_ids) {
                return Err(NeighbourCommitted { hour: fresh.hour }.into());
            }
            *neighbour = fresh;
        }
        Ok(())
    }

    /// Moves the staged objects into place, removes what earlier runs left, marks the record
    /// `committed`.
    async fn complete(&self, record: &HourCommit, outputs: &Outputs) -> anyhow::Result<()> {
        for staged in outputs.parts.iter().chain(&outputs.quarantine) {
            self.pause().await;
            self.fence(record).await?;
            self.move_into_place(staged)
                .await
                .with_context(|| format!("moving {} into place", staged.target))?;
        }
        let mut stale: Vec<Path> = record
            .replaced
            .iter()
            .map(|k| Path::from(k.as_str()))
            .collect();
        if outputs.quarantine.is_none() {
            stale.push(Path::from(
                self.hour.rejects_key(&self.options.rejects_prefix),
            ));
        }
        for path in stale {
            self.pause().await;
            self.fence(record).await?;
            self.remove(&path)
                .await
                .with_context(|| format!("removing {path}, which this commit replaces"))?;
        }
        self.pause().await;
        let done = HourCommit {
            state: CommitState::Committed,
            updated_at: Utc::now(),
            ..record.clone()
        };
        let commits = &self.lake.commits;
        let written = commits
            .put_commit(&done, Some(record.generation), &[])
            .await;
        if let Ok(true) = written {
            return Ok(());
        }
        let current = commits.get_commit(&record.job_id).await?;
        if current.is_some_and(|c| c == done) {
            return Ok(()); // the reply was lost, the write was not
        }
        written?;
        anyhow::bail!(
            "another run took {} over while this one was committing it",
            self.hour
        )
    }

    /// Renames a staged object to its target, again if a step fails; a rename whose reply was
    /// lost shows as the staged object gone and the target there.
    async fn move_into_place(&self, staged: &Staged) -> object_store::Result<()> {
        let store = &self.lake.store;
        let mut attempt = 0;
        loop {
            match store.rename(&staged.staging, &staged.target).await {
                Ok(()) => return Ok(()),
                Err(object_store::Error::NotFound { .. })
                    if attempt > 0 && store.head(&staged.target).await.is_ok() =>
                {
                    return Ok(())
                }
                Err(e) if attempt + 1 >= STEP_ATTEMPTS => return Err(e),
                Err(error) => {
                    tracing::warn!(target = %staged.target, %error, attempt, "moving a part into place failed; again");
                    tokio::time::sleep(backoff(attempt + 1)).await;
                    attempt += 1;
                }
            }
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

    /// Fails unless the hour's record is still this run's claim: a run that outlived its lease
    /// stops before it moves another object into place.
    async fn fence(&self, record: &HourCommit) -> anyhow::Result<()> {
        let current = self.lake.commits.get_commit(&record.job_id).await?;
        match current {
            Some(c) if c.generation == record.generation && c.run_id == record.run_id => Ok(()),
            _ => anyhow::bail!(
                "another run took {} over while this one was committing it",
                self.hour
            ),
        }
    }

    /// Keys of this hour's parts found in the partitions this run writes and in the days either
    /// side of the hour's name (where a file's rows fall), other than `ours`.
    async fn parts_near(&self, ours: &[String]) -> anyhow::Result<BTreeSet<String>> {
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
        for partition in partitions {
            let listed: Vec<String> = self
                .lake
                .store
                .list(Some(&Path::from(partition.as_str())))
                .map_ok(|meta| meta.location.to_string())
                .try_collect()
                .await
                .with_context(|| format!("listing {partition}"))?;
            found.extend(listed.into_iter().filter(|key| {
                let name = key.rsplit('/').next().unwrap_or_default();
                self.hour.part_index(name).is_some() && !ours.contains(key)
            }));
        }
        Ok(found)
    }

    /// Another run's result stands: this run's staged objects and ids go.
    async fn give_way(&self, outputs: &Outputs, ids_key: &str) {
        discard(&self.lake.store, &outputs.parts).await;
        discard(&self.lake.store, outputs.quarantine.as_slice()).await;
        if let Err(error) = delete_if_present(&self.lake.store, &Path::from(ids_key)).await {
            tracing::warn!(ids_key, %error, "could not remove this run's event ids");
        }
    }

    /// Best effort, after a commit: the replaced record's event-id list, and staged objects and
    /// event-id lists of earlier runs of the hour that are older than the stale age (younger ones
    /// may belong to a run still going).
    async fn clean_up(&self, ids_key: &str, replaced_ids: Option<String>) {
        if let Some(old) = replaced_ids.filter(|old| old != ids_key) {
            if let Err(error) = delete_if_present(&self.lake.store, &Path::from(old.as_str())).await
            {
                tracing::warn!(old, %error, "could not remove the replaced event ids");
            }
        }
        let prefixes = [
            staging_prefix(&self.options.curated_prefix, self.hour),
            event_ids_prefix(&self.options.curated_prefix, self.hour),
        ];
        let stale_before =
            Utc::now() - chrono::Duration::from_std(self.options.stale_after).unwrap_or_default();
        for prefix in prefixes {
            let listed: Result<Vec<_>, _> = self
                .lake
                .store
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
                if meta.location.as_ref() == ids_key || meta.last_modified >= stale_before {
                    continue;
                }
                if let Err(error) = delete_if_present(&self.lake.store, &meta.location).await {
                    tracing::warn!(path = %meta.location, %error, "could not remove a leftover");
                }
            }
        }
    }
}

/// What a run whose claim was refused makes of the hour's record as it now stands.
#[derive(Debug, PartialEq)]
enum AfterRefusal {
    /// The record is the one the run read (a neighbour had moved): claim again.
    Again,
    /// Another run's result stands: it read the same raw object and committed, or a newer one.
    GiveWay(String),
    /// Another run is moving its parts into place: wait for it to finish.
    Wait,
    /// Replace the record: this run read a newer raw object, or the claim's lease ran out.
    Replace,
}

fn after_refusal(
    current: &HourCommit,
    expected: Option<u64>,
    ours: &SourceVersion,
    now: chrono::DateTime<Utc>,
    patient: bool,
) -> AfterRefusal {
    if Some(current.generation) == expected {
        return AfterRefusal::Again;
    }
    if ours.older_than(&current.source) {
        return AfterRefusal::GiveWay(newer_source(current));
    }
    match current.state {
        CommitState::Committed if current.source.same_as(ours) => AfterRefusal::GiveWay(format!(
            "run {} committed the same raw object first (generation {})",
            current.run_id, current.generation
        )),
        CommitState::Committing if current.lease_until > now.timestamp_millis() && patient => {
            AfterRefusal::Wait
        }
        _ => AfterRefusal::Replace,
    }
}

enum Claim {
    /// The claim, and the event-id list of the record it replaced.
    Won(Box<HourCommit>, Option<String>),
    Superseded {
        reason: String,
        generation: u64,
    },
}

fn superseded(reason: String, current: &HourCommit) -> Claim {
    Claim::Superseded {
        reason,
        generation: current.generation,
    }
}

fn newer_source(committed: &HourCommit) -> String {
    format!(
        "the hour is committed (generation {}, run {}) from a newer upload of the raw object",
        committed.generation, committed.run_id
    )
}

/// The parts a commit removes: those found near the hour and those the record it replaces
/// named (or was removing), other than the run's own.
fn replaced(ours: &[String], near: &BTreeSet<String>, prior: Option<&HourCommit>) -> Vec<String> {
    let mut keys: BTreeSet<&String> = near.iter().collect();
    if let Some(prior) = prior {
        keys.extend(prior.parts.iter().chain(&prior.replaced));
    }
    keys.into_iter()
        .filter(|k| !ours.contains(k))
        .cloned()
        .collect()
}

/// Whether two sorted lists share a value.
fn sorted_overlap(a: &[i64], b: &[i64]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// 50 ms doubling per attempt, with up to half again of jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(10));
    let jitter =
        u64::from(std::process::id() ^ Utc::now().timestamp_subsec_nanos()) % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

async fn delete_if_present(store: &Arc<dyn ObjectStore>, path: &Path) -> object_store::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_of_sorted_lists() {
        assert!(sorted_overlap(&[1, 5, 9], &[2, 9]));
        assert!(!sorted_overlap(&[1, 5, 9], &[2, 6, 10]));
        assert!(!sorted_overlap(&[], &[1]));
    }

    #[test]
    fn a_commit_replaces_what_it_found_and_what_the_record_named_but_never_its_own() {
        let ours = vec!["t/a-0".to_string()];
        let near: BTreeSet<String> = ["t/a-0", "t/a-1"].map(String::from).into();
        let prior = HourCommit {
            parts: vec!["far/a-0".into()],
            replaced: vec!["far/a-7".into(), "t/a-0".into()],
            ..test_record()
        };
        assert_eq!(
            replaced(&ours, &near, Some(&prior)),
            vec!["far/a-0", "far/a-7", "t/a-1"]
        );
    }

    fn source(e_tag: &str, minute: u32) -> SourceVersion {
        SourceVersion {
            location: "s3://raw/landing/ghactivity/2024-03-05-14.json.gz".into(),
            e_tag: Some(e_tag.into()),
            version: None,
            last_modified: chrono::DateTime::from_timestamp(
                1_709_650_000 + i64::from(minute) * 60,
                0,
            ),
            size: 1,
        }
    }

    #[test]
    fn a_refused_claim_gives_way_waits_or_replaces_by_the_record_it_meets() {
        let now = Utc::now();
        let ours = source("a", 5);
        let record = |state, e_tag, minute, lease_s: i64| HourCommit {
            generation: 4,
            state,
            source: source(e_tag, minute),
            lease_until: (now + chrono::Duration::seconds(lease_s)).timestamp_millis(),
            ..test_record()
        };
        use CommitState::{Committed, Committing};
        // The record the run read: only a neighbour moved.
        assert_eq!(
            after_refusal(&record(Committed, "b", 9, 0), Some(4), &ours, now, true),
            AfterRefusal::Again
        );
        // Another run committed the same raw object, or read a newer one: its result stands.
        for other in [record(Committed, "a", 5, 0), record(Committing, "b", 9, 60)] {
            let decided = after_refusal(&other, Some(3), &ours, now, true);
            assert!(matches!(decided, AfterRefusal::GiveWay(_)), "{decided:?}");
        }
        // Another run is moving the same or an older object into place: wait, while patient.
        let live = record(Committing, "a", 5, 60);
        assert_eq!(
            after_refusal(&live, Some(3), &ours, now, true),
            AfterRefusal::Wait
        );
        assert_eq!(
            after_refusal(&live, Some(3), &ours, now, false),
            AfterRefusal::Replace
        );
        // An older object committed, or a claim whose lease ran out: replace it.
        assert_eq!(
            after_refusal(&record(Committed, "b", 1, 0), Some(3), &ours, now, true),
            AfterRefusal::Replace
        );
        assert_eq!(
            after_refusal(&record(Committing, "a", 5, -1), Some(3), &ours, now, true),
            AfterRefusal::Replace
        );
    }

    fn test_record() -> HourCommit {
        HourCommit {
            job_id: "k".into(),
            hour: "2024-03-05-14".parse().unwrap(),
            generation: 1,
            state: CommitState::Committed,
            run_id: "r".into(),
            updated_at: Utc::now(),
            lease_until: 0,
            source: SourceVersion::default(),
            parts: vec![],
            quarantine: None,
            event_ids: None,
            replaced: vec![],
            staging: String::new(),
            counts: CommitCounts::default(),
        }
    }
}
