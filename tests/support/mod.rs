//! Test harness shared by the AWS-path tests: a moto server (started once per test binary, on a
//! free port, stopped with it) and a GHArchive mirror over HTTP that can be told to misbehave.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adapters::DynamoJobStore;

// ---------------------------------------------------------------------------------------------
// moto

pub struct Moto {
    pub endpoint: String,
    _child: Mutex<Child>,
}

/// The curated table in `bucket` as readers see it, key → bytes: the parts its newest version
/// references (named by their slot, without the run: two runs of one file compare equal), and
/// the other objects but its log, the runs' staging and their event-id lists.
pub async fn table_objects(bucket: &str) -> BTreeMap<String, Vec<u8>> {
    let store: std::sync::Arc<dyn object_store::ObjectStore> =
        std::sync::Arc::new(s3_store(bucket));
    objects_as_read(&store, lake_table::Place::Bucket(bucket.into()), true).await
}

/// What readers see of the lake in `store`, key → bytes: the table's referenced parts (by their
/// slot when `by_slot`), the quarantine and other objects; not the log, staging or id lists.
pub async fn objects_as_read(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    place: lake_table::Place,
    by_slot: bool,
) -> BTreeMap<String, Vec<u8>> {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let table = lake_table::Table::new(store.clone(), "ghactivity/", place);
    let referenced: std::collections::BTreeSet<String> =
        match lake_table::snapshot::load(&table).await.unwrap() {
            Some(state) => state.files.into_iter().map(|f| f.key).collect(),
            None => Default::default(),
        };
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut objects = BTreeMap::new();
    for meta in listed {
        let key = meta.location.to_string();
        let internal = key.starts_with("_staging/")
            || key.starts_with("_commits/")
            || key.contains("/_delta_log/")
            || (key.starts_with("ghactivity/") && !referenced.contains(&key));
        if internal {
            continue;
        }
        let bytes = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let (folder, name) = key.rsplit_once('/').unwrap_or(("", &key));
        let key = match events::part_slot(name).filter(|_| by_slot) {
            Some(slot) => format!("{folder}/{slot}"),
            None => key.clone(),
        };
        objects.insert(key, bytes.to_vec());
    }
    objects
}

/// Part keys by their slot (without the run that wrote them).
pub fn slots(keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|key| {
            let (folder, name) = key.rsplit_once('/').unwrap_or(("", key));
            match events::part_slot(name) {
                Some(slot) => format!("{folder}/{slot}"),
                None => key.clone(),
            }
        })
        .collect()
}

/// Trials of a many-trial fault test: a handful in CI, `ELT_TRIALS` for longer runs.
pub fn trials(default: usize) -> usize {
    std::env::var("ELT_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `storage_options` for Python `deltalake` (and delta-rs) to read a table on this binary's
/// moto server.
pub fn delta_storage_options() -> serde_json::Value {
    serde_json::json!({
        "AWS_ENDPOINT_URL": moto().endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ALLOW_HTTP": "true",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
    })
}

/// The moto server of this test binary. It dies with the binary (PR_SET_PDEATHSIG).
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let port = free_port();
        let mut command = Command::new("python3");
        command
            // moto.server with the DynamoDB mends its launcher describes.
            .args(["-c", include_str!("moto_server.py")])
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
        // The death signal follows the thread that spawned the child, and test threads end
        // early: spawn from a thread that lives as long as the binary.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(command.spawn());
            loop {
                std::thread::park();
            }
        });
        let child = receiver
            .recv()
            .expect("the moto thread answers")
            .expect("python3 -m moto.server starts (pip install 'moto[server]')");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port}: is moto[server] installed? (pip install 'moto[server]')"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            _child: Mutex::new(child),
        }
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A name no other test uses: buckets and tables are per test.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A signed client of one of the emulator's buckets (moto refuses some unsigned requests:
/// reads of keys with `=`, overwrites).
pub fn s3_store(bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&moto().endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_bucket_name(bucket)
        .build()
        .expect("an S3 client of the emulator")
}

