//! [`JobStore`] and [`RunLog`] on an SQLite file, for local mode. Items are stored as the same JSON documents
//! DynamoDB holds, so both stores read and write the same records; processes sharing the file
//! are serialised by SQLite's locks.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use events::jobs::{Job, RunRecord, UnreadableRun};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::jobs::JobStore;
use crate::runs::{add_at_free_time, run_id_of, RunLog, RunSlots, StoredRun};

pub struct SqliteJobStore {
    connection: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    item TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS job_run_details (
    job_id TEXT NOT NULL,
    job_run_time INTEGER NOT NULL,
    item TEXT NOT NULL,
    PRIMARY KEY (job_id, job_run_time)
);
CREATE TABLE IF NOT EXISTS hour_commits (
    key TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    item TEXT NOT NULL
);";

impl SqliteJobStore {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: &Path) -> anyhow::Result<SqliteJobStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let connection = Connection::open(path)
            .with_context(|| format!("opening the job database {}", path.display()))?;
        connection.busy_timeout(Duration::from_secs(30))?;
        // Switching a new file to WAL takes a lock the busy timeout does not wait for: two
        // processes opening the same new lake at once (two `elt transform`s) try again.
        let mut attempt = 0;
        loop {
            let set_up = connection
                .pragma_update(None, "journal_mode", "WAL")
                .and_then(|()| connection.execute_batch(SCHEMA));
            match set_up {
                Ok(()) => break,
                Err(e) if attempt < 100 && is_busy(&e) => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(20 + 10 * attempt));
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e)
                        .context(format!("setting up the job database {}", path.display())))
                }
            }
        }
        Ok(SqliteJobStore {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `f` on the connection off the async threads: a write can wait on another process's lock.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .map_err(|_| anyhow::anyhow!("the job database connection was poisoned"))?;
            f(&mut connection)
        })
        .await
        .context("the job database task failed")?
    }
}

/// `ours` laid over the stored item: the attributes a [`Job`] owns replaced (or removed), any
/// other attribute a person gave the item kept, as on DynamoDB.
fn merged(stored: &str, ours: serde_json::Value) -> serde_json::Value {
    let serde_json::Value::Object(ours) = ours else {
        return ours;
    };
    let mut item = match serde_json::from_str(stored) {
        Ok(serde_json::Value::Object(item)) => item,
        _ => serde_json::Map::new(),
    };
    item.retain(|name, _| !events::jobs::JOB_ATTRIBUTES.contains(&name.as_str()));
    item.extend(ours);
    serde_json::Value::Object(item)
}

/// Whether SQLite refused for a lock another connection holds.
fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[async_trait]
impl JobStore for SqliteJobStore {
    async fn get_job(&self, job_id: &str) -> anyhow::Result<Option<Job>> {
        let job_id = job_id.to_string();
        self.with(move |c| {
            let row: Option<(i64, String)> = c
                .query_row(
                    "SELECT version, item FROM jobs WHERE job_id = ?1",
                    params![job_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((version, text)) = row else {
                return Ok(None);
            };
            let mut job: Job = serde_json::from_str(&text)
                .with_context(|| format!("job {job_id} is malformed"))?;
            // The column is what writes are conditional on, whatever a hand-written item says.
            job.version = u64::try_from(version).unwrap_or(0);
            Ok(Some(job))
        })
        .await
    }

    async fn put_job(&self, job: &Job, expected: Option<u64>) -> anyhow::Result<bool> {
        let ours = serde_json::to_value(job)?;
        let (job_id, version) = (job.job_id.clone(), job.version as i64);
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<(i64, String)> = tx
                .query_row(
                    "SELECT version, item FROM jobs WHERE job_id = ?1",
                    params![job_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            match (expected, current) {
                (None, None) => {
                    tx.execute(
                        "INSERT INTO jobs (job_id, version, item) VALUES (?1, ?2, ?3)",
                        params![job_id, version, ours.to_string()],
                    )?;
                }
                (Some(expected), Some((stored, text))) if stored == expected as i64 => {
                    tx.execute(
                        "UPDATE jobs SET version = ?2, item = ?3 WHERE job_id = ?1",
                        params![job_id, version, merged(&text, ours).to_string()],
                    )?;
                }
                _ => return Ok(false),
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl RunSlots for SqliteJobStore {
    async fn insert_run(
        &self,
        job_id: &str,
        job_run_time: i64,
        item: &serde_json::Value,
    ) -> anyhow::Result<bool> {
        let (job_id, item) = (job_id.to_string(), item.to_string());
        self.with(move |c| {
            let inserted = c.execute(
                "INSERT INTO job_run_details (job_id, job_run_time, item) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![job_id, job_run_time, item],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn run_id_at(&self, job_id: &str, job_run_time: i64) -> anyhow::Result<Option<String>> {
        let job_id = job_id.to_string();
        let text: Option<String> = self
            .with(move |c| {
                Ok(c.query_row(
                    "SELECT item FROM job_run_details WHERE job_id = ?1 AND job_run_time = ?2",
                    params![job_id, job_run_time],
                    |row| row.get(0),
                )
                .optional()?)
            })
            .await?;
        Ok(text
            .and_then(|text| serde_json::from_str(&text).ok())
            .and_then(|item| run_id_of(&item)))
    }
}

#[async_trait]
impl RunLog for SqliteJobStore {
    async fn add_run(&self, record: &RunRecord) -> anyhow::Result<i64> {
        add_at_free_time(self, record).await
    }

    async fn recent_runs(&self, job_id: &str, limit: usize) -> anyhow::Result<Vec<StoredRun>> {
        let job_id = job_id.to_string();
        self.with(move |c| {
            let mut statement = c.prepare(
                "SELECT job_run_time, item FROM job_run_details WHERE job_id = ?1
                 ORDER BY job_run_time DESC LIMIT ?2",
            )?;
            let rows = statement.query_map(params![job_id, limit as i64], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })?;
            let mut runs = Vec::new();
            for row in rows {
                let (time, text) = row?;
                runs.push(match serde_json::from_str(&text) {
                    Ok(item) => RunRecord::read(&job_id, Some(time), item),
                    Err(e) => Err(UnreadableRun {
                        job_run_time: Some(time),
                        error: format!("not JSON: {e}"),
                    }),
                });
            }
            Ok(runs)
        })
        .await
    }
}
