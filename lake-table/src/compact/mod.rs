//! Compaction: a day's files rewritten into a few large ones sorted by [`SORT_COLUMNS`], in one
//! Delta commit that removes the day's files and adds the new ones, so a reader sees the day's
//! rows before or after, never twice or missing.
//!
//! A compacted file holds rows of many hours. Its tags say which (`hours`: each hour's generation
//! and rows, counted from the rows' `source_file`), so the table alone still tells each hour's
//! rows. An hour transformed again after its day was compacted excises its own rows from the
//! compacted files in its own commit ([`excise`]); the day is compacted again later (its
//! partition then holds hourly parts beside compacted files).
//!
//! The commit is written only if no version since the one the compaction read has touched the
//! day's partition; otherwise the compaction's files are deleted and it starts again from the
//! newer table, so a transform's commit always wins and is never undone.

pub mod excise;
mod files;
mod sort;
mod zorder;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use events::{Day, Hour};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use self::files::Written;
use crate::commit::{commit_info, partition_values, table_path, INFO_KEY};
pub use crate::layout::SORT_COLUMNS;
use crate::log::{self, Put};
use crate::snapshot::{self, TableFile};
use crate::Table;

/// The tag of a compacted file: the day it was compacted for.
pub const COMPACTED_TAG: &str = "compacted";
/// The tag of a compacted file: its hours (JSON: hour → generation and rows).
pub const HOURS_TAG: &str = "hours";
/// Compacted files are named `compact-DAY-NNNN-RUN.snappy.parquet`.
pub const FILE_PREFIX: &str = "compact-";
/// The column that names each row's raw file, and so its hour.
pub const SOURCE_COLUMN: &str = "source_file";

/// Compactions of one day started afresh because a commit touched the day meanwhile.
const ATTEMPTS: u32 = 5;
/// Failed reads or writes of the log (outcome unknown) before a commit gives up.
const ERROR_ATTEMPTS: u32 = 4;

/// What a file holds of one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourShare {
    pub generation: u64,
    pub rows: u64,
}

/// How a compaction runs.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// The largest compacted file: a day of more than this is cut into files of about equal size.
    pub max_file_bytes: u64,
    /// Memory the sort may hold before it spills to `spill_dir`.
    pub memory_bytes: usize,
    pub spill_dir: Option<std::path::PathBuf>,
    pub order: Order,
}

/// How a compacted day's rows are laid out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Order {
    /// Sorted by [`SORT_COLUMNS`] (the default: what the benchmark found best).
    #[default]
    Sorted,
    /// By a Z-order key over these text columns (for comparison).
    ZOrder(Vec<String>),
}

impl Default for CompactOptions {
    fn default() -> CompactOptions {
        CompactOptions {
            max_file_bytes: 1024 * 1024 * 1024,
            memory_bytes: 256 * 1024 * 1024,
            spill_dir: None,
            order: Order::Sorted,
        }
    }
}

/// What a compaction of a day did.
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The day's files were replaced by `outputs` in `version`.
    Compacted(Compaction),
    /// The day holds compacted files only: nothing to do.
    AlreadyCompact { files: usize },
    /// The table holds nothing of the day.
    Empty,
}

#[derive(Debug, Serialize)]
pub struct Compaction {
    pub version: u64,
    pub inputs: usize,
    pub outputs: usize,
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub hours: usize,
    pub seconds: f64,
    /// Attempts started afresh because a transform committed to the day meanwhile.
    pub restarts: u32,
}

/// Whether a data file's name is a compacted file's.
pub fn is_compacted_name(name: &str) -> bool {
    name.starts_with(FILE_PREFIX)
}

/// The hour of a row's `source_file` (`2024-03-05-14.json.gz`, `sources/NAME/2024-03-05-14.json.gz`).
pub fn source_hour(source_file: &str) -> Option<Hour> {
    Hour::from_file_name(source_file).ok().map(|(hour, _)| hour)
}

/// The `hours` tag of a compacted file.
pub fn hours_tag(hours: &BTreeMap<Hour, HourShare>) -> String {
    let map: BTreeMap<String, HourShare> = hours.iter().map(|(h, s)| (h.to_string(), *s)).collect();
    serde_json::to_string(&map).unwrap_or_default()
}

