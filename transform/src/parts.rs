//! Encoding the SQL's output into Snappy Parquet parts. Each part is written straight to its
//! place in the table under a name of its own run (`part-HOUR-NNNN-RUN.snappy.parquet`): no
//! reader sees it until the hour's Delta commit adds it.
//!
//! Each row goes to the partition of its `created_at`'s UTC day, so that a query pruned by the
//! partition columns sees exactly the rows a filter on `created_at` would. One raw file can so
//! write into two days (a 2012–2014 file named by a Pacific clock, a 2025 file with late events
//! of the hour before) or, for odd input, many; parts keep the source hour's name in each.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, UInt32Array};
use datafusion::arrow::compute::{cast, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use events::{Day, Hour};
use object_store::path::Path;
use object_store::ObjectStore;
use tokio::runtime::Handle;

use lake_table::commit::DataFile;

use crate::objects::ObjectWriter;
use crate::source_rows::SourceRows;

/// A row group is closed once its encoded size passes this, which bounds the writer's memory.
const ROW_GROUP_BYTES: usize = 16 * 1024 * 1024;
/// Rows handed to the Parquet writer at a time: the granularity of the part size check.
const SLICE_ROWS: usize = 1024;
/// Partitions with a part open at once. Real hours touch one or two days; a file spread over
/// more closes the part it wrote longest ago (and starts that day's next part if it returns), so
/// memory stays bounded whatever the input.
const MAX_OPEN_PARTS: usize = 4;
/// The column the partition comes from.
const PARTITION_COLUMN: &str = "created_at";
/// The column that identifies an event across hours.
const EVENT_ID_COLUMN: &str = "event_id";

/// An object a run wrote: where it is (`staging`) and where it belongs (`target`). A part is
/// written in place (the two are one key) and carries what the table's log says of it; the
/// quarantine is staged under the run's folder and renamed when the hour commits.
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    pub staging: Path,
    pub target: Path,
    /// A part's size and statistics, for the commit that adds it.
    pub data: Option<DataFile>,
}

pub(crate) struct Target {
    pub store: Arc<dyn ObjectStore>,
    pub handle: Handle,
    pub hour: Hour,
    pub curated_prefix: String,
    /// The run's own staging folder, outside the table: `_staging/ghactivity/HOUR/RUN/`.
    pub staging_dir: String,
    /// The run's token in its parts' names.
    pub run: String,
    /// `event_id`s the neighbouring hours have committed: their rows are not written again.
    pub committed_nearby: Arc<HashSet<i64>>,
}

impl Target {
    /// The staging key for `target`: the same key under the run's staging folder, which no
    /// reader of the table lists and a lifecycle rule expires.
    pub fn staging_for(&self, target: &str) -> Path {
        Path::from(format!("{}{target}", self.staging_dir))
    }
}

/// What the encoder produced.
pub(crate) struct Encoded {
    /// Every staged part, in key order.
    pub parts: Vec<Staged>,
    pub rows: u64,
    /// The `event_id`s written, sorted (empty when the output has no `event_id`).
    pub event_ids: Vec<i64>,
    /// The `event_id`s of the rows not written because a neighbouring hour has committed
    /// them, sorted: the duplicates across hours.
    pub dropped_ids: Vec<i64>,
    /// Rows written per source, in the sources' order.
    pub rows_by_source: Vec<u64>,
    /// The parts' columns.
    pub schema: SchemaRef,
}

pub(crate) struct PartWriter {
    source_rows: SourceRows,
    target: Target,
    schema: SchemaRef,
    props: WriterProperties,
    max_part_bytes: u64,
    /// The output column of `created_at`; without one, every row goes to the source hour's day.
    created_at: Option<usize>,
    /// The output column of `event_id` (Int64); without one, no dedupe across hours.
    event_id: Option<usize>,
    event_ids: Vec<i64>,
    dropped_ids: Vec<i64>,
    open: Vec<OpenPart>,
    /// The next part number in each day partition.
    next_index: BTreeMap<Day, usize>,
    staged: Vec<Staged>,
    rows: u64,
    /// Slices written so far: the clock that tells which open part was used longest ago.
    writes: u64,
}

struct OpenPart {
    day: Day,
    writer: ArrowWriter<ObjectWriter>,
    last_write: u64,
}

