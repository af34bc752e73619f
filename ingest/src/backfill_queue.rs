//! The ingest's side of the batch policy (`adapters::batch`): a backfill message (a few hours of
//! a backfill fanned out by `elt backfill --fan-out`) in, its hours stored. The bookmark job is
//! untouched; an hour already stored is not fetched again (unless the message says `force`), so
//! a message that comes back after a partial failure redoes only what is missing. A body that is
//! not a backfill message is poison; a failed or missing hour fails the message, for redelivery.

use adapters::batch::{Handled, MessageError, MessageHandler};
use async_trait::async_trait;
use events::backfill::BackfillMessage;
use std::time::SystemTime;

use events::jobs::{IngestRun, RunStatus};

use crate::Ingest;

/// The ingest working backfill messages within an invocation's deadline (the Lambda's): hours
/// not begun before it fail the message, for redelivery.
pub struct BackfillWork<'a> {
    pub ingest: &'a Ingest,
    pub deadline: Option<SystemTime>,
}

impl Ingest {
    pub fn backfill_until(&self, deadline: Option<SystemTime>) -> BackfillWork<'_> {
        BackfillWork {
            ingest: self,
            deadline,
        }
    }
}

#[async_trait]
impl MessageHandler for Ingest {
    type Done = IngestRun;

    async fn handle(&self, body: &str) -> Result<Handled<IngestRun>, MessageError> {
        self.backfill_until(None).handle(body).await
    }
}

#[async_trait]
impl MessageHandler for BackfillWork<'_> {
    type Done = IngestRun;

    async fn handle(&self, body: &str) -> Result<Handled<IngestRun>, MessageError> {
        let deadline = self.deadline;
        let message = BackfillMessage::parse(body).map_err(|e| {
            MessageError::Poison(anyhow::Error::new(e).context("not a backfill message"))
        })?;
        let chunk = message.backfill;
        let hours = chunk
            .hours()
            .map_err(|e| MessageError::Poison(anyhow::anyhow!("backfill {}: {e}", chunk.id)))?;
        let run = self
            .ingest
            .backfill((chunk.from, chunk.to), hours, chunk.force, deadline)
            .await
            .map_err(|e| MessageError::Transient(e.context(format!("backfill {}", chunk.id))))?;
        if run.status == RunStatus::Error {
            let error = run.error.clone().unwrap_or_default();
            return Err(MessageError::Transient(anyhow::anyhow!(
                "backfill {} {} .. {}: {error}",
                chunk.id,
                chunk.from,
                chunk.to
            )));
        }
        Ok(Handled::Done(run))
    }
}

/// The payload as a batch of SQS messages, when it is one (the backfill queue's event source
/// mapping); `None` for anything else (the schedule's event, or any other payload: a run).
pub fn backfill_batch(payload: &serde_json::Value) -> Option<adapters::batch::SqsEvent> {
    let records = payload.get("Records")?.as_array()?;
    let from_sqs = records
        .iter()
        .all(|r| r.get("eventSource").and_then(|s| s.as_str()) == Some("aws:sqs"));
    if records.is_empty() || !from_sqs {
        return None;
    }
    serde_json::from_value(payload.clone()).ok()
}

#[cfg(test)]
mod tests {
    use events::backfill::BackfillChunk;
    use events::jobs::HourOutcome;

    use super::*;
    use crate::test_world::{hour, World};

    fn message(from: &str, to: &str, force: bool) -> String {
        let backfill = BackfillChunk {
            id: "bf-test".into(),
            from: hour(from),
            to: hour(to),
            force,
        };
        serde_json::to_string(&BackfillMessage { backfill }).unwrap()
    }

    #[tokio::test]
    async fn a_message_stores_its_hours_once_and_leaves_the_bookmark_alone() {
        let world = World::new();
        let published: Vec<Vec<u8>> = ["2024-03-05-0", "2024-03-05-1", "2024-03-05-2"]
            .iter()
            .map(|h| world.publish(h))
            .collect();
        let ingest = world.ingest("2024-03-06T00:00:00Z", 24);
        let body = message("2024-03-05-0", "2024-03-05-2", false);
        let Handled::Done(run) = ingest.handle(&body).await.unwrap() else {
            panic!("not done");
        };
        assert_eq!(run.hours_ingested, 3);
        assert_eq!(world.raw("2024-03-05-1"), Some(published[1].clone()));
        assert!(ingest.jobs.get_job("ingest").await.unwrap().is_none());
        // The message again (a redelivery): nothing is fetched twice.
        let Handled::Done(again) = ingest.handle(&body).await.unwrap() else {
            panic!("not done");
        };
        assert_eq!(again.hours_ingested, 0);
        assert!(again
            .hours
            .iter()
            .all(|h| h.outcome == HourOutcome::AlreadyPresent));
    }

    #[tokio::test]
    async fn a_missing_hour_fails_the_message_a_known_gap_does_not_and_garbage_is_poison() {
        let world = World::new();
        world.publish("2024-03-05-0");
        let ingest = world.ingest("2024-03-06T00:00:00Z", 24);
        let missing = message("2024-03-05-0", "2024-03-05-1", false);
        let failed = ingest.handle(&missing).await;
        assert!(matches!(failed, Err(MessageError::Transient(_))));
        // 2016-10-21-18 is lost for good (GHArchive's issue #164): recorded as missing, never
        // fetched (the source folder does not have it), and the message is done.
        assert!(events::known_gap(hour("2016-10-21-18")).is_some());
        let Handled::Done(run) = ingest
            .handle(&message("2016-10-21-18", "2016-10-21-18", false))
            .await
            .unwrap()
        else {
            panic!("not done");
        };
        assert_eq!(run.hours[0].outcome, HourOutcome::Missing);
        let poison = ingest.handle(r#"{"Records": []}"#).await;
        assert!(matches!(poison, Err(MessageError::Poison(_))));
        // A message for more hours than the CLI cuts a backfill into is no backfill message.
        let huge = ingest
            .handle(&message("2011-02-12-0", "2026-01-01-0", false))
            .await;
        assert!(
            matches!(&huge, Err(MessageError::Poison(e)) if format!("{e:#}").contains("at most 24 hours")),
            "{huge:?}"
        );
        let backwards = ingest
            .handle(&message("2024-03-05-1", "2024-03-05-0", false))
            .await;
        assert!(matches!(backwards, Err(MessageError::Poison(_))));
    }

    #[test]
    fn an_sqs_batch_is_told_from_a_scheduled_event() {
        let sqs = include_str!("../../events/samples/sqs-backfill.json");
        let batch = backfill_batch(&serde_json::from_str(sqs).unwrap()).unwrap();
        let body = batch.records[0].body.as_deref().unwrap();
        assert_eq!(
            BackfillMessage::parse(body).unwrap().backfill.id,
            "bf-20240305"
        );
        let schedule = include_str!("../../events/samples/eventbridge-schedule.json");
        assert!(backfill_batch(&serde_json::from_str(schedule).unwrap()).is_none());
        assert!(backfill_batch(&serde_json::json!({})).is_none());
        assert!(backfill_batch(&serde_json::json!({"Records": []})).is_none());
    }
}
