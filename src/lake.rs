//! The local lake: a folder holding the curated Delta table, its quarantine, and with `elt run`
//! the raw files and job state. Queried with DataFusion through delta-rs's table provider as the
//! table `ghactivity`: the table's newest version, whole hours only, with the partition columns
//! `year`, `month`, `dayofmonth` as integers (as Athena sees them), pruned by partition and by
//! the log's per-file statistics before any file is opened; inside a file, row groups and pages
//! by their statistics, the page index and the bloom filters, and the filters are evaluated in
//! the scan (late materialisation: a wide column such as `payload` is decoded only for the rows
//! that pass).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{SessionConfig, SessionContext};

use object_store::ObjectStore;

/// The lake as an object store rooted at `dir` (created if missing).
pub fn store(dir: &Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    adapters::objects::folder(dir)
}

/// The curated table of the local lake `dir`.
pub fn table(dir: &Path, curated_prefix: &str) -> anyhow::Result<lake_table::Table> {
    Ok(lake_table::Table::new(
        store(dir)?,
        curated_prefix,
        lake_table::Place::Folder(dir.to_path_buf()),
    ))
}

/// A DataFusion session with `ghactivity` registered: the Delta table at `lake/curated_prefix`.
pub async fn session(lake: &Path, curated_prefix: &str) -> anyhow::Result<SessionContext> {
    let table = table(lake, curated_prefix)?;
    let Some(delta) = table.open().await? else {
        anyhow::bail!(
            "no table under {}: run `elt transform FILE…` or `elt demo` first (or pass --lake; `elt migrate` turns a lake of the older layout into the table)",
            lake.join(curated_prefix).display()
        );
    };
    let ctx = SessionContext::new_with_config(config());
    delta
        .update_datafusion_session(&ctx.state())
        .context("registering the table's storage")?;
    let provider = delta
        .table_provider()
        .await
        .context("reading the table's files")?;
    ctx.register_table("ghactivity", provider)?;
    Ok(ctx)
}

/// The session's settings: filters pushed into the Parquet scan and reordered by cost, the page
/// index and bloom filters read; any other DataFusion setting from the environment
/// (`DATAFUSION_EXECUTION_TARGET_PARTITIONS=8`, …).
fn config() -> SessionConfig {
    let mut config = SessionConfig::from_env()
        .unwrap_or_default()
        .with_information_schema(true);
    let parquet = &mut config.options_mut().execution.parquet;
    parquet.pushdown_filters = true;
    parquet.reorder_filters = true;
    parquet.enable_page_index = true;
    parquet.bloom_filter_on_read = true;
    config
}

/// Runs one query over the lake.
pub async fn query(
    lake: &Path,
    curated_prefix: &str,
    sql: &str,
) -> anyhow::Result<Vec<RecordBatch>> {
    let ctx = session(lake, curated_prefix).await?;
    Ok(run(&ctx, sql).await?.0)
}

/// What a query read.
#[derive(Debug, Default, serde::Serialize)]
pub struct QueryStats {
    /// Planning and running, the table already open.
    pub seconds: f64,
    /// Of which planning (delta-rs chooses the files by the log's statistics then).
    pub plan_seconds: f64,
    /// The Parquet scans' `bytes_scanned`.
    pub bytes_scanned: u64,
    /// Bytes this process read meanwhile (`rchar` of /proc/self/io; 0 where there is none).
    pub read_bytes: u64,
    /// Every metric of the plan, summed by name (rows and row groups pruned, …).
    pub metrics: std::collections::BTreeMap<String, u64>,
}

/// Runs `sql` in `ctx`: its batches and what it read.
pub async fn run(
    ctx: &SessionContext,
    sql: &str,
) -> anyhow::Result<(Vec<RecordBatch>, QueryStats)> {
    let started = std::time::Instant::now();
    let read_before = read_bytes();
    let frame = ctx.sql(sql).await.context("planning the query")?;
    let plan = frame
        .create_physical_plan()
        .await
        .context("planning the query")?;
    let plan_seconds = started.elapsed().as_secs_f64();
    let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
        .await
        .context("running the query")?;
    let mut stats = QueryStats {
        seconds: started.elapsed().as_secs_f64(),
        plan_seconds,
        read_bytes: read_bytes().saturating_sub(read_before),
        ..QueryStats::default()
    };
    sum_metrics(plan.as_ref(), &mut stats.metrics);
    stats.bytes_scanned = stats.metrics.get("bytes_scanned").copied().unwrap_or(0);
    Ok((batches, stats))
}

fn sum_metrics(
    plan: &dyn datafusion::physical_plan::ExecutionPlan,
    into: &mut std::collections::BTreeMap<String, u64>,
) {
    if let Some(metrics) = plan.metrics() {
        for metric in metrics.aggregate_by_name().iter() {
            let value = metric.value();
            if value.as_usize() > 0 && !value.name().contains("time") {
                *into.entry(value.name().to_string()).or_default() += value.as_usize() as u64;
            }
        }
    }
    for child in plan.children() {
        sum_metrics(child.as_ref(), into);
    }
}

/// `rchar` of /proc/self/io: every byte this process has read (0 where there is no such file).
fn read_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|line| line.strip_prefix("rchar:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Writes query results as a table, CSV with a header, or JSON lines.
pub fn print(
    batches: &[RecordBatch],
    format: Format,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    match format {
        Format::Table => writeln!(
            out,
            "{}",
            datafusion::arrow::util::pretty::pretty_format_batches(batches)?
        )?,
        Format::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for batch in batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(out);
            writer.write_batches(&batches.iter().collect::<Vec<_>>())?;
            writer.finish()?;
        }
    }
    Ok(())
}
