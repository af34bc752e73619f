//! Encoding the SQL's output into Snappy Parquet parts, each staged under a temporary name until
//! the whole file has succeeded.

use std::sync::Arc;

use anyhow::Context;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use events::Hour;
use object_store::path::Path;
use object_store::ObjectStore;
use tokio::runtime::Handle;

use crate::objects::ObjectWriter;

/// Long free-text columns: dictionaries and min/max statistics cost time there and buy nothing.
const LONG_TEXT_COLUMNS: &[&str] = &["payload", "body", "title", "diff_hunk"];
/// A row group is closed once its encoded size passes this, which bounds the writer's memory.
const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows handed to the Parquet writer at a time: the granularity of the part size check.
const SLICE_ROWS: usize = 1024;

/// An object written under a temporary key, to be renamed to `target` when the file commits.
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    pub staging: Path,
    pub target: Path,
}

pub(crate) struct Target {
    pub store: Arc<dyn ObjectStore>,
    pub handle: Handle,
    pub hour: Hour,
    pub curated_prefix: String,
    pub run_id: String,
}

impl Target {
    /// The temporary key for `target`: same folder, a name no reader lists (leading `_`, no
    /// `.parquet` ending).
    pub fn staging_for(&self, target: &str) -> Path {
        let (folder, name) = target.rsplit_once('/').unwrap_or(("", target));
        let sep = if folder.is_empty() { "" } else { "/" };
        Path::from(format!("{folder}{sep}_tmp.{}.{name}.tmp", self.run_id))
    }
}

pub(crate) struct PartWriter {
    target: Target,
    schema: SchemaRef,
    props: WriterProperties,
    max_part_bytes: u64,
    current: Option<ArrowWriter<ObjectWriter>>,
    staged: Vec<Staged>,
    rows: u64,
}

impl PartWriter {
    pub fn new(target: Target, schema: SchemaRef, max_part_bytes: u64) -> PartWriter {
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_created_by(format!("gh-elt {}", env!("CARGO_PKG_VERSION")));
        for name in LONG_TEXT_COLUMNS {
            let column = ColumnPath::from(*name);
            props = props
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_statistics_enabled(column, EnabledStatistics::None);
        }
        PartWriter {
            target,
            schema,
            props: props.build(),
            max_part_bytes,
            current: None,
            staged: Vec::new(),
            rows: 0,
        }
    }

    /// Writes a batch, in slices, so that parts close near the size limit whatever the batch size.
    pub fn write(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = SLICE_ROWS.min(batch.num_rows() - offset);
            self.write_slice(&batch.slice(offset, len))?;
            offset += len;
        }
        Ok(())
    }

    fn write_slice(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        let writer = match &mut self.current {
            Some(writer) => writer,
            None => {
                let index = self.staged.len();
                let target = self
                    .target
                    .hour
                    .part_key(&self.target.curated_prefix, index);
                let staging = self.target.staging_for(&target);
                let object =
                    ObjectWriter::create(&self.target.store, staging, self.target.handle.clone())?;
                let writer =
                    ArrowWriter::try_new(object, self.schema.clone(), Some(self.props.clone()))?;
                self.current.insert(writer)
            }
        };
        writer.write(batch).context("encoding Parquet")?;
        self.rows += batch.num_rows() as u64;
        if writer.in_progress_size() >= ROW_GROUP_BYTES {
            writer.flush()?;
        }
        if (writer.bytes_written() + writer.in_progress_size()) as u64 >= self.max_part_bytes {
            self.close_part()?;
        }
        Ok(())
    }

    fn close_part(&mut self) -> anyhow::Result<()> {
        if let Some(writer) = self.current.take() {
            let object = writer.into_inner().context("finishing a Parquet part")?;
            let staging = object.path().clone();
            object
                .finish()
                .with_context(|| format!("uploading {staging}"))?;
            let target = Path::from(
                self.target
                    .hour
                    .part_key(&self.target.curated_prefix, self.staged.len()),
            );
            self.staged.push(Staged { staging, target });
        }
        Ok(())
    }

    /// Closes the last part; returns the staged parts in order and the rows written.
    pub fn finish(mut self) -> anyhow::Result<(Vec<Staged>, u64)> {
        self.close_part()?;
        Ok((std::mem::take(&mut self.staged), self.rows))
    }

    /// Parts staged so far, for clean-up when the file fails.
    pub fn staged(&self) -> &[Staged] {
        &self.staged
    }
}
