//! `elt backfill`: a range of hours into the raw store, the bookmark untouched. In process
//! (locally or on AWS), fanned out on a backfill queue for the ingest Lambda (`--fan-out`),
//! or only estimated (`--plan`).

use adapters::queue::SqsQueue;
use events::backfill::{DEFAULT_HOURS_PER_MESSAGE, MAX_HOURS_PER_MESSAGE};
use events::Hour;
use ingest::IngestConfig;

use super::ingesting::{ingest, IngestWork};
use super::{print_json_line, Target, TargetArgs};
use crate::fanout::ProgressSources;
use crate::plan::{self, Figures, Stack};

#[derive(clap::Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    config: IngestConfig,
    /// The last hour to ingest.
    #[arg(long)]
    to: Hour,
    /// Downloads at once (in process).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=ingest::MAX_PARALLEL_DOWNLOADS as u64))]
    parallel: u64,
    /// Fetch hours that are already in the bucket again.
    #[arg(long)]
    force: bool,
    /// Enqueue the range on this backfill queue, a few hours a message, for the ingest Lambda
    /// (or `elt worker`), and return at once. Needs --aws.
    #[arg(long, value_name = "QUEUE_URL", requires = "aws")]
    fan_out: Option<String>,
    /// Hours per backfill message.
    #[arg(long, default_value_t = DEFAULT_HOURS_PER_MESSAGE, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_HOURS_PER_MESSAGE)))]
    hours_per_message: u32,
    /// Cancel the backfill on --fan-out's queue: purge its messages (hours stored stay; enqueue
    /// the range again to resume: stored hours are skipped).
    #[arg(long, requires = "fan_out")]
    cancel: bool,
    /// Print what the backfill would take on AWS (hours, gzip bytes, GB-seconds, requests,
    /// dollars, wall time) as a JSON line, and run nothing.
    #[arg(long, conflicts_with_all = ["fan_out", "cancel"])]
    plan: bool,
    /// With --plan: backfill messages worked at once (the stack's BackfillConcurrency).
    #[arg(long, default_value_t = 100)]
    concurrency: u32,
    /// With --plan: transforms at once (the stack's TransformMaxConcurrency).
    #[arg(long, default_value_t = 100)]
    transform_concurrency: u32,
}

impl BackfillArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let from = self
            .config
            .start_hour
            .ok_or_else(|| anyhow::anyhow!("backfill needs --from HOUR"))?;
        if self.plan {
            return self.print_plan(from);
        }
        match &self.fan_out {
            Some(url) if self.cancel => cancel(url).await,
            Some(url) => self.fan_out(url, from).await,
            None => {
                let work = IngestWork::Backfill {
                    to: self.to,
                    parallel: usize::try_from(self.parallel)?,
                    force: self.force,
                };
                ingest(&self.target.target(), self.config, work).await
            }
        }
    }

    fn print_plan(&self, from: Hour) -> anyhow::Result<()> {
        let stack = Stack {
            concurrency: self.concurrency,
            transform_concurrency: self.transform_concurrency,
            ingest_memory_mb: 512,
            transform_memory_mb: 2048,
            hours_per_message: self.hours_per_message,
        };
        let estimate = plan::estimate(&Figures::measured()?, stack, from, self.to)?;
        print_json_line(&estimate)
    }

    async fn fan_out(&self, url: &str, from: Hour) -> anyhow::Result<()> {
        let Target::Aws = self.target.clone().target() else {
            anyhow::bail!("--fan-out needs --aws");
        };
        anyhow::ensure!(
            self.to.end() <= self.config.now(),
            "{} is not over yet: backfill hours that have ended",
            self.to
        );
        let sdk = adapters::aws::sdk_config().await;
        let queue = SqsQueue::new(&sdk, url);
        let runs = ingest::aws_job_store(&self.config).await;
        let range = (from, self.to);
        let plan = crate::fanout::fan_out(&queue, &runs, range, self.hours_per_message, self.force)
            .await?;
        print_json_line(&serde_json::json!({
            "backfill": plan.run_id,
            "from": plan.from,
            "to": plan.to,
            "hours": plan.hours,
            "messages": plan.messages,
            "queue": plan.queue_url,
        }))
    }
}

/// Purges the backfill queue: what was enqueued and not yet taken is dropped.
async fn cancel(url: &str) -> anyhow::Result<()> {
    let sdk = adapters::aws::sdk_config().await;
    SqsQueue::new(&sdk, url).purge().await?;
    print_json_line(&serde_json::json!({"cancelled": url}))
}

/// Where `elt status` reads a fanned-out backfill's progress: the raw store, the hours' commit
/// records, and the backfill's queue.
pub(super) async fn progress_sources(
    target: &Target,
    config: &IngestConfig,
    queue_url: &str,
) -> anyhow::Result<ProgressSources> {
    let curated_prefix =
        std::env::var("CURATED_PREFIX").unwrap_or_else(|_| events::DEFAULT_CURATED_PREFIX.into());
    Ok(match target {
        Target::Aws => {
            let sdk = adapters::aws::sdk_config().await;
            let bucket = config
                .raw_bucket
                .clone()
                .ok_or_else(|| anyhow::anyhow!("RAW_BUCKET is not set"))?;
            let raw_prefix = config.raw_prefix.clone();
            ProgressSources {
                raw: adapters::objects::s3(&sdk, &bucket)?,
                raw_prefix: raw_prefix.unwrap_or_else(|| events::DEFAULT_RAW_PREFIX.into()),
                commits: std::sync::Arc::new(ingest::aws_job_store(config).await),
                curated_prefix,
                queue: Some(SqsQueue::new(&sdk, queue_url)),
            }
        }
        Target::Lake(dir) => ProgressSources {
            raw: adapters::objects::folder(&dir.join(ingest::LOCAL_RAW_DIR))?,
            raw_prefix: config.raw_prefix.clone().unwrap_or_default(),
            commits: std::sync::Arc::new(ingest::local_job_store(dir)?),
            curated_prefix,
            queue: None,
        },
    })
}
