//! The event path's handler: SQS messages holding S3 notifications → one transform per raw
//! object's hour (the union of every source's file of the hour in the raw bucket), curated parts
//! and quarantine written to the curated store, a run record per file.
//! Shared by the transform Lambda (`src/main.rs`), `elt worker` and `elt transform --aws`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use adapters::RunLog;
use anyhow::Context;
use events::jobs::TransformRun;
use events::notifications::{parse_s3_notification, Notification};
use events::sources::RawKey;
use events::{Hour, TransformSummary};
use object_store::ObjectStore;
use tracing::Instrument;

use crate::{raw_hour, transform_hour, Lake, TransformOptions};

/// Where the transform works on AWS.
#[derive(clap::Args, Clone, Debug)]
pub struct AwsTarget {
    /// The curated bucket (Parquet and quarantine).
    #[arg(long, env = "CURATED_BUCKET")]
    pub curated_bucket: Option<String>,
    /// Key prefix of raw files; notifications for other keys are acknowledged and ignored.
    #[arg(long, env = "RAW_PREFIX", default_value = events::DEFAULT_RAW_PREFIX)]
    pub raw_prefix: String,
    /// The DynamoDB table of job items (and of the hours' commit records).
    #[arg(long, env = "JOBS_TABLE", default_value = "jobs")]
    pub jobs_table: String,
    /// The DynamoDB table of run records.
    #[arg(long, env = "JOB_RUNS_TABLE", default_value = "job_run_details")]
    pub job_runs_table: String,
}

/// The transform's own settings (the SQL and where its outputs go in the curated store).
#[derive(clap::Args, Clone, Debug)]
pub struct TransformSettings {
    /// Key prefix of the Parquet table.
    #[arg(long, env = "CURATED_PREFIX", default_value = events::DEFAULT_CURATED_PREFIX)]
    pub curated_prefix: String,
    /// The transform SQL over `raw_events` (default: the built-in transform/sql/ghactivity.sql).
    #[arg(long, env = "TRANSFORM_SQL")]
    pub sql: Option<PathBuf>,
    /// Key prefix of the quarantine files.
    #[arg(long, env = "REJECTS_PREFIX", default_value = events::DEFAULT_REJECTS_PREFIX)]
    pub rejects_prefix: String,
    #[command(flatten)]
    pub commit: CommitSettings,
}

/// How long commits may take (shared by every way of running the transform).
#[derive(clap::Args, Clone, Debug)]
pub struct CommitSettings {
    /// Seconds a run that has claimed an hour may take to move its parts into place before
    /// another run of the hour may take over.
    #[arg(long, env = "COMMIT_LEASE_SECONDS", default_value_t = crate::DEFAULT_COMMIT_LEASE_SECONDS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub commit_lease_seconds: u64,
    /// Staged objects older than this many seconds are a dead run's leftovers (the transform's
    /// timeout).
    #[arg(long, env = "STALE_AFTER_SECONDS", default_value_t = crate::DEFAULT_STALE_AFTER_SECONDS,
          value_parser = clap::value_parser!(u64).range(60..=7 * 86_400))]
    pub stale_after_seconds: u64,
    /// Milliseconds to pause before each step of a commit, so that tests can interrupt one in
    /// the middle.
    #[arg(long, env = "COMMIT_STEP_DELAY_MS", default_value_t = 0, hide = true,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub commit_step_delay_ms: u64,
}

impl CommitSettings {
    pub fn apply(&self, options: &mut TransformOptions) {
        options.commit_lease = std::time::Duration::from_secs(self.commit_lease_seconds);
        options.stale_after = std::time::Duration::from_secs(self.stale_after_seconds);
        options.commit_step_delay = std::time::Duration::from_millis(self.commit_step_delay_ms);
    }
}

impl AwsTarget {
    /// The curated lake on AWS: the bucket, and the hours' commit records in the jobs table.
    pub async fn lake(&self) -> anyhow::Result<crate::Lake> {
        let bucket = self
            .curated_bucket
            .clone()
            .ok_or_else(|| anyhow::anyhow!("CURATED_BUCKET is not set"))?;
        let sdk = adapters::aws::sdk_config().await;
        Ok(crate::Lake {
            store: adapters::objects::s3(&sdk, &bucket)?,
            commits: Arc::new(adapters::DynamoJobStore::new(
                &sdk,
                &self.jobs_table,
                &self.job_runs_table,
            )),
            place: lake_table::Place::Bucket(bucket),
        })
    }

