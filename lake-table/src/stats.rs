//! A part's statistics for the log (`add.stats`): its rows, and per top-level column of a plain
//! type its nulls and its least and greatest value, taken from the Parquet footer the writer
//! produced. Readers skip files by them (Athena, delta-rs, DuckDB, Spark); a column without
//! footer statistics (the long text columns) is left out, which readers take as "unknown".

use chrono::{DateTime, SecondsFormat};
use deltalake_core::arrow::datatypes::{DataType, Schema, TimeUnit};
use deltalake_core::parquet::file::metadata::ParquetMetaData;
use deltalake_core::parquet::file::statistics::Statistics;
use serde_json::{Map, Value};

/// Delta's convention: string bounds longer than this are not written (a cut maximum would no
/// longer bound the values).
const MAX_STRING_STAT_CHARS: usize = 32;

/// The `stats` JSON of a part written with `schema`.
pub fn stats_json(metadata: &ParquetMetaData, schema: &Schema) -> String {
    let rows = metadata.file_metadata().num_rows().max(0);
    let mut mins = Map::new();
    let mut maxes = Map::new();
    let mut nulls = Map::new();
    let columns = metadata.file_metadata().schema_descr().columns();
    for field in schema.fields() {
        let Some(leaf) = columns
            .iter()
            .position(|c| c.path().parts() == [field.name().as_str()])
        else {
            continue;
        };
        let Some(bounds) = column_bounds(metadata, leaf, field.data_type()) else {
            continue;
        };
        if let Some(count) = bounds.nulls {
            nulls.insert(field.name().clone(), Value::from(count));
        }
        if let (Some(min), Some(max)) = (bounds.min, bounds.max) {
            mins.insert(field.name().clone(), min);
            maxes.insert(field.name().clone(), max);
        }
    }
    serde_json::json!({
        "numRecords": rows,
        "minValues": mins,
        "maxValues": maxes,
        "nullCount": nulls,
    })
    .to_string()
}

#[derive(Default)]
struct Bounds {
    min: Option<Value>,
    max: Option<Value>,
    nulls: Option<u64>,
}

/// A column's bounds over every row group; `None` when a row group has no statistics for it.
fn column_bounds(metadata: &ParquetMetaData, leaf: usize, data_type: &DataType) -> Option<Bounds> {
    let mut min: Option<Value> = None;
    let mut max: Option<Value> = None;
    let mut nulls = 0u64;
    let mut bounded = true;
    for group in metadata.row_groups() {
        let stats = group.column(leaf).statistics()?;
        nulls = nulls.checked_add(stats.null_count_opt()?)?;
        let (low, high) = match value_bounds(stats, data_type) {
            Some(pair) => pair,
            None => {
                bounded = false;
                continue;
            }
        };
        if min.as_ref().is_none_or(|m| less(&low, m)) {
            min = Some(low);
        }
        if max.as_ref().is_none_or(|m| less(m, &high)) {
            max = Some(high);
        }
    }
    let (min, max) = match bounded {
        true => (min, max),
        false => (None, None),
    };
    Some(Bounds {
        min,
        max,
        nulls: Some(nulls),
    })
}

/// One row group's least and greatest value as the log writes them, for the types readers skip
/// by: integers, timestamps (UTC, milliseconds: the least rounded down, the greatest up) and
/// short strings.
fn value_bounds(stats: &Statistics, data_type: &DataType) -> Option<(Value, Value)> {
    match (stats, data_type) {
        (Statistics::Int64(s), DataType::Int64) => {
            Some((Value::from(*s.min_opt()?), Value::from(*s.max_opt()?)))
        }
        (Statistics::Int32(s), DataType::Int32) => {
            Some((Value::from(*s.min_opt()?), Value::from(*s.max_opt()?)))
        }
        (Statistics::Int64(s), DataType::Timestamp(unit, _)) => {
            let per_milli = match unit {
                TimeUnit::Second => return None,
                TimeUnit::Millisecond => 1,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1_000_000,
            };
            let low = s.min_opt()?.div_euclid(per_milli);
            let high = s
                .max_opt()?
                .checked_add(per_milli - 1)?
                .div_euclid(per_milli);
            Some((timestamp(low)?, timestamp(high)?))
        }
        (Statistics::ByteArray(s), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
            let low = s.min_opt()?.as_utf8().ok()?;
            let high = s.max_opt()?.as_utf8().ok()?;
            let short = |v: &str| v.chars().count() <= MAX_STRING_STAT_CHARS;
            (short(low) && short(high)).then(|| (Value::from(low), Value::from(high)))
        }
        _ => None,
    }
}

fn timestamp(millis: i64) -> Option<Value> {
    let at = DateTime::from_timestamp_millis(millis)?;
    Some(Value::from(at.to_rfc3339_opts(SecondsFormat::Millis, true)))
}

/// Orders two bounds of one column (numbers, or strings: RFC 3339 times in UTC order as text).
fn less(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_i64() < y.as_i64(),
        (Value::String(x), Value::String(y)) => x < y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake_core::arrow::array::{
        Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use deltalake_core::arrow::datatypes::Field;
    use deltalake_core::parquet::arrow::ArrowWriter;
    use deltalake_core::parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    #[test]
    fn bounds_over_row_groups_and_types() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Int64, false),
            Field::new("repo_name", DataType::Utf8, true),
            Field::new(
                "created_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("body", DataType::Utf8, true),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).unwrap();
        let long = "x".repeat(40);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![7, 3, 9])),
                Arc::new(StringArray::from(vec![Some("b/b"), None, Some("a/a")])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_000_500, 0, 5_000_000])
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![
                    Some(long.as_str()),
                    Some("a"),
                    None,
                ])),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        let metadata = writer.close().unwrap();
        assert_eq!(metadata.num_row_groups(), 2);
        let stats: Value = serde_json::from_str(&stats_json(&metadata, &schema)).unwrap();
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["minValues"]["event_id"], 3);
        assert_eq!(stats["maxValues"]["event_id"], 9);
        assert_eq!(stats["minValues"]["repo_name"], "a/a");
        assert_eq!(stats["maxValues"]["repo_name"], "b/b");
        assert_eq!(stats["nullCount"]["repo_name"], 1);
        assert_eq!(stats["minValues"]["created_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(stats["maxValues"]["created_at"], "1970-01-01T00:00:05.000Z");
        // A bound past 32 characters is not written; the nulls still are.
        assert!(stats["minValues"].get("body").is_none());
        assert_eq!(stats["nullCount"]["body"], 1);
    }
}
