//! A backfill fanned out on a queue: its messages (a few hours each, for the ingest's backfill
//! handler) and its plan (kept in the run log under [`BACKFILL_JOB_ID`], for `elt status`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Hour;

/// `job_id` of the backfill plans in `job_run_details`.
pub const BACKFILL_JOB_ID: &str = "backfill";

/// Hours per message: a message is one Lambda invocation's work, retried whole (its stored hours
/// are skipped on the retry), so it stays small.
pub const DEFAULT_HOURS_PER_MESSAGE: u32 = 4;

/// One message of a backfill queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillMessage {
    pub backfill: BackfillChunk,
}

/// Hours `from..=to` of backfill `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillChunk {
    pub id: String,
    pub from: Hour,
    pub to: Hour,
    /// Fetch hours that are already stored again.
    #[serde(default)]
    pub force: bool,
}

/// The most hours one message may ask for (`elt backfill --hours-per-message` at most).
pub const MAX_HOURS_PER_MESSAGE: u32 = 24;

impl BackfillChunk {
    /// How many hours the chunk asks for; an error when they are none or more than
    /// [`MAX_HOURS_PER_MESSAGE`] (a message is one invocation's work, and a queue's message may
    /// have been written by anyone who can send to it).
    pub fn hours(&self) -> Result<usize, String> {
        if self.to < self.from {
            return Err(format!("{} .. {} is an empty range", self.from, self.to));
        }
        let hours = (self.to.start() - self.from.start())
            .num_hours()
            .saturating_add(1);
        if hours > i64::from(MAX_HOURS_PER_MESSAGE) {
            return Err(format!(
                "{} .. {} is {hours} hours; a message holds at most {MAX_HOURS_PER_MESSAGE} hours",
                self.from, self.to
            ));
        }
        usize::try_from(hours).map_err(|e| e.to_string())
    }
}

impl BackfillMessage {
    /// Reads a message body; an error says why it is not a backfill message.
    pub fn parse(body: &str) -> Result<BackfillMessage, serde_json::Error> {
        serde_json::from_str(body)
    }
}

/// The range `from..=to` cut into chunks of `hours_per_message` hours, in order.
pub fn split(from: Hour, to: Hour, hours_per_message: u32) -> Vec<(Hour, Hour)> {
    let per = i64::from(hours_per_message.max(1));
    let mut chunks = Vec::new();
    let mut start = from;
    while start <= to {
        let end = Hour::containing(start.start() + chrono::Duration::hours(per - 1));
        let end = end.min(to);
        chunks.push((start, end));
        start = end.next();
    }
    chunks
}

/// What `elt backfill --fan-out` enqueued, as kept in the run log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillPlan {
    pub job_id: String,
    /// When it was enqueued, epoch ms.
    pub job_run_time: i64,
    /// The backfill's id, carried by each of its messages.
    pub run_id: String,
    pub created_at: DateTime<Utc>,
    pub from: Hour,
    pub to: Hour,
    pub hours: u64,
    pub messages: u64,
    pub hours_per_message: u32,
    pub force: bool,
    pub queue_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(text: &str) -> Hour {
        text.parse().unwrap()
    }

    #[test]
    fn a_range_is_cut_into_whole_chunks_and_a_last_shorter_one() {
        let chunks = split(hour("2024-03-05-22"), hour("2024-03-06-4"), 3);
        let text: Vec<String> = chunks.iter().map(|(a, b)| format!("{a}..{b}")).collect();
        assert_eq!(
            text,
            [
                "2024-03-05-22..2024-03-06-0",
                "2024-03-06-1..2024-03-06-3",
                "2024-03-06-4..2024-03-06-4"
            ]
        );
        assert_eq!(
            split(hour("2024-03-05-1"), hour("2024-03-05-1"), 4).len(),
            1
        );
        assert!(split(hour("2024-03-05-2"), hour("2024-03-05-1"), 4).is_empty());
        // 480 hours in fours: 120 messages.
        assert_eq!(
            split(hour("2024-01-01-0"), hour("2024-01-20-23"), 4).len(),
            120
        );
    }

    #[test]
    fn a_message_reads_back_as_written_and_anything_else_is_refused() {
        let message = BackfillMessage {
            backfill: BackfillChunk {
                id: "b1".into(),
                from: hour("2024-03-05-0"),
                to: hour("2024-03-05-3"),
                force: false,
            },
        };
        let body = serde_json::to_string(&message).unwrap();
        assert_eq!(BackfillMessage::parse(&body).unwrap(), message);
        assert!(BackfillMessage::parse(r#"{"Records": []}"#).is_err());
        assert!(BackfillMessage::parse("not json").is_err());
    }
}
