//! `elt`: run gh-elt locally, and operate it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The pipeline allocates many small strings and buffers on several threads at once; glibc's
// allocator spent about a tenth of the CPU time of a transform on that (perf), mimalloc less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use gh_elt::commands;
use gh_elt::lake::Format;

#[derive(Parser)]
#[command(
    name = "elt",
    version,
    about = "gh-elt: GHArchive hours → a Parquet lake, locally or on AWS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct LakeArgs {
    /// The lake folder: Parquet under CURATED_PREFIX, quarantined lines under REJECTS_PREFIX.
    #[arg(long, env = "ELT_LAKE", default_value = "lake")]
    lake: PathBuf,
    /// Key prefix of the Parquet table in the lake.
    #[arg(long, env = "CURATED_PREFIX", default_value = events::DEFAULT_CURATED_PREFIX, hide_env_values = true)]
    curated_prefix: String,
}

/// Where the ingest works: AWS, or a local lake (the default).
#[derive(clap::Args, Clone)]
struct TargetArgs {
    /// Work on AWS: S3 bucket RAW_BUCKET, DynamoDB tables JOBS_TABLE and JOB_RUNS_TABLE, with the
    /// standard AWS variables (AWS_ENDPOINT_URL points it at an emulator).
    #[arg(long, conflicts_with = "lake")]
    aws: bool,
    /// The local lake: raw files under LAKE/raw/, job state in LAKE/state.sqlite.
    #[arg(long, env = "ELT_LAKE", default_value = "lake")]
    lake: PathBuf,
}

impl TargetArgs {
    fn target(self) -> commands::Target {
        if self.aws {
            commands::Target::Aws
        } else {
            commands::Target::Lake(self.lake)
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Ingest the GHArchive hours due after the job's bookmark, as the scheduled Lambda does.
    ///
    /// Stops when the next hour is not over or not published yet, after MAX_HOURS_PER_RUN hours,
    /// or at a failure. Prints the run record (also stored in job_run_details) as JSON; exits
    /// non-zero if the run failed.
    Ingest(IngestArgs),
    /// Ingest the hours --from .. --to (both included) without moving the bookmark.
    Backfill(BackfillArgs),
    /// The whole pipeline locally: ingest every due hour into LAKE/raw/ and transform each one
    /// into the lake as it lands, until caught up (or --until).
    Run(RunArgs),
    /// The job's bookmark, its lag, parked and queued hours, and its last runs.
    Status(StatusArgs),
    /// Park an hour by hand: the job moves on without it (`elt retry` takes it back).
    ///
    /// The next hour due: the bookmark moves past it now (unless a run holds the job; that run
    /// passes it by). A later hour: runs pass it by when they get there. Prints what changed as
    /// a JSON line.
    Skip(SkipArgs),
    /// Take a parked hour back: the next run fetches it first (an hour behind the bookmark), or
    /// fetches it when it gets there (an hour ahead). After MISSING_HOUR_ATTEMPTS failed runs it
    /// is parked again. Prints what changed as a JSON line.
    Retry(RetryArgs),
    /// Transform local raw hour files (YYYY-MM-DD-H.json.gz, .json.zst or .json) into the lake.
    ///
    /// Prints one JSON line per file: source, hour, lines, rows, duplicates, rejected, outputs.
    /// Bad lines go to the quarantine with their reason; a corrupt or truncated file fails whole
    /// and changes nothing. Exits non-zero if any file failed.
    Transform(TransformArgs),
    /// Work an SQS queue of raw-bucket notifications as the transform Lambda's event source
    /// mapping does: receive a batch, transform each file, delete what succeeded, leave failures
    /// to come back (and, after maxReceiveCount, go to the dead-letter queue).
    Worker(WorkerArgs),
    /// Move messages parked in a dead-letter queue back to their queue (receive, send, delete).
    Redrive(RedriveArgs),
    /// Audit hours --from .. --to: raw file there, commit complete, Parquet rows equal to the
    /// commit's count, no event_id twice, no object in the table that no commit wrote, no staged
    /// leftovers. Prints a report (a table, or JSON); exits 1 on any finding.
    Verify(VerifyArgs),
    /// Query the lake with SQL (DataFusion); the table is `ghactivity`, with `year`, `month` and
    /// `dayofmonth` as partition columns.
    Query(QueryArgs),
    /// Write a GHArchive-shaped hour file made from real events (gzip, zstd or plain by extension).
    Gen(GenArgs),
    /// Generate a few hours, transform them into the lake, and print a short report from it.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct IngestArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    config: ingest::IngestConfig,
}

impl IngestArgs {
    async fn run(self) -> anyhow::Result<()> {
        commands::ingest(
            &self.target.target(),
            self.config,
            commands::IngestWork::Run,
        )
        .await
    }
}

#[derive(clap::Args)]
struct BackfillArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    config: ingest::IngestConfig,
    /// The last hour to ingest.
    #[arg(long)]
    to: events::Hour,
    /// Downloads at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Fetch hours that are already in the bucket again.
    #[arg(long)]
    force: bool,
}

impl BackfillArgs {
    async fn run(self) -> anyhow::Result<()> {
        let BackfillArgs {
            target,
            config,
            to,
            parallel,
            force,
        } = self;
        let work = commands::IngestWork::Backfill {
            to,
            parallel,
            force,
        };
        commands::ingest(&target.target(), config, work).await
    }
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    lake: LakeArgs,
    #[command(flatten)]
    config: ingest::IngestConfig,
    /// The transform SQL over `raw_events` (default: the built-in transform/sql/ghactivity.sql).
    #[arg(long, env = "TRANSFORM_SQL")]
    sql: Option<PathBuf>,
    /// Key prefix of the quarantine files.
    #[arg(long, env = "REJECTS_PREFIX", default_value = events::DEFAULT_REJECTS_PREFIX)]
    rejects_prefix: String,
    #[command(flatten)]
    commit: transform::handler::CommitSettings,
}

impl RunArgs {
    async fn run(self) -> anyhow::Result<()> {
        let RunArgs {
            lake,
            config,
            sql,
            rejects_prefix,
            commit,
        } = self;
        let options = commands::transform_options(
            sql.as_deref(),
            lake.curated_prefix,
            rejects_prefix,
            transform::DEFAULT_MAX_LINE_BYTES,
            transform::DEFAULT_MAX_PART_BYTES / (1024 * 1024),
            &commit,
        )?;
        commands::run_local(&lake.lake, config, options).await
    }
}

#[derive(clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    config: ingest::IngestConfig,
    /// How many runs to show.
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

impl StatusArgs {
    async fn run(self) -> anyhow::Result<()> {
        commands::status(&self.target.target(), self.config, self.runs).await
    }
}

#[derive(clap::Args)]
struct SkipArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    config: ingest::IngestConfig,
    /// Why, kept with the parked hour (shown by `elt status`).
    #[arg(long, default_value = "parked by hand")]
    reason: String,
    /// The hour to park, e.g. 2024-03-05-14.
    hour: events::Hour,
}

