//! [`JobStore`] and [`RunLog`] on DynamoDB: the `jobs` table (key `job_id`) and
//! `job_run_details` (keys `job_id`, `job_run_time`).

use std::collections::HashMap;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use events::jobs::{Job, RunRecord, UnreadableRun};

use crate::jobs::JobStore;
use crate::runs::{add_at_free_time, run_id_of, RunLog, RunSlots, StoredRun};

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

/// The condition of a job write: the item is the version read (`None`: there is no item). A
/// person may have written the version as a string, and an item seeded without one is version 0.
struct JobCondition {
    expression: String,
    names: Option<HashMap<String, String>>,
    values: Option<HashMap<String, AttributeValue>>,
}

impl JobCondition {
    fn new(expected: Option<u64>) -> JobCondition {
        let Some(version) = expected else {
            return JobCondition {
                expression: "attribute_not_exists(job_id)".into(),
                names: None,
                values: None,
            };
        };
        let matches = "#version = :expected_n OR #version = :expected_s";
        let expression = if version == 0 {
            format!("attribute_exists(job_id) AND (attribute_not_exists(#version) OR {matches})")
        } else {
            matches.to_string()
        };
        JobCondition {
            expression,
            names: Some(HashMap::from([("#version".into(), "version".into())])),
            values: Some(HashMap::from([
                (":expected_n".into(), AttributeValue::N(version.to_string())),
                (":expected_s".into(), AttributeValue::S(version.to_string())),
            ])),
        }
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

impl DynamoJobStore {
    /// The job's item as stored, read consistently.
    async fn raw_job(
        &self,
        job_id: &str,
    ) -> anyhow::Result<Option<HashMap<String, AttributeValue>>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.jobs_table)
            .key("job_id", AttributeValue::S(job_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("reading job {job_id} from {}", self.jobs_table))?;
        Ok(output.item)
    }
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn get_job(&self, job_id: &str) -> anyhow::Result<Option<Job>> {
        match self.raw_job(job_id).await? {
            None => Ok(None),
            Some(item) => serde_dynamo::from_item(item)
                .map(Some)
                .with_context(|| format!("job {job_id} in {} is malformed", self.jobs_table)),
        }
    }

    async fn put_job(&self, job: &Job, expected: Option<u64>) -> anyhow::Result<bool> {
        // The whole item is put (an UpdateItem would keep other attributes by itself, but moto
        // applies concurrent conditional updates without a lock, and the tests run on moto),
        // with the attributes a person added carried over from the item as read: the condition
        // on the version makes sure it is still that item.
        let mut item = match expected {
            None => HashMap::new(),
            Some(_) => self.raw_job(&job.job_id).await?.unwrap_or_default(),
        };
        item.retain(|name, _| !events::jobs::JOB_ATTRIBUTES.contains(&name.as_str()));
        item.extend(serde_dynamo::to_item::<_, HashMap<String, AttributeValue>>(
            job,
        )?);
        let condition = JobCondition::new(expected);
        let result = self
            .client
            .put_item()
            .table_name(&self.jobs_table)
            .set_item(Some(item))
            .condition_expression(condition.expression)
            .set_expression_attribute_names(condition.names)
            .set_expression_attribute_values(condition.values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(anyhow::Error::new(e)
                .context(format!("writing job {} to {}", job.job_id, self.jobs_table))),
        }
    }
}

#[async_trait]
impl RunSlots for DynamoJobStore {
    async fn insert_run(
        &self,
        job_id: &str,
        _job_run_time: i64,
        item: &serde_json::Value,
    ) -> anyhow::Result<bool> {
        let result = self
            .client
            .put_item()
            .table_name(&self.runs_table)
            .set_item(Some(serde_dynamo::to_item(item)?))
            .condition_expression("attribute_not_exists(job_run_time)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(anyhow::Error::new(e)
                .context(format!("writing a run of {job_id} to {}", self.runs_table))),
        }
    }

    async fn run_id_at(&self, job_id: &str, job_run_time: i64) -> anyhow::Result<Option<String>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.runs_table)
            .key("job_id", AttributeValue::S(job_id.to_string()))
            .key("job_run_time", AttributeValue::N(job_run_time.to_string()))
            .projection_expression("run_id")
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("reading a run of {job_id} from {}", self.runs_table))?;
        let item = output.item.map(serde_dynamo::from_item).transpose()?;
        Ok(item.as_ref().and_then(run_id_of))
    }
}

#[async_trait]
impl RunLog for DynamoJobStore {
    async fn add_run(&self, record: &RunRecord) -> anyhow::Result<i64> {
        add_at_free_time(self, record).await
    }

    async fn recent_runs(&self, job_id: &str, limit: usize) -> anyhow::Result<Vec<StoredRun>> {
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
        let items = output.items.unwrap_or_default();
        Ok(items
            .into_iter()
            .map(|item| read_run(job_id, item))
            .collect())
    }
}

/// A stored run item as its job's kind of record, or why it cannot be.
fn read_run(job_id: &str, item: HashMap<String, AttributeValue>) -> StoredRun {
    let job_run_time = match item.get("job_run_time") {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    };
    match serde_dynamo::from_item(item) {
        Ok(item) => RunRecord::read(job_id, job_run_time, item),
        Err(e) => Err(UnreadableRun {
            job_run_time,
            error: format!("not a document: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_write_is_conditional_on_the_version_read() {
        let write = JobCondition::new(Some(4));
        assert_eq!(
            write.expression,
            "#version = :expected_n OR #version = :expected_s"
        );
        let values = write.values.unwrap();
        assert_eq!(values[":expected_n"], AttributeValue::N("4".into()));
        assert_eq!(
            values[":expected_s"],
            AttributeValue::S("4".into()),
            "written by hand"
        );
        let create = JobCondition::new(None);
        assert_eq!(create.expression, "attribute_not_exists(job_id)");
        assert!(
            create.names.is_none() && create.values.is_none(),
            "DynamoDB refuses unused ones"
        );
    }

    #[test]
    fn an_item_seeded_without_a_version_is_version_zero() {
        assert_eq!(
            JobCondition::new(Some(0)).expression,
            "attribute_exists(job_id) AND (attribute_not_exists(#version) OR #version = :expected_n OR #version = :expected_s)"
        );
    }
}
