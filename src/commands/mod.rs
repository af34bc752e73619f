//! The `elt` subcommands: each owns its arguments (`XxxArgs`, clap) and its `run`, in a file of
//! its own; this module holds what they share.

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use ingest::IngestConfig;

use crate::lake;

mod backfill;
mod demo;
mod gen;
mod ingesting;
mod park;
mod query;
mod run;
mod status;
mod table;
mod transforming;
mod verify;
mod worker;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Ingest the GHArchive hours due after the job's bookmark, as the scheduled Lambda does.
    ///
    /// Stops when the next hour is not over or not published yet, after MAX_HOURS_PER_RUN hours,
    /// or at a failure. Prints the run record (also stored in job_run_details) as JSON; exits
    /// non-zero if the run failed.
    Ingest(ingesting::IngestArgs),
    /// Ingest the hours --from .. --to (both included) without moving the bookmark.
    Backfill(backfill::BackfillArgs),
    /// The whole pipeline locally: ingest every due hour into LAKE/raw/ and transform each one
    /// into the lake as it lands, until caught up (or --until).
    Run(run::RunArgs),
    /// The job's bookmark, its lag, parked and queued hours, and its last runs.
    Status(status::StatusArgs),
    /// Park an hour by hand: the job moves on without it (`elt retry` takes it back).
    ///
    /// The next hour due: the bookmark moves past it now (unless a run holds the job; that run
    /// passes it by). A later hour: runs pass it by when they get there. Runs try a parked hour
    /// again at growing intervals, unless it is parked for good (--forever). Prints what changed
    /// as a JSON line.
    Skip(park::SkipArgs),
    /// Take a parked hour back now: the next run fetches it first (an hour behind the bookmark),
    /// or fetches it when it gets there (an hour ahead). After MISSING_HOUR_ATTEMPTS runs that
    /// fail by the hour's own fault it is parked again. Prints what changed as a JSON line.
    Retry(park::RetryArgs),
    /// Transform local raw hour files (YYYY-MM-DD-H.json.gz, .json.zst or .json) into the lake.
    ///
    /// Prints one JSON line per file: source, hour, lines, rows, duplicates, rejected, outputs.
    /// Bad lines go to the quarantine with their reason; a corrupt or truncated file fails whole
    /// and changes nothing. Exits non-zero if any file failed.
    Transform(transforming::TransformArgs),
    /// Work an SQS queue of raw-bucket notifications as the transform Lambda's event source
    /// mapping does: receive a batch, transform each file, delete what succeeded, leave failures
    /// to come back (and, after maxReceiveCount, go to the dead-letter queue).
    Worker(worker::WorkerArgs),
    /// Move messages parked in a dead-letter queue back to their queue (receive, send, delete).
    Redrive(worker::RedriveArgs),
    /// Audit hours --from .. --to: raw file there, commit complete and held by the table at its
    /// generation, Parquet rows equal to the commit's count, no event_id twice, no event lost
    /// across hours, no file in the table's folders the table does not reference, no staged
    /// leftovers. Prints a report (a table, or JSON); exits 1 on any finding.
    Verify(verify::VerifyArgs),
    /// Delete the table's files that no version within the retention needs: parts that commits
    /// removed longer ago, and files no commit added (runs that died). A dry run unless --apply;
    /// prints what it found (or deleted) as a JSON line.
    Vacuum(table::VacuumArgs),
    /// Turn a lake of the older layout (hourly parts listed by readers) into the Delta table in
    /// place: each committed hour's parts are added as they are, nothing is copied. Prints what
    /// it added as a JSON line; running it again adds nothing.
    Migrate(table::MigrateArgs),
    /// Compact days --from .. --to (or, without them, the last COMPACT_LOOKBACK_DAYS days): each
    /// day whose partition holds hourly parts is rewritten into a few large files sorted by
    /// (event_type, repo_name, created_at), in one commit. A compacted day is left as it is.
    /// Prints one JSON line per day.
    Compact(table::CompactArgs),
    /// Query the lake with SQL (DataFusion over the Delta table); the table is `ghactivity`,
    /// with `year`, `month` and `dayofmonth` as partition columns.
    Query(query::QueryArgs),
    /// Write a GHArchive-shaped hour file made from real events (gzip, zstd or plain by extension).
    Gen(gen::GenArgs),
    /// Generate a few hours, transform them into the lake, and print a short report from it.
    Demo(demo::DemoArgs),
}