    /// The handler on AWS for these settings.
    pub async fn handler(self, options: TransformOptions) -> anyhow::Result<Handler> {
        let bucket = self
            .curated_bucket
            .ok_or_else(|| anyhow::anyhow!("CURATED_BUCKET is not set"))?;
        Handler::aws(
            self.raw_prefix,
            options,
            &bucket,
            &self.jobs_table,
            &self.job_runs_table,
        )
        .await
    }
}

impl TransformSettings {
    /// The engine's options for these settings: the SQL file, when one is named, read and
    /// prepared.
    pub async fn options(&self) -> anyhow::Result<TransformOptions> {
        let mut options = TransformOptions {
            curated_prefix: self.curated_prefix.clone(),
            rejects_prefix: self.rejects_prefix.clone(),
            ..TransformOptions::default()
        };
        self.commit.apply(&mut options);
        if let Some(path) = &self.sql {
            options.sql = crate::sql::TransformSql::from_file(path).await?;
        }
        Ok(options)
    }
}

/// The Lambda's settings: the same variables as `elt worker`, from the environment alone.
#[derive(clap::Parser, Debug)]
pub struct LambdaSettings {
    #[command(flatten)]
    pub target: AwsTarget,
    #[command(flatten)]
    pub transform: TransformSettings,
}

/// `job_id` of the transform's run records in `job_run_details`.
pub use events::jobs::TRANSFORM_JOB_ID;

/// Opens the raw store of a bucket named in a notification.
pub type OpenBucket = Box<dyn Fn(&str) -> anyhow::Result<Arc<dyn ObjectStore>> + Send + Sync>;

pub struct Handler {
    pub raw_prefix: String,
    pub options: TransformOptions,
    pub lake: Lake,
    open_bucket: OpenBucket,
    buckets: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    /// Where each file's run record goes (none: not recorded).
    pub run_log: Option<Arc<dyn RunLog>>,
    /// Print each file's numbers as CloudWatch Embedded Metric Format (on Lambda).
    pub emit_metrics: bool,
}

/// What a message came to when it did not fail.
#[derive(Debug)]
pub enum Handled {
    Transformed(Vec<TransformSummary>),
    /// Nothing to do (a test event, a key outside the raw prefix or not an hour file); why.
    Ignored(String),
}

impl Handler {
    pub fn new(
        raw_prefix: String,
        options: TransformOptions,
        lake: Lake,
        open_bucket: OpenBucket,
        run_log: Option<Arc<dyn RunLog>>,
    ) -> Handler {
        Handler {
            raw_prefix,
            options,
            lake,
            open_bucket,
            buckets: Mutex::default(),
            run_log,
            emit_metrics: false,
        }
    }

    /// The handler on AWS: the curated bucket `curated_bucket`, raw buckets as notified, commit
    /// records in `jobs_table`, run records in `runs_table`.
    pub async fn aws(
        raw_prefix: String,
        options: TransformOptions,
        curated_bucket: &str,
        jobs_table: &str,
        runs_table: &str,
    ) -> anyhow::Result<Handler> {
        let sdk = adapters::aws::sdk_config().await;
        let curated = adapters::objects::s3(&sdk, curated_bucket)?;
        let tables = Arc::new(adapters::DynamoJobStore::new(&sdk, jobs_table, runs_table));
        Ok(Handler::new(
            raw_prefix,
            options,
            Lake {
                store: curated,
                commits: tables.clone(),
                place: lake_table::Place::Bucket(curated_bucket.to_string()),
            },
            Box::new(move |bucket: &str| adapters::objects::s3(&sdk, bucket)),
            Some(tables),
        ))
    }

