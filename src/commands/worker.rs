//! `elt worker` (a queue worked as the Lambda it feeds does: raw-bucket notifications as the
//! transform, backfill messages as the ingest) and `elt redrive` (dead letters back to their
//! queue).

use adapters::batch::{handle_batch, sqs_event, Handled, MessageError, MessageHandler, Outcome};
use async_trait::async_trait;
use events::backfill::BackfillMessage;
use events::jobs::IngestRun;
use events::TransformSummary;
use ingest::{Ingest, IngestConfig};
use tokio::sync::OnceCell;
use transform::handler::{AwsTarget, Handler, TransformSettings};

use super::print_json_line;

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The queue URL.
    #[arg(long, env = "QUEUE_URL")]
    queue: String,
    /// Messages per receive (1–10).
    #[arg(long, default_value_t = 10)]
    batch: i32,
    /// Seconds a received message stays invisible to other consumers.
    #[arg(long)]
    visibility: Option<i32>,
    /// Long-poll wait in seconds (0–20).
    #[arg(long, default_value_t = 20)]
    wait: i32,
    /// Exit once a receive comes back empty.
    #[arg(long)]
    until_idle: bool,
    #[command(flatten)]
    aws: AwsTarget,
    #[command(flatten)]
    transform: TransformSettings,
}

impl WorkerArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let poll = Poll {
            batch: self.batch,
            visibility: self.visibility,
            wait: self.wait,
            until_idle: self.until_idle,
        };
        let router = Router {
            aws: self.aws,
            settings: self.transform,
            transform: OnceCell::new(),
            ingest: OnceCell::new(),
        };
        worker(&router, &self.queue, poll).await
    }
}

/// How `elt worker` polls its queue.
struct Poll {
    batch: i32,
    visibility: Option<i32>,
    wait: i32,
    until_idle: bool,
}

/// Each message to the Lambda's handler that takes it: a backfill message to the ingest's (set
/// up from the environment, as the ingest Lambda is), anything else to the transform's. Each is
/// set up on its first message, so a worker of one queue needs only that stage's settings.
struct Router {
    aws: AwsTarget,
    settings: TransformSettings,
    transform: OnceCell<Handler>,
    ingest: OnceCell<Ingest>,
}

#[derive(Debug)]
enum Work {
    Transformed(Vec<TransformSummary>),
    Ingested(IngestRun),
}

impl Router {
    async fn transform(&self) -> Result<&Handler, MessageError> {
        let handler = self.transform.get_or_try_init(|| async {
            let options = self.settings.options().await?;
            self.aws.clone().handler(options).await
        });
        handler.await.map_err(MessageError::Transient)
    }

    async fn ingest(&self) -> Result<&Ingest, MessageError> {
        let ingest = self
            .ingest
            .get_or_try_init(|| async { Ingest::aws(IngestConfig::from_env()?).await });
        ingest.await.map_err(MessageError::Transient)
    }
}

#[async_trait]
impl MessageHandler for Router {
    type Done = Work;

    async fn handle(&self, body: &str) -> Result<Handled<Work>, MessageError> {
        if BackfillMessage::parse(body).is_ok() {
            let handled = self.ingest().await?.handle(body).await?;
            return Ok(map(handled, Work::Ingested));
        }
        let handled = self.transform().await?.handle(body).await?;
        Ok(map(handled, Work::Transformed))
    }
}

fn map<T>(handled: Handled<T>, work: impl FnOnce(T) -> Work) -> Handled<Work> {
    match handled {
        Handled::Done(done) => Handled::Done(work(done)),
        Handled::Ignored(reason) => Handled::Ignored(reason),
    }
}

/// `elt worker`: receive batches and hand each to the batch policy the Lambdas use
/// (`adapters::batch`), then delete what succeeded in one request and leave failures to come
/// back, as Lambda's event source mapping does.
async fn worker(router: &Router, queue_url: &str, poll: Poll) -> anyhow::Result<()> {
    let sdk = adapters::aws::sdk_config().await;
    let queue = adapters::queue::SqsQueue::new(&sdk, queue_url);
    let (mut done, mut ignored, mut failed) = (0usize, 0usize, 0usize);
    loop {
        let messages = queue
            .receive(poll.batch, poll.wait, poll.visibility)
            .await?;
        if messages.is_empty() {
            if poll.until_idle {
                break;
            }
            continue;
        }
        let (_, outcomes) = handle_batch(router, sqs_event(&messages)).await;
        let mut settled = Vec::new();
        for (message, (_, outcome)) in messages.iter().zip(outcomes) {
            match outcome {
                Outcome::Done(work) => {
                    print_work(&work)?;
                    done += 1;
                }
                Outcome::Ignored(reason) => {
                    eprintln!("message {}: ignored: {reason}", message.id);
                    ignored += 1;
                }
                Outcome::Failed(error) => {
                    eprintln!(
                        "error: message {} (received {} times) failed, left for redelivery: {error}",
                        message.id, message.receive_count
                    );
                    failed += 1;
                    continue;
                }
            }
            settled.push(message.receipt_handle.clone());
        }
        for failure in queue.delete_batch(&settled).await? {
            eprintln!("warning: a done message was not deleted ({failure}); it will come back and be done again");
        }
    }
    eprintln!("worker idle: {done} messages done, {ignored} ignored, {failed} failures left for redelivery");
    Ok(())
}

/// A message's work on stdout: each file's summary, or the backfill run's record.
fn print_work(work: &Work) -> anyhow::Result<()> {
    match work {
        Work::Transformed(summaries) => summaries.iter().try_for_each(print_json_line),
        Work::Ingested(run) => print_json_line(run),
    }
}

#[derive(clap::Args)]
pub struct RedriveArgs {
    /// The dead-letter queue URL.
    #[arg(long)]
    from: String,
    /// The queue URL to move them to.
    #[arg(long)]
    to: String,
    /// Move at most this many.
    #[arg(long)]
    max: Option<usize>,
}

impl RedriveArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        redrive(&self.from, &self.to, self.max).await
    }
}

/// `elt redrive`: move parked messages from a dead-letter queue back to their queue.
async fn redrive(from: &str, to: &str, max: Option<usize>) -> anyhow::Result<()> {
    let sdk = adapters::aws::sdk_config().await;
    let (dlq, queue) = (
        adapters::queue::SqsQueue::new(&sdk, from),
        adapters::queue::SqsQueue::new(&sdk, to),
    );
    let limit = max.unwrap_or(usize::MAX);
    let mut moved = 0usize;
    while moved < limit {
        let want = i32::try_from((limit - moved).min(10)).unwrap_or(10);
        let messages = dlq.receive(want, 1, Some(30)).await?;
        if messages.is_empty() {
            break;
        }
        for message in messages {
            // Sent before it is deleted: a failure in between leaves a copy, never a loss.
            queue.send(&message.body).await?;
            dlq.delete(&message.receipt_handle).await?;
            moved += 1;
        }
    }
    print_json_line(&serde_json::json!({"moved": moved, "from": from, "to": to}))
}
