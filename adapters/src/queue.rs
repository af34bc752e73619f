//! The queue port's AWS adapter: an SQS queue, used the way Lambda's event source mapping uses
//! it (receive a batch, delete what succeeded, let the rest come back after the visibility
//! timeout and, after `maxReceiveCount`, go to the dead-letter queue).

use anyhow::Context;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use aws_sdk_sqs::Client;

/// One received message.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
}

pub struct SqsQueue {
    client: Client,
    pub url: String,
}

impl SqsQueue {
    pub fn new(config: &aws_config::SdkConfig, url: &str) -> SqsQueue {
        SqsQueue {
            client: Client::new(config),
            url: url.to_string(),
        }
    }

    /// Up to `max` messages (1–10), waiting up to `wait_seconds` for the first; they stay
    /// invisible to other consumers for `visibility_seconds`.
    pub async fn receive(
        &self,
        max: i32,
        wait_seconds: i32,
        visibility_seconds: Option<i32>,
    ) -> anyhow::Result<Vec<Message>> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait_seconds.clamp(0, 20))
            .set_visibility_timeout(visibility_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .with_context(|| format!("receiving from {}", self.url))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Message {
                receive_count: m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                id: m.message_id.unwrap_or_default(),
                receipt_handle: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .collect())
    }

    pub async fn delete(&self, receipt_handle: &str) -> anyhow::Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .with_context(|| format!("deleting a message from {}", self.url))?;
        Ok(())
    }

    /// Deletes the messages with these receipt handles, ten to a request; the handles SQS
    /// could not delete are returned with their reasons (they will come back).
    pub async fn delete_batch(&self, receipt_handles: &[String]) -> anyhow::Result<Vec<String>> {
        let mut failed = Vec::new();
        for chunk in receipt_handles.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .with_context(|| format!("deleting messages from {}", self.url))?;
            failed.extend(
                output
                    .failed
                    .into_iter()
                    .map(|f| format!("{}: {}", f.id, f.message.unwrap_or(f.code))),
            );
        }
        Ok(failed)
    }

    pub async fn send(&self, body: &str) -> anyhow::Result<()> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .with_context(|| format!("sending to {}", self.url))?;
        Ok(())
    }
}
