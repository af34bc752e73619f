//! The table's own upkeep as commands: `elt compact` (days rewritten into a few sorted files),
//! `elt vacuum` (files no live version needs) and `elt migrate` (a lake of the older layout
//! turned into the table in place).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use events::commits::{commit_key, CommitState};
use events::{Day, Hour};
use futures::TryStreamExt;
use object_store::path::Path;
use serde::Serialize;
use transform::handler::AwsTarget;

use super::{local_lake, print_json_line};

/// Which lake: a local folder, or AWS (CURATED_BUCKET and JOBS_TABLE).
#[derive(clap::Args)]
pub struct WhichLake {
    /// The lake on AWS: CURATED_BUCKET, and the commit records in JOBS_TABLE.
    #[arg(long, conflicts_with = "lake")]
    aws: bool,
    /// The local lake.
    #[arg(long, env = "ELT_LAKE", default_value = "lake")]
    lake: PathBuf,
    #[command(flatten)]
    on_aws: AwsTarget,
    /// Key prefix of the Parquet table.
    #[arg(long, env = "CURATED_PREFIX", default_value = events::DEFAULT_CURATED_PREFIX)]
    curated_prefix: String,
}

impl WhichLake {
    pub(super) async fn open(&self) -> anyhow::Result<transform::Lake> {
        match self.aws {
            true => self.on_aws.lake().await,
            false => local_lake(&self.lake),
        }
    }
}

#[derive(clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    which: WhichLake,
    /// The first day to compact, e.g. 2024-03-05.
    #[arg(long, requires = "to")]
    from: Option<Day>,
    /// The last day to compact (inclusive).
    #[arg(long, requires = "from")]
    to: Option<Day>,
    /// Only days that have settled (every hour whose rows may fall in them committed), as the
    /// scheduled compaction does.
    #[arg(long)]
    settled: bool,
    #[command(flatten)]
    settings: transform::compaction::CompactSettings,
}

impl CompactArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let lake = self.which.open().await?;
        let request = transform::compaction::CompactRequest {
            days: self.from.zip(self.to),
            settled_only: self.settled,
            deadline: None,
        };
        if let Some((from, to)) = request.days {
            anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
        }
        transform::compaction::compact(
            &lake,
            &self.which.curated_prefix,
            &request,
            &self.settings,
            print_json_line,
        )
        .await?;
        Ok(())
    }
}

#[derive(clap::Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    which: WhichLake,
    /// Keep what versions of the last this many hours need (default: the table's
    /// delta.deletedFileRetentionDuration, 7 days; longer than any query runs).
    #[arg(long)]
    retention_hours: Option<u64>,
    /// Delete the files (without it: only list them).
    #[arg(long)]
    apply: bool,
}

#[derive(Serialize)]
struct VacuumReport {
    dry_run: bool,
    files: usize,
    keys: Vec<String>,
}

impl VacuumArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let lake = self.which.open().await?;
        let table = lake.table(&self.which.curated_prefix);
        let retention = self
            .retention_hours
            .map(|h| Duration::from_secs(h.saturating_mul(3600)));
        let vacuumed = lake_table::upkeep::vacuum(&table, retention, !self.apply).await?;
        print_json_line(&VacuumReport {
            dry_run: vacuumed.dry_run,
            files: vacuumed.files.len(),
            keys: vacuumed.files,
        })
    }
}

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    which: WhichLake,
}

#[derive(Serialize)]
struct MigrateReport {
    hours: usize,
    parts: usize,
    /// Hours the table already held.
    already: usize,
    /// Hours with parts in the folders but no committed record: left out.
    without_record: Vec<Hour>,
    versions: Vec<u64>,
}

impl MigrateArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let lake = self.which.open().await?;
        let prefix = &self.which.curated_prefix;
        let table = lake.table(prefix);
        let hours = hours_in_folders(&lake, prefix).await?;
        let state = lake_table::snapshot::load(&table).await?;
        let mut report = MigrateReport {
            hours: 0,
            parts: 0,
            already: 0,
            without_record: Vec::new(),
            versions: Vec::new(),
        };
        let mut existing = Vec::new();
        for hour in hours {
            if let Some(state) = &state {
                if state.generation(hour).is_some() {
                    report.already += 1;
                    continue;
                }
            }
            let record = lake.commits.get_commit(&commit_key(prefix, hour)).await?;
            let Some(record) = record.filter(|r| r.state == CommitState::Committed) else {
                report.without_record.push(hour);
                continue;
            };
            report.hours += 1;
            report.parts += record.parts.len();
            existing.push(lake_table::migrate::ExistingHour {
                hour,
                generation: record.generation,
                run_id: record.run_id.clone(),
                parts: record.parts.clone(),
                info: serde_json::json!({"source": record.source, "counts": record.counts}),
            });
        }
        report.versions = lake_table::migrate::add_existing(&table, &existing)
            .await
            .context("adding the lake's parts to the table")?;
        print_json_line(&report)
    }
}

/// The hours whose parts are in the table's folders, by their names.
async fn hours_in_folders(
    lake: &transform::Lake,
    prefix: &str,
) -> anyhow::Result<std::collections::BTreeSet<Hour>> {
    let listed: Vec<String> = lake
        .store
        .list(Some(&Path::from(prefix)))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .with_context(|| format!("listing {prefix}"))?;
    let mut hours = BTreeMap::new();
    for key in listed.iter().filter(|k| !k.contains("/_delta_log/")) {
        let name = key.rsplit('/').next().unwrap_or_default();
        if let Some(hour) = events::part_hour(name) {
            hours.insert(hour, ());
        }
    }
    Ok(hours.into_keys().collect())
}
