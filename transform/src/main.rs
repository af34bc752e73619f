//! The transform Lambda: SQS delivers batches of S3 notifications for new raw files; each file is
//! transformed into the curated bucket. The answer names the messages that failed
//! (`batchItemFailures`), so only those come back; one that keeps failing goes to the DLQ.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use transform::handler::{Handled, LambdaSettings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init_logging("info");
    let settings = <LambdaSettings as clap::Parser>::try_parse_from(["transform"])?;
    let options = settings.transform.options()?;
    transform::sql::validate(&options.sql).await?;
    let mut handler = settings.target.handler(options).await?;
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
