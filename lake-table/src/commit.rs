//! One hour's result as one Delta commit.
//!
//! The commit adds the run's parts, removes the hour's earlier ones and carries the application
//! transaction `txn {appId: HOUR, version: GENERATION}`. Before each attempt it reads the
//! commits that landed since `base` (the log's version when the run claimed the hour): one that
//! names the hour at this generation or a newer one means another run took the hour over, and
//! this one stops ([`Landed::TakenOver`]); one of this run itself is a write whose reply was lost.
//! The version is written only if absent (`If-None-Match: *` on S3), so of two writers of one
//! version one wins and the other looks again: no stale run can land over a newer result.

use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use chrono::Utc;
use deltalake_core::arrow::datatypes::Schema;
use events::Hour;
use serde_json::{json, Map, Value};

use crate::compact::excise::Excision;
use crate::log::{self, Put};
use crate::schema::{self, PARTITION_COLUMNS};
use crate::{Place, Table};

/// Versions lost to other writers before a commit gives up (each one is another commit that
/// landed, so the table moves on meanwhile).
const CONFLICT_ATTEMPTS: u32 = 500;
/// Failed writes of the log (outcome unknown) before a commit gives up.
const ERROR_ATTEMPTS: u32 = 4;
/// The key of this program's own part of the commit info.
pub const INFO_KEY: &str = "ghElt";

/// A data file of the table, as a commit adds it.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// Its key in the table's store (`ghactivity/year=2024/month=03/dayofmonth=05/part-….parquet`).
    pub key: String,
    pub size: u64,
    /// `add.stats` ([`crate::stats::stats_json`]).
    pub stats: String,
    /// Its own tags (a compacted file's); `None`: the hour's commit tags it with the hour.
    pub tags: Option<Map<String, Value>>,
}

/// What one hour's commit says.
pub struct HourResult<'a> {
    pub hour: Hour,
    pub generation: u64,
    pub run_id: &'a str,
    pub adds: &'a [DataFile],
    /// Keys of the hour's earlier parts (a key the table no longer holds is harmless).
    pub removes: &'a [String],
    /// The parts' columns: the table's schema when this is its first commit.
    pub parts_schema: &'a Schema,
    /// This program's account of the commit: the raw objects read, the accounting, the
    /// quarantine; kept in the commit info under [`INFO_KEY`].
    pub info: Value,
    /// Whether the hour's partitions hold compacted files: if so, the commit also takes the
    /// hour's rows out of those that hold them ([`crate::compact::excise`]).
    pub compacted_nearby: bool,
}

/// Where a commit ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Landed {
    /// The hour's result is the table's `version`.
    At(u64),
    /// Another run committed the hour at `generation` (≥ this run's) in `version`.
    TakenOver { generation: u64, version: u64 },
}

/// Commits `result` (see the module's documentation). `base` is the log's newest version read
/// before the run claimed the hour.
pub async fn commit_hour(
    table: &Table,
    base: Option<u64>,
    result: &HourResult<'_>,
) -> anyhow::Result<Landed> {
    sync_files(table, result.adds.iter().map(|f| f.key.as_str()))?;
    let app_id = result.hour.to_string();
    let mut next = base.map_or(0, |b| b + 1);
    let mut excision = None;
    if result.compacted_nearby {
        excision = Some(excise(table, result).await?);
    }
    let (mut conflicts, mut errors) = (0, 0);
    loop {
        let attempt = attempt_at(table, &mut next, &app_id, result, excision.as_ref()).await;
        match attempt {
            Ok(Attempt::Done(landed)) => {
                if let (Landed::TakenOver { .. }, Some(excision)) = (&landed, &excision) {
                    excision.discard(table).await;
                }
                return Ok(landed);
            }
            Ok(Attempt::Taken) => {
                conflicts += 1;
                anyhow::ensure!(
                    conflicts < CONFLICT_ATTEMPTS,
                    "could not commit {} to the table: {CONFLICT_ATTEMPTS} versions went to other writers",
                    result.hour
                );
                tokio::time::sleep(jitter(conflicts)).await;
            }
            // A compaction took in the hour's rows, or rewrote a file this commit rewrites.
            Ok(Attempt::Stale) => {
                if let Some(stale) = excision.take() {
                    stale.discard(table).await;
                }
                conflicts += 1;
                excision = Some(excise(table, result).await?);
            }
            // A read or a write of the log failed (a write's outcome is unknown): look again.
            Err(error) => {
                errors += 1;
                if errors >= ERROR_ATTEMPTS {
                    return Err(error.context(format!("committing {} to the table", result.hour)));
                }
                tracing::warn!(hour = %result.hour, error = format!("{error:#}"), "the table's log failed; looking again");
                tokio::time::sleep(jitter(errors * 20)).await;
            }
        }
    }
}

