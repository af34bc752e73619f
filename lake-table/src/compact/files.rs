//! Writing a day's rows into compacted files: each closed at the size asked for, each knowing
//! the hours whose rows it holds (by `source_file`), for its tags and the checks.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use deltalake_core::arrow::array::{Array, AsArray};
use deltalake_core::arrow::compute::cast;
use deltalake_core::arrow::datatypes::{DataType, SchemaRef};
use deltalake_core::arrow::record_batch::RecordBatch;
use deltalake_core::parquet::arrow::AsyncArrowWriter;
use deltalake_core::parquet::file::properties::WriterProperties;
use events::{Day, Hour};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use serde_json::{json, Map, Value};

use super::{hours_tag, HourShare, COMPACTED_TAG, FILE_PREFIX, HOURS_TAG, SOURCE_COLUMN};
use crate::commit::DataFile;
use crate::Table;

/// A compacted file written, as its commit adds it.
#[derive(Debug, Clone)]
pub struct Written {
    pub file: DataFile,
    pub rows: u64,
    pub hours: BTreeMap<Hour, HourShare>,
}

/// Writes rows, in the order given, into files of a day's partition of at most `cut_bytes`
/// each (a file closes once it passes it, so files stay under it by a row group at most).
pub(crate) struct CompactedFiles {
    table: Table,
    day: Day,
    run: String,
    schema: SchemaRef,
    props: WriterProperties,
    cut_bytes: u64,
    /// Each input hour's generation: what the files' tags say of it.
    generations: BTreeMap<Hour, u64>,
    source: usize,
    open: Option<Open>,
    written: Vec<Written>,
    next_index: usize,
    /// `source_file` values already read as hours.
    source_hours: HashMap<String, Option<Hour>>,
}

struct Open {
    key: String,
    writer: AsyncArrowWriter<BufWriter>,
    rows: BTreeMap<Hour, u64>,
}

impl CompactedFiles {
    pub fn new(
        table: &Table,
        day: Day,
        run: &str,
        schema: SchemaRef,
        cut_bytes: u64,
        generations: BTreeMap<Hour, u64>,
    ) -> anyhow::Result<CompactedFiles> {
        let source = schema.index_of(SOURCE_COLUMN).map_err(|_| {
            anyhow::anyhow!(
                "the table has no `{SOURCE_COLUMN}` column: its rows cannot be told by hour, so it cannot be compacted"
            )
        })?;
        Ok(CompactedFiles {
            table: table.clone(),
            day,
            run: run.to_string(),
            schema,
            props: crate::layout::writer_properties(),
            cut_bytes,
            generations,
            source,
            open: None,
            written: Vec::new(),
            next_index: 0,
            source_hours: HashMap::new(),
        })
    }

    /// Writes a batch (of the files' schema) to the open file, opening one first if none is.
    pub async fn write(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let counts = self.rows_by_hour(batch)?;
        if self.open.is_none() {
            self.open = Some(self.open_next()?);
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        for (hour, rows) in counts {
            *open.rows.entry(hour).or_default() += rows;
        }
        open.writer
            .write(batch)
            .await
            .with_context(|| format!("writing {}", open.key))?;
        // A row group closes at this size too, which bounds what the writer holds (at 128 Ki
        // rows alone a day's writer held 800 MiB more).
        if open.writer.in_progress_size() >= crate::layout::ROW_GROUP_BYTES {
            open.writer
                .flush()
                .await
                .with_context(|| format!("writing {}", open.key))?;
        }
        let size = (open.writer.bytes_written() + open.writer.in_progress_size()) as u64;
        if size >= self.cut_bytes {
            self.close().await?;
        }
        Ok(())
    }

    /// Closes the open file; returns every file written.
    pub async fn finish(mut self) -> anyhow::Result<Vec<Written>> {
        self.close().await?;
        Ok(self.written)
    }

    /// Keys written so far (and the open one), for clean-up when the compaction fails.
    pub fn keys(&self) -> Vec<String> {
        let open = self.open.iter().map(|o| o.key.clone());
        self.written
            .iter()
            .map(|w| w.file.key.clone())
            .chain(open)
            .collect()
    }

    fn open_next(&mut self) -> anyhow::Result<Open> {
        let name = format!(
            "{FILE_PREFIX}{}-{:04}-{}.snappy.parquet",
            self.day, self.next_index, self.run
        );
        self.next_index += 1;
        let key = format!("{}{name}", self.day.partition_prefix(&self.table.prefix));
        let object = BufWriter::new(self.table.store.clone(), Path::from(key.as_str()));
        let writer =
            AsyncArrowWriter::try_new(object, self.schema.clone(), Some(self.props.clone()))
                .with_context(|| format!("starting {key}"))?;
        Ok(Open {
            key,
            writer,
            rows: BTreeMap::new(),
        })
    }

    async fn close(&mut self) -> anyhow::Result<()> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        let metadata = open
            .writer
            .finish()
            .await
            .with_context(|| format!("finishing {}", open.key))?;
        let size = open.writer.bytes_written() as u64;
        let hours: BTreeMap<Hour, HourShare> = open
            .rows
            .iter()
            .map(|(hour, rows)| {
                let generation = self.generations.get(hour).copied().unwrap_or(0);
                (
                    *hour,
                    HourShare {
                        generation,
                        rows: *rows,
                    },
                )
            })
            .collect();
        let rows = hours.values().map(|h| h.rows).sum();
        let mut tags = Map::new();
        tags.insert(COMPACTED_TAG.into(), Value::from(self.day.to_string()));
        tags.insert(HOURS_TAG.into(), Value::from(hours_tag(&hours)));
        tags.insert("run_id".into(), json!(self.run));
        self.written.push(Written {
            file: DataFile {
                key: open.key,
                size,
                stats: crate::stats::stats_json(&metadata, &self.schema),
                tags: Some(tags),
            },
            rows,
            hours,
        });
        Ok(())
    }

    /// The batch's rows per source hour (read from `source_file`).
    fn rows_by_hour(&mut self, batch: &RecordBatch) -> anyhow::Result<BTreeMap<Hour, u64>> {
        let column = cast(batch.column(self.source), &DataType::Utf8)
            .with_context(|| format!("reading {SOURCE_COLUMN}"))?;
        let values = column.as_string::<i32>();
        let mut counts = BTreeMap::new();
        for i in 0..values.len() {
            let value = if values.is_valid(i) {
                values.value(i)
            } else {
                ""
            };
            let hour = match self.source_hours.get(value) {
                Some(hour) => *hour,
                None => {
                    let hour = super::source_hour(value);
                    self.source_hours.insert(value.to_string(), hour);
                    hour
                }
            };
            let hour = hour.ok_or_else(|| {
                anyhow::anyhow!("a row's {SOURCE_COLUMN} `{value}` names no hour file")
            })?;
            *counts.entry(hour).or_default() += 1;
        }
        Ok(counts)
    }
}
