//! Exactly once on S3 and DynamoDB (moto): concurrent transforms of one hour with different part
//! sizes, neighbouring hours transformed at the same moment, and S3 faults injected into every
//! step of a transform and its commit. `ELT_TRIALS=N` runs more trials.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use adapters::CommitStore;
use events::commits::{commit_key, CommitState, HourCommit};
use events::TransformSummary;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use support::AwsWorld;

const RAW_PREFIX: &str = "landing/ghactivity/";

fn s3_store(bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(support::s3_store(bucket))
}

/// A world with a curated bucket beside the raw one.
async fn world() -> (AwsWorld, String) {
    let world = AwsWorld::new(false).await;
    let curated = support::unique("curated");
    world.s3_in(&curated, reqwest::Method::PUT, "", None).await;
    (world, curated)
}

async fn put(store: &Arc<dyn ObjectStore>, key: &str, bytes: Vec<u8>) {
    store.put(&Path::from(key), bytes.into()).await.unwrap();
}

/// The table's and the quarantine's objects, by key: what readers see.
async fn table(store: &Arc<dyn ObjectStore>) -> BTreeMap<String, Vec<u8>> {
    // The store is the test's own: the table opened through it, whatever its bucket's name.
    support::objects_as_read(store, lake_table::Place::Memory, false).await
}

fn parquet_rows(bytes: &[u8]) -> u64 {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.to_vec())).unwrap();
    reader.metadata().file_metadata().num_rows() as u64
}

async fn record(world: &AwsWorld, hour: &str) -> Option<HourCommit> {
    world
        .jobs
        .get_commit(&commit_key("ghactivity/", hour.parse().unwrap()))
        .await
        .unwrap()
}

/// Checks that the hour's parts in the table are exactly those its commit names, whole.
async fn assert_whole(
    world: &AwsWorld,
    objects: &BTreeMap<String, Vec<u8>>,
    hour: &str,
) -> HourCommit {
    let record = record(world, hour).await.expect("the hour is committed");
    assert_eq!(record.state, CommitState::Committed, "{record:?}");
    let parts: Vec<&String> = objects
        .keys()
        .filter(|k| k.contains(&format!("/part-{hour}-")))
        .collect();
    assert_eq!(
        parts,
        record.parts.iter().collect::<Vec<_>>(),
        "{hour}: exactly the committed parts"
    );
    let rows: u64 = parts.iter().map(|k| parquet_rows(&objects[*k])).sum();
    assert_eq!(
        rows, record.counts.rows,
        "{hour}: the parts hold the rows the commit counted"
    );
    record
}

