//! The table's upkeep: checkpoints (a reader replays at most [`CHECKPOINT_INTERVAL`] JSON
//! commits), the log's retention, and vacuum (files no version within the retention needs).

use std::time::Duration;

use anyhow::Context;
use deltalake_core::checkpoints;
use deltalake_core::operations::vacuum::VacuumMode;

use crate::schema::CHECKPOINT_INTERVAL;
use crate::Table;

/// Whether the commit that made `version` should write a checkpoint after it.
pub fn checkpoint_due(version: u64) -> bool {
    version > 0 && version.is_multiple_of(CHECKPOINT_INTERVAL)
}

/// After the commit that made `version`: a checkpoint if one is due, and the log's expired
/// commits removed. Best effort: the next due commit tries again.
pub async fn checkpoint_if_due(table: &Table, version: u64) {
    if !checkpoint_due(version) {
        return;
    }
    match checkpoint(table).await {
        Ok((at, removed)) => {
            tracing::info!(version = at, removed, "wrote a checkpoint of the table")
        }
        Err(error) => tracing::warn!(
            version,
            error = format!("{error:#}"),
            "could not write a checkpoint"
        ),
    }
}

/// Writes a checkpoint of the table's newest version, then removes the JSON commits older than
/// the log's retention that the checkpoint covers. Returns the checkpoint's version and the
/// number of log files removed.
pub async fn checkpoint(table: &Table) -> anyhow::Result<(u64, usize)> {
    let delta = table.open_existing().await?;
    checkpoints::create_checkpoint(&delta, None)
        .await
        .context("writing a checkpoint")?;
    let removed = checkpoints::cleanup_metadata(&delta, None)
        .await
        .context("removing expired log files")?;
    let version = delta.version();
    Ok((version.unwrap_or(0), removed))
}

/// What a vacuum found (and, unless a dry run, deleted).
#[derive(Debug)]
pub struct Vacuumed {
    pub dry_run: bool,
    /// Keys inside the table.
    pub files: Vec<String>,
}

/// Files that no version within `retention` needs: those the commits removed longer ago, and
/// files no commit ever added (orphans of runs that died) older than it. `retention` `None`:
/// the table's `delta.deletedFileRetentionDuration`.
pub async fn vacuum(
    table: &Table,
    retention: Option<Duration>,
    dry_run: bool,
) -> anyhow::Result<Vacuumed> {
    let delta = table.open_existing().await?;
    let mut builder = delta
        .vacuum()
        .with_mode(VacuumMode::Full)
        .with_dry_run(dry_run);
    if let Some(retention) = retention {
        let retention = chrono::Duration::from_std(retention).context("the retention period")?;
        builder = builder
            .with_retention_period(retention)
            .with_enforce_retention_duration(false);
    }
    let (_, metrics) = builder.await.context("vacuuming the table")?;
    Ok(Vacuumed {
        dry_run,
        files: metrics.files_deleted,
    })
}