impl SkipArgs {
    async fn run(self) -> anyhow::Result<()> {
        commands::skip(&self.target.target(), self.config, self.hour, &self.reason).await
    }
}

#[derive(clap::Args)]
struct RetryArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    config: ingest::IngestConfig,
    /// The parked hour, e.g. 2024-03-05-14.
    hour: events::Hour,
}

impl RetryArgs {
    async fn run(self) -> anyhow::Result<()> {
        commands::retry(&self.target.target(), self.config, self.hour).await
    }
}

#[derive(clap::Args)]
struct TransformArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// The transform SQL over `raw_events` (default: the built-in transform/sql/ghactivity.sql).
    #[arg(long, env = "TRANSFORM_SQL")]
    sql: Option<PathBuf>,
    /// Key prefix of the quarantine files.
    #[arg(long, env = "REJECTS_PREFIX", default_value = events::DEFAULT_REJECTS_PREFIX)]
    rejects_prefix: String,
    /// Lines longer than this many bytes are quarantined unparsed.
    #[arg(long, default_value_t = transform::DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,
    /// Start a new Parquet part once the current one reaches this many MiB.
    #[arg(long, default_value_t = transform::DEFAULT_MAX_PART_BYTES / (1024 * 1024))]
    max_part_mib: u64,
    #[command(flatten)]
    commit: transform::handler::CommitSettings,
    #[command(flatten)]
    on_aws: transform::handler::AwsTarget,
    /// Transform raw objects on AWS (s3://BUCKET/KEY) into CURATED_BUCKET, as the Lambda
    /// does, instead of local files into the lake.
    #[arg(long)]
    aws: bool,
    /// Raw hour files to transform (with --aws: s3://BUCKET/KEY).
    #[arg(required = true)]
    files: Vec<String>,
}

impl TransformArgs {
    async fn run(self) -> anyhow::Result<()> {
        let TransformArgs {
            lake,
            sql,
            rejects_prefix,
            max_line_bytes,
            max_part_mib,
            commit,
            on_aws,
            aws,
            files,
        } = self;
        let options = commands::transform_options(
            sql.as_deref(),
            lake.curated_prefix,
            rejects_prefix,
            max_line_bytes,
            max_part_mib,
            &commit,
        )?;
        if aws {
            let handler = on_aws.handler(options).await?;
            commands::transform_objects(&handler, &files).await
        } else {
            let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
            commands::transform_files(&lake.lake, &files, &options).await
        }
    }
}

#[derive(clap::Args)]
struct WorkerArgs {
    /// The queue URL.
    #[arg(long, env = "QUEUE_URL")]
    queue: String,
    /// Messages per receive (1–10).
    #[arg(long, default_value_t = 10)]
    batch: i32,
    /// Seconds a received message stays invisible to other consumers.
    #[arg(long)]
    visibility: Option<i32>,
    /// Long-poll wait in seconds (0–20).
    #[arg(long, default_value_t = 20)]
    wait: i32,
    /// Exit once a receive comes back empty.
    #[arg(long)]
    until_idle: bool,
    #[command(flatten)]
    aws: transform::handler::AwsTarget,
    #[command(flatten)]
    transform: transform::handler::TransformSettings,
}

