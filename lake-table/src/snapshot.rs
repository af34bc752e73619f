//! The table as readers see it: its files, with the hour each belongs to (by name: parts are
//! named by their source hour) and its rows (from the log's statistics), and each hour's
//! generation (its application transaction).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use deltalake_core::DeltaTable;
use events::Hour;
use futures::TryStreamExt;

use crate::Table;

/// A data file the table's newest version holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFile {
    /// Its key in the table's store (with the table's prefix).
    pub key: String,
    pub size: u64,
    /// `numRecords` of its statistics.
    pub rows: Option<u64>,
    /// The hour it holds rows of, read from its name; `None` for a file no transform wrote.
    pub hour: Option<Hour>,
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
    /// The files of each hour.
    pub fn by_hour(&self) -> BTreeMap<Hour, Vec<&TableFile>> {
        let mut hours: BTreeMap<Hour, Vec<&TableFile>> = BTreeMap::new();
        for file in &self.files {
            if let Some(hour) = file.hour {
                hours.entry(hour).or_default().push(file);
            }
        }
        hours
    }

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
            let name = path.rsplit('/').next().unwrap_or_default();
            TableFile {
                hour: events::part_hour(name),
                key: table.key(&path),
                size: u64::try_from(file.size()).unwrap_or(0),
                rows: file.num_records().map(|n| n as u64),
            }
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