impl Command {
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Ingest(command) => command.run().await,
            Command::Backfill(command) => command.run().await,
            Command::Run(command) => command.run().await,
            Command::Status(command) => command.run().await,
            Command::Skip(command) => command.run().await,
            Command::Retry(command) => command.run().await,
            Command::Transform(command) => command.run().await,
            Command::Worker(command) => command.run().await,
            Command::Redrive(command) => command.run().await,
            Command::Verify(command) => command.run().await,
            Command::Vacuum(command) => command.run().await,
            Command::Migrate(command) => command.run().await,
            Command::Compact(command) => command.run().await,
            Command::Query(command) => command.run().await,
            Command::Gen(command) => command.run().await,
            Command::Demo(command) => command.run().await,
        }
    }
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

const BYTES_BAR: &str =
    "{msg:24} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}";

/// The machine-readable output of the commands: one JSON document per line on stdout.
fn print_json_line<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A file's transform: its summary as a JSON line on stdout, or the error on stderr, counted.
fn print_outcome(
    outcome: anyhow::Result<events::TransformSummary>,
    what: impl std::fmt::Display,
    failed: &mut usize,
) -> anyhow::Result<()> {
    match outcome {
        Ok(summary) => print_json_line(&summary),
        Err(e) => {
            *failed += 1;
            eprintln!("error: {what}: {e:#}");
            Ok(())
        }
    }
}

/// The local lake as the transform writes it: the folder, and the hours' commit records in
/// `LAKE/state.sqlite`.
pub fn local_lake(lake_dir: &Path) -> anyhow::Result<transform::Lake> {
    Ok(transform::Lake {
        store: lake::store(lake_dir)?,
        commits: std::sync::Arc::new(ingest::local_job_store(lake_dir)?),
        place: lake_table::Place::Folder(lake_dir.to_path_buf()),
    })
}

#[derive(clap::Args, Clone)]
pub struct LakeArgs {
    /// The lake folder: Parquet under CURATED_PREFIX, quarantined lines under REJECTS_PREFIX.
    #[arg(long, env = "ELT_LAKE", default_value = "lake")]
    lake: PathBuf,
    /// Key prefix of the Parquet table in the lake.
    #[arg(long, env = "CURATED_PREFIX", default_value = events::DEFAULT_CURATED_PREFIX, hide_env_values = true)]
    curated_prefix: String,
}

/// Where the ingest works: AWS, or a local lake (the default).
#[derive(clap::Args, Clone)]
pub struct TargetArgs {
    /// Work on AWS: S3 bucket RAW_BUCKET, DynamoDB tables JOBS_TABLE and JOB_RUNS_TABLE, with the
    /// standard AWS variables (AWS_ENDPOINT_URL points it at an emulator).
    #[arg(long, conflicts_with = "lake")]
    aws: bool,
    /// The local lake: raw files under LAKE/raw/, job state in LAKE/state.sqlite.
    #[arg(long, env = "ELT_LAKE", default_value = "lake")]
    lake: PathBuf,
}

impl TargetArgs {
    fn target(self) -> Target {
        if self.aws {
            Target::Aws
        } else {
            Target::Lake(self.lake)
        }
    }
}

/// Where `elt ingest`, `backfill` and `status` work: AWS (S3 + DynamoDB) or a local lake.
pub enum Target {
    Aws,
    Lake(PathBuf),
}

/// The name a unit-like enum has in the JSON records (`ingested`, `caught_up`, …).
pub(crate) fn label<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The job state of `target`, and where it is, for people. Only the job state: no bucket needs
/// to be named.
async fn job_store(
    target: &Target,
    config: &IngestConfig,
) -> anyhow::Result<(Box<dyn adapters::JobTables>, String)> {
    Ok(match target {
        Target::Aws => (
            Box::new(ingest::aws_job_store(config).await),
            format!(
                "DynamoDB tables {} and {}",
                config.jobs_table, config.job_runs_table
            ),
        ),
        Target::Lake(dir) => (
            Box::new(ingest::local_job_store(dir)?),
            dir.join(ingest::LOCAL_STATE_FILE).display().to_string(),
        ),
    })
}

fn utc(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