/// The hour's rows taken out of the compacted files that hold them, synced before the commit.
async fn excise(table: &Table, result: &HourResult<'_>) -> anyhow::Result<Excision> {
    let excision = crate::compact::excise::excise_hour(table, result.hour, result.run_id).await?;
    sync_files(table, excision.adds.iter().map(|f| f.key.as_str()))?;
    Ok(excision)
}

enum Attempt {
    Done(Landed),
    /// Another writer's commit has the version tried.
    Taken,
    /// A commit since changed the compacted files that hold the hour's rows.
    Stale,
}

/// One attempt: what landed since `next` (the hour taken over, this run's own write, or a
/// compaction that makes the excision stale), then this commit written at the version after it.
async fn attempt_at(
    table: &Table,
    next: &mut u64,
    app_id: &str,
    result: &HourResult<'_>,
    excision: Option<&Excision>,
) -> anyhow::Result<Attempt> {
    let latest = log::latest_version(table).await?;
    if let Some(latest) = latest.filter(|&l| l >= *next) {
        for version in *next..=latest {
            let Some(actions) = log::read_commit(table, version).await? else {
                continue;
            };
            if let Some(landed) = look_at(&actions, version, app_id, result) {
                return Ok(Attempt::Done(landed));
            }
            let stale = match excision {
                Some(excision) => {
                    version > excision.at && excision.stale_after(&actions, result.hour)
                }
                None => Excision::default().stale_after(&actions, result.hour),
            };
            if stale {
                *next = version + 1;
                return Ok(Attempt::Stale);
            }
        }
        *next = latest + 1;
    }
    let actions = actions(result, excision, *next == 0)?;
    match log::put_commit(table, *next, &actions).await? {
        Put::Written => {
            sync_log(table, *next)?;
            Ok(Attempt::Done(Landed::At(*next)))
        }
        Put::Taken => Ok(Attempt::Taken),
    }
}

/// What a version's `actions` say of the hour, if they are the end of this commit.
fn look_at(
    actions: &[Value],
    version: u64,
    app_id: &str,
    result: &HourResult<'_>,
) -> Option<Landed> {
    let generation = log::txn_version(actions, app_id)?;
    let by = log::commit_info(actions, INFO_KEY)
        .and_then(|info| info.get("run_id"))
        .and_then(Value::as_str);
    if generation == result.generation && by == Some(result.run_id) {
        return Some(Landed::At(version));
    }
    (generation >= result.generation).then_some(Landed::TakenOver {
        generation,
        version,
    })
}

/// The commit's actions: its info, the table's protocol and metadata when it is the first,
/// the hour's transaction, the removes and the adds (with the excision's).
fn actions(
    result: &HourResult<'_>,
    excision: Option<&Excision>,
    first: bool,
) -> anyhow::Result<Vec<Value>> {
    let now = Utc::now().timestamp_millis();
    let mut actions = vec![commit_info(
        "WRITE",
        result.removes.is_empty(),
        result.info.clone(),
        now,
    )?];
    if first {
        actions.push(schema::protocol());
        actions.push(schema::metadata(result.parts_schema, now)?);
    }
    actions.extend(hour_actions(result, now)?);
    if let Some(excision) = excision {
        for key in &excision.removes {
            actions.extend(remove_action(key, now));
        }
        for file in &excision.adds {
            actions.push(add_action(file, true, now, None)?);
        }
    }
    Ok(actions)
}

/// The commit info: Delta's fields, and this program's under [`INFO_KEY`].
pub(crate) fn commit_info(
    operation: &str,
    append: bool,
    info: Value,
    now: i64,
) -> anyhow::Result<Value> {
    let mode = if append { "Append" } else { "Overwrite" };
    Ok(json!({"commitInfo": {
        "timestamp": now,
        "operation": operation,
        "operationParameters": {"mode": mode, "partitionBy": serde_json::to_string(&PARTITION_COLUMNS)?},
        "isBlindAppend": append,
        "engineInfo": concat!("gh-elt/", env!("CARGO_PKG_VERSION")),
        INFO_KEY: info,
    }}))
}

