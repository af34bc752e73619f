//! The job-state port: the `jobs` item of each job and its run records in `job_run_details`.

use async_trait::async_trait;
use events::jobs::Job;

/// Where jobs keep their bookmark and their run history.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// The job's item, read consistently; `None` if the job has never been set up.
    async fn get_job(&self, job_id: &str) -> anyhow::Result<Option<Job>>;

    /// Writes `job` only if the stored item still has version `expected` (`None`: only if there is
    /// no item yet). Returns false, writing nothing, when another writer got there first.
    async fn put_job(&self, job: &Job, expected: Option<u64>) -> anyhow::Result<bool>;

    /// Adds a run record under `job_id` at `job_run_time` (epoch ms). It never replaces another
    /// run's record: if that time is taken it moves on by a millisecond. Returns the time used.
    async fn add_run(
        &self,
        job_id: &str,
        job_run_time: i64,
        record: &serde_json::Value,
    ) -> anyhow::Result<i64>;

    /// The job's latest `limit` run records, newest first.
    async fn recent_runs(
        &self,
        job_id: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<serde_json::Value>>;
}

/// How many taken run times `add_run` steps over before it gives up.
pub(crate) const RUN_TIME_PROBES: i64 = 1000;
