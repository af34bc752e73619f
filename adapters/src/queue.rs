//! The queue port's AWS adapter: an SQS queue, used the way Lambda's event source mapping uses
//! it (receive a batch, delete what succeeded, let the rest come back after the visibility
//! timeout and, after `maxReceiveCount`, go to the dead-letter queue).

use anyhow::Context;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
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

    /// Another queue on the same client (a dead-letter queue, from a redrive policy).
    pub fn sibling(&self, url: &str) -> SqsQueue {
        SqsQueue {
            client: self.client.clone(),
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

    /// Sends `bodies`, ten to a request; a message SQS refused is an error naming why (those
    /// before it are sent: sending again duplicates them, which their consumers take).
    pub async fn send_batch(&self, bodies: &[String]) -> anyhow::Result<()> {
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .with_context(|| format!("sending to {}", self.url))?;
            if let Some(failure) = output.failed.first() {
                let why = failure.message.clone().unwrap_or(failure.code.clone());
                anyhow::bail!("{} refused a message: {why}", self.url);
            }
        }
        Ok(())
    }

    /// Messages waiting, and received but not yet deleted (both approximate, as SQS counts).
    pub async fn depth(&self) -> anyhow::Result<QueueDepth> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .with_context(|| format!("reading the attributes of {}", self.url))?;
        let attributes = output.attributes.unwrap_or_default();
        let number = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let dead_letter_arn = attributes
            .get(&QueueAttributeName::RedrivePolicy)
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_string));
        Ok(QueueDepth {
            waiting: number(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            dead_letter_arn,
        })
    }

    /// The URL of the queue named by `arn` (a dead-letter queue's, from a redrive policy).
    pub async fn url_of(&self, arn: &str) -> anyhow::Result<String> {
        let name = arn.rsplit(':').next().unwrap_or(arn);
        let output = self
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .with_context(|| format!("looking up the queue {name}"))?;
        output
            .queue_url
            .ok_or_else(|| anyhow::anyhow!("no URL for the queue {name}"))
    }

    /// Deletes every message in the queue (SQS allows one purge a minute).
    pub async fn purge(&self) -> anyhow::Result<()> {
        self.client
            .purge_queue()
            .queue_url(&self.url)
            .send()
            .await
            .with_context(|| format!("purging {}", self.url))?;
        Ok(())
    }
}

/// How many messages a queue holds, and where its dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub waiting: u64,
    pub in_flight: u64,
    pub dead_letter_arn: Option<String>,
}