/// One hour's transaction, removes and adds (each add tagged with the hour, generation and run).
pub(crate) fn hour_actions(result: &HourResult<'_>, now: i64) -> anyhow::Result<Vec<Value>> {
    let mut actions = vec![json!({"txn": {
        "appId": result.hour.to_string(),
        "version": result.generation,
        "lastUpdated": now,
    }})];
    let tags = json!({
        "hour": result.hour.to_string(),
        "generation": result.generation.to_string(),
        "run_id": result.run_id,
    });
    for key in result.removes {
        actions.extend(remove_action(key, now));
    }
    for file in result.adds {
        actions.push(add_action(file, true, now, Some(&tags))?);
    }
    Ok(actions)
}

/// The remove of a file by its key (`None` for a key outside the partitions).
fn remove_action(key: &str, now: i64) -> Option<Value> {
    let path = table_path(key)?;
    Some(json!({"remove": {
        "path": path,
        "deletionTimestamp": now,
        "dataChange": true,
        "partitionValues": partition_values(path),
    }}))
}

/// The add of a data file, with its own tags or else `tags`.
pub(crate) fn add_action(
    file: &DataFile,
    data_change: bool,
    now: i64,
    tags: Option<&Value>,
) -> anyhow::Result<Value> {
    let path = table_path(&file.key)
        .ok_or_else(|| anyhow::anyhow!("{} is not a key of a partition", file.key))?;
    let tags = match &file.tags {
        Some(own) => Value::Object(own.clone()),
        None => tags.cloned().unwrap_or(Value::Null),
    };
    let mut add = json!({
        "path": path,
        "partitionValues": partition_values(path),
        "size": file.size,
        "modificationTime": now,
        "dataChange": data_change,
        "stats": file.stats,
    });
    if !tags.is_null() {
        add["tags"] = tags;
    }
    Ok(json!({ "add": add }))
}

/// The path inside the table of a part's key: from its first partition folder on.
pub fn table_path(key: &str) -> Option<&str> {
    let at = key.find(&format!("{}=", PARTITION_COLUMNS[0]))?;
    (at == 0 || key.as_bytes().get(at - 1) == Some(&b'/')).then(|| &key[at..])
}

/// `{"year": "2024", "month": "3", "dayofmonth": "5"}` from `year=2024/month=03/dayofmonth=05/…`.
pub fn partition_values(path: &str) -> Map<String, Value> {
    let mut values = Map::new();
    for segment in path.split('/') {
        let Some((name, value)) = segment.split_once('=') else {
            continue;
        };
        if PARTITION_COLUMNS.contains(&name) {
            let value = value
                .parse::<i64>()
                .map_or_else(|_| value.to_string(), |n| n.to_string());
            values.insert(name.to_string(), Value::from(value));
        }
    }
    values
}

/// A local lake survives a power cut: the parts are on disk before the commit that names them.
pub(crate) fn sync_files<'k>(
    table: &Table,
    keys: impl Iterator<Item = &'k str>,
) -> anyhow::Result<()> {
    let Place::Folder(dir) = &table.place else {
        return Ok(());
    };
    let mut folders: Vec<PathBuf> = Vec::new();
    for key in keys {
        let path = dir.join(key);
        sync_path(&path)?;
        if let Some(folder) = path.parent().filter(|f| !folders.iter().any(|s| s == f)) {
            folders.push(folder.to_path_buf());
        }
    }
    folders.iter().try_for_each(|f| sync_path(f))
}

/// The commit file and its folder, after the commit.
pub(crate) fn sync_log(table: &Table, version: u64) -> anyhow::Result<()> {
    let Place::Folder(dir) = &table.place else {
        return Ok(());
    };
    let path = dir.join(log::commit_key(table, version));
    sync_path(&path)?;
    path.parent().map_or(Ok(()), sync_path)
}

fn sync_path(path: &FsPath) -> anyhow::Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| anyhow::anyhow!("syncing {}: {e}", path.display()))
}

/// A short pause that differs between writers, so that losers of a version do not meet again.
fn jitter(round: u32) -> Duration {
    let nanos = Utc::now().timestamp_subsec_nanos();
    let spread = u64::from(round.min(20)) * 5 + 5;
    Duration::from_millis(u64::from(nanos) % spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_partition_values_come_from_the_key() {
        let key =
            "ghactivity/year=2024/month=03/dayofmonth=05/part-2024-03-05-14-0000-ab.snappy.parquet";
        let path = table_path(key).unwrap();
        assert_eq!(
            path,
            "year=2024/month=03/dayofmonth=05/part-2024-03-05-14-0000-ab.snappy.parquet"
        );
        assert_eq!(
            Value::Object(partition_values(path)),
            json!({"year": "2024", "month": "3", "dayofmonth": "5"})
        );
        assert_eq!(table_path("ghactivity/notyear=1/x.parquet"), None);
    }
}
