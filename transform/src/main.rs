//! The transform Lambda: SQS delivers batches of S3 notifications for new raw files; each file is
//! transformed into the curated bucket. The batch policy (`adapters::batch`, with the transform's side in `transform::batch`) answers with the
//! messages that failed (`batchItemFailures`), so only those come back.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use tracing::Instrument;
use transform::handler::LambdaSettings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Honours Lambda's logging controls: AWS_LAMBDA_LOG_FORMAT=JSON, AWS_LAMBDA_LOG_LEVEL.
    lambda_runtime::tracing::init_default_subscriber();
    let settings = <LambdaSettings as clap::Parser>::try_parse_from(["transform"])?;
    let options = settings.transform.options().await?;
    let mut handler = settings.target.handler(options).await?;
    handler.emit_metrics = true;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let span = tracing::info_span!("batch", request_id = %event.context.request_id);
        let (response, _) = adapters::batch::handle_batch(handler, event.payload)
            .instrument(span)
            .await;
        Ok::<_, Error>(response)
    }))
    .await
}
