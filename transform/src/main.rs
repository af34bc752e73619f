//! The transform Lambda: SQS delivers batches of S3 notifications for new raw files; each file is
//! transformed into the curated bucket. The answer names the messages that failed
//! (`batchItemFailures`), so only those come back; one that keeps failing goes to the DLQ.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use transform::handler::{Handled, Handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init_logging("info");
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let curated_bucket =
        std::env::var("CURATED_BUCKET").map_err(|_| "CURATED_BUCKET is not set")?;
    let mut options = transform::TransformOptions {
        curated_prefix: env("CURATED_PREFIX", events::DEFAULT_CURATED_PREFIX),
        rejects_prefix: env("REJECTS_PREFIX", events::DEFAULT_REJECTS_PREFIX),
        ..transform::TransformOptions::default()
    };
    if let Ok(path) = std::env::var("TRANSFORM_SQL") {
        options.sql = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading TRANSFORM_SQL {path}: {e}"))?;
    }
    transform::sql::validate(&options.sql).await?;
    let mut handler = Handler::aws(
        env("RAW_PREFIX", events::DEFAULT_RAW_PREFIX),
        options,
        &curated_bucket,
        &env("JOBS_TABLE", "jobs"),
        &env("JOB_RUNS_TABLE", "job_run_details"),
    )
    .await?;
    handler.emit_metrics = true;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let request_id = event.context.request_id.clone();
        let mut response = SqsBatchResponse::default();
        for message in event.payload.records {
            let id = message.message_id.unwrap_or_default();
            let body = message.body.unwrap_or_default();
            match handler.handle_message(&body).await {
                Ok(Handled::Transformed(summaries)) => {
                    tracing::info!(%request_id, message_id = %id, files = summaries.len(), "message done");
                }
                Ok(Handled::Ignored(reason)) => {
                    tracing::info!(%request_id, message_id = %id, reason, "message ignored");
                }
                Err(e) => {
                    tracing::error!(%request_id, message_id = %id, error = format!("{e:#}"), "message failed");
                    response.add_failure(id);
                }
            }
        }
        Ok::<_, Error>(response)
    }))
    .await
}
