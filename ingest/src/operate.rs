//! What an operator does to the job by hand (`elt skip`, `elt retry`), through the same
//! conditional writes as a run.

use adapters::{update_job, JobStore, WriteRetry};
use events::Hour;
use rand::Rng;

use crate::changes::{self, OperatorChange, Skip, Start};
use crate::IngestConfig;

/// This command as the item records it, with an id of its own: `elt skip 1a2b3c4d`.
fn operator(command: &str) -> String {
    format!("{command} {:08x}", rand::rng().random::<u32>())
}

fn start(config: &IngestConfig) -> Start {
    Start {
        from: config.start_hour,
        default_days: config.baseline_days,
    }
}

/// Parks `hour` by hand, as `skip` says (see [`changes::park_by_hand`]).
pub async fn skip_hour(
    jobs: &dyn JobStore,
    config: &IngestConfig,
    hour: Hour,
    skip: Skip<'_>,
) -> anyhow::Result<OperatorChange> {
    let now = config.now();
    let (job_id, by) = (&config.job_id, operator("elt skip"));
    let updated = update_job(jobs, job_id, WriteRetry::default(), |current| {
        changes::park_by_hand(current, (job_id, &by), hour, skip, now, start(config))
    })
    .await?;
    Ok(updated.value)
}

/// Takes a parked `hour` back (see [`changes::requeue`]).
pub async fn retry_hour(
    jobs: &dyn JobStore,
    config: &IngestConfig,
    hour: Hour,
) -> anyhow::Result<OperatorChange> {
    let now = config.now();
    let (job_id, by) = (&config.job_id, operator("elt retry"));
    let updated = update_job(jobs, job_id, WriteRetry::default(), |current| {
        changes::requeue(current, (job_id, &by), hour, now, start(config))
    })
    .await?;
    Ok(updated.value)
}
