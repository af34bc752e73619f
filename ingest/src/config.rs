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
    /// Where hour files come from, in order (repeat it, or separate with commas): GHArchive, an
    /// HTTP mirror with its paths, or a file:// folder, each as URL or NAME=URL. Every source
    /// is fetched per hour into its own raw key (the first one's keep the raw prefix; a
    /// mirror's go under sources/NAME/), and the transform commits their union, the first
    /// source winning for an event they share [default: https://data.gharchive.org/].
    #[arg(long = "source", env = "GHARCHIVE_SOURCES", value_delimiter = ',')]
    pub sources: Vec<String>,
    /// The one source, as earlier versions named it (used when no --source is given).
    #[arg(long = "base-url", env = "GHARCHIVE_BASE_URL", hide = true)]
    pub base_url: Option<String>,
    /// The job whose bookmark this ingest follows (its item in the jobs table).
    #[arg(long, env = "INGEST_JOB_ID", default_value = events::jobs::DEFAULT_INGEST_JOB_ID)]
    pub job_id: String,
    /// Stop a run after this many hours; the next run goes on from the bookmark.
    #[arg(long, env = "MAX_HOURS_PER_RUN", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_hours_per_run: u32,
    /// Store raw files as received (none) or recompressed to zstd.
    #[arg(long, env = "RAW_COMPRESSION", value_enum, default_value_t = RawCompression::None, ignore_case = true)]
    pub raw_compression: RawCompression,
    /// For a job not set up yet: start at 00:00 UTC of today minus this many days.
    #[arg(long, env = "BASELINE_DAYS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=i64::from(events::jobs::MAX_BASELINE_DAYS)))]
    pub baseline_days: u32,
    /// For a job without a bookmark: start at this hour instead of the baseline day.
    #[arg(long = "from", env = "INGEST_START_HOUR")]
    pub start_hour: Option<Hour>,
    /// Stop once this hour is stored.
    #[arg(long, env = "INGEST_UNTIL_HOUR")]
    pub until: Option<Hour>,
    /// A 404 for an hour that ended more than this many hours ago means GHArchive lacks it
    /// (an error), not that it is not published yet (a quiet stop).
    #[arg(long, env = "MISSING_AFTER_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u32).range(0..=876_000))]
    pub missing_after_hours: u32,
    /// Runs that fail on an hour (missing long after it ended, or served broken) before it is
    /// parked: recorded as skipped with its reason, and the bookmark moves on (`elt retry`
    /// takes it back). Also the runs a queued hour may fail on before it is parked again.
    #[arg(long, env = "MISSING_HOUR_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub missing_hour_attempts: u32,
    /// Download attempts per hour (exponential backoff with jitter in between).
    #[arg(long, env = "DOWNLOAD_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub download_attempts: u32,
    /// First backoff delay in milliseconds; it doubles per attempt, up to 30 s.
    #[arg(long, env = "RETRY_BASE_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub retry_base_ms: u64,
    /// The longest one hour's download may take from its first request, retries included
    /// (ten minutes: a 200 MB hour at 330 KB/s); a body that trickles in is cut off then.
    #[arg(long, env = "FETCH_TIMEOUT_SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub fetch_timeout_seconds: u64,
    /// Give up on a connection that sends nothing for this many seconds.
    #[arg(long, env = "READ_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub read_timeout_seconds: u64,
    /// Size of each multipart part in MiB (S3 needs at least 5). Memory grows with it.
    #[arg(long, env = "UPLOAD_PART_MIB", default_value_t = 8)]
    pub upload_part_mib: usize,
    /// Start no new hour when less than this many seconds are left before the Lambda deadline.
    #[arg(long, env = "DEADLINE_MARGIN_SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub deadline_margin_seconds: u64,
    /// How long a run holds the job before another may take it over (renewed at every hour).
    #[arg(long, env = "LEASE_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=7 * 86_400))]
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
        // S3's limits: 5 MiB to 5 GiB a part.
        self.upload_part_mib.clamp(5, 5 * 1024) * 1024 * 1024
    }

    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_seconds.max(1))
    }

    pub fn fetch_timeout(&self) -> Duration {
        Duration::from_secs(self.fetch_timeout_seconds.max(1))
    }

    /// The sources, named, in order: `--source` / `GHARCHIVE_SOURCES`, else
    /// `GHARCHIVE_BASE_URL`, else GHArchive.
    pub fn source_specs(&self) -> anyhow::Result<Vec<SourceSpec>> {
        // An empty list (the template's default) leaves GHARCHIVE_BASE_URL in charge.
        let listed: Vec<&str> = self
            .sources
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        let entries: Vec<&str> = match (listed.is_empty(), &self.base_url) {
            (false, _) => listed,
            (true, Some(url)) if !url.trim().is_empty() => vec![url.trim()],
            (true, _) => vec![DEFAULT_SOURCE],
        };
        let specs: Vec<SourceSpec> = entries
            .into_iter()
            .map(SourceSpec::parse)
            .collect::<anyhow::Result<_>>()?;
        for (i, spec) in specs.iter().enumerate() {
            if specs[..i].iter().any(|other| other.name == spec.name) {
                anyhow::bail!(
                    "two sources are named `{}`: name them apart, as NAME=URL",
                    spec.name
                );
            }
        }
        Ok(specs)
    }
}

