//! The stores' contract (`contract/mod.rs`) run against each store: SQLite in a temporary
//! folder, and DynamoDB on a moto server this binary starts (`python3 -m moto.server`, as the
//! root crate's tests do), with tables of its own per test.

mod contract;

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use adapters::{CommitStore, DynamoJobStore, JobStore, RunLog, SqliteJobStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use contract::Subject;

/// Every contract check, as a test per store: `$subject` is an async fn making a fresh one.
macro_rules! contract_tests {
    ($subject:path) => {
        contract_tests!($subject;
            put_job_is_conditional_on_the_version,
            a_job_seeded_by_hand_is_version_zero_and_keeps_its_own_attributes,
            a_version_written_as_text_counts_as_its_number,
            add_run_never_replaces_another_run_s_record,
            a_run_written_again_after_a_lost_reply_is_stored_once,
            transform_runs_read_back_as_written,
            recent_runs_are_newest_first_and_limited,
            an_unreadable_run_record_is_returned_with_the_reason,
            commits_are_conditional_on_own_and_neighbour_generations,
        );
    };
    ($subject:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                crate::contract::$check(&$subject().await).await;
            }
        )+
    };
}

mod sqlite {
    contract_tests!(super::sqlite_subject);
}

mod dynamodb {
    contract_tests!(super::dynamodb_subject);
}

// ---------------------------------------------------------------------------------------------
// SQLite

struct Sqlite {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: SqliteJobStore,
}

async fn sqlite_subject() -> Sqlite {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("state.sqlite");
    let store = SqliteJobStore::open(&path).expect("the database opens");
    Sqlite {
        _dir: dir,
        path,
        store,
    }
}

impl Sqlite {
    /// A second connection, as `sqlite3 lake/state.sqlite` would be.
    fn by_hand(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).expect("the database opens")
    }
}

#[async_trait]
impl Subject for Sqlite {
    fn jobs(&self) -> &dyn JobStore {
        &self.store
    }

    fn runs(&self) -> &dyn RunLog {
        &self.store
    }

    fn commits(&self) -> &dyn CommitStore {
        &self.store
    }

    async fn seed_job(&self, item: serde_json::Value) {
        // The column is the version writes are conditional on: a person fills it in as the
        // item says, 0 when it says nothing.
        let version = match &item["version"] {
            serde_json::Value::String(text) => text.parse().expect("a version"),
            other => other.as_i64().unwrap_or(0),
        };
        self.by_hand()
            .execute(
                "INSERT INTO jobs (job_id, version, item) VALUES (?1, ?2, ?3)",
                rusqlite::params![item["job_id"].as_str(), version, item.to_string()],
            )
            .expect("seeded");
    }

    async fn stored_job(&self, job_id: &str) -> serde_json::Value {
        let text: String = self
            .by_hand()
            .query_row("SELECT item FROM jobs WHERE job_id = ?1", [job_id], |row| {
                row.get(0)
            })
            .expect("the item is stored");
        serde_json::from_str(&text).expect("the item is JSON")
    }

    async fn seed_run(&self, job_id: &str, job_run_time: i64, item: serde_json::Value) {
        self.by_hand()
            .execute(
                "INSERT INTO job_run_details (job_id, job_run_time, item) VALUES (?1, ?2, ?3)",
                rusqlite::params![job_id, job_run_time, item.to_string()],
            )
            .expect("seeded");
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB on moto

struct Dynamo {
    client: aws_sdk_dynamodb::Client,
    jobs_table: String,
    runs_table: String,
    store: DynamoJobStore,
}

async fn dynamodb_subject() -> Dynamo {
    let sdk = adapters::aws::sdk_config_loader()
        .endpoint_url(moto_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    let (jobs_table, runs_table) = (unique("jobs"), unique("job_run_details"));
    let store = DynamoJobStore::new(&sdk, &jobs_table, &runs_table);
    store.create_tables().await.expect("tables created");
    Dynamo {
        client: aws_sdk_dynamodb::Client::new(&sdk),
        jobs_table,
        runs_table,
        store,
    }
}

impl Dynamo {
    async fn put(&self, table: &str, item: HashMap<String, AttributeValue>) {
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .expect("seeded");
    }
}

#[async_trait]
impl Subject for Dynamo {
    fn jobs(&self) -> &dyn JobStore {
        &self.store
    }

    fn runs(&self) -> &dyn RunLog {
        &self.store
    }

    fn commits(&self) -> &dyn CommitStore {
        &self.store
    }

    async fn seed_job(&self, item: serde_json::Value) {
        // As the console would: text stays S, numbers N.
        let item = serde_dynamo::to_item(item).expect("an item");
        self.put(&self.jobs_table, item).await;
    }

    async fn stored_job(&self, job_id: &str) -> serde_json::Value {
        let output = self
            .client
            .get_item()
            .table_name(&self.jobs_table)
            .key("job_id", AttributeValue::S(job_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .expect("moto answers");
        serde_dynamo::from_item(output.item.expect("the item is stored")).expect("a document")
    }

    async fn seed_run(&self, job_id: &str, job_run_time: i64, item: serde_json::Value) {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(item).expect("an item");
        item.insert("job_id".into(), AttributeValue::S(job_id.into()));
        item.insert(
            "job_run_time".into(),
            AttributeValue::N(job_run_time.to_string()),
        );
        self.put(&self.runs_table, item).await;
    }
}

/// A table name no other test uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The endpoint of this binary's moto server, started on first use on a free port. It dies
/// with the binary (PR_SET_PDEATHSIG, as in the root crate's `tests/support`).
fn moto_endpoint() -> &'static str {
    static MOTO: OnceLock<(String, Mutex<Child>)> = OnceLock::new();
    &MOTO
        .get_or_init(|| {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let child = spawn_for_the_binary(moto_command(port));
            let deadline = Instant::now() + Duration::from_secs(60);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "moto did not start on port {port}: pip install 'moto[server]'"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            (format!("http://127.0.0.1:{port}"), Mutex::new(child))
        })
        .0
}

fn moto_command(port: u16) -> Command {
    let mut command = Command::new("python3");
    command
        // The root crate's launcher: moto.server with the DynamoDB mends it describes.
        .args(["-c", include_str!("../../tests/support/moto_server.py")])
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to stop moto with us.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    command
}

/// Spawns `command` from a thread that lives as long as the binary: the death signal follows
/// the thread that spawned the child, and test threads end early.
fn spawn_for_the_binary(mut command: Command) -> Child {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(command.spawn());
        loop {
            std::thread::park();
        }
    });
    receiver
        .recv()
        .expect("the spawning thread answers")
        .expect("python3 -m moto.server starts")
}
