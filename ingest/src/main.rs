//! The ingest Lambda. An EventBridge schedule invokes it to run the ingest once: it answers with
//! the run record (also written to `job_run_details`), or an error if the run failed, so that
//! Lambda's error metric and alarms see it; every run prints its bookmark lag as a CloudWatch
//! metric (Embedded Metric Format). The backfill queue's event source mapping invokes it with
//! batches of backfill messages: it answers with the ones whose hours failed (`batchItemFailures`).

use events::jobs::{IngestRun, RunStatus};
use ingest::{Ingest, IngestConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Honours Lambda's logging controls: AWS_LAMBDA_LOG_FORMAT=JSON, AWS_LAMBDA_LOG_LEVEL.
    lambda_runtime::tracing::init_default_subscriber();
    let ingest = Ingest::aws(IngestConfig::from_env()?).await?;
    let ingest = &ingest;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let request_id = event.context.request_id.clone();
        if let Some(batch) = ingest::backfill_batch(&event.payload) {
            tracing::info!(%request_id, messages = batch.records.len(), "backfill batch");
            let work = ingest.backfill_until(Some(event.context.deadline()));
            let (response, _) = adapters::batch::handle_batch(&work, batch).await;
            return Ok::<_, Error>(serde_json::to_value(response)?);
        }
        tracing::info!(%request_id, "scheduled run");
        Ok(serde_json::to_value(scheduled(ingest, event).await?)?)
    }))
    .await
}

async fn scheduled(ingest: &Ingest, event: LambdaEvent<Value>) -> Result<IngestRun, Error> {
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