impl WorkerArgs {
    async fn run(self) -> anyhow::Result<()> {
        let WorkerArgs {
            queue,
            batch,
            visibility,
            wait,
            until_idle,
            aws,
            transform,
        } = self;
        let handler = aws.handler(transform.options()?).await?;
        let poll = commands::Poll {
            batch,
            visibility,
            wait,
            until_idle,
        };
        commands::worker(&handler, &queue, poll).await
    }
}

#[derive(clap::Args)]
struct RedriveArgs {
    /// The dead-letter queue URL.
    #[arg(long)]
    from: String,
    /// The queue URL to move them to.
    #[arg(long)]
    to: String,
    /// Move at most this many.
    #[arg(long)]
    max: Option<usize>,
}

impl RedriveArgs {
    async fn run(self) -> anyhow::Result<()> {
        commands::redrive(&self.from, &self.to, self.max).await
    }
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Audit AWS: RAW_BUCKET, CURATED_BUCKET, and the commit records in JOBS_TABLE.
    #[arg(long, conflicts_with = "lake")]
    aws: bool,
    /// The local lake (raw files under LAKE/raw/, commit records in LAKE/state.sqlite).
    #[arg(long, env = "ELT_LAKE", default_value = "lake")]
    lake: PathBuf,
    #[arg(long)]
    from: events::Hour,
    #[arg(long)]
    to: events::Hour,
    #[arg(long, value_enum, default_value_t = commands::ReportFormat::Table)]
    format: commands::ReportFormat,
    /// The raw bucket (with --aws).
    #[arg(long, env = "RAW_BUCKET")]
    raw_bucket: Option<String>,
    #[command(flatten)]
    on_aws: transform::handler::AwsTarget,
    #[command(flatten)]
    settings: transform::handler::TransformSettings,
}

impl VerifyArgs {
    async fn run(self) -> anyhow::Result<()> {
        let VerifyArgs {
            aws,
            lake,
            from,
            to,
            format,
            raw_bucket,
            on_aws,
            settings,
        } = self;
        let audit = if aws {
            commands::aws_audit(raw_bucket, on_aws, &settings).await?
        } else {
            commands::local_audit(&lake, &settings)?
        };
        commands::verify(&audit, from, to, format).await
    }
}

#[derive(clap::Args)]
struct QueryArgs {
    #[command(flatten)]
    lake: LakeArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// For example: "SELECT event_type, count(*) FROM ghactivity GROUP BY 1 ORDER BY 2 DESC"
    sql: String,
}

impl QueryArgs {
    async fn run(self) -> anyhow::Result<()> {
        let lake = &self.lake;
        commands::query(&lake.lake, &lake.curated_prefix, &self.sql, self.format).await
    }
}

#[derive(clap::Args)]
struct GenArgs {
    /// The hour the events belong to, e.g. 2024-03-05-14.
    #[arg(long)]
    hour: events::Hour,
    /// Number of lines to write.
    #[arg(long)]
    events: u64,
    /// Seed of the random choices: the same seed gives the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of lines that repeat an earlier event id.
    #[arg(long, default_value_t = 0.005)]
    duplicate_share: f64,
    /// Wire format: `backfill` (2011 – early 2012), `timeline` (2012–2014: no ids, Pacific
    /// times, the hour named by a Pacific clock) or `events` (2015 on). Default: the hour's era.
    #[arg(long, value_enum)]
    era: Option<gh_elt::gen::Era>,
    /// Share of events that are late events of the hour before (as in GHArchive since 2025).
    #[arg(long, default_value_t = 0.0)]
    late_share: f64,
    /// Output file, e.g. 2024-03-05-14.json.gz.
    out: PathBuf,
}

impl GenArgs {
    async fn run(self) -> anyhow::Result<()> {
        let GenArgs {
            hour,
            events,
            seed,
            duplicate_share,
            era,
            late_share,
            out,
        } = self;
        commands::gen(
            &out,
            &gh_elt::gen::GenOptions {
                hour,
                events,
                seed,
                duplicate_share,
                era,
                late_share,
            },
        )
    }
}

#[derive(clap::Args)]
struct DemoArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Hours to generate, ending with --last-hour.
    #[arg(long, default_value_t = 3)]
    hours: u32,
    /// Events per hour.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    #[arg(long, default_value = "2024-03-05-14")]
    last_hour: events::Hour,
}

impl DemoArgs {
    async fn run(self) -> anyhow::Result<()> {
        let lake = &self.lake;
        commands::demo(
            &lake.lake,
            &lake.curated_prefix,
            self.hours,
            self.events,
            self.last_hour,
        )
        .await
    }
}

fn main() -> ExitCode {
    adapters::telemetry::init_logging("warn");
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
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
            Command::Query(command) => command.run().await,
            Command::Gen(command) => command.run().await,
            Command::Demo(command) => command.run().await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
