//! [`JobStore`] on DynamoDB: the `jobs` table (key `job_id`) and `job_run_details` (keys `job_id`,
//! `job_run_time`).

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use events::jobs::Job;

use crate::jobs::{JobStore, RUN_TIME_PROBES};

pub struct DynamoJobStore {
    pub(crate) client: Client,
    pub(crate) jobs_table: String,
    runs_table: String,
}

impl DynamoJobStore {
    pub fn new(config: &aws_config::SdkConfig, jobs_table: &str, runs_table: &str) -> Self {
        DynamoJobStore {
            client: Client::new(config),
            jobs_table: jobs_table.to_string(),
            runs_table: runs_table.to_string(),
        }
    }

    /// Creates both tables (on-demand) for use without the stack: `init`, tests.
    pub async fn create_tables(&self) -> anyhow::Result<()> {
        for (table, sort_key) in [
            (&self.jobs_table, None),
            (&self.runs_table, Some("job_run_time")),
        ] {
            let mut request = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attribute("job_id", ScalarAttributeType::S)?)
                .key_schema(key("job_id", KeyType::Hash)?);
            if let Some(sort_key) = sort_key {
                request = request
                    .attribute_definitions(attribute(sort_key, ScalarAttributeType::N)?)
                    .key_schema(key(sort_key, KeyType::Range)?);
            }
            request
                .send()
                .await
                .with_context(|| format!("creating DynamoDB table {table}"))?;
        }
        Ok(())
    }
}

fn attribute(name: &str, kind: ScalarAttributeType) -> anyhow::Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()?)
}

fn key(name: &str, kind: KeyType) -> anyhow::Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()?)
}

/// True when a write was refused by its condition (the expected outcome of a lost race).
fn condition_failed<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn get_job(&self, job_id: &str) -> anyhow::Result<Option<Job>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.jobs_table)
            .key("job_id", AttributeValue::S(job_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("reading job {job_id} from {}", self.jobs_table))?;
        match output.item {
            None => Ok(None),
            Some(item) => serde_dynamo::from_item(item)
                .map(Some)
                .with_context(|| format!("job {job_id} in {} is malformed", self.jobs_table)),
        }
    }

    async fn put_job(&self, job: &Job, expected: Option<u64>) -> anyhow::Result<bool> {
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(job)?;
        let request = self
            .client
            .put_item()
            .table_name(&self.jobs_table)
            .set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(job_id)"),
            Some(version) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(version.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(anyhow::Error::new(e)
                .context(format!("writing job {} to {}", job.job_id, self.jobs_table))),
        }
    }

    async fn add_run(
        &self,
        job_id: &str,
        job_run_time: i64,
        record: &serde_json::Value,
    ) -> anyhow::Result<i64> {
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(record)?;
        item.insert("job_id".into(), AttributeValue::S(job_id.to_string()));
        for time in job_run_time..job_run_time + RUN_TIME_PROBES {
            item.insert("job_run_time".into(), AttributeValue::N(time.to_string()));
            let result = self
                .client
                .put_item()
                .table_name(&self.runs_table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(job_run_time)")
                .send()
                .await;
            match result {
                Ok(_) => return Ok(time),
                Err(e) if condition_failed(&e) => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("writing a run of {job_id} to {}", self.runs_table)))
                }
            }
        }
        anyhow::bail!("no free job_run_time for {job_id} near {job_run_time}")
    }

    async fn recent_runs(
        &self,
        job_id: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let output = self
            .client
            .query()
            .table_name(&self.runs_table)
            .key_condition_expression("job_id = :job")
            .expression_attribute_values(":job", AttributeValue::S(job_id.to_string()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .with_context(|| format!("reading runs of {job_id} from {}", self.runs_table))?;
        output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(anyhow::Error::from))
            .collect()
    }
}
