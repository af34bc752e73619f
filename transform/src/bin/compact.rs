//! The compaction Lambda: on its schedule, compacts each settled day of the last
//! COMPACT_LOOKBACK_DAYS days whose partition holds hourly parts; invoked with
//! `{"from": "2024-03-05", "to": "2024-03-06"}`, those days whether settled or not (as
//! `elt compact --aws`). Answers with one report per day.

use std::time::{Duration, Instant};

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use transform::compaction::{self, CompactRequest, CompactSettings};
use transform::handler::AwsTarget;

/// The time a run leaves itself after its last day (the commit, the reply).
const MARGIN: Duration = Duration::from_secs(60);

#[derive(clap::Parser, Debug)]
struct Settings {
    #[command(flatten)]
    target: AwsTarget,
    #[arg(long, env = "CURATED_PREFIX", default_value = events::DEFAULT_CURATED_PREFIX)]
    curated_prefix: String,
    #[command(flatten)]
    compact: CompactSettings,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = <Settings as clap::Parser>::try_parse_from(["compact"])?;
    let lake = settings.target.lake().await?;
    let (settings, lake) = (&settings, &lake);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let left = event
            .context
            .deadline()
            .duration_since(std::time::SystemTime::now());
        let deadline = Instant::now() + left.unwrap_or_default().saturating_sub(MARGIN);
        let days = compaction::requested_days(&event.payload)?;
        let request = CompactRequest {
            days,
            settled_only: days.is_none(),
            deadline: Some(deadline),
        };
        let reports = compaction::compact(
            lake,
            &settings.curated_prefix,
            &request,
            &settings.compact,
            |report| {
                tracing::info!(report = %serde_json::to_string(report)?, "compaction");
                Ok(())
            },
        )
        .await?;
        Ok::<_, Error>(serde_json::to_value(reports)?)
    }))
    .await
}
