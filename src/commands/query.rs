//! `elt query`: SQL over the local lake.

use std::path::Path;

use super::LakeArgs;
use crate::lake::{self, Format};

#[derive(clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    lake: LakeArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Also print what the query read, as one JSON line on stderr: seconds (planning and
    /// running), bytes_scanned (the Parquet scans'), read_bytes (all the process read meanwhile),
    /// and the plan's metrics (row groups and pages pruned, …).
    #[arg(long)]
    stats: bool,
    /// For example: "SELECT event_type, count(*) FROM ghactivity GROUP BY 1 ORDER BY 2 DESC"
    sql: String,
}

impl QueryArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let lake = &self.lake;
        let ctx = lake::session(&lake.lake, &lake.curated_prefix).await?;
        let (batches, stats) = lake::run(&ctx, &self.sql).await?;
        lake::print(&batches, self.format, &mut std::io::stdout().lock())?;
        if self.stats {
            eprintln!("{}", serde_json::json!({ "stats": stats }));
        }
        Ok(())
    }
}

/// `elt query`
pub(super) async fn query(
    lake_dir: &Path,
    curated_prefix: &str,
    sql: &str,
    format: Format,
) -> anyhow::Result<()> {
    let batches = lake::query(lake_dir, curated_prefix, sql).await?;
    lake::print(&batches, format, &mut std::io::stdout().lock())
}
