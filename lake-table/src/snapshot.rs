//! The table as readers see it: its files, with the hours whose rows each holds (an hourly part:
//! its source hour, by name and tags; a compacted file: the hours its tags list, with each one's
//! generation and rows) and its rows (from the log's statistics), and each hour's generation (its
//! application transaction).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use deltalake_core::DeltaTable;
use events::{Day, Hour};
use futures::TryStreamExt;

use crate::compact::{self, HourShare};
use crate::Table;

/// A data file the table's newest version holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFile {
    /// Its key in the table's store (with the table's prefix).
    pub key: String,
    pub size: u64,
    /// `numRecords` of its statistics.
    pub rows: Option<u64>,
    /// The hour it holds rows of, read from its name; `None` for a compacted file or a file no
    /// transform wrote.
    pub hour: Option<Hour>,
    /// The day a compaction wrote it for (`None` for an hourly part).
    pub compacted: Option<Day>,
    /// The hours whose rows it holds, each with its generation and rows: an hourly part's one
    /// hour, a compacted file's hours; empty for a file no transform wrote.
    pub hours: BTreeMap<Hour, HourShare>,
}

impl TableFile {
    /// Whether it holds rows of `hour`.
    pub fn holds(&self, hour: Hour) -> bool {
        self.hours.contains_key(&hour)
    }
}

/// The table's newest version and its files.
#[derive(Debug)]
pub struct TableState {
    pub version: u64,
    pub files: Vec<TableFile>,
    /// Each hour's application transaction: its generation.
    pub generations: BTreeMap<String, u64>,
    /// Keys of the files commits removed within the retention: kept for readers of older
    /// versions until `elt vacuum`.
    pub removed: BTreeSet<String>,
    pub delta: DeltaTable,
}

impl TableState {
    /// The generation the table's transaction for `hour` names, if any.
    pub fn generation(&self, hour: Hour) -> Option<u64> {
        self.generations.get(&hour.to_string()).copied()
    }
}

/// Loads the table's newest version, or `None` when it has no log yet.
pub async fn load(table: &Table) -> anyhow::Result<Option<TableState>> {
    let Some(delta) = table.open().await? else {
        return Ok(None);
    };
    let snapshot = delta.snapshot()?;
    let version = snapshot.version();
    let files = snapshot
        .log_data()
        .iter()
        .map(|file| {
            let path = file.path().to_string();
            // delta-rs offers a file's tags through its add action only.
            #[allow(deprecated)]
            let tags = file.add_action().tags.unwrap_or_default();
            table_file(
                table,
                &path,
                u64::try_from(file.size()).unwrap_or(0),
                file.num_records().map(|n| n as u64),
                &tags,
            )
        })
        .collect();
    let removed: BTreeSet<String> = snapshot
        .all_tombstones(delta.log_store().as_ref())
        .map_ok(|tombstone| table.key(&tombstone.path()))
        .try_collect()
        .await
        .context("reading the table's removed files")?;
    let generations = crate::log::transactions(table)
        .await
        .context("reading the table's transactions")?;
    Ok(Some(TableState {
        version,
        files,
        generations,
        removed,
        delta,
    }))
}

/// A file of the table from its add action's path, size, rows and tags.
fn table_file(
    table: &Table,
    path: &str,
    size: u64,
    rows: Option<u64>,
    tags: &std::collections::HashMap<String, Option<String>>,
) -> TableFile {
    let name = path.rsplit('/').next().unwrap_or_default();
    let tag = |name: &str| tags.get(name).cloned().flatten();
    let hour = events::part_hour(name);
    let compacted = tag(compact::COMPACTED_TAG).and_then(|day| day.parse().ok());
    let hours = match (hour, &compacted) {
        (Some(hour), _) => {
            let generation = tag("generation").and_then(|g| g.parse().ok()).unwrap_or(0);
            let rows = rows.unwrap_or(0);
            BTreeMap::from([(hour, HourShare { generation, rows })])
        }
        (None, Some(_)) => tag(compact::HOURS_TAG)
            .map(|hours| compact::parse_hours(&hours))
            .unwrap_or_default(),
        (None, None) => BTreeMap::new(),
    };
    TableFile {
        key: table.key(path),
        size,
        rows,
        hour,
        compacted,
        hours,
    }
}