    /// Handles one message body. An error means the message should come back (and, after
    /// `maxReceiveCount`, go to the dead-letter queue).
    pub async fn handle_message(&self, body: &str) -> anyhow::Result<Handled> {
        let objects = match parse_s3_notification(body)? {
            Notification::Test => return Ok(Handled::Ignored("s3:TestEvent".into())),
            Notification::Objects(objects) => objects,
        };
        let mut summaries = Vec::new();
        let mut ignored = Vec::new();
        for object in objects {
            let location = format!("s3://{}/{}", object.bucket, object.key);
            if !object.event_name.is_empty() && !object.event_name.starts_with("ObjectCreated") {
                ignored.push(format!("{location}: {}", object.event_name));
                continue;
            }
            if let Err(reason) = raw_hour_key(&self.raw_prefix, &object.key) {
                ignored.push(format!("{location}: {reason}"));
                continue;
            }
            summaries.push(self.transform_object(&object.bucket, &object.key).await?);
        }
        for reason in &ignored {
            tracing::info!(reason, "ignored");
        }
        if summaries.is_empty() {
            return Ok(Handled::Ignored(ignored.join("; ")));
        }
        Ok(Handled::Transformed(summaries))
    }

    /// Transforms one raw object and records the run.
    pub async fn transform_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> anyhow::Result<TransformSummary> {
        let started_at = chrono::Utc::now();
        let clock = Instant::now();
        let location = format!("s3://{bucket}/{key}");
        let result = self
            .transform_object_inner(bucket, key)
            .instrument(tracing::info_span!("file", file = %location))
            .await;
        let seconds = clock.elapsed().as_secs_f64();
        match &result {
            Ok(summary) => {
                tracing::info!(file = %location, rows = summary.rows, duplicates = summary.duplicates, duplicates_across_hours = summary.duplicates_across_hours, rejected = summary.rejected, generation = summary.generation, superseded = summary.superseded, seconds, "transformed");
                if self.emit_metrics {
                    let health = metrics::completeness(&self.lake, &self.options, summary).await;
                    println!("{}", metrics::line(summary, &location, health.as_ref()));
                }
            }
            Err(e) => {
                tracing::error!(file = %location, error = format!("{e:#}"), "transform failed");
            }
        }
        if let Some(run_log) = &self.run_log {
            let outcome = result.as_ref().map_err(|e| format!("{e:#}"));
            let record = TransformRun::new(location, started_at, seconds, outcome);
            run_log
                .add_run(&record.into())
                .await
                .context("recording the transform run")?;
        }
        result
    }

    async fn transform_object_inner(
        &self,
        bucket: &str,
        key: &str,
    ) -> anyhow::Result<TransformSummary> {
        // Whatever asked (a notification, an operator), only a source's raw hour file is the
        // hour's; the transform reads every source's file of the hour there is.
        let hour = raw_hour_key(&self.raw_prefix, key).map_err(|reason| {
            anyhow::anyhow!("s3://{bucket}/{key} is not a raw hour file: {reason}")
        })?;
        let store = self.bucket(bucket)?;
        let locate = |key: &str| format!("s3://{bucket}/{key}");
        let open = || raw_hour::find_and_open(store.clone(), &self.raw_prefix, hour, &locate);
        transform_hour(open, &self.lake, &self.options)
            .await
            .with_context(|| format!("transforming s3://{bucket}/{key}"))
    }

    fn bucket(&self, name: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| anyhow::anyhow!("the bucket cache was poisoned"))?;
        if let Some(store) = buckets.get(name) {
            return Ok(store.clone());
        }
        let store = (self.open_bucket)(name)?;
        buckets.insert(name.to_string(), store.clone());
        Ok(store)
    }
}

/// Accepts exactly `raw_prefix` followed by an hour file name (`2024-03-05-14.json.gz`), or a
/// mirror's (`RAW_PREFIX/sources/NAME/2024-03-05-14.json.gz`); why not otherwise. Keys in other
/// folders (`landing/ghactivity/tmp/2024-03-05-14.json.gz`) and names that are not exactly
/// GHArchive's (`+2024-3-05-14.json.gz`) are no hour's raw file and must not replace its output.
pub fn raw_hour_key(raw_prefix: &str, key: &str) -> Result<Hour, String> {
    RawKey::parse(raw_prefix, key).map(|k| k.hour)
}

mod metrics;
#[cfg(test)]
mod tests;