/// The hours of a compacted file's `hours` tag (an unreadable tag: none).
pub fn parse_hours(tag: &str) -> BTreeMap<Hour, HourShare> {
    let map: BTreeMap<String, HourShare> = serde_json::from_str(tag).unwrap_or_default();
    map.into_iter()
        .filter_map(|(h, s)| Some((h.parse().ok()?, s)))
        .collect()
}

/// Compacts `day` (see the module's documentation).
pub async fn compact_day(
    table: &Table,
    day: Day,
    options: &CompactOptions,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    for restarts in 0..ATTEMPTS {
        let state = snapshot::load(table).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "no Delta table at {}",
                table.url().map(|u| u.to_string()).unwrap_or_default()
            )
        })?;
        let partition = day.partition_prefix(&table.prefix);
        let inputs: Vec<TableFile> = state
            .files
            .iter()
            .filter(|f| f.key.starts_with(&partition))
            .cloned()
            .collect();
        if inputs.is_empty() {
            return Ok(Outcome::Empty);
        }
        if inputs.iter().all(|f| f.compacted.is_some()) {
            return Ok(Outcome::AlreadyCompact {
                files: inputs.len(),
            });
        }
        let written = sort::rewrite_sorted(table, day, &run, &inputs, options).await?;
        match commit(table, state.version, day, &run, &inputs, &written).await {
            Ok(Some(version)) => {
                return Ok(Outcome::Compacted(Compaction {
                    version,
                    inputs: inputs.len(),
                    outputs: written.len(),
                    rows: written.iter().map(|w| w.rows).sum(),
                    bytes_in: inputs.iter().map(|f| f.size).sum(),
                    bytes_out: written.iter().map(|w| w.file.size).sum(),
                    hours: hours_of(&inputs).len(),
                    seconds: started.elapsed().as_secs_f64(),
                    restarts,
                }))
            }
            Ok(None) => {
                tracing::info!(%day, "a commit touched the day while it was compacted; starting again");
                delete(table, written.iter().map(|w| w.file.key.as_str())).await;
            }
            // The outcome is unknown: the files stay (a commit may name them); vacuum removes
            // them if not.
            Err(error) => return Err(error),
        }
    }
    anyhow::bail!(
        "{day} kept changing while it was compacted ({ATTEMPTS} attempts): try again later"
    )
}

/// Each input hour's generation.
fn hours_of(inputs: &[TableFile]) -> BTreeMap<Hour, u64> {
    let mut hours = BTreeMap::new();
    for file in inputs {
        for (hour, share) in &file.hours {
            let generation = hours.entry(*hour).or_insert(share.generation);
            *generation = (*generation).max(share.generation);
        }
    }
    hours
}

/// Commits the compaction after `read_at`, unless a version since touched the day's partition
/// (`None`). A version that is this run's own (a write whose reply was lost) is its end.
async fn commit(
    table: &Table,
    read_at: u64,
    day: Day,
    run: &str,
    inputs: &[TableFile],
    written: &[Written],
) -> anyhow::Result<Option<u64>> {
    crate::commit::sync_files(table, written.iter().map(|w| w.file.key.as_str()))?;
    let partition = day.partition_prefix("");
    let mut next = read_at + 1;
    let mut errors = 0;
    loop {
        match attempt(table, &mut next, &partition, day, run, inputs, written).await {
            Ok(Some(landed)) => return Ok(landed),
            Ok(None) => {}
            Err(error) => {
                errors += 1;
                if errors >= ERROR_ATTEMPTS {
                    return Err(error.context(format!("committing the compaction of {day}")));
                }
                tracing::warn!(%day, error = format!("{error:#}"), "the table's log failed; looking again");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(errors))).await;
            }
        }
    }
}

