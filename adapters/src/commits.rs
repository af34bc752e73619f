//! The commit port: each hour's commit record ([`HourCommit`]), written only on the generations
//! the writer read, its own and its neighbours'. On DynamoDB the records are items of the `jobs`
//! table (key `commit#…`) written in one transaction with condition checks on the neighbours; on
//! SQLite, rows of `hour_commits` written in one immediate transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use events::commits::{commit_key, CommitState, HourCommit};
use events::completeness::Completeness;
use events::Hour;
use futures::{StreamExt, TryStreamExt};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::{DynamoJobStore, SqliteJobStore};

/// A record key and the generation its writer read (`None`: there was no record).
pub type Expected = (String, Option<u64>);

#[async_trait]
pub trait CommitStore: Send + Sync {
    /// The record at `key`, read consistently.
    async fn get_commit(&self, key: &str) -> anyhow::Result<Option<HourCommit>>;

    /// Writes `commit` only if its own record still has generation `expected` and every
    /// neighbour in `unchanged` still has the generation given. False, writing nothing, when a
    /// condition failed.
    async fn put_commit(
        &self,
        commit: &HourCommit,
        expected: Option<u64>,
        unchanged: &[Expected],
    ) -> anyhow::Result<bool>;
}

/// Commit records read at once.
const READ_AT_ONCE: usize = 16;

/// `hours` and the hours they are compared with ([`Completeness::baselines`]), each once.
pub fn with_baselines(hours: &[Hour]) -> BTreeSet<Hour> {
    hours
        .iter()
        .flat_map(|h| std::iter::once(*h).chain(Completeness::baselines(*h)))
        .collect()
}

/// The commit records of `hours` (those there are).
pub async fn commit_records(
    commits: &dyn CommitStore,
    curated_prefix: &str,
    hours: impl IntoIterator<Item = Hour>,
) -> anyhow::Result<BTreeMap<Hour, HourCommit>> {
    let found: Vec<Option<HourCommit>> = futures::stream::iter(hours)
        .map(|hour| async move { commits.get_commit(&commit_key(curated_prefix, hour)).await })
        .buffered(READ_AT_ONCE)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().map(|r| (r.hour, r)).collect())
}

/// `hour` against the same hour a day and a week before, where `hour` is committed
/// (`records` as [`commit_records`] read them for [`with_baselines`]).
pub fn completeness(hour: Hour, records: &BTreeMap<Hour, HourCommit>) -> Option<Completeness> {
    Some(compare(hour, committed_rows(records, hour)?, records))
}

/// `rows` of `hour` against the committed rows of its baselines in `records`.
pub fn compare(hour: Hour, rows: u64, records: &BTreeMap<Hour, HourCommit>) -> Completeness {
    let [day_before, week_before] = Completeness::baselines(hour);
    Completeness::assess(
        hour,
        rows,
        committed_rows(records, day_before),
        committed_rows(records, week_before),
    )
}

fn committed_rows(records: &BTreeMap<Hour, HourCommit>, hour: Hour) -> Option<u64> {
    records
        .get(&hour)
        .filter(|r| r.state == CommitState::Committed)
        .map(|r| r.counts.rows)
}

/// The condition "the item's generation is `expected`" (or "there is no item").
fn generation_is(expected: Option<u64>) -> (String, Option<AttributeValue>) {
    match expected {
        None => ("attribute_not_exists(job_id)".into(), None),
        Some(g) => (
            "generation = :g".into(),
            Some(AttributeValue::N(g.to_string())),
        ),
    }
}

#[async_trait]
impl CommitStore for DynamoJobStore {
    async fn get_commit(&self, key: &str) -> anyhow::Result<Option<HourCommit>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.jobs_table)
            .key("job_id", AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("reading {key} from {}", self.jobs_table))?;
        output
            .item
            .map(|item| {
                serde_dynamo::from_item(item)
                    .with_context(|| format!("{key} in {} is malformed", self.jobs_table))
            })
            .transpose()
    }

    async fn put_commit(
        &self,
        commit: &HourCommit,
        expected: Option<u64>,
        unchanged: &[Expected],
    ) -> anyhow::Result<bool> {
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(commit)?;
        let (condition, value) = generation_is(expected);
        let put = Put::builder()
            .table_name(&self.jobs_table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(value.map(|v| HashMap::from([(":g".into(), v)])))
            .build()?;
        let mut request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build());
        for (key, generation) in unchanged {
            let (condition, value) = generation_is(*generation);
            let check = ConditionCheck::builder()
                .table_name(&self.jobs_table)
                .key("job_id", AttributeValue::S(key.clone()))
                .condition_expression(condition)
                .set_expression_attribute_values(value.map(|v| HashMap::from([(":g".into(), v)])))
                .build()?;
            request =
                request.transact_items(TransactWriteItem::builder().condition_check(check).build());
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let code = e.as_service_error().and_then(|s| {
                    aws_sdk_dynamodb::error::ProvideErrorMetadata::code(s).map(str::to_string)
                });
                if code.as_deref() == Some("TransactionCanceledException") {
                    return Ok(false);
                }
                Err(anyhow::Error::new(e).context(format!(
                    "committing {} to {}",
                    commit.job_id, self.jobs_table
                )))
            }
        }
    }
}

#[async_trait]
impl CommitStore for SqliteJobStore {
    async fn get_commit(&self, key: &str) -> anyhow::Result<Option<HourCommit>> {
        let key = key.to_string();
        self.with(move |c| {
            let item: Option<String> = c
                .query_row(
                    "SELECT item FROM hour_commits WHERE key = ?1",
                    params![key],
                    |row| row.get(0),
                )
                .optional()?;
            item.map(|text| {
                serde_json::from_str(&text).with_context(|| format!("{key} is malformed"))
            })
            .transpose()
        })
        .await
    }

    async fn put_commit(
        &self,
        commit: &HourCommit,
        expected: Option<u64>,
        unchanged: &[Expected],
    ) -> anyhow::Result<bool> {
        let item = serde_json::to_string(commit)?;
        let (key, generation) = (commit.job_id.clone(), commit.generation as i64);
        let mut checks = unchanged.to_vec();
        checks.push((key.clone(), expected));
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (key, want) in &checks {
                let stored: Option<i64> = tx
                    .query_row(
                        "SELECT generation FROM hour_commits WHERE key = ?1",
                        params![key],
                        |row| row.get(0),
                    )
                    .optional()?;
                if stored != want.map(|g| g as i64) {
                    return Ok(false);
                }
            }
            tx.execute(
                "INSERT INTO hour_commits (key, generation, item) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET generation = ?2, item = ?3",
                params![key, generation, item],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}
