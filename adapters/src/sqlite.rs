//! [`JobStore`] on an SQLite file, for local mode. Items are stored as the same JSON documents
//! DynamoDB holds, so both stores read and write the same records; processes sharing the file
//! are serialised by SQLite's locks.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use events::jobs::Job;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::jobs::{JobStore, RUN_TIME_PROBES};

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

    async fn add_run(
        &self,
        job_id: &str,
        job_run_time: i64,
        record: &serde_json::Value,
    ) -> anyhow::Result<i64> {
        let mut record = record.clone();
        let job_id = job_id.to_string();
        self.with(move |c| {
            for time in job_run_time..job_run_time + RUN_TIME_PROBES {
                if let Some(fields) = record.as_object_mut() {
                    fields.insert("job_id".into(), job_id.clone().into());
                    fields.insert("job_run_time".into(), time.into());
                }
                let inserted = c.execute(
                    "INSERT INTO job_run_details (job_id, job_run_time, item) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                    params![job_id, time, record.to_string()],
                )?;
                if inserted == 1 {
                    return Ok(time);
                }
            }
            anyhow::bail!("no free job_run_time for {job_id} near {job_run_time}")
        })
        .await
    }

    async fn recent_runs(
        &self,
        job_id: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let job_id = job_id.to_string();
        self.with(move |c| {
            let mut statement = c.prepare(
                "SELECT item FROM job_run_details WHERE job_id = ?1
                 ORDER BY job_run_time DESC LIMIT ?2",
            )?;
            let rows = statement
                .query_map(params![job_id, limit as i64], |row| row.get::<_, String>(0))?;
            rows.map(|text| Ok(serde_json::from_str(&text?)?)).collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(version: u64) -> Job {
        Job {
            version,
            ..Job::new("j", 3, chrono::Utc::now())
        }
    }

    #[tokio::test]
    async fn writes_are_conditional_on_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteJobStore::open(&dir.path().join("state.sqlite")).unwrap();
        assert!(store.put_job(&job(0), None).await.unwrap());
        assert!(
            !store.put_job(&job(0), None).await.unwrap(),
            "created twice"
        );
        assert!(store.put_job(&job(1), Some(0)).await.unwrap());
        assert!(
            !store.put_job(&job(2), Some(0)).await.unwrap(),
            "stale version won"
        );
        assert_eq!(store.get_job("j").await.unwrap().unwrap().version, 1);

        let a = store
            .add_run("j", 5, &serde_json::json!({"n": 1}))
            .await
            .unwrap();
        let b = store
            .add_run("j", 5, &serde_json::json!({"n": 2}))
            .await
            .unwrap();
        assert_eq!(
            (a, b),
            (5, 6),
            "a second run at the same time replaced the first"
        );
        let runs = store.recent_runs("j", 10).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["n"], 2, "newest first");
    }

    #[tokio::test]
    async fn an_item_seeded_by_hand_is_read_and_its_own_fields_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = SqliteJobStore::open(&path).unwrap();
        // As a person would: sqlite3 lake/state.sqlite "INSERT INTO jobs …".
        Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO jobs VALUES ('j', 0, '{\"job_id\": \"j\", \"baseline_days\": \"2\", \"note\": \"mine\",
                  \"job_run_bookmark_details\": {\"last_run_file_name\": \"2024-03-05-14.json.gz\"}}')",
                [],
            )
            .unwrap();
        let mut seeded = store.get_job("j").await.unwrap().unwrap();
        assert_eq!((seeded.version, seeded.baseline_days), (0, Some(2)));
        seeded.baseline_days = None;
        seeded.version = 1;
        assert!(store.put_job(&seeded, Some(0)).await.unwrap());
        let text: String = Connection::open(&path)
            .unwrap()
            .query_row("SELECT item FROM jobs", [], |row| row.get(0))
            .unwrap();
        let item: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(item["note"], "mine", "{text}");
        assert!(item.get("baseline_days").is_none(), "{text}");
        assert_eq!(
            item["job_run_bookmark_details"]["last_run_file_name"],
            "2024-03-05-14"
        );
    }
}