/// Emulator credentials and endpoint, as an operator would set them.
pub fn aws_env(command: &mut Command) -> &mut Command {
    for var in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"] {
        command.env_remove(var);
    }
    command
        .env("AWS_ENDPOINT_URL", &moto().endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

/// One test's bucket and tables in the emulator.
pub struct AwsWorld {
    pub sdk: aws_config::SdkConfig,
    pub bucket: String,
    pub jobs_table: String,
    pub runs_table: String,
    pub jobs: DynamoJobStore,
    pub http: reqwest::Client,
}

impl AwsWorld {
    /// A bucket (versioned or not) and both job tables.
    pub async fn new(versioned: bool) -> AwsWorld {
        let world = AwsWorld::without_tables(versioned).await;
        world.jobs.create_tables().await.expect("tables created");
        world
    }

    /// A bucket, and names for the job tables, which are left for the test to create.
    pub async fn without_tables(versioned: bool) -> AwsWorld {
        let moto = moto();
        let sdk = adapters::aws::sdk_config_loader()
            .endpoint_url(&moto.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .load()
            .await;
        let (jobs_table, runs_table) = (unique("jobs"), unique("job_run_details"));
        let world = AwsWorld {
            jobs: DynamoJobStore::new(&sdk, &jobs_table, &runs_table),
            sdk,
            bucket: unique("raw"),
            jobs_table,
            runs_table,
            http: reqwest::Client::new(),
        };
        // moto takes unsigned S3 requests: enough for set-up and inspection.
        world.s3(reqwest::Method::PUT, "", None).await;
        if versioned {
            world
                .s3(
                    reqwest::Method::PUT,
                    "?versioning",
                    Some("<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"),
                )
                .await;
        }
        world
    }

    async fn s3(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> Vec<u8> {
        self.s3_in(
            &self.bucket,
            method,
            path,
            body.map(|b| b.as_bytes().to_vec()),
        )
        .await
    }

    /// An unsigned request to moto's S3: `path` follows the bucket name.
    pub async fn s3_in(
        &self,
        bucket: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Vec<u8> {
        let url = format!("{}/{bucket}{path}", moto().endpoint);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("moto answers");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.bytes().await.unwrap().to_vec()
    }

    /// The item of job `job_id`, which must exist.
    pub async fn job(&self, job_id: &str) -> events::jobs::Job {
        adapters::JobStore::get_job(&self.jobs, job_id)
            .await
            .expect("the jobs table answers")
            .expect("the job item exists")
    }

    /// The object at `key`, or `None`.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let url = format!("{}/{}/{key}", moto().endpoint, self.bucket);
        let response = self.http.get(&url).send().await.expect("moto answers");
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        Some(response.bytes().await.unwrap().to_vec())
    }

    /// Keys in the bucket, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let body =
            String::from_utf8(self.s3(reqwest::Method::GET, "?list-type=2", None).await).unwrap();
        let mut keys = tag_values(&body, "Key");
        keys.sort();
        keys
    }

    /// How many versions each key has (the bucket must be versioned).
    pub async fn versions(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        let mut page = "?versions".to_string();
        loop {
            let body = self.s3(reqwest::Method::GET, &page, None).await;
            let body = String::from_utf8(body).unwrap();
            for version in body.split("<Version>").skip(1) {
                if let Some(key) = tag_values(version, "Key").into_iter().next() {
                    *counts.entry(key).or_insert(0) += 1;
                }
            }
            // A thousand versions a page.
            if tag_values(&body, "IsTruncated").first().map(String::as_str) != Some("true") {
                return counts;
            }
            let next = |tag| {
                tag_values(&body, tag)
                    .into_iter()
                    .next()
                    .unwrap_or_default()
            };
            let (key, version) = (next("NextKeyMarker"), next("NextVersionIdMarker"));
            page = format!("?versions&key-marker={key}&version-id-marker={version}");
        }
    }

    /// Multipart uploads begun and neither completed nor aborted.
    pub async fn open_uploads(&self) -> usize {
        let body =
            String::from_utf8(self.s3(reqwest::Method::GET, "?uploads", None).await).unwrap();
        body.matches("<Upload>").count()
    }

    /// The Lambda binary `program` as Lambda starts it, talking to the Runtime API at
    /// `runtime_api`, with this world's AWS settings.
    pub fn lambda(&self, program: &str, runtime_api: &str) -> Command {
        let mut command = self.command(program, &[]);
        command
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "ingest")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ingest")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test");
        command
    }

    /// `program` (`elt`, or a Lambda binary) with this world's AWS settings.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        aws_env(&mut command)
            .args(args)
            .env("RAW_BUCKET", &self.bucket)
            .env("JOBS_TABLE", &self.jobs_table)
            .env("JOB_RUNS_TABLE", &self.runs_table)
            .env("RETRY_BASE_MS", "20")
            .env("READ_TIMEOUT_SECONDS", "1")
            .env("RUST_LOG", "warn");
        command
    }
}