fn verify(world: &AwsWorld, curated: &str, from: &str, to: &str) {
    let out = world
        .command(
            env!("CARGO_BIN_EXE_elt"),
            &["verify", "--aws", "--from", from, "--to", to],
        )
        .env("CURATED_BUCKET", curated)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transforms_of_one_hour_with_different_part_sizes_leave_one_whole_result() {
    let (world, curated) = world().await;
    let raw_store = s3_store(&world.bucket);
    let curated_store = s3_store(&curated);
    let sizes = ["1", "256", "2", "4"];
    for trial in 0..support::trials(2) {
        let runs = [2, 8, 4, 6, 3, 5, 7][trial % 7];
        let hour = format!("2025-03-06-{}", (trial * 3) % 24);
        let key = format!("{RAW_PREFIX}{hour}.json.gz");
        put(&raw_store, &key, support::gzip_lines(&hour, 3000)).await;
        let url = format!("s3://{}/{key}", world.bucket);
        let children: Vec<_> = (0..runs)
            .map(|i| {
                world
                    .command(
                        env!("CARGO_BIN_EXE_elt"),
                        &[
                            "transform",
                            "--aws",
                            "--max-part-mib",
                            sizes[i % sizes.len()],
                            &url,
                        ],
                    )
                    .env("CURATED_BUCKET", &curated)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut summaries = Vec::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            summaries.push(serde_json::from_slice::<TransformSummary>(&out.stdout).unwrap());
        }
        let objects = table(&curated_store).await;
        let record = assert_whole(&world, &objects, &hour).await;
        let winners: Vec<&TransformSummary> = summaries
            .iter()
            .filter(|s| s.superseded.is_none() && s.generation == record.generation)
            .collect();
        assert_eq!(winners.len(), 1, "trial {trial}: {summaries:#?}");
        assert_eq!(
            winners[0].outputs, record.parts,
            "the lake holds the winner's output"
        );
        assert_eq!(winners[0].rows, record.counts.rows);
        verify(&world, &curated, &hour, &hour);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbouring_hours_transformed_at_once_keep_each_event_once() {
    let (world, curated) = world().await;
    let raw_store = s3_store(&world.bucket);
    let curated_store = s3_store(&curated);
    for trial in 0..support::trials(2) {
        let first = format!("2025-04-0{}-10", trial % 9 + 1);
        let second = format!("2025-04-0{}-11", trial % 9 + 1);
        let a = gunzip(&support::gzip_lines(&first, 1500));
        let b = gunzip(&support::gzip_lines(&second, 1500));
        let repeated: String = a.lines().take(400).map(|l| format!("{l}\n")).collect();
        let b = format!("{repeated}{b}");
        let mut urls = Vec::new();
        for (hour, text) in [(&first, &a), (&second, &b)] {
            let key = format!("{RAW_PREFIX}{hour}.json.gz");
            put(&raw_store, &key, support::gzip(text.as_bytes())).await;
            urls.push(format!("s3://{}/{key}", world.bucket));
        }
        let children: Vec<_> = urls
            .iter()
            .map(|url| {
                world
                    .command(env!("CARGO_BIN_EXE_elt"), &["transform", "--aws", url])
                    .env("CURATED_BUCKET", &curated)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut across = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            across += serde_json::from_slice::<TransformSummary>(&out.stdout)
                .unwrap()
                .duplicates_across_hours;
        }
        assert_eq!(across, 400, "trial {trial}");
        let objects = table(&curated_store).await;
        let mut rows = 0;
        for hour in [&first, &second] {
            rows += assert_whole(&world, &objects, hour).await.counts.rows;
        }
        assert_eq!(rows, 3000, "each of the 3,000 distinct events once");
        verify(&world, &curated, &first, &second);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_read_an_older_upload_of_the_raw_object_gives_up() {
    let (world, curated) = world().await;
    let (raw, store) = (s3_store(&world.bucket), s3_store(&curated));
    let lake = transform::Lake {
        store: store.clone(),
        commits: Arc::new(adapters::DynamoJobStore::new(
            &world.sdk,
            &world.jobs_table,
            &world.runs_table,
        )),
        place: lake_table::Place::Bucket(curated.clone()),
    };
    let hour = "2025-07-01-9";
    let key = Path::from(format!("{RAW_PREFIX}{hour}.json.gz"));
    // The object as it was when a run read it, and the run, replayed later.
    let read = |bytes: Vec<u8>, meta: ObjectMeta| transform::RawFile {
        source: format!("{hour}.json.gz"),
        hour: hour.parse().unwrap(),
        body: Box::new(std::io::Cursor::new(bytes)),
        progress: Arc::default(),
        version: events::commits::SourceVersion {
            location: format!("s3://{}/{key}", world.bucket),
            e_tag: meta.e_tag,
            version: meta.version,
            last_modified: Some(meta.last_modified),
            size: meta.size,
        },
    };
    let options = transform::TransformOptions::default();
    let first = support::gzip_lines(hour, 500);
    raw.put(&key, first.clone().into()).await.unwrap();
    let first_meta = raw.head(&key).await.unwrap();
    // A backfill rewrites the object (S3 times have one-second resolution).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = support::gzip_lines(hour, 800);
    raw.put(&key, second.clone().into()).await.unwrap();
    let second_meta = raw.head(&key).await.unwrap();
    let newer = transform::transform(read(second, second_meta).into(), &lake, &options)
        .await
        .unwrap();
    assert_eq!((newer.rows, newer.generation), (800, 1));
    let before = table(&store).await;

    let late = transform::transform(read(first, first_meta).into(), &lake, &options)
        .await
        .unwrap();
    assert!(late.superseded.is_some(), "{late:?}");
    assert_eq!(late.generation, 1);
    assert!(
        table(&store).await == before,
        "the older upload changed the lake"
    );
    assert_eq!(assert_whole(&world, &before, hour).await.counts.rows, 800);
}

// ---------------------------------------------------------------------------------------------
// S3 faults

/// An object store that fails chosen calls: the n-th call (counting from 1) once, or every call
/// from the n-th on.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn ObjectStore>,
    calls: AtomicUsize,
    fail_at: usize,
    persistent: bool,
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

impl Faulty {
    fn new(inner: Arc<dyn ObjectStore>, fail_at: usize, persistent: bool) -> Faulty {
        Faulty {
            inner,
            calls: AtomicUsize::new(0),
            fail_at,
            persistent,
        }
    }

    /// Counts a call; the injected error when it is to fail.
    fn call(&self) -> object_store::Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fails = if self.persistent {
            n >= self.fail_at
        } else {
            n == self.fail_at
        };
        if self.fail_at > 0 && fails {
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: format!("injected fault at call {n}").into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.call()?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.call()?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.call()?;
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.call()?;
        self.inner.get_ranges(location, ranges).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        match self.call() {
            Ok(()) => self.inner.delete_stream(locations),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.call() {
            Ok(()) => self.inner.list(prefix),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.call()?;
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.call()?;
        self.inner.copy_opts(from, to, options).await
    }
    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.call()?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// One in-process transform of `raw` through a faulty curated store.
async fn transform_through(
    world: &AwsWorld,
    curated: &str,
    raw: &std::path::Path,
    faulty: Faulty,
) -> (anyhow::Result<TransformSummary>, usize) {
    let faulty = Arc::new(faulty);
    let lake = transform::Lake {
        store: faulty.clone(),
        commits: Arc::new(adapters::DynamoJobStore::new(
            &world.sdk,
            &world.jobs_table,
            &world.runs_table,
        )),
        place: lake_table::Place::Bucket(curated.to_string()),
    };
    let options = transform::TransformOptions {
        max_part_bytes: 1024 * 1024,
        commit_lease: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let result =
        transform::transform_hour(|| async { transform::RawFile::open(raw) }, &lake, &options)
            .await;
    (result, faulty.calls.load(Ordering::SeqCst))
}

/// The hour's table objects (parts and quarantine).
fn of_hour(objects: &BTreeMap<String, Vec<u8>>, hour: &str) -> BTreeSet<String> {
    objects
        .keys()
        .filter(|k| {
            k.contains(&format!("part-{hour}-")) || k.ends_with(&format!("/{hour}.jsonl.gz"))
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_faults_in_any_step_end_in_a_retry_or_a_clean_failure_never_a_partial_hour() {
    let (world, curated) = world().await;
    let store = s3_store(&curated);
    let dir = tempfile::tempdir().unwrap();
    let raw_of = |hour: &str| {
        let path = dir.path().join(format!("{hour}.json.gz"));
        let mut lines = gunzip(&support::gzip_lines(hour, 3000));
        lines.push_str("{\"cut short\n");
        std::fs::write(&path, support::gzip(lines.as_bytes())).unwrap();
        path
    };
    // A clean run: how many calls a transform and its commit make.
    let hour = "2025-05-01-0";
    let (clean, calls) = transform_through(
        &world,
        &curated,
        &raw_of(hour),
        Faulty::new(store.clone(), 0, false),
    )
    .await;
    let clean = clean.unwrap();
    eprintln!(
        "a clean transform of {} parts and a quarantine made {calls} calls to the curated store",
        clean.outputs.len()
    );
    assert!(
        clean.outputs.len() >= 2 && clean.quarantine.is_some(),
        "{clean:?}"
    );

    // One failed call at every point: each run retries the step or fails before its claim.
    for at in 1..=calls {
        let hour = format!("2025-05-{:02}-{}", 2 + at / 12, (at % 12) * 2);
        let raw = raw_of(&hour);
        let (result, _) = transform_through(
            &world,
            &curated,
            &raw,
            Faulty::new(store.clone(), at, false),
        )
        .await;
        let objects = table(&store).await;
        match result {
            Ok(summary) => {
                let record = assert_whole(&world, &objects, &hour).await;
                assert_eq!(summary.outputs, record.parts);
            }
            Err(e) => {
                assert!(
                    of_hour(&objects, &hour).is_empty(),
                    "fault at call {at} left part of {hour}: {e:#}"
                );
                assert!(
                    record(&world, &hour).await.is_none(),
                    "fault at call {at}: {e:#}"
                );
            }
        }
    }

    // S3 gone from some call on: the run fails; what it leaves is either nothing or a claim the
    // next delivery completes.
    let n = support::trials(3);
    for trial in 0..n {
        let at = calls - trial * calls / (2 * n);
        let hour = format!("2025-06-01-{trial}");
        let raw = raw_of(&hour);
        let (result, _) =
            transform_through(&world, &curated, &raw, Faulty::new(store.clone(), at, true)).await;
        if result.is_ok() {
            continue; // only the best-effort clean-up after the commit failed
        }
        let (again, _) =
            transform_through(&world, &curated, &raw, Faulty::new(store.clone(), 0, false)).await;
        again.unwrap();
        assert_whole(&world, &table(&store).await, &hour).await;
        verify_raw_less(&world, &curated, &hour);
    }
}

/// `elt verify` for an hour whose raw file is not in the raw bucket (it was read from a local
/// file): clean but for that.
fn verify_raw_less(world: &AwsWorld, curated: &str, hour: &str) {
    let out = world
        .command(
            env!("CARGO_BIN_EXE_elt"),
            &[
                "verify", "--aws", "--from", hour, "--to", hour, "--format", "json",
            ],
        )
        .env("CURATED_BUCKET", curated)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["raw_missing"], "{report}");
}
