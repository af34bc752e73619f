//! The batch policy, one for the transform Lambda and `elt worker`: the messages of a batch are
//! handled in turn, and the answer (`batchItemFailures`) names those that failed, so that only
//! they come back (and, after `maxReceiveCount`, go to the dead-letter queue). A failure is
//! typed: a poison message (not an S3 notification at all) never succeeds however often it comes
//! back, a transient fault may; both are left to the queue, poison logged as such.

pub use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use events::notifications::NotificationError;
use events::TransformSummary;

use crate::handler::{Handled, Handler};

/// Why a message failed.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The body is not an S3 notification: it will fail on every delivery and end in the
    /// dead-letter queue, where an operator can look at it.
    #[error("poison message: {0}")]
    Poison(#[source] NotificationError),
    /// Reading, transforming or committing failed: another delivery may succeed.
    #[error("{0:#}")]
    Transient(anyhow::Error),
}

impl MessageError {
    fn of(error: anyhow::Error) -> MessageError {
        match error.downcast::<NotificationError>() {
            Ok(poison) => MessageError::Poison(poison),
            Err(other) => MessageError::Transient(other),
        }
    }
}

/// What became of one message of a batch.
#[derive(Debug)]
pub enum Outcome {
    Transformed(Vec<TransformSummary>),
    /// Nothing to do (a test event, a key that is not a raw hour file); why.
    Ignored(String),
    Failed(MessageError),
}

/// Handles each message of `event`; the answer names the ones that failed. Each message's id
/// and outcome are returned too, in order, for callers that report them (`elt worker`).
pub async fn handle_batch(
    handler: &Handler,
    event: SqsEvent,
) -> (SqsBatchResponse, Vec<(String, Outcome)>) {
    let mut response = SqsBatchResponse::default();
    let mut outcomes = Vec::with_capacity(event.records.len());
    for message in event.records {
        let id = message.message_id.unwrap_or_default();
        let body = message.body.unwrap_or_default();
        let outcome = match handler.handle_message(&body).await {
            Ok(Handled::Transformed(summaries)) => {
                tracing::info!(message_id = %id, files = summaries.len(), "message done");
                Outcome::Transformed(summaries)
            }
            Ok(Handled::Ignored(reason)) => {
                tracing::info!(message_id = %id, reason, "message ignored");
                Outcome::Ignored(reason)
            }
            Err(e) => {
                let error = MessageError::of(e);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Lake, TransformOptions};

    /// A handler over folders: raw bucket `raw` under `dir/raw`, the lake in `dir/lake`.
    fn handler(dir: &std::path::Path) -> Handler {
        let raw = adapters::objects::folder(&dir.join("raw")).unwrap();
        let lake = Lake {
            store: adapters::objects::folder(&dir.join("lake")).unwrap(),
            commits: Arc::new(adapters::SqliteJobStore::open(&dir.join("state.sqlite")).unwrap()),
        };
        Handler::new(
            events::DEFAULT_RAW_PREFIX.to_string(),
            TransformOptions::default(),
            lake,
            Box::new(move |_bucket: &str| Ok(raw.clone())),
            None,
        )
    }

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_string());
        message.body = Some(body.to_string());
        message
    }

    fn created(key: &str) -> String {
        serde_json::json!({"Records": [{
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "raw"}, "object": {"key": key}}
        }]})
        .to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_failed_messages_are_named_and_poison_is_told_from_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let handler = handler(dir.path());
        let hour = dir.path().join("raw/landing/ghactivity/2024-03-05-14.json");
        std::fs::create_dir_all(hour.parent().unwrap()).unwrap();
        let line = r#"{"id":"1","type":"WatchEvent","created_at":"2024-03-05T14:00:00Z","actor":{"id":1,"login":"a"},"repo":{"id":2,"name":"a/b"},"payload":{}}"#;
        std::fs::write(&hour, format!("{line}\n")).unwrap();

        let mut event = SqsEvent::default();
        event.records = vec![
            message("good", &created("landing/ghactivity/2024-03-05-14.json")),
            message("test", r#"{"Event":"s3:TestEvent"}"#),
            message(
                "elsewhere",
                &created("landing/ghactivity/tmp/2024-03-05-15.json"),
            ),
            message("missing", &created("landing/ghactivity/2024-03-05-16.json")),
            message("poison", "not a notification"),
        ];
        let (response, outcomes) = handle_batch(&handler, event).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["missing", "poison"]);
        assert!(matches!(&outcomes[0].1, Outcome::Transformed(s) if s[0].rows == 1));
        assert!(matches!(outcomes[1].1, Outcome::Ignored(_)));
        assert!(matches!(&outcomes[2].1, Outcome::Ignored(r) if r.contains("folder below")));
        assert!(matches!(
            outcomes[3].1,
            Outcome::Failed(MessageError::Transient(_))
        ));
        assert!(matches!(
            outcomes[4].1,
            Outcome::Failed(MessageError::Poison(_))
        ));
    }
}