/// GHArchive itself.
pub const DEFAULT_SOURCE: &str = "https://data.gharchive.org/";

/// One source of hour files: its name (a mirror's folder in the raw store) and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub name: String,
    pub url: String,
}

impl SourceSpec {
    /// `URL` or `NAME=URL`; a source without a name is named after its host (or, for a folder,
    /// the folder's own name).
    pub fn parse(entry: &str) -> anyhow::Result<SourceSpec> {
        let (name, url) = match entry.split_once('=') {
            Some((name, url)) if !name.contains(':') && !name.contains('/') => {
                (Some(name.trim().to_string()), url.trim())
            }
            _ => (None, entry.trim()),
        };
        let parsed = url::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("the source `{url}` is not a URL: {e}"))?;
        let name = match name {
            Some(name) => name,
            None => derived_name(&parsed),
        };
        anyhow::ensure!(
            events::sources::valid_source_name(&name),
            "the source name `{name}` (of {url}) must be lower-case letters, digits, '.', '_' or '-' (at most 63): give one as NAME=URL"
        );
        Ok(SourceSpec {
            name,
            url: url.to_string(),
        })
    }
}

/// A name from the URL: its host, or a folder's last name, made folder-safe.
fn derived_name(url: &url::Url) -> String {
    let raw = match (url.host_str(), url.to_file_path()) {
        (Some(host), _) if !host.is_empty() => host.to_string(),
        (_, Ok(path)) => path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        _ => String::new(),
    };
    let safe: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '-',
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(63)
        .collect();
    if safe.is_empty() {
        "source".into()
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> IngestConfig {
        #[derive(clap::Parser)]
        struct Args {
            #[command(flatten)]
            config: IngestConfig,
        }
        let mut argv = vec!["ingest"];
        argv.extend_from_slice(args);
        <Args as clap::Parser>::try_parse_from(argv).unwrap().config
    }

    #[test]
    fn sources_are_listed_named_and_ordered() {
        let names = |c: &IngestConfig| -> Vec<(String, String)> {
            c.source_specs()
                .unwrap()
                .into_iter()
                .map(|s| (s.name, s.url))
                .collect()
        };
        let mut one = config(&[]);
        assert_eq!(
            names(&one),
            [("data.gharchive.org".into(), DEFAULT_SOURCE.into())]
        );
        one.base_url = Some("file:///srv/Mirror Copy/".into());
        assert_eq!(names(&one)[0].0, "mirror-copy");
        let two = config(&[
            "--source",
            "https://data.gharchive.org/",
            "--source",
            "opendigger=https://mirror.example.org/gharchive/",
        ]);
        assert_eq!(names(&two)[1].0, "opendigger");
        let listed = config(&["--source", "http://127.0.0.1:9/,b=http://127.0.0.1:9/b/"]);
        assert_eq!(
            names(&listed),
            [
                ("127.0.0.1".into(), "http://127.0.0.1:9/".into()),
                ("b".into(), "http://127.0.0.1:9/b/".into())
            ]
        );
        let twice = config(&["--source", "http://a.org/,http://a.org/x/"]);
        assert!(twice
            .source_specs()
            .unwrap_err()
            .to_string()
            .contains("named `a.org`"));
        let bad = config(&["--source", "Bad Name=http://a.org/"]);
        assert!(bad.source_specs().is_err());
    }

    #[test]
    fn settings_that_would_overflow_are_refused() {
        #[derive(clap::Parser, Debug)]
        struct Args {
            #[command(flatten)]
            config: IngestConfig,
        }
        for args in [
            ["--baseline-days", "1000000000"],
            ["--missing-after-hours", "4294967295"],
            ["--lease-seconds", "18446744073709551615"],
            ["--max-hours-per-run", "0"],
        ] {
            let mut argv = vec!["ingest"];
            argv.extend_from_slice(&args);
            assert!(
                <Args as clap::Parser>::try_parse_from(argv).is_err(),
                "{args:?}"
            );
        }
    }
}
