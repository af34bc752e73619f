//! A day's files read and sorted by DataFusion within a memory limit (the sort spills to local
//! disk past it), streamed into compacted files.

use std::sync::Arc;

use anyhow::Context;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::SpillCompression;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{col, ParquetReadOptions, SessionConfig, SessionContext};
use events::Day;
use futures::TryStreamExt;
use url::Url;

use super::files::{CompactedFiles, Written};
use super::{hours_of, CompactOptions, Order, SORT_COLUMNS};
use crate::snapshot::TableFile;
use crate::Table;

/// The scheme under which the table's store is registered with DataFusion here.
const STORE_URL: &str = "gh-elt-table://store/";
/// Spill files at most, in all (Lambda has up to 10 GB of `/tmp`).
const MAX_SPILL_BYTES: u64 = 9 * 1024 * 1024 * 1024;
/// Rows in a batch: GHArchive rows are wide (the payload), so small batches keep what the sort's
/// merge holds of each spilled run small.
const BATCH_ROWS: usize = 2048;
/// Spilled runs one merge pass reads at once (more are merged in passes).
const MERGE_FAN_IN: usize = 16;

/// Reads `inputs`, sorts their rows by [`SORT_COLUMNS`] and writes them as compacted files of
/// `day`.
pub(super) async fn rewrite_sorted(
    table: &Table,
    day: Day,
    run: &str,
    inputs: &[TableFile],
    options: &CompactOptions,
) -> anyhow::Result<Vec<Written>> {
    let ctx = session(table, options)?;
    let urls: Vec<String> = inputs
        .iter()
        .map(|f| format!("{STORE_URL}{}", f.key))
        .collect();
    let frame = ctx
        .read_parquet(urls, ParquetReadOptions::default())
        .await
        .with_context(|| format!("reading the files of {day}"))?;
    let order = match &options.order {
        Order::Sorted => SORT_COLUMNS
            .iter()
            .filter(|c| frame.schema().has_column_with_unqualified_name(c))
            .map(|c| col(*c).sort(true, false))
            .collect(),
        Order::ZOrder(columns) => {
            let key = super::zorder::udf().call(columns.iter().map(col).collect());
            vec![key.sort(true, false)]
        }
    };
    let frame = frame.sort(order)?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let bytes_in: u64 = inputs.iter().map(|f| f.size).sum();
    let mut files = CompactedFiles::new(
        table,
        day,
        run,
        schema,
        cut_bytes(bytes_in, options.max_file_bytes),
        hours_of(inputs),
    )?;
    let written = write_all(&mut files, frame).await;
    match written {
        Ok(()) => files.finish().await,
        Err(error) => {
            super::delete(table, files.keys().iter().map(String::as_str)).await;
            Err(error)
        }
    }
}

async fn write_all(
    files: &mut CompactedFiles,
    frame: datafusion::dataframe::DataFrame,
) -> anyhow::Result<()> {
    let mut stream = frame
        .execute_stream()
        .await
        .context("sorting the day's rows")?;
    while let Some(batch) = stream.try_next().await.context("sorting the day's rows")? {
        files.write(&batch).await?;
    }
    Ok(())
}

/// The size at which a file is closed: a day that fits one file is one file; a larger one is cut
/// into files of about equal size (with a tenth to spare, since rewritten rows may take a little
/// more room than they did), none over `max`.
fn cut_bytes(bytes_in: u64, max: u64) -> u64 {
    let max = max.max(1);
    let files = bytes_in.div_ceil(max).max(1);
    if files == 1 {
        return max;
    }
    (bytes_in.div_ceil(files).saturating_mul(11) / 10).clamp(1, max)
}

/// A DataFusion session that reads the table's store, sorts within the memory limit and spills
/// to the spill folder; strings read as plain strings (the files' own types).
fn session(table: &Table, options: &CompactOptions) -> anyhow::Result<SessionContext> {
    let mut runtime = RuntimeEnvBuilder::new()
        // Fair: each partition's sort gets its share, none starves the other.
        .with_memory_pool(Arc::new(FairSpillPool::new(options.memory_bytes)))
        .with_max_temp_directory_size(MAX_SPILL_BYTES)
        .with_max_spill_merge_fan_in(MERGE_FAN_IN);
    if let Some(dir) = &options.spill_dir {
        runtime = runtime.with_temp_file_path(dir.clone());
    }
    let runtime = runtime
        .build_arc()
        .context("the sort's memory and spill folder")?;
    // One partition: one sort, whose merge of its spilled runs is reserved; two would add a
    // final merge of their own that can meet a pool the sorts have filled.
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(BATCH_ROWS);
    let execution = &mut config.options_mut().execution;
    // A merge of spilled runs holds a batch of each run: reserved up front, so it never meets
    // an exhausted pool.
    execution.sort_spill_reservation_bytes = options.memory_bytes / 8;
    execution.spill_compression = SpillCompression::Lz4Frame;
    execution.parquet.schema_force_view_types = false;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let url = Url::parse(STORE_URL).context("the store's URL")?;
    ctx.register_object_store(&url, table.store.clone());
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_cut_into_files_of_about_equal_size_under_the_largest() {
        let gib = 1024 * 1024 * 1024;
        assert_eq!(cut_bytes(600 * 1024 * 1024, gib), gib);
        assert_eq!(cut_bytes(3 * gib, gib), gib);
        assert_eq!(cut_bytes(5 * gib / 2, gib), (5 * gib / 6 + 1) * 11 / 10);
        assert_eq!(cut_bytes(0, gib), gib);
    }
}
