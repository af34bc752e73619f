//! The local lake: a folder holding the curated Parquet table, its quarantine, and (later) raw
//! files and job state. Queried with DataFusion as the table `ghactivity`, with the partition
//! folders `year=/month=/dayofmonth=` as integer columns, as Athena sees them through Glue.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStore;

/// The lake as an object store rooted at `dir` (created if missing).
pub fn store(dir: &Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    adapters::objects::folder(dir)
}

/// A DataFusion session with `ghactivity` registered over `lake/curated_prefix`.
pub async fn session(lake: &Path, curated_prefix: &str) -> anyhow::Result<SessionContext> {
    let table_dir: PathBuf = lake.join(curated_prefix.trim_end_matches('/'));
    let has_parquet = table_dir.is_dir()
        && walk_has_parquet(&table_dir)
            .with_context(|| format!("reading {}", table_dir.display()))?;
    if !has_parquet {
        bail!(
            "no Parquet under {}: run `elt transform FILE…` or `elt demo` first (or pass --lake)",
            table_dir.display()
        );
    }
    let table_dir = table_dir.canonicalize()?;
    let url = ListingTableUrl::parse(format!("{}/", table_dir.display()))?;
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    // The partition values are registered as text and cast in a view: DataFusion turns equality
    // filters on leading partition columns into a listing prefix, and from integers it would
    // build `month=3/` where the folder is `month=03/`.
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![
            ("year".to_string(), DataType::Utf8),
            ("month".to_string(), DataType::Utf8),
            ("dayofmonth".to_string(), DataType::Utf8),
        ]);
    let schema = options
        .infer_schema(&ctx.state(), &url)
        .await
        .context("reading the lake's Parquet schema")?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    ctx.register_table("ghactivity_files", Arc::new(ListingTable::try_new(config)?))?;
    ctx.sql(
        "CREATE VIEW ghactivity AS SELECT * EXCLUDE (year, month, dayofmonth), \
         CAST(year AS INT) AS year, CAST(month AS INT) AS month, CAST(dayofmonth AS INT) AS dayofmonth \
         FROM ghactivity_files",
    )
    .await?;
    Ok(ctx)
}

fn walk_has_parquet(dir: &Path) -> std::io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if walk_has_parquet(&path)? {
                return Ok(true);
            }
        } else if path.extension().is_some_and(|e| e == "parquet") {
            return Ok(true);
        }
    }
    Ok(false)
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
