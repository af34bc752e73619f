//! The ingest Lambda: an EventBridge schedule invokes it; it runs the ingest once and answers with
//! the run record (also written to `job_run_details`). A run that failed answers with an error,
//! so that Lambda's error metric and alarms see it. Every run prints its bookmark lag as a
//! CloudWatch metric (Embedded Metric Format) first.

use events::jobs::{IngestRun, RunStatus};
use ingest::{Ingest, IngestConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Honours Lambda's logging controls: AWS_LAMBDA_LOG_FORMAT=JSON, AWS_LAMBDA_LOG_LEVEL.
    lambda_runtime::tracing::init_default_subscriber();
    let config = IngestConfig::from_env()?;
    let ingest = Ingest::aws(config).await?;
    let ingest = &ingest;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move { handle(ingest, event).await },
    ))
    .await
}

async fn handle(
    ingest: &Ingest,
    event: LambdaEvent<serde_json::Value>,
) -> Result<IngestRun, Error> {
    // Any payload starts a run; a scheduled event's id and time are logged when present.
    let schedule = serde_json::from_value::<
        aws_lambda_events::event::cloudwatch_events::CloudWatchEvent,
    >(event.payload)
    .ok();
    tracing::info!(
        request_id = %event.context.request_id,
        event_id = ?schedule.as_ref().and_then(|e| e.id.clone()),
        event_time = ?schedule.as_ref().map(|e| e.time),
        "ingest invoked"
    );
    let run = ingest.run(Some(event.context.deadline())).await?;
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "ingest".into());
    if let Some(line) = ingest::metrics::bookmark_lag_line(&run, &function) {
        println!("{line}");
    }
    if run.status == RunStatus::Error {
        let summary = serde_json::to_string(&run)?;
        return Err(format!("ingest run failed: {summary}").into());
    }
    Ok(run)
}
