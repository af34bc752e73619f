//! The batch policy, one for every SQS consumer (the transform Lambda and the ingest Lambda's
//! backfill queue, and `elt worker` for both): the messages of a batch are handled in turn, and
//! the answer (`batchItemFailures`) names those that failed, so that only they come back (and,
//! after `maxReceiveCount`, go to the dead-letter queue). A failure is typed: a poison message
//! (a body the handler cannot read) never succeeds however often it comes back, a transient
//! fault may; both are left to the queue, poison logged as such.

use async_trait::async_trait;
pub use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

/// Why a message failed.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The body is not what the queue carries: it will fail on every delivery and end in the
    /// dead-letter queue, where an operator can look at it.
    #[error("poison message: {0:#}")]
    Poison(anyhow::Error),
    /// The work failed: another delivery may succeed.
    #[error("{0:#}")]
    Transient(anyhow::Error),
}

/// What a message came to when it did not fail.
#[derive(Debug)]
pub enum Handled<T> {
    Done(T),
    /// Nothing to do (a test event, a key that is not a raw hour file); why.
    Ignored(String),
}

/// One queue's work: a message body in, its result or a typed failure out.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    type Done: Send + std::fmt::Debug;
    async fn handle(&self, body: &str) -> Result<Handled<Self::Done>, MessageError>;
}

/// What became of one message of a batch.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    Ignored(String),
    Failed(MessageError),
}

/// Handles each message of `event`; the answer names the ones that failed. Each message's id
/// and outcome are returned too, in order, for callers that report them (`elt worker`).
pub async fn handle_batch<H: MessageHandler + ?Sized>(
    handler: &H,
    event: SqsEvent,
) -> (SqsBatchResponse, Vec<(String, Outcome<H::Done>)>) {
    let mut response = SqsBatchResponse::default();
    let mut outcomes = Vec::with_capacity(event.records.len());
    for message in event.records {
        let id = message.message_id.unwrap_or_default();
        let body = message.body.unwrap_or_default();
        let outcome = match handler.handle(&body).await {
            Ok(Handled::Done(done)) => {
                tracing::info!(message_id = %id, "message done");
                Outcome::Done(done)
            }
            Ok(Handled::Ignored(reason)) => {
                tracing::info!(message_id = %id, reason, "message ignored");
                Outcome::Ignored(reason)
            }
            Err(error) => {
                match &error {
                    MessageError::Poison(_) => {
                        tracing::error!(message_id = %id, error = %error, "poison message: it will reach the dead-letter queue")
                    }
                    MessageError::Transient(_) => {
                        tracing::error!(message_id = %id, error = %error, "message failed; left for redelivery")
                    }
                }
                response.add_failure(id.clone());
                Outcome::Failed(error)
            }
        };
        outcomes.push((id, outcome));
    }
    (response, outcomes)
}

/// Received messages as Lambda's event source mapping would deliver them.
pub fn sqs_event(messages: &[crate::queue::Message]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record
        })
        .collect();
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes "ok", "skip" and "fail"; anything else is poison.
    struct Words;

    #[async_trait]
    impl MessageHandler for Words {
        type Done = String;
        async fn handle(&self, body: &str) -> Result<Handled<String>, MessageError> {
            match body {
                "ok" => Ok(Handled::Done(body.to_string())),
                "skip" => Ok(Handled::Ignored("skipped".into())),
                "fail" => Err(MessageError::Transient(anyhow::anyhow!("failed"))),
                other => Err(MessageError::Poison(anyhow::anyhow!("not a word: {other}"))),
            }
        }
    }

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_string());
        message.body = Some(body.to_string());
        message
    }

    #[tokio::test]
    async fn only_the_failed_messages_are_named_and_each_outcome_is_kept_in_order() {
        let mut event = SqsEvent::default();
        event.records = vec![
            message("1", "ok"),
            message("2", "fail"),
            message("3", "skip"),
            message("4", "{garbage"),
        ];
        let (response, outcomes) = handle_batch(&Words, event).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["2", "4"]);
        let ids: Vec<&str> = outcomes.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "3", "4"]);
        assert!(matches!(&outcomes[0].1, Outcome::Done(done) if done == "ok"));
        assert!(matches!(
            outcomes[1].1,
            Outcome::Failed(MessageError::Transient(_))
        ));
        assert!(matches!(&outcomes[2].1, Outcome::Ignored(why) if why == "skipped"));
        assert!(matches!(
            outcomes[3].1,
            Outcome::Failed(MessageError::Poison(_))
        ));
    }
}