/// One attempt: `Some(Some(version))` landed, `Some(None)` the day changed, `None` the version
/// went to another writer (look again).
async fn attempt(
    table: &Table,
    next: &mut u64,
    partition: &str,
    day: Day,
    run: &str,
    inputs: &[TableFile],
    written: &[Written],
) -> anyhow::Result<Option<Option<u64>>> {
    if let Some(latest) = log::latest_version(table).await?.filter(|&l| l >= *next) {
        for version in *next..=latest {
            let Some(actions) = log::read_commit(table, version).await? else {
                continue;
            };
            if compaction_run(&actions).as_deref() == Some(run) {
                return Ok(Some(Some(version)));
            }
            if touches(&actions, partition) {
                return Ok(Some(None));
            }
        }
        *next = latest + 1;
    }
    let actions = actions(day, run, inputs, written)?;
    match log::put_commit(table, *next, &actions).await? {
        Put::Written => {
            crate::commit::sync_log(table, *next)?;
            crate::upkeep::checkpoint_if_due(table, *next).await;
            Ok(Some(Some(*next)))
        }
        Put::Taken => Ok(None),
    }
}

/// The run id of a compaction's commit.
pub(crate) fn compaction_run(actions: &[Value]) -> Option<String> {
    log::commit_info(actions, INFO_KEY)
        .and_then(|info| info.get("compaction"))
        .and_then(|c| c.get("run_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Whether a commit adds or removes a file under `partition` (a path inside the table).
fn touches(actions: &[Value], partition: &str) -> bool {
    actions.iter().any(|action| {
        ["add", "remove"].iter().any(|kind| {
            action
                .get(kind)
                .and_then(|a| a.get("path"))
                .and_then(Value::as_str)
                .is_some_and(|path| path.starts_with(partition))
        })
    })
}

/// The compaction's commit: its info, the inputs removed, the outputs added (`dataChange`
/// false: the rows are the same, as Delta's OPTIMIZE writes them).
fn actions(
    day: Day,
    run: &str,
    inputs: &[TableFile],
    written: &[Written],
) -> anyhow::Result<Vec<Value>> {
    let now = Utc::now().timestamp_millis();
    let hours: BTreeMap<String, u64> = hours_of(inputs)
        .into_iter()
        .map(|(h, g)| (h.to_string(), g))
        .collect();
    let info = json!({"compaction": {
        "day": day.to_string(),
        "run_id": run,
        "inputs": inputs.len(),
        "outputs": written.iter().map(|w| &w.file.key).collect::<Vec<_>>(),
        "rows": written.iter().map(|w| w.rows).sum::<u64>(),
        "hours": hours,
    }});
    let mut actions = vec![commit_info("OPTIMIZE", false, info, now)?];
    for file in inputs {
        let Some(path) = table_path(&file.key) else {
            continue;
        };
        actions.push(json!({"remove": {
            "path": path,
            "deletionTimestamp": now,
            "dataChange": false,
            "partitionValues": partition_values(path),
            "size": file.size,
        }}));
    }
    for written in written {
        actions.push(crate::commit::add_action(&written.file, false, now, None)?);
    }
    Ok(actions)
}

/// Deletes objects, best effort (a file left is an orphan `elt vacuum` removes).
pub(crate) async fn delete<'k>(table: &Table, keys: impl Iterator<Item = &'k str>) {
    for key in keys {
        match table.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                tracing::warn!(key, error = %error, "could not delete a file no commit names")
            }
        }
    }
}

/// The days `from..=to`.
pub fn days(from: Day, to: Day) -> Vec<Day> {
    let mut days = Vec::new();
    let mut day = from;
    while day <= to {
        days.push(day);
        if day.next() == day {
            break;
        }
        day = day.next();
    }
    days
}

/// What a day's partition holds: hourly parts and compacted files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayFiles {
    pub hourly: usize,
    pub compacted: usize,
}

/// The files of each day `from..=to` that the table holds any of.
pub async fn day_files(
    table: &Table,
    from: Day,
    to: Day,
) -> anyhow::Result<BTreeMap<Day, DayFiles>> {
    let Some(state) = snapshot::load(table).await? else {
        return Ok(BTreeMap::new());
    };
    let mut days: BTreeMap<Day, DayFiles> = BTreeMap::new();
    for file in &state.files {
        let Some(day) = Day::of_partition(&file.key).filter(|d| (from..=to).contains(d)) else {
            continue;
        };
        let files = days.entry(day).or_default();
        match file.compacted {
            Some(_) => files.compacted += 1,
            None => files.hourly += 1,
        }
    }
    Ok(days)
}

#[cfg(test)]
mod tests;
