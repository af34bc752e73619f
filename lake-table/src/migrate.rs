//! Turning a lake of the older layout (hourly parts listed by readers, each hour's parts named
//! by its commit record) into the table, in place: every part a committed record names is
//! added as it is (its size and statistics read from its footer), with the hour's transaction at
//! the record's generation. Nothing is copied or rewritten; parts no record names stay out of
//! the table (orphans, for `elt verify` to list and `elt vacuum` to remove).

use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use deltalake_core::arrow::datatypes::Schema;
use deltalake_core::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use events::Hour;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use serde_json::Value;

use crate::commit::{commit_info, hour_actions, DataFile, HourResult};
use crate::log::{self, Put};
use crate::{schema, stats, Table};

/// Hours added per commit (a commit's log entry stays a few MB).
const HOURS_PER_COMMIT: usize = 500;

/// An hour of the older layout: its record's generation and run, and its parts.
#[derive(Debug, Clone)]
pub struct ExistingHour {
    pub hour: Hour,
    pub generation: u64,
    pub run_id: String,
    /// Keys in the table's store.
    pub parts: Vec<String>,
    /// The record's account (raw objects, counts), kept in the commit info.
    pub info: Value,
}

/// A part's size, statistics and schema, from its footer.
pub async fn read_part(table: &Table, key: &str) -> anyhow::Result<(DataFile, Arc<Schema>)> {
    let path = Path::from(key);
    let meta = table
        .store
        .head(&path)
        .await
        .with_context(|| format!("reading {key}"))?;
    let reader = crate::reader::PartReader::new(table.store.clone(), path, meta.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .with_context(|| format!("reading the Parquet footer of {key}"))?;
    let schema = builder.schema().clone();
    let file = DataFile {
        key: key.to_string(),
        size: meta.size,
        stats: stats::stats_json(builder.metadata(), &schema),
        tags: None,
    };
    Ok((file, schema))
}

/// Adds `hours` to the table (creating it if it has no log), [`HOURS_PER_COMMIT`] a commit.
/// Returns the versions written.
pub async fn add_existing(table: &Table, hours: &[ExistingHour]) -> anyhow::Result<Vec<u64>> {
    let mut versions = Vec::new();
    for chunk in hours.chunks(HOURS_PER_COMMIT) {
        let mut files = Vec::new();
        let mut parts_schema = None;
        for hour in chunk {
            let mut of_hour = Vec::new();
            for key in &hour.parts {
                let (file, schema) = read_part(table, key).await?;
                parts_schema.get_or_insert(schema);
                of_hour.push(file);
            }
            files.push(of_hour);
        }
        let now = Utc::now().timestamp_millis();
        let mut body = Vec::new();
        for (hour, adds) in chunk.iter().zip(&files) {
            let result = HourResult {
                hour: hour.hour,
                generation: hour.generation,
                run_id: &hour.run_id,
                adds,
                removes: &[],
                parts_schema: &Schema::empty(),
                info: Value::Null,
                compacted_nearby: false,
            };
            body.extend(hour_actions(&result, now)?);
        }
        let info = serde_json::json!({
            "migrated": chunk.iter().map(|h| serde_json::json!({"hour": h.hour, "account": h.info})).collect::<Vec<_>>(),
        });
        let schema = parts_schema.unwrap_or_else(|| Arc::new(Schema::empty()));
        versions.push(put_next(table, info, &schema, body, now).await?);
    }
    Ok(versions)
}

/// Writes the actions at the log's next version (the table's first: with protocol and
/// metadata), again at the next if another writer took it.
async fn put_next(
    table: &Table,
    info: Value,
    parts_schema: &Schema,
    body: Vec<Value>,
    now: i64,
) -> anyhow::Result<u64> {
    for _ in 0..100 {
        let next = log::latest_version(table).await?.map_or(0, |v| v + 1);
        let mut actions = vec![commit_info("CONVERT", true, info.clone(), now)?];
        if next == 0 {
            actions.push(schema::protocol());
            actions.push(schema::metadata(parts_schema, now)?);
        }
        actions.extend(body.iter().cloned());
        if log::put_commit(table, next, &actions).await? == Put::Written {
            return Ok(next);
        }
    }
    anyhow::bail!("the table's log kept moving while the lake was migrated")
}
