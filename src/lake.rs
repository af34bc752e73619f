//! The local lake: a folder holding the curated Delta table, its quarantine, and with `elt run`
//! the raw files and job state. Queried with DataFusion through delta-rs's table provider as the
//! table `ghactivity`: the table's newest version, whole hours only, with the partition columns
//! `year`, `month`, `dayofmonth` as integers (as Athena sees them), pruned by partition and by
//! the log's per-file statistics before any file is opened.

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
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
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

/// Runs one query over the lake.
pub async fn query(
    lake: &Path,
    curated_prefix: &str,
    sql: &str,
) -> anyhow::Result<Vec<RecordBatch>> {
    let ctx = session(lake, curated_prefix).await?;
    let frame = ctx.sql(sql).await.context("planning the query")?;
    frame.collect().await.context("running the query")
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
