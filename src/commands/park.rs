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
    /// Park it for good: runs never try it again (without this, they try a parked hour again
    /// an hour, six hours, a day and a week after, then weekly). Also for an hour parked already.
    #[arg(long)]
    forever: bool,
    /// The hour to park, e.g. 2024-03-05-14.
    hour: events::Hour,
}

impl SkipArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let skip = ingest::changes::Skip {
            reason: &self.reason,
            forever: self.forever,
        };
        let (jobs, _) = job_store(&self.target.target(), &self.config).await?;
        print_json_line(&ingest::operate::skip_hour(&*jobs, &self.config, self.hour, skip).await?)
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

/// `elt retry HOUR`: takes a parked hour back; prints what changed as a JSON line.
async fn retry(target: &Target, config: IngestConfig, hour: Hour) -> anyhow::Result<()> {
    let (jobs, _) = job_store(target, &config).await?;
    print_json_line(&ingest::operate::retry_hour(&*jobs, &config, hour).await?)
}
