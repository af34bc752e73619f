//! `elt worker` (a queue of raw-bucket notifications, worked as the transform Lambda does) and
//! `elt redrive` (dead letters back to their queue).

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
    aws: transform::handler::AwsTarget,
    #[command(flatten)]
    transform: transform::handler::TransformSettings,
}

impl WorkerArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let WorkerArgs {
            queue,
            batch,
            visibility,
            wait,
            until_idle,
            aws,
            transform,
        } = self;
        let handler = aws.handler(transform.options().await?).await?;
        let poll = Poll {
            batch,
            visibility,
            wait,
            until_idle,
        };
        worker(&handler, &queue, poll).await
    }
}

/// How `elt worker` polls its queue.
pub struct Poll {
    pub batch: i32,
    pub visibility: Option<i32>,
    pub wait: i32,
    pub until_idle: bool,
}

/// `elt worker`: receive batches and hand each to the batch policy the transform Lambda uses
/// (`transform::batch`), then delete what succeeded in one request and leave failures to come
/// back, as Lambda's event source mapping does.
async fn worker(
    handler: &transform::handler::Handler,
    queue_url: &str,
    poll: Poll,
) -> anyhow::Result<()> {
    use transform::batch::Outcome;
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
        let (_, outcomes) = transform::batch::handle_batch(handler, sqs_event(&messages)).await;
        let mut settled = Vec::new();
        for (message, (_, outcome)) in messages.iter().zip(outcomes) {
            match outcome {
                Outcome::Transformed(summaries) => {
                    for summary in &summaries {
                        print_json_line(summary)?;
                    }
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

/// Received messages as the event Lambda's event source mapping would deliver.
fn sqs_event(messages: &[adapters::queue::Message]) -> transform::batch::SqsEvent {
    let mut event = transform::batch::SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = transform::batch::SqsMessage::default();
            record.message_id = Some(m.id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record
        })
        .collect();
    event
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
