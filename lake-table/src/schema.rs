//! The table's first commit: its protocol and its metadata (schema, partition columns, upkeep
//! settings), from the Arrow schema of the parts the transform writes.

use std::sync::Arc;

use anyhow::Context;
use deltalake_core::arrow::datatypes::{DataType, Field, Schema};
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::StructType;
use serde_json::{json, Value};

/// The partition columns, the UTC day of `created_at`: integers in the log (as Athena and the
/// readers compare them), written padded in the folder names (`month=03`).
pub const PARTITION_COLUMNS: [&str; 3] = ["year", "month", "dayofmonth"];

/// A checkpoint every this many commits: a reader replays at most this many JSON commits.
pub const CHECKPOINT_INTERVAL: u64 = 100;
/// JSON commits older than this (and covered by a checkpoint) are removed at each checkpoint.
pub const LOG_RETENTION: &str = "interval 30 days";
/// Files a commit removed stay this long for readers of older versions; `elt vacuum` deletes
/// them after. Longer than any query runs (Athena's longest is 30 minutes).
pub const DELETED_FILE_RETENTION: &str = "interval 7 days";

/// Reader version 1 and writer version 2: no table feature, so every reader (Athena's engine
/// v3 included) reads the table.
pub fn protocol() -> Value {
    json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}})
}

/// The `metaData` action of a table whose parts have `parts_schema`.
pub fn metadata(parts_schema: &Schema, created_ms: i64) -> anyhow::Result<Value> {
    let schema = table_schema(parts_schema)?;
    Ok(json!({"metaData": {
        "id": uuid::Uuid::new_v4().to_string(),
        "name": "ghactivity",
        "format": {"provider": "parquet", "options": {}},
        "schemaString": serde_json::to_string(&schema)?,
        "partitionColumns": PARTITION_COLUMNS,
        "configuration": {
            "delta.checkpointInterval": CHECKPOINT_INTERVAL.to_string(),
            "delta.logRetentionDuration": LOG_RETENTION,
            "delta.deletedFileRetentionDuration": DELETED_FILE_RETENTION,
        },
        "createdTime": created_ms,
    }}))
}

/// The Delta schema: the parts' columns, timestamps as UTC (`timestamp`, not `timestamp_ntz`,
/// which needs a reader feature), then the partition columns.
pub fn table_schema(parts_schema: &Schema) -> anyhow::Result<StructType> {
    let mut fields: Vec<Arc<Field>> = parts_schema
        .fields()
        .iter()
        .filter(|f| !PARTITION_COLUMNS.contains(&f.name().as_str()))
        .map(|f| Arc::new(in_utc(f)))
        .collect();
    fields.extend(
        PARTITION_COLUMNS
            .iter()
            .map(|name| Arc::new(Field::new(*name, DataType::Int32, false))),
    );
    let schema = Schema::new(fields);
    (&schema)
        .try_into_kernel()
        .context("the parts' columns have no Delta type")
}

fn in_utc(field: &Field) -> Field {
    match field.data_type() {
        DataType::Timestamp(unit, None) => field
            .clone()
            .with_data_type(DataType::Timestamp(*unit, Some("UTC".into()))),
        _ => field.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake_core::arrow::datatypes::TimeUnit;

    #[test]
    fn timestamps_are_utc_and_partitions_integers() {
        let parts = Schema::new(vec![
            Field::new("event_id", DataType::Int64, false),
            Field::new(
                "created_at",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("repo_name", DataType::Utf8View, true),
        ]);
        let action = metadata(&parts, 0).unwrap();
        let schema: Value =
            serde_json::from_str(action["metaData"]["schemaString"].as_str().unwrap()).unwrap();
        let types: Vec<(&str, &str)> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
            .collect();
        assert_eq!(
            types,
            [
                ("event_id", "long"),
                ("created_at", "timestamp"),
                ("repo_name", "string"),
                ("year", "integer"),
                ("month", "integer"),
                ("dayofmonth", "integer"),
            ]
        );
        assert_eq!(
            action["metaData"]["partitionColumns"],
            json!(["year", "month", "dayofmonth"])
        );
    }
}
