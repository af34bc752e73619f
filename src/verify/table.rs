//! What `elt verify` checks of the Delta table: each hour's files and generation against its
//! commit record, files no hour's commit wrote, data files the table does not reference
//! (orphans), and events dropped for a neighbour that the neighbour no longer holds.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use anyhow::Context;
use events::commits::{commit_key, decode_event_ids, CommitState, HourCommit};
use events::{Day, Hour};
use futures::TryStreamExt;
use lake_table::snapshot::TableState;
use object_store::path::Path;
use object_store::ObjectStoreExt;

use super::{Audit, Finding, FindingKind};

/// The hour's files in the table against those its record names, and the table's generation
/// of the hour against the record's.
pub(super) async fn hour_in_table(
    state: Option<&TableState>,
    hour: Hour,
    record: Option<&HourCommit>,
    findings: &mut Vec<Finding>,
) -> anyhow::Result<()> {
    let Some(record) = record.filter(|r| r.state == CommitState::Committed) else {
        return Ok(());
    };
    let mut note = |key: Option<String>, detail: String| {
        findings.push(Finding {
            kind: FindingKind::TableDiffers,
            hour: Some(hour),
            key,
            detail,
        })
    };
    let Some(state) = state else {
        note(
            None,
            "committed, but there is no Delta table: run `elt migrate`".into(),
        );
        return Ok(());
    };
    let held: BTreeSet<&str> = state
        .files
        .iter()
        .filter(|f| f.hour == Some(hour))
        .map(|f| f.key.as_str())
        .collect();
    let named: BTreeSet<&str> = record.parts.iter().map(String::as_str).collect();
    for key in named.difference(&held) {
        if compacted_away(Some(state), hour, key) {
            continue;
        }
        note(
            Some(key.to_string()),
            format!(
                "named by the commit (generation {}), not in the table's version {}",
                record.generation, state.version
            ),
        );
    }
    for key in held.difference(&named) {
        note(
            Some(key.to_string()),
            format!(
                "in the table, but the hour's commit (generation {}) does not name it",
                record.generation
            ),
        );
    }
    let compacted = state.files.iter().filter(|f| f.compacted.is_some());
    for file in compacted {
        let Some(share) = file.hours.get(&hour) else {
            continue;
        };
        if share.generation != record.generation {
            note(
                Some(file.key.clone()),
                format!(
                    "a compacted file holds the hour's rows of generation {}, its commit is at generation {}",
                    share.generation, record.generation
                ),
            );
        }
    }
    let generation = state.generation(hour);
    if generation != Some(record.generation) {
        note(
            None,
            format!(
                "the table's transaction for the hour is at generation {}, its commit record at {}",
                generation.map_or("none".into(), |g| g.to_string()),
                record.generation
            ),
        );
    }
    Ok(())
}

/// Files the table holds, in the range's days, that no transform wrote (no hour in the name).
pub(super) fn files_no_hour_wrote(
    state: Option<&TableState>,
    hours: &[Hour],
    findings: &mut Vec<Finding>,
) {
    let (Some(state), Some(first), Some(last)) = (state, hours.first(), hours.last()) else {
        return;
    };
    let days: Vec<String> = days_around(*first, *last)
        .iter()
        .map(|d| d.partition_prefix(""))
        .collect();
    for file in state.files.iter().filter(|f| f.hours.is_empty()) {
        if days.iter().any(|d| file.key.contains(d.as_str())) {
            findings.push(Finding {
                kind: FindingKind::TableDiffers,
                hour: None,
                key: Some(file.key.clone()),
                detail: "in the table, but no hour's commit wrote it".into(),
            });
        }
    }
}

