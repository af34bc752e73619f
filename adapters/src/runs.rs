//! The run-log port: each job's run records in `job_run_details` ([`RunRecord`]), written by
//! both stages and read by `elt status`; and the one way a record finds its `job_run_time`.

use async_trait::async_trait;
use events::jobs::{RunRecord, UnreadableRun};

/// Where runs record what they did.
#[async_trait]
pub trait RunLog: Send + Sync {
    /// Adds `record` under its job at its `job_run_time` (epoch ms). It never replaces another
    /// run's record: if that time is taken it moves on by a millisecond. A record already stored
    /// with the same `run_id` (a retry after a lost reply) is not stored twice. Returns the time
    /// used.
    async fn add_run(&self, record: &RunRecord) -> anyhow::Result<i64>;

    /// The job's latest `limit` run records, newest first: each read as its job's kind
    /// ([`RunRecord::read`]), or why it could not be.
    async fn recent_runs(&self, job_id: &str, limit: usize) -> anyhow::Result<Vec<StoredRun>>;
}

/// A run record as read back: the record, or why it could not be read.
pub type StoredRun = Result<RunRecord, UnreadableRun>;

/// How many taken run times [`add_at_free_time`] steps over before it gives up.
const RUN_TIME_PROBES: i64 = 1000;

/// The two steps of [`RunLog::add_run`] that each store does its own way.
#[async_trait]
pub(crate) trait RunSlots: Sync {
    /// Stores `item` as the record of `job_id` at `job_run_time`, unless one is there already;
    /// whether it did.
    async fn insert_run(
        &self,
        job_id: &str,
        job_run_time: i64,
        item: &serde_json::Value,
    ) -> anyhow::Result<bool>;

    /// The `run_id` of the record of `job_id` at `job_run_time`, if it has one.
    async fn run_id_at(&self, job_id: &str, job_run_time: i64) -> anyhow::Result<Option<String>>;
}

/// [`RunLog::add_run`] for every store: `record` at the first free `job_run_time` from its own,
/// or where an earlier write of the same run landed (its reply was lost).
pub(crate) async fn add_at_free_time(
    slots: &impl RunSlots,
    record: &RunRecord,
) -> anyhow::Result<i64> {
    let (job_id, start) = (record.job_id(), record.job_run_time());
    let mut item = serde_json::to_value(record)?;
    for time in start..start + RUN_TIME_PROBES {
        // The stored document carries its key, as DynamoDB's item does.
        if let Some(fields) = item.as_object_mut() {
            fields.insert("job_id".into(), job_id.into());
            fields.insert("job_run_time".into(), time.into());
        }
        if slots.insert_run(job_id, time, &item).await? {
            return Ok(time);
        }
        if let Some(ours) = record.run_id() {
            if slots.run_id_at(job_id, time).await?.as_deref() == Some(ours) {
                return Ok(time);
            }
        }
    }
    anyhow::bail!("no free job_run_time for {job_id} near {start}")
}

/// The `run_id` of a stored record's document, if it has one.
pub(crate) fn run_id_of(item: &serde_json::Value) -> Option<String> {
    item.get("run_id")?.as_str().map(str::to_string)
}