impl PartWriter {
    /// A writer of output of `schema` from the files `sources` (by place).
    pub fn new(
        target: Target,
        schema: SchemaRef,
        max_part_bytes: u64,
        sources: &[String],
    ) -> PartWriter {
        let created_at = schema
            .index_of(PARTITION_COLUMN)
            .ok()
            .filter(|&i| matches!(schema.field(i).data_type(), DataType::Timestamp(..)));
        let event_id = schema
            .index_of(EVENT_ID_COLUMN)
            .ok()
            .filter(|&i| schema.field(i).data_type() == &DataType::Int64);
        PartWriter {
            source_rows: SourceRows::new(sources, &schema),
            event_id,
            event_ids: Vec::new(),
            dropped_ids: Vec::new(),
            target,
            schema,
            props: lake_table::layout::writer_properties(),
            max_part_bytes,
            created_at,
            open: Vec::new(),
            next_index: BTreeMap::new(),
            staged: Vec::new(),
            rows: 0,
            writes: 0,
        }
    }

    /// Writes a batch: each day's rows, in order, to that day's part, except the rows whose
    /// event a neighbouring hour has committed.
    pub fn write(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let kept;
        let batch = match self.drop_committed_nearby(batch)? {
            Some(filtered) => {
                kept = filtered;
                &kept
            }
            None => batch,
        };
        self.source_rows.add(batch);
        let days = self.days(batch)?;
        let fallback = self.target.hour.date();
        let day_of = |days: i32| Day::from_days_since_epoch(days).unwrap_or(fallback);
        if days.windows(2).all(|w| w[0] == w[1]) {
            return match days.first() {
                Some(&day) => self.write_day(day_of(day), batch),
                None => Ok(()),
            };
        }
        // Rows of each day, in file order; the days in the order they first appear.
        let mut rows_of: Vec<(i32, Vec<u32>)> = Vec::new();
        let mut slot_of: HashMap<i32, usize> = HashMap::new();
        for (row, &day) in days.iter().enumerate() {
            let slot = *slot_of.entry(day).or_insert_with(|| {
                rows_of.push((day, Vec::new()));
                rows_of.len() - 1
            });
            rows_of[slot].1.push(row as u32);
        }
        for (day, rows) in rows_of {
            let rows = take_record_batch(batch, &UInt32Array::from(rows))?;
            self.write_day(day_of(day), &rows)?;
        }
        Ok(())
    }

    /// Notes the batch's `event_id`s; returns the batch without the rows whose event a
    /// neighbouring hour has committed, or `None` when it keeps every row.
    fn drop_committed_nearby(
        &mut self,
        batch: &RecordBatch,
    ) -> anyhow::Result<Option<RecordBatch>> {
        let Some(column) = self.event_id else {
            return Ok(None);
        };
        let ids = batch.column(column).as_primitive::<Int64Type>();
        let nearby = &self.target.committed_nearby;
        let committed = |i: usize| ids.is_valid(i) && nearby.contains(&ids.value(i));
        if nearby.is_empty() || !(0..ids.len()).any(committed) {
            self.event_ids.extend(ids.iter().flatten());
            return Ok(None);
        }
        let keep: BooleanArray = (0..ids.len()).map(|i| Some(!committed(i))).collect();
        self.dropped_ids.extend(
            (0..ids.len())
                .filter(|&i| committed(i))
                .map(|i| ids.value(i)),
        );
        let filtered = filter_record_batch(batch, &keep)?;
        let ids = filtered.column(column).as_primitive::<Int64Type>();
        self.event_ids.extend(ids.iter().flatten());
        Ok(Some(filtered))
    }

    /// The UTC day of each row, as days since the epoch: its `created_at`'s, or the source
    /// hour's where there is none.
    fn days(&self, batch: &RecordBatch) -> anyhow::Result<Vec<i32>> {
        let hour_day = self.target.hour.start().timestamp().div_euclid(86_400) as i32;
        let Some(column) = self.created_at else {
            return Ok(vec![hour_day; batch.num_rows()]);
        };
        let dates = cast(batch.column(column), &DataType::Date32)
            .context("reading the partition day from created_at")?;
        let dates = dates.as_primitive::<Date32Type>();
        Ok((0..dates.len())
            .map(|i| {
                if dates.is_valid(i) {
                    dates.value(i)
                } else {
                    hour_day
                }
            })
            .collect())
    }

