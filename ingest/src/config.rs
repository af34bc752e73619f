//! The ingest's settings: environment variables (the Lambda way) that `elt` also takes as flags.

use std::time::Duration;

use chrono::{DateTime, Utc};
use events::Hour;

/// How raw files are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RawCompression {
    /// As GHArchive sends them: `.json.gz`.
    None,
    /// Recompressed on the fly to `.json.zst` (decompresses several times faster in the transform).
    Zstd,
}

impl RawCompression {
    pub fn stored_as(self) -> events::Compression {
        match self {
            RawCompression::None => events::Compression::Gzip,
            RawCompression::Zstd => events::Compression::Zstd,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct IngestConfig {
    /// The raw bucket (on AWS).
    #[arg(long, env = "RAW_BUCKET")]
    pub raw_bucket: Option<String>,
    /// Key prefix of raw files [default: landing/ghactivity/ on S3, none in a local lake].
    #[arg(long, env = "RAW_PREFIX")]
    pub raw_prefix: Option<String>,
    /// The DynamoDB table of job items (on AWS).
    #[arg(long, env = "JOBS_TABLE", default_value = "jobs")]
    pub jobs_table: String,
    /// The DynamoDB table of run records (on AWS).
    #[arg(long, env = "JOB_RUNS_TABLE", default_value = "job_run_details")]
    pub job_runs_table: String,
    /// Where hour files come from: GHArchive, an HTTP mirror with its paths, or a file:// folder.
    #[arg(
        long = "source",
        env = "GHARCHIVE_BASE_URL",
        default_value = "https://data.gharchive.org/"
    )]
    pub base_url: String,
    /// The job whose bookmark this ingest follows (its item in the jobs table).
    #[arg(long, env = "INGEST_JOB_ID", default_value = events::jobs::DEFAULT_INGEST_JOB_ID)]
    pub job_id: String,
    /// Stop a run after this many hours; the next run goes on from the bookmark.
    #[arg(long, env = "MAX_HOURS_PER_RUN", default_value_t = 24)]
    pub max_hours_per_run: u32,
    /// Store raw files as received (none) or recompressed to zstd.
    #[arg(long, env = "RAW_COMPRESSION", value_enum, default_value_t = RawCompression::None, ignore_case = true)]
    pub raw_compression: RawCompression,
    /// For a job not set up yet: start at 00:00 UTC of today minus this many days.
    #[arg(long, env = "BASELINE_DAYS", default_value_t = 3)]
    pub baseline_days: u32,
    /// For a job without a bookmark: start at this hour instead of the baseline day.
    #[arg(long = "from", env = "INGEST_START_HOUR")]
    pub start_hour: Option<Hour>,
    /// Stop once this hour is stored.
    #[arg(long, env = "INGEST_UNTIL_HOUR")]
    pub until: Option<Hour>,
    /// A 404 for an hour that ended more than this many hours ago means GHArchive lacks it
    /// (an error), not that it is not published yet (a quiet stop).
    #[arg(long, env = "MISSING_AFTER_HOURS", default_value_t = 24)]
    pub missing_after_hours: u32,
    /// Runs that fail on an hour (missing long after it ended, or served broken) before it is
    /// parked: recorded as skipped with its reason, and the bookmark moves on (`elt retry`
    /// takes it back). Also the runs a queued hour may fail on before it is parked again.
    #[arg(long, env = "MISSING_HOUR_ATTEMPTS", default_value_t = 3)]
    pub missing_hour_attempts: u32,
    /// Download attempts per hour (exponential backoff with jitter in between).
    #[arg(long, env = "DOWNLOAD_ATTEMPTS", default_value_t = 5)]
    pub download_attempts: u32,
    /// First backoff delay in milliseconds; it doubles per attempt, up to 30 s.
    #[arg(long, env = "RETRY_BASE_MS", default_value_t = 500)]
    pub retry_base_ms: u64,
    /// Give up on a connection that sends nothing for this many seconds.
    #[arg(long, env = "READ_TIMEOUT_SECONDS", default_value_t = 30)]
    pub read_timeout_seconds: u64,
    /// Size of each multipart part in MiB (S3 needs at least 5). Memory grows with it.
    #[arg(long, env = "UPLOAD_PART_MIB", default_value_t = 8)]
    pub upload_part_mib: usize,
    /// Start no new hour when less than this many seconds are left before the Lambda deadline.
    #[arg(long, env = "DEADLINE_MARGIN_SECONDS", default_value_t = 120)]
    pub deadline_margin_seconds: u64,
    /// How long a run holds the job before another may take it over (renewed at every hour).
    #[arg(long, env = "LEASE_SECONDS", default_value_t = 900)]
    pub lease_seconds: u64,
    /// Treat this instant as now (RFC 3339): replays and tests.
    #[arg(long, env = "ELT_NOW", hide = true)]
    pub now: Option<DateTime<Utc>>,
}

impl IngestConfig {
    /// The settings from the environment alone, with the defaults above.
    pub fn from_env() -> anyhow::Result<IngestConfig> {
        #[derive(clap::Parser)]
        struct FromEnv {
            #[command(flatten)]
            config: IngestConfig,
        }
        let parsed = <FromEnv as clap::Parser>::try_parse_from(["ingest"])?;
        Ok(parsed.config)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    pub fn part_bytes(&self) -> usize {
        self.upload_part_mib.max(5) * 1024 * 1024
    }

    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_seconds.max(1))
    }
}
