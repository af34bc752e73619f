//! `elt skip` and `elt retry`: park an hour by hand, or take it back.

use events::Hour;
use ingest::IngestConfig;

use super::{job_store, print_json_line, Target, TargetArgs};

#[derive(clap::Args)]
pub struct SkipArgs {
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
    pub async fn run(self) -> anyhow::Result<()> {
        skip(&self.target.target(), self.config, self.hour, &self.reason).await
    }
}

#[derive(clap::Args)]
pub struct RetryArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    config: ingest::IngestConfig,
    /// The parked hour, e.g. 2024-03-05-14.
    hour: events::Hour,
}

impl RetryArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        retry(&self.target.target(), self.config, self.hour).await
    }
}

/// `elt skip HOUR`: parks an hour by hand; prints what changed as a JSON line.
async fn skip(
    target: &Target,
    config: IngestConfig,
    hour: Hour,
    reason: &str,
) -> anyhow::Result<()> {
    let (jobs, _) = job_store(target, &config).await?;
    print_json_line(&ingest::operate::skip_hour(&*jobs, &config, hour, reason).await?)
}

/// `elt retry HOUR`: takes a parked hour back; prints what changed as a JSON line.
async fn retry(target: &Target, config: IngestConfig, hour: Hour) -> anyhow::Result<()> {
    let (jobs, _) = job_store(target, &config).await?;
    print_json_line(&ingest::operate::retry_hour(&*jobs, &config, hour).await?)
}
