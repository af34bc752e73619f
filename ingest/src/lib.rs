//! gh-elt stage 1: GHArchive hours into the raw bucket, exactly once and in order, following a
//! bookmark in the `jobs` table. Plain async code over the ports in `adapters`; the Lambda
//! (`src/main.rs`) and `elt ingest | backfill | run` build the adapters and call [`Ingest`].

mod backfill_queue;
pub use backfill_queue::{backfill_batch, BackfillWork};
pub mod changes;
mod check;
mod chunks;
pub mod config;
pub mod fate;
pub mod fetch;
mod guard;
pub mod metrics;
pub mod operate;
pub mod run;
pub mod source;
#[cfg(test)]
mod test_world;

pub use config::IngestConfig;
pub use run::{Ingest, MAX_PARALLEL_DOWNLOADS};

use fetch::Fetcher;

/// Local mode keeps the raw files under `LAKE/raw/` and the job state in this SQLite file.
pub const LOCAL_RAW_DIR: &str = "raw";
pub const LOCAL_STATE_FILE: &str = "state.sqlite";

impl Ingest {
    /// The ingest on AWS: S3 bucket `RAW_BUCKET`, DynamoDB tables `JOBS_TABLE`, `JOB_RUNS_TABLE`.
    pub async fn aws(config: IngestConfig) -> anyhow::Result<Ingest> {
        let bucket = config
            .raw_bucket
            .clone()
            .ok_or_else(|| anyhow::anyhow!("RAW_BUCKET is not set"))?;
        let sdk = adapters::aws::sdk_config().await;
        let raw = adapters::objects::s3(&sdk, &bucket)?;
        let tables = std::sync::Arc::new(adapters::DynamoJobStore::new(
            &sdk,
            &config.jobs_table,
            &config.job_runs_table,
        ));
        let prefix = config
            .raw_prefix
            .clone()
            .unwrap_or_else(|| events::DEFAULT_RAW_PREFIX.to_string());
        Ok(Ingest {
            fetcher: Fetcher::new(&config, raw, prefix)?,
            config,
            jobs: tables.clone(),
            runs: tables,
            notify: None,
        })
    }

    /// The ingest in local mode: raw files under `lake/raw/`, job state in `lake/state.sqlite`.
    pub fn local(config: IngestConfig, lake: &std::path::Path) -> anyhow::Result<Ingest> {
        let raw = adapters::objects::folder(&lake.join(LOCAL_RAW_DIR))?;
        let tables = std::sync::Arc::new(local_job_store(lake)?);
        let prefix = config.raw_prefix.clone().unwrap_or_default();
        Ok(Ingest {
            fetcher: Fetcher::new(&config, raw, prefix)?,
            config,
            jobs: tables.clone(),
            runs: tables,
            notify: None,
        })
    }
}

/// The ingest's job state on AWS: DynamoDB tables `JOBS_TABLE` and `JOB_RUNS_TABLE`.
pub async fn aws_job_store(config: &IngestConfig) -> adapters::DynamoJobStore {
    let sdk = adapters::aws::sdk_config().await;
    adapters::DynamoJobStore::new(&sdk, &config.jobs_table, &config.job_runs_table)
}

/// The ingest's job state in a local lake: `lake/state.sqlite`.
pub fn local_job_store(lake: &std::path::Path) -> anyhow::Result<adapters::SqliteJobStore> {
    adapters::SqliteJobStore::open(&lake.join(LOCAL_STATE_FILE))
}

/// Whose fault a failed fetch was: it decides whether the failure counts against the hour (see
/// [`fate`]), so that an hour is parked for being broken, never for an outage. Only `Broken`
/// counts, and only when the source serves the hour before or after as gzip: an error page for
/// every file parks nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The source answered, and what it served is not the hour's file: not a whole gzip stream
    /// (an XML error page with status 200, a corrupt or truncated file), or a 4xx other than 404,
    /// 401, 403, 408 and 429.
    Broken,
    /// The source did not answer in full, or refused the client: connect errors, time-outs, 5xx,
    /// 401, 403, 408, 429, a body that broke off before its announced length, a redirect that
    /// is refused. Never counts against the hour.
    Unreachable,
    /// Our side: the raw store, or the ingest itself. Never counts against the hour.
    Ours,
    /// The run's own deadline came during the transfer. Never counts against the hour.
    Interrupted,
}

impl Failure {
    /// How hopeful the failure is, of several sources' failures for one hour: the verdict
    /// follows the most hopeful (one source being unreachable leaves room for it to deliver).
    fn hope(self) -> u8 {
        match self {
            Failure::Ours => 4,
            Failure::Interrupted => 3,
            Failure::Unreachable => 2,
            Failure::Broken => 1,
        }
    }
}

/// Why an attempt to fetch an hour failed, and whether trying again may help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    pub message: String,
    /// Worth another attempt within the run.
    pub retry: bool,
    pub kind: Failure,
}

impl FetchError {
    /// The source served something that is not the file. Retried: a damaged transfer can pass
    /// the transport's checks and still fail the gzip check.
    pub fn broken(message: String) -> FetchError {
        FetchError {
            message,
            retry: true,
            kind: Failure::Broken,
        }
    }

    /// The source answered for good with something other than the file (a 4xx).
    pub fn refused(message: String) -> FetchError {
        FetchError {
            message,
            retry: false,
            kind: Failure::Broken,
        }
    }

    pub fn unreachable(message: String) -> FetchError {
        FetchError {
            message,
            retry: true,
            kind: Failure::Unreachable,
        }
    }

    pub fn ours(message: String) -> FetchError {
        FetchError {
            message,
            retry: false,
            kind: Failure::Ours,
        }
    }

    /// Transport errors (connect, timeout, reset, cut-off body) are transient.
    fn http(error: reqwest::Error) -> FetchError {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        FetchError {
            message,
            retry: !error.is_builder() && !error.is_redirect(),
            kind: Failure::Unreachable,
        }
    }

    /// object_store has already retried what it could; another attempt starts a fresh upload.
    fn storage(error: object_store::Error) -> FetchError {
        FetchError {
            message: format!("storing: {error}"),
            retry: true,
            kind: Failure::Ours,
        }
    }
}