impl Audit {
    /// Data files in the partitions of the range's days (and the days either side) that the
    /// table does not reference.
    pub(super) async fn orphans(
        &self,
        from: Hour,
        to: Hour,
        state: Option<&TableState>,
        findings: &mut Vec<Finding>,
    ) -> anyhow::Result<()> {
        // Files a commit removed stay for readers of older versions until a vacuum: not orphans.
        let referenced: HashSet<&str> = state
            .map(|s| {
                let current = s.files.iter().map(|f| f.key.as_str());
                current
                    .chain(s.removed.iter().map(String::as_str))
                    .collect()
            })
            .unwrap_or_default();
        for day in days_around(from, to) {
            let prefix = day.partition_prefix(&self.curated_prefix);
            let listed: Vec<String> = self
                .curated
                .list(Some(&Path::from(prefix.as_str())))
                .map_ok(|meta| meta.location.to_string())
                .try_collect()
                .await
                .with_context(|| format!("listing {prefix}"))?;
            for key in listed
                .into_iter()
                .filter(|k| !referenced.contains(k.as_str()))
            {
                let name = key.rsplit('/').next().unwrap_or_default();
                findings.push(Finding {
                    kind: FindingKind::Orphan,
                    hour: events::part_hour(name),
                    detail: "in the table's folder, but the table does not reference it (`elt vacuum` removes it)".into(),
                    key: Some(key),
                });
            }
        }
        Ok(())
    }

    /// The events the hour's commit dropped because a neighbour held them, against what the
    /// neighbours' commits hold now.
    pub(super) async fn lost_across_hours(
        &self,
        hour: Hour,
        record: Option<&HourCommit>,
        records: &BTreeMap<Hour, HourCommit>,
        findings: &mut Vec<Finding>,
    ) -> anyhow::Result<()> {
        let Some(dropped_key) = record.and_then(|r| r.dropped_ids.as_deref()) else {
            return Ok(());
        };
        let Some(dropped) = self.read_ids(dropped_key).await? else {
            return Ok(());
        };
        let mut held: HashSet<i64> = HashSet::new();
        for neighbour in [hour.previous(), hour.next()] {
            let record = match records.get(&neighbour) {
                Some(record) => Some(record.clone()),
                None => {
                    let key = commit_key(&self.curated_prefix, neighbour);
                    self.commits.get_commit(&key).await?
                }
            };
            if let Some(ids) = record.as_ref().and_then(|r| r.event_ids.as_deref()) {
                held.extend(self.read_ids(ids).await?.unwrap_or_default());
            }
        }
        let lost: Vec<i64> = dropped
            .into_iter()
            .filter(|id| !held.contains(id))
            .collect();
        if let Some(example) = lost.first() {
            findings.push(Finding {
                kind: FindingKind::LostAcrossHours,
                hour: Some(hour),
                key: None,
                detail: format!(
                    "{} event(s) were dropped as duplicates of {} or {}, which no longer hold them (e.g. {example}): transform {hour} again",
                    lost.len(),
                    hour.previous(),
                    hour.next()
                ),
            });
        }
        Ok(())
    }

    /// A list of `event_id`s, or `None` when it is gone.
    async fn read_ids(&self, key: &str) -> anyhow::Result<Option<Vec<i64>>> {
        let bytes = match self.curated.get(&Path::from(key)).await {
            Ok(found) => found.bytes().await,
            Err(e) => Err(e),
        };
        match bytes {
            Ok(bytes) => decode_event_ids(&bytes)
                .map(Some)
                .with_context(|| format!("{key} is not a list of event ids")),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow::Error::from(e).context(format!("reading {key}"))),
        }
    }
}

/// Whether a part the hour's commit names was taken in by a compaction: the table no longer
/// holds it, and a compacted file of its partition holds the hour.
pub(super) fn compacted_away(state: Option<&TableState>, hour: Hour, key: &str) -> bool {
    let Some(state) = state else {
        return false;
    };
    let Some((partition, _)) = key.rsplit_once('/') else {
        return false;
    };
    let live = state.files.iter().any(|f| f.key == key);
    !live
        && state.files.iter().any(|f| {
            f.compacted.is_some()
                && f.holds(hour)
                && f.key.rsplit_once('/').map(|(p, _)| p) == Some(partition)
        })
}

/// The days of the range's hours and the days either side: where their parts fall.
pub(super) fn days_around(from: Hour, to: Hour) -> Vec<Day> {
    let last = to.date().next();
    let mut days = vec![from.date().previous()];
    while let Some(&day) = days.last() {
        if day >= last || day.next() == day {
            break;
        }
        days.push(day.next());
    }
    days
}
