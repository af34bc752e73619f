//! An hour's rows taken out of the compacted files that hold them, for the hour's commit when
//! it is transformed again after its day was compacted: each such file is rewritten without
//! the hour's rows (their order kept, so it stays sorted), and the hour's commit removes the
//! file and adds the rewrite beside the hour's new parts.

use std::collections::BTreeMap;

use anyhow::Context;
use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use events::Hour;
use futures::TryStreamExt;
use object_store::path::Path;
use serde_json::Value;

use super::files::CompactedFiles;
use super::{source_hour, SOURCE_COLUMN};
use crate::commit::DataFile;
use crate::reader::PartReader;
use crate::snapshot::{self, TableFile};
use crate::Table;

/// The compacted files an hour's commit replaces, and their rewrites without the hour.
#[derive(Debug, Default, Clone)]
pub struct Excision {
    /// The table's version the files were read at.
    pub at: u64,
    /// Keys of the compacted files that held the hour.
    pub removes: Vec<String>,
    /// Their rewrites (none for a file that held the hour alone).
    pub adds: Vec<DataFile>,
}

impl Excision {
    /// Whether `actions` (a version after [`Excision::at`]) makes this excision stale: it
    /// removes a file this one rewrote, or adds compacted files that hold the hour.
    pub fn stale_after(&self, actions: &[Value], hour: Hour) -> bool {
        let hour = hour.to_string();
        actions.iter().any(|action| {
            let removed = action
                .get("remove")
                .and_then(|r| r.get("path"))
                .and_then(Value::as_str)
                .is_some_and(|path| self.removes.iter().any(|key| key.ends_with(path)));
            let compacted_with_hour = action
                .get("add")
                .and_then(|a| a.get("tags"))
                .and_then(|tags| tags.get(super::HOURS_TAG))
                .and_then(Value::as_str)
                .is_some_and(|hours| hours.contains(&format!("\"{hour}\"")));
            removed || compacted_with_hour
        })
    }

    /// Deletes the rewrites, which no commit will name (best effort).
    pub async fn discard(&self, table: &Table) {
        super::delete(table, self.adds.iter().map(|f| f.key.as_str())).await;
    }
}

/// Rewrites the table's compacted files that hold rows of `hour` without them.
pub async fn excise_hour(table: &Table, hour: Hour, run: &str) -> anyhow::Result<Excision> {
    let Some(state) = snapshot::load(table).await? else {
        return Ok(Excision::default());
    };
    let mut excision = Excision {
        at: state.version,
        ..Excision::default()
    };
    let held = state
        .files
        .iter()
        .filter(|f| f.compacted.is_some() && f.holds(hour));
    for (n, file) in held.enumerate() {
        let token: String = run.chars().filter(char::is_ascii_alphanumeric).collect();
        let rewritten = rewrite_without(table, file, hour, &format!("{token}x{n}")).await;
        match rewritten {
            Ok(rewrite) => {
                excision.removes.push(file.key.clone());
                excision.adds.extend(rewrite);
            }
            Err(error) => {
                excision.discard(table).await;
                return Err(error.context(format!("taking {hour}'s rows out of {}", file.key)));
            }
        }
    }
    Ok(excision)
}

/// `file` without the rows of `hour` (`None`: it held nothing else).
async fn rewrite_without(
    table: &Table,
    file: &TableFile,
    hour: Hour,
    token: &str,
) -> anyhow::Result<Option<DataFile>> {
    let (Some(day), Some(share)) = (file.compacted, file.hours.get(&hour)) else {
        return Ok(None);
    };
    if file.rows.is_some_and(|rows| rows <= share.rows) {
        return Ok(None);
    }
    let path = Path::from(file.key.as_str());
    let reader = PartReader::new(table.store.clone(), path, file.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .context("reading the Parquet footer")?;
    let schema = builder.schema().clone();
    let source = schema.index_of(SOURCE_COLUMN)?;
    let generations: BTreeMap<Hour, u64> =
        file.hours.iter().map(|(h, s)| (*h, s.generation)).collect();
    let mut files = CompactedFiles::new(table, day, token, schema, u64::MAX, generations)?;
    let mut stream = builder.build()?;
    while let Some(batch) = stream.try_next().await.context("reading rows")? {
        let names = cast(batch.column(source), &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let keep: BooleanArray = (0..names.len())
            .map(|i| Some(!names.is_valid(i) || source_hour(names.value(i)) != Some(hour)))
            .collect();
        let kept = filter_record_batch(&batch, &keep)?;
        if let Err(error) = files.write(&kept).await {
            super::delete(table, files.keys().iter().map(String::as_str)).await;
            return Err(error);
        }
    }
    Ok(files.finish().await?.into_iter().next().map(|w| w.file))
}