/// A queue whose messages go to a dead-letter queue of their own after `max_receives`
/// receives: `(queue URL, dead-letter queue URL)`.
pub async fn queue_with_dead_letters(
    sdk: &aws_config::SdkConfig,
    name: &str,
    max_receives: u32,
) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let create = |name: String| sqs.create_queue().queue_name(name);
    let dlq = create(unique(&format!("{name}-dlq")))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = queue_arn(sdk, &dlq).await;
    let policy =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receives}"}}"#);
    let queue = create(unique(name))
        .attributes(QueueAttributeName::RedrivePolicy, policy)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (queue, dlq)
}

pub async fn queue_arn(sdk: &aws_config::SdkConfig, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    aws_sdk_sqs::Client::new(sdk)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap()
}

impl AwsWorld {
    /// The raw bucket notifies `queue` of objects created under `prefix`, as the stack's does.
    pub async fn notify(&self, queue: &str, prefix: &str) {
        self.notify_of(queue, prefix, "s3:ObjectCreated:*").await;
    }

    /// The same for one kind of event (S3 sends one notification per new object; moto sends
    /// two for a multipart upload, a `Put` and a `CompleteMultipartUpload`).
    pub async fn notify_of(&self, queue: &str, prefix: &str, event: &str) {
        let queue_arn = queue_arn(&self.sdk, queue).await;
        let notification = format!(
            "<NotificationConfiguration><QueueConfiguration><Id>raw-files</Id>\
             <Queue>{queue_arn}</Queue><Event>{event}</Event>\
             <Filter><S3Key><FilterRule><Name>prefix</Name><Value>{prefix}</Value></FilterRule>\
             </S3Key></Filter></QueueConfiguration></NotificationConfiguration>"
        );
        let body = Some(notification.into_bytes());
        self.s3_in(&self.bucket, reqwest::Method::PUT, "?notification", body)
            .await;
    }
}

fn tag_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// the GHArchive mirror

/// `bytes` gzipped (fast level).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A small gzip hour file of `events` real-shaped lines (ids made unique, times inside the
/// hour), quick to build.
pub fn gzip_lines(hour: &str, events: usize) -> Vec<u8> {
    let real = include_str!("../../fixtures/real-events.jsonl");
    let start = hour.parse::<events::Hour>().expect("an hour").start();
    let mut lines = Vec::new();
    for (n, line) in real.lines().cycle().take(events).enumerate() {
        let mut event: serde_json::Value = serde_json::from_str(line).expect("a real event");
        event["id"] = format!("{}{n:06}", hour.replace('-', "")).into();
        let at = start + chrono::Duration::seconds((n * 3600 / events.max(1)) as i64);
        event["created_at"] = at.format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
        writeln!(lines, "{event}").unwrap();
    }
    gzip(&lines)
}

/// What the mirror does to the next request for a file.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Send the headers and half the body, then reset the connection.
    Reset,
    /// Announce the full length, send half, close.
    Truncate,
    /// No length announced: send half and close (only the gzip check can tell).
    CutWithoutLength,
    /// Send half, go silent for this long, then the rest.
    Stall(Duration),
    /// Send the body in small pieces with pauses; it completes.
    Slow,
    /// Answer 404 although the file exists.
    NotFound,
    /// Answer 200 with bytes that are not gzip.
    Garbage,
    /// Announce the full length, then send a byte at a time with this pause between them.
    Trickle(Duration),
    /// Answer 302 to this URL.
    Redirect(String),
}

#[derive(Default)]
struct MirrorState {
    files: HashMap<String, Vec<u8>>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Faults applied to every request for the path, forever.
    always: HashMap<String, Fault>,
    requests: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct Mirror {
    pub url: String,
    state: Arc<Mutex<MirrorState>>,
}

impl Mirror {
    pub fn start() -> Mirror {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(MirrorState::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Mirror { url, state }
    }

    pub fn put(&self, name: &str, bytes: Vec<u8>) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(format!("/{name}"), bytes);
    }

    /// The next requests for `name` meet these faults, in order; later ones are served well.
    pub fn faults(&self, name: &str, faults: &[Fault]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(format!("/{name}"))
            .or_default()
            .extend(faults.iter().cloned());
    }

    pub fn always(&self, name: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .always
            .insert(format!("/{name}"), fault);
    }

    /// Ends an `always` fault: the file is served as it is.
    pub fn heal(&self, name: &str) {
        self.state
            .lock()
            .unwrap()
            .always
            .remove(&format!("/{name}"));
    }