    /// Writes rows of one day, in slices, so that parts close near the size limit whatever the
    /// batch size.
    fn write_day(&mut self, day: Day, batch: &RecordBatch) -> anyhow::Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = SLICE_ROWS.min(batch.num_rows() - offset);
            self.write_slice(day, &batch.slice(offset, len))?;
            offset += len;
        }
        Ok(())
    }

    fn write_slice(&mut self, day: Day, batch: &RecordBatch) -> anyhow::Result<()> {
        let at = self.part_for(day)?;
        self.writes += 1;
        let part = &mut self.open[at];
        part.last_write = self.writes;
        part.writer.write(batch).context("encoding Parquet")?;
        self.rows += batch.num_rows() as u64;
        // Row groups close once the open parts together hold this much, which bounds memory.
        let in_progress: usize = self.open.iter().map(|p| p.writer.in_progress_size()).sum();
        if in_progress >= ROW_GROUP_BYTES {
            for part in &mut self.open {
                if part.writer.in_progress_rows() > 0 {
                    part.writer.flush()?;
                }
            }
        }
        let writer = &self.open[at].writer;
        if (writer.bytes_written() + writer.in_progress_size()) as u64 >= self.max_part_bytes {
            self.close_part(at)?;
        }
        Ok(())
    }

    /// The open part of `day`, opening its next part (and closing the one written longest ago
    /// when too many are open).
    fn part_for(&mut self, day: Day) -> anyhow::Result<usize> {
        if let Some(at) = self.open.iter().position(|p| p.day == day) {
            return Ok(at);
        }
        if self.open.len() >= MAX_OPEN_PARTS {
            let oldest = (0..self.open.len())
                .min_by_key(|&i| self.open[i].last_write)
                .unwrap_or(0);
            self.close_part(oldest)?;
        }
        let index = self.next_index.entry(day).or_insert(0);
        let target =
            self.target
                .hour
                .part_key(&self.target.curated_prefix, day, *index, &self.target.run);
        *index += 1;
        let object = ObjectWriter::create(
            &self.target.store,
            Path::from(target.as_str()),
            self.target.handle.clone(),
        )?;
        let writer = ArrowWriter::try_new(object, self.schema.clone(), Some(self.props.clone()))?;
        self.open.push(OpenPart {
            day,
            writer,
            last_write: self.writes,
        });
        Ok(self.open.len() - 1)
    }

    fn close_part(&mut self, at: usize) -> anyhow::Result<()> {
        let mut part = self.open.remove(at);
        let metadata = part.writer.finish().context("finishing a Parquet part")?;
        let size = part.writer.bytes_written() as u64;
        let object = part.writer.inner_mut();
        let key = object.path().clone();
        object
            .finish()
            .with_context(|| format!("uploading {key}"))?;
        self.staged.push(Staged {
            staging: key.clone(),
            data: Some(DataFile {
                key: key.to_string(),
                size,
                stats: lake_table::stats::stats_json(&metadata, &self.schema),
                tags: None,
            }),
            target: key,
        });
        Ok(())
    }

    /// Closes the open parts; returns what was written.
    pub fn finish(mut self) -> anyhow::Result<Encoded> {
        while !self.open.is_empty() {
            self.close_part(0)?;
        }
        let mut parts = std::mem::take(&mut self.staged);
        parts.sort_by(|a, b| a.target.as_ref().cmp(b.target.as_ref()));
        self.event_ids.sort_unstable();
        self.dropped_ids.sort_unstable();
        Ok(Encoded {
            schema: self.schema.clone(),
            parts,
            rows: self.rows,
            event_ids: std::mem::take(&mut self.event_ids),
            dropped_ids: std::mem::take(&mut self.dropped_ids),
            rows_by_source: std::mem::replace(
                &mut self.source_rows,
                SourceRows::new(&[], &self.schema),
            )
            .finish(),
        })
    }

    /// Parts staged so far, for clean-up when the file fails.
    pub fn staged(&self) -> &[Staged] {
        &self.staged
    }
}
