//! The transform's side of the batch policy (`adapters::batch`): one message, an S3
//! notification, in; the files it names transformed. A body that is not a notification is
//! poison; anything else that fails is transient.

pub use adapters::batch::{
    handle_batch, Handled, MessageError, MessageHandler, Outcome, SqsBatchResponse, SqsEvent,
    SqsMessage,
};
use async_trait::async_trait;
use events::notifications::NotificationError;
use events::TransformSummary;

use crate::handler::{self, Handler};

#[async_trait]
impl MessageHandler for Handler {
    type Done = Vec<TransformSummary>;

    async fn handle(&self, body: &str) -> Result<Handled<Self::Done>, MessageError> {
        match self.handle_message(body).await {
            Ok(handler::Handled::Transformed(summaries)) => Ok(Handled::Done(summaries)),
            Ok(handler::Handled::Ignored(reason)) => Ok(Handled::Ignored(reason)),
            Err(error) if error.downcast_ref::<NotificationError>().is_some() => {
                Err(MessageError::Poison(error))
            }
            Err(error) => Err(MessageError::Transient(error)),
        }
    }
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
            place: lake_table::Place::Folder(dir.join("lake")),
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
        assert!(matches!(&outcomes[0].1, Outcome::Done(s) if s[0].rows == 1));
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