    pub fn requests(&self, name: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .requests
            .get(&format!("/{name}"))
            .copied()
            .unwrap_or(0)
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<MirrorState>) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let (body, fault) = {
        let mut state = state.lock().unwrap();
        *state.requests.entry(path.clone()).or_default() += 1;
        let fault = state
            .faults
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .or_else(|| state.always.get(&path).cloned());
        (state.files.get(&path).cloned(), fault)
    };
    let _ = respond(&mut stream, body, fault);
}

fn respond(
    stream: &mut TcpStream,
    body: Option<Vec<u8>>,
    fault: Option<Fault>,
) -> std::io::Result<()> {
    let status = |stream: &mut TcpStream, code: u16| {
        write!(
            stream,
            "HTTP/1.1 {code} Fault\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    let Some(body) = body else {
        return status(stream, 404);
    };
    let head = |stream: &mut TcpStream, len: Option<usize>| {
        let length = len
            .map(|n| format!("Content-Length: {n}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\n{length}Connection: close\r\n\r\n"
        )
    };
    let half = body.len() / 2;
    match fault {
        None => {
            head(stream, Some(body.len()))?;
            stream.write_all(&body)
        }
        Some(Fault::Status(code)) => status(stream, code),
        Some(Fault::NotFound) => status(stream, 404),
        Some(Fault::Reset) => {
            head(stream, Some(body.len()))?;
            stream.write_all(&body[..half])?;
            stream.flush()?;
            // SO_LINGER 0: closing sends RST instead of FIN.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid socket and a correctly sized option value.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(stream),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            Ok(())
        }
        Some(Fault::Truncate) => {
            head(stream, Some(body.len()))?;
            stream.write_all(&body[..half])
        }
        Some(Fault::CutWithoutLength) => {
            head(stream, None)?;
            stream.write_all(&body[..half])
        }
        Some(Fault::Stall(pause)) => {
            head(stream, Some(body.len()))?;
            stream.write_all(&body[..half])?;
            stream.flush()?;
            std::thread::sleep(pause);
            stream.write_all(&body[half..])
        }
        Some(Fault::Slow) => {
            head(stream, Some(body.len()))?;
            for piece in body.chunks(body.len().div_ceil(8).max(1)) {
                stream.write_all(piece)?;
                stream.flush()?;
                std::thread::sleep(Duration::from_millis(150));
            }
            Ok(())
        }
        Some(Fault::Trickle(pause)) => {
            head(stream, Some(body.len()))?;
            for byte in &body {
                stream.write_all(std::slice::from_ref(byte))?;
                stream.flush()?;
                std::thread::sleep(pause);
            }
            Ok(())
        }
        Some(Fault::Redirect(to)) => write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Some(Fault::Garbage) => {
            let junk = b"<html>not the file you want</html>".repeat(100);
            head(stream, Some(junk.len()))?;
            stream.write_all(&junk)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// a stand-in for the Lambda Runtime API, to run a Lambda binary through its runtime loop

/// What the function posted back for an invocation.
#[derive(Debug)]
pub struct Answer {
    pub request_id: String,
    pub kind: String,
    pub body: String,
}

/// Serves `events` one per `next` call, then holds further `next` calls; reports every answer.
pub fn runtime_api(events: Vec<String>) -> (String, mpsc::Receiver<Answer>) {
    runtime_api_until(events, Duration::from_secs(300))
}

/// [`runtime_api`], each invocation's deadline (`Lambda-Runtime-Deadline-Ms`) `deadline_in`
/// after it is handed out, as the function's timeout sets it.
pub fn runtime_api_until(
    events: Vec<String>,
    deadline_in: Duration,
) -> (String, mpsc::Receiver<Answer>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (answers, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut events = events.into_iter().enumerate();
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut stream = stream;
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            if path.ends_with("/invocation/next") {
                let Some((n, event)) = events.next() else {
                    // No more work: keep this call waiting, as Lambda does between events.
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_secs(600));
                        drop(stream);
                    });
                    continue;
                };
                let deadline = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
                    + deadline_in.as_millis();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Lambda-Runtime-Aws-Request-Id: request-{n}\r\n\
                     Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                     Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:ingest\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{event}",
                    event.len()
                );
            } else {
                // .../invocation/{id}/response or .../invocation/{id}/error
                let parts: Vec<&str> = path.trim_end_matches('/').rsplit('/').collect();
                let _ = answers.send(Answer {
                    kind: parts.first().copied().unwrap_or_default().to_string(),
                    request_id: parts.get(1).copied().unwrap_or_default().to_string(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let _ = write!(
                    stream,
                    "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                );
            }
        }
    });
    (address, receiver)
}

/// The run record an `elt ingest` printed as its first line (with its output, when it printed none).
pub fn run_record(output: &std::process::Output) -> events::jobs::IngestRun {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().next().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "no run record ({e}); stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}
