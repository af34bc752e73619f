//! The hours' rows in compacted files: each compacted file of the range's days read once
//! (`event_id` and `source_file`), its rows told by hour and held to what its tags say.

use std::collections::HashMap;

use anyhow::Context;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use events::{Day, Hour};
use futures::TryStreamExt;
use lake_table::compact::{source_hour, SOURCE_COLUMN};
use lake_table::snapshot::{TableFile, TableState};
use object_store::path::Path;

use super::{Audit, Finding, FindingKind, PartScan};

impl Audit {
    /// The rows and `event_id`s of each hour in the compacted files that hold the range's hours
    /// (by their tags: an hour's rows may fall in any day, old events in a file of today) or lie
    /// in `days` (so that a file whose tags leave an hour out is read too).
    pub(super) async fn compacted_rows(
        &self,
        (from, to): (Hour, Hour),
        days: &[Day],
        state: Option<&TableState>,
        findings: &mut Vec<Finding>,
    ) -> anyhow::Result<HashMap<Hour, PartScan>> {
        let mut by_hour: HashMap<Hour, PartScan> = HashMap::new();
        let Some(state) = state else {
            return Ok(by_hour);
        };
        let files = state.files.iter().filter(|f| {
            let in_days = Day::of_partition(&f.key).is_some_and(|d| days.contains(&d));
            let holds = f.hours.keys().any(|h| (from..=to).contains(h));
            f.compacted.is_some() && (in_days || holds)
        });
        for file in files {
            let scanned = self.scan_compacted(file).await?;
            held_to_tags(file, &scanned, findings);
            for (hour, scan) in scanned {
                let total = by_hour.entry(hour).or_insert(PartScan {
                    rows: 0,
                    event_ids: Vec::new(),
                });
                total.rows += scan.rows;
                total.event_ids.extend(scan.event_ids);
            }
        }
        Ok(by_hour)
    }

    /// A compacted file's rows by hour.
    async fn scan_compacted(&self, file: &TableFile) -> anyhow::Result<HashMap<Hour, PartScan>> {
        let key = &file.key;
        let reader = lake_table::reader::PartReader::new(
            self.curated.clone(),
            Path::from(key.as_str()),
            file.size,
        );
        let builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .with_context(|| format!("reading the Parquet footer of {key}"))?;
        let schema = builder.parquet_schema();
        let leaf =
            |name: &str| (0..schema.num_columns()).find(|&i| schema.column(i).name() == name);
        let (Some(ids), Some(sources)) = (leaf("event_id"), leaf(SOURCE_COLUMN)) else {
            anyhow::bail!("{key} has no event_id or {SOURCE_COLUMN} column");
        };
        let mask = ProjectionMask::leaves(schema, [ids, sources]);
        let (id_at, source_at) = match ids < sources {
            true => (0, 1),
            false => (1, 0),
        };
        let mut stream = builder.with_projection(mask).build()?;
        let mut by_hour: HashMap<Hour, PartScan> = HashMap::new();
        while let Some(batch) = stream
            .try_next()
            .await
            .with_context(|| format!("reading {key}"))?
        {
            let names = cast(batch.column(source_at), &DataType::Utf8)?;
            let names = names.as_string::<i32>();
            let Some(event_ids) = batch.column(id_at).as_primitive_opt::<Int64Type>() else {
                anyhow::bail!("{key}: event_id is not a 64-bit integer");
            };
            for i in 0..batch.num_rows() {
                let hour = names
                    .is_valid(i)
                    .then(|| source_hour(names.value(i)))
                    .flatten();
                let Some(hour) = hour else {
                    anyhow::bail!("{key}: a row's {SOURCE_COLUMN} names no hour file");
                };
                let scan = by_hour.entry(hour).or_insert(PartScan {
                    rows: 0,
                    event_ids: Vec::new(),
                });
                scan.rows += 1;
                if event_ids.is_valid(i) {
                    scan.event_ids.push(event_ids.value(i));
                }
            }
        }
        Ok(by_hour)
    }
}

/// The file's rows of each hour against its tags.
fn held_to_tags(file: &TableFile, scanned: &HashMap<Hour, PartScan>, findings: &mut Vec<Finding>) {
    let mut note = |hour: Hour, detail: String| {
        findings.push(Finding {
            kind: FindingKind::TableDiffers,
            hour: Some(hour),
            key: Some(file.key.clone()),
            detail,
        })
    };
    for (hour, share) in &file.hours {
        let found = scanned.get(hour).map_or(0, |s| s.rows);
        if found != share.rows {
            note(
                *hour,
                format!(
                    "the compacted file's tags say {} rows of the hour, it holds {found}",
                    share.rows
                ),
            );
        }
    }
    for (hour, scan) in scanned {
        if !file.hours.contains_key(hour) {
            note(
                *hour,
                format!(
                    "the compacted file holds {} rows of the hour, its tags none",
                    scan.rows
                ),
            );
        }
    }
}
