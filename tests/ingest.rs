//! End-to-end tests of the ingest (`elt ingest | backfill | status --aws`, `elt run`): the real
//! binary against a moto server and a GHArchive mirror over HTTP that misbehaves on request.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::process::Output;
use std::time::Duration;

use adapters::RunLog;
use aws_sdk_dynamodb::types::AttributeValue;
use events::jobs::{HourOutcome, IngestRun, Job, RunKind, RunRecord, RunStatus, StopReason};
use events::Hour;
use gh_elt::gen::{generate, GenOptions};
use support::{AwsWorld, Fault, Mirror};

/// `elt` with the world's AWS settings.
fn elt(world: &AwsWorld, args: &[&str]) -> std::process::Command {
    world.command(env!("CARGO_BIN_EXE_elt"), args)
}

fn hour(s: &str) -> Hour {
    s.parse().unwrap()
}

/// A GHArchive-shaped hour of `events` events, gzip as GHArchive serves it.
fn hour_file(h: Hour, events: u64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{h}.json.gz"));
    let options = GenOptions {
        seed: u64::from(h.hour()) + 1,
        ..GenOptions::new(h, events)
    };
    generate(&path, &options, |_| {}).unwrap();
    std::fs::read(path).unwrap()
}

/// A whole gzip stream of `len` incompressible bytes: the ingest stores what it receives, so
/// only the size and the gzip framing matter (and it is quick to make in a debug build).
fn big_gzip(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let noise: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut encoder, &noise).unwrap();
    encoder.finish().unwrap()
}

/// Puts the hours `first..=last` on the mirror (except `missing`) and returns them by hour.
fn publish(mirror: &Mirror, first: &str, last: &str, missing: &[&str]) -> BTreeMap<Hour, Vec<u8>> {
    let mut files = BTreeMap::new();
    for h in Hour::range(hour(first), hour(last)) {
        if missing.contains(&h.to_string().as_str()) {
            continue;
        }
        let bytes = hour_file(h, 60);
        mirror.put(&format!("{h}.json.gz"), bytes.clone());
        files.insert(h, bytes);
    }
    files
}

fn raw_key(h: Hour) -> String {
    format!("landing/ghactivity/{h}.json.gz")
}

/// `elt ARGS --aws` at `now` on the mirror; returns the run record it prints and its output.
fn run_elt(
    world: &AwsWorld,
    mirror: &Mirror,
    args: &[&str],
    now: &str,
    env: &[(&str, &str)],
) -> (IngestRun, Output) {
    let mut command = elt(world, args);
    command
        .arg("--aws")
        .env("GHARCHIVE_BASE_URL", &mirror.url)
        .env("ELT_NOW", now);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("elt runs");
    (support::run_record(&output), output)
}

/// `elt ingest --aws` at `now` on the mirror.
fn ingest(
    world: &AwsWorld,
    mirror: &Mirror,
    now: &str,
    env: &[(&str, &str)],
) -> (IngestRun, Output) {
    run_elt(world, mirror, &["ingest"], now, env)
}

async fn job(world: &AwsWorld) -> Job {
    world.job(events::jobs::DEFAULT_INGEST_JOB_ID).await
}

async fn runs(world: &AwsWorld) -> Vec<IngestRun> {
    world
        .jobs
        .recent_runs(events::jobs::DEFAULT_INGEST_JOB_ID, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|stored| match stored {
            Ok(RunRecord::Ingest(run)) => run,
            other => panic!("not an ingest run: {other:?}"),
        })
        .collect()
}

fn bookmark(job: &Job) -> Option<String> {
    job.bookmark_hour().map(|h| h.to_string())
}

/// Every published hour in `files` is in the bucket, byte for byte.
async fn assert_stored(world: &AwsWorld, files: &BTreeMap<Hour, Vec<u8>>) {
    for (h, bytes) in files {
        let stored = world
            .get(&raw_key(*h))
            .await
            .unwrap_or_else(|| panic!("{h} not stored"));
        assert!(
            stored == *bytes,
            "{h}: the stored object differs from the source"
        );
    }
}

fn hours_of(run: &IngestRun) -> Vec<String> {
    run.hours.iter().map(|r| r.hour.to_string()).collect()
}

#[tokio::test]
async fn first_run_starts_at_the_baseline_and_catches_up_across_days() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    // Baseline one day back from 2024-03-06 02:30: 2024-03-05-0 onwards. 2024-03-06-1 is over
    // but not published yet: GHArchive answers 404 for it once.
    let files = publish(&mirror, "2024-03-05-0", "2024-03-06-1", &[]);
    mirror.faults("2024-03-06-1.json.gz", &[Fault::NotFound]);
    let now = "2024-03-06T02:30:00Z";
    let env = [("BASELINE_DAYS", "1"), ("MAX_HOURS_PER_RUN", "10")];

    let (first, _) = ingest(&world, &mirror, now, &env);
    assert_eq!(
        (first.status, first.stop),
        (RunStatus::Ok, StopReason::MaxHours)
    );
    assert_eq!(first.bookmark_before, None);
    assert_eq!(
        first.hours[0].hour,
        hour("2024-03-05-0"),
        "starts at the baseline day"
    );
    assert_eq!(first.hours_ingested, 10);
    let (second, _) = ingest(&world, &mirror, now, &env);
    assert_eq!(second.hours_ingested, 10);
    let (third, output) = ingest(&world, &mirror, now, &env);
    assert!(
        output.status.success(),
        "a not-yet-published hour is not a failure"
    );
    assert_eq!(
        (third.status, third.stop),
        (RunStatus::Ok, StopReason::NotPublished)
    );
    assert_eq!(
        hours_of(&third).first().map(String::as_str),
        Some("2024-03-05-20")
    );
    assert_eq!(
        third.bookmark_after,
        Some(hour("2024-03-06-0")),
        "caught up across midnight"
    );

    // The hour appears; the next one is not over yet.
    let (fourth, _) = ingest(&world, &mirror, now, &env);
    assert_eq!(hours_of(&fourth), ["2024-03-06-1"]);
    assert_eq!(fourth.stop, StopReason::CaughtUp);

    assert_stored(&world, &files).await;
    let mut expected: Vec<String> = files.keys().map(|h| raw_key(*h)).collect();
    expected.sort();
    assert_eq!(world.keys().await, expected, "nothing else in the bucket");
    let job = job(&world).await;
    assert_eq!(bookmark(&job).as_deref(), Some("2024-03-06-1"));
    assert_eq!(job.baseline_days, Some(1));
    assert_eq!(
        job.baseline_day.map(|d| d.to_string()).as_deref(),
        Some("2024-03-05"),
        "the first run pins the baseline day"
    );
    assert!(job.lease.is_none(), "the lease is released");
    let records = runs(&world).await;
    assert_eq!(records.len(), 4, "one record per run");
    assert_eq!(records[0].run_id, fourth.run_id, "newest first");
    assert!(records.iter().all(|r| r.kind == RunKind::Scheduled));
    let total: u32 = records.iter().map(|r| r.hours_ingested).sum();
    assert_eq!(total as usize, files.len());

    let status = elt(&world, &["status", "--aws"]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(text.contains("bookmark: 2024-03-06-1 (ingested"), "{text}");
    assert!(text.contains("not_published"), "{text}");
}

#[tokio::test]
async fn a_long_past_missing_hour_is_an_error_then_skipped() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    let files = publish(&mirror, "2024-03-05-0", "2024-03-05-5", &["2024-03-05-2"]);
    let now = "2024-03-10T00:00:00Z";
    let env = [
        ("INGEST_START_HOUR", "2024-03-05-0"),
        ("INGEST_UNTIL_HOUR", "2024-03-05-5"),
        ("MISSING_HOUR_ATTEMPTS", "2"),
    ];

    let (first, output) = ingest(&world, &mirror, now, &env);
    assert!(!output.status.success(), "a long-past 404 fails the run");
    assert_eq!(
        (first.status, first.stop),
        (RunStatus::Error, StopReason::Failed)
    );
    assert_eq!(
        hours_of(&first),
        ["2024-03-05-0", "2024-03-05-1", "2024-03-05-2"]
    );
    assert_eq!(first.hours[2].outcome, HourOutcome::Missing);
    assert!(
        first.error.as_deref().unwrap_or_default().contains("404"),
        "{first:?}"
    );
    let after_first = job(&world).await;
    assert_eq!(bookmark(&after_first).as_deref(), Some("2024-03-05-1"));
    assert_eq!(
        after_first.failing_hour.as_ref().map(|m| m.attempts),
        Some(1)
    );

    let (second, output) = ingest(&world, &mirror, now, &env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("SKIPPED"), "the skip is loud: {stderr}");
    assert_eq!(second.hours[0].outcome, HourOutcome::Skipped);
    assert!(second.hours[0]
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("SKIPPED"));
    assert_eq!(
        hours_of(&second),
        [
            "2024-03-05-2",
            "2024-03-05-3",
            "2024-03-05-4",
            "2024-03-05-5"
        ]
    );
    assert_eq!(second.hours_ingested, 3);
    let after_second = job(&world).await;
    assert!(after_second.failing_hour.is_none());
    let parked: Vec<String> = after_second
        .parked_hours
        .iter()
        .map(|p| format!("{} {}", p.hour, p.reason))
        .collect();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(
        parked[0].starts_with("2024-03-05-2 ") && parked[0].contains("404"),
        "{parked:?}"
    );
    assert_stored(&world, &files).await;
    assert_eq!(world.get(&raw_key(hour("2024-03-05-2"))).await, None);
}

#[tokio::test]
async fn transient_faults_are_retried_and_the_stored_object_is_whole() {
    let world = AwsWorld::new(true).await;
    let mirror = Mirror::start();
    let files = publish(&mirror, "2024-03-05-0", "2024-03-05-7", &[]);
    let faults: [(&str, Vec<Fault>); 8] = [
        ("2024-03-05-0", vec![Fault::Status(500), Fault::Status(503)]),
        ("2024-03-05-1", vec![Fault::Reset]),
        ("2024-03-05-2", vec![Fault::Truncate]),
        ("2024-03-05-3", vec![Fault::CutWithoutLength]),
        ("2024-03-05-4", vec![Fault::Stall(Duration::from_secs(3))]),
        ("2024-03-05-5", vec![Fault::Slow]),
        ("2024-03-05-6", vec![Fault::Garbage, Fault::Status(429)]),
        ("2024-03-05-7", vec![]),
    ];
    for (h, list) in &faults {
        mirror.faults(&format!("{h}.json.gz"), list);
    }
    let env = [
        ("INGEST_START_HOUR", "2024-03-05-0"),
        ("DOWNLOAD_ATTEMPTS", "4"),
    ];
    let (run, output) = ingest(&world, &mirror, "2024-03-05T08:30:00Z", &env);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        (run.status, run.stop),
        (RunStatus::Ok, StopReason::CaughtUp)
    );
    assert_eq!(run.hours_ingested, 8);
    for (result, (h, list)) in run.hours.iter().zip(&faults) {
        // A slow body that keeps coming is not a fault: it completes at the first attempt.
        let failures = list.iter().filter(|f| !matches!(f, Fault::Slow)).count();
        let name = format!("{h}.json.gz");
        assert_eq!(result.attempts as usize, failures + 1, "{h}");
        assert_eq!(mirror.requests(&name), failures + 1, "{h}");
    }
    assert_stored(&world, &files).await;
    let versions = world.versions().await;
    assert_eq!(versions.len(), files.len());
    assert!(versions.values().all(|&n| n == 1), "one version per key");
    assert_eq!(
        world.open_uploads().await,
        0,
        "failed attempts left multipart uploads behind"
    );
}

/// A body that breaks off is the network's fault, not the hour's: the hour is queued (the
/// bookmark moves on), nothing partial is stored, and the first run after the source recovers
/// fetches it before anything else.
#[tokio::test]
async fn an_hour_whose_body_keeps_breaking_off_is_queued_and_lands_after_recovery() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    let mut files = publish(&mirror, "2024-03-05-0", "2024-03-05-0", &[]);
    // Big enough for several 5 MiB parts, so that parts are uploaded before the body fails.
    let big = big_gzip(12 * 1024 * 1024);
    mirror.put("2024-03-05-1.json.gz", big.clone());
    mirror.always("2024-03-05-1.json.gz", Fault::Truncate);
    let env = [
        ("INGEST_START_HOUR", "2024-03-05-0"),
        ("DOWNLOAD_ATTEMPTS", "3"),
        ("UPLOAD_PART_MIB", "5"),
    ];
    for run_number in 1..=4 {
        let (run, output) = ingest(&world, &mirror, "2024-03-05T08:30:00Z", &env);
        assert!(output.status.success(), "{run:?}");
        assert_eq!(run.status, RunStatus::Ok);
        let failed = run
            .hours
            .iter()
            .find(|h| h.hour == hour("2024-03-05-1"))
            .expect("the broken hour is tried on every run");
        assert_eq!((failed.outcome, failed.attempts), (HourOutcome::Queued, 3));
        let error = failed.error.as_deref().unwrap_or_default();
        assert!(error.contains("broke off"), "{failed:?}");
        assert!(
            run.error
                .as_deref()
                .unwrap_or_default()
                .contains("not counted against it"),
            "{run:?}"
        );
        let after = job(&world).await;
        assert!(after.parked_hours.is_empty(), "never parked");
        assert_eq!(
            after
                .retry_hours
                .iter()
                .map(|q| q.tries)
                .collect::<Vec<_>>(),
            [run_number],
            "queued, tried once per run"
        );
    }
    assert_eq!(mirror.requests("2024-03-05-1.json.gz"), 12);
    assert_eq!(
        world.get(&raw_key(hour("2024-03-05-1"))).await,
        None,
        "no partial object"
    );
    assert_eq!(world.open_uploads().await, 0, "no orphan parts");
    assert_eq!(
        bookmark(&job(&world).await).as_deref(),
        Some("2024-03-05-1"),
        "the bookmark did not wait"
    );

    // The server recovers: the first run after it fetches the queued hour first.
    mirror.heal("2024-03-05-1.json.gz");
    let (run, output) = ingest(&world, &mirror, "2024-03-05T08:30:00Z", &env);
    assert!(output.status.success(), "{run:?}");
    assert_eq!(hours_of(&run)[0], "2024-03-05-1");
    assert_eq!(run.hours[0].outcome, HourOutcome::Ingested);
    assert!(job(&world).await.retry_hours.is_empty());
    files.insert(hour("2024-03-05-1"), big);
    assert_stored(&world, &files).await;
}

#[tokio::test]
async fn eight_concurrent_runs_store_every_hour_once_in_order() {
    let world = AwsWorld::new(true).await;
    let mirror = Mirror::start();
    let files = publish(&mirror, "2024-03-05-0", "2024-03-05-11", &[]);
    let now = "2024-03-05T12:30:00Z";
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= 12, "not caught up after 12 rounds");
        let children: Vec<_> = (0..8)
            .map(|_| {
                elt(&world, &["ingest", "--aws"])
                    .env("GHARCHIVE_BASE_URL", &mirror.url)
                    .env("ELT_NOW", now)
                    .env("INGEST_START_HOUR", "2024-03-05-0")
                    .env("MAX_HOURS_PER_RUN", "3")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        if bookmark(&job(&world).await).as_deref() == Some("2024-03-05-11") {
            break;
        }
    }

    eprintln!("caught up after {rounds} rounds of 8 concurrent runs");
    // Downloaded once, stored once (one version), byte for byte.
    for h in files.keys() {
        assert_eq!(
            mirror.requests(&format!("{h}.json.gz")),
            1,
            "{h} downloaded twice"
        );
    }
    let versions = world.versions().await;
    assert_eq!(versions.len(), files.len());
    assert!(versions.values().all(|&n| n == 1), "{versions:?}");
    assert_stored(&world, &files).await;

    // The runs that worked form one chain: each began where the previous one ended.
    let records = runs(&world).await;
    assert_eq!(records.len(), 8 * rounds, "every run is recorded");
    let mut working: Vec<&IngestRun> = records
        .iter()
        .filter(|r| r.status != RunStatus::Busy)
        .collect();
    assert!(records
        .iter()
        .filter(|r| r.status == RunStatus::Busy)
        .all(|r| r.hours.is_empty()));
    working.sort_by_key(|r| r.bookmark_before);
    let mut expected_next = Some(hour("2024-03-05-0"));
    let mut all_hours = Vec::new();
    for run in working.iter().filter(|r| !r.hours.is_empty()) {
        assert_eq!(run.hours.first().map(|h| h.hour), expected_next, "{run:?}");
        assert!(run.hours.iter().all(|h| h.outcome == HourOutcome::Ingested));
        all_hours.extend(run.hours.iter().map(|h| h.hour));
        expected_next = run.bookmark_after.map(Hour::next);
    }
    let expected: Vec<Hour> = files.keys().copied().collect();
    assert_eq!(all_hours, expected, "every hour once, in order");
}

#[tokio::test]
async fn backfill_fills_a_range_in_parallel_and_leaves_the_bookmark() {
    let world = AwsWorld::new(true).await;
    let mirror = Mirror::start();
    let files = publish(&mirror, "2024-03-01-0", "2024-03-01-7", &[]);
    let now = "2024-03-05T12:30:00Z";
    let live = publish(&mirror, "2024-03-05-0", "2024-03-05-0", &[]);
    let (first, _) = ingest(
        &world,
        &mirror,
        now,
        &[
            ("INGEST_START_HOUR", "2024-03-05-0"),
            ("MAX_HOURS_PER_RUN", "1"),
        ],
    );
    assert_eq!(first.bookmark_after, Some(hour("2024-03-05-0")));
    assert_stored(&world, &live).await;

    let backfill = |args: &[&str]| {
        let mut all = vec!["backfill"];
        all.extend_from_slice(args);
        let (run, output) = run_elt(&world, &mirror, &all, now, &[]);
        (run, output.status.success())
    };
    let (one, ok) = backfill(&["--from", "2024-03-01-3", "--to", "2024-03-01-3"]);
    assert!(ok);
    assert_eq!(one.hours_ingested, 1);
    let (range, ok) = backfill(&[
        "--from",
        "2024-03-01-0",
        "--to",
        "2024-03-01-7",
        "--parallel",
        "4",
    ]);
    assert!(ok);
    assert_eq!(range.kind, RunKind::Backfill);
    assert_eq!(range.stop, StopReason::RangeDone);
    assert_eq!(
        hours_of(&range),
        Hour::range(hour("2024-03-01-0"), hour("2024-03-01-7"))
            .map(|h| h.to_string())
            .collect::<Vec<_>>(),
        "every hour, in order"
    );
    assert_eq!(range.hours[3].outcome, HourOutcome::AlreadyPresent);
    assert_eq!(range.hours_ingested, 7);
    assert_stored(&world, &files).await;
    assert_eq!(
        mirror.requests("2024-03-01-3.json.gz"),
        1,
        "an hour already stored is skipped"
    );

    let (forced, ok) = backfill(&["--from", "2024-03-01-3", "--to", "2024-03-01-4", "--force"]);
    assert!(ok);
    assert_eq!(forced.hours_ingested, 2);
    let versions = world.versions().await;
    assert_eq!(
        versions[&raw_key(hour("2024-03-01-3"))],
        2,
        "--force fetches again"
    );
    assert_eq!(versions[&raw_key(hour("2024-03-01-0"))], 1);

    let (gap, ok) = backfill(&["--from", "2024-02-01-0", "--to", "2024-02-01-0"]);
    assert!(!ok, "a missing hour in a range fails the backfill");
    assert_eq!(gap.hours[0].outcome, HourOutcome::Missing);

    let job = job(&world).await;
    assert_eq!(
        bookmark(&job).as_deref(),
        Some("2024-03-05-0"),
        "the bookmark did not move"
    );
    assert!(runs(&world)
        .await
        .iter()
        .any(|r| r.kind == RunKind::Backfill));
}

#[tokio::test]
async fn zstd_raw_files_hold_the_same_json() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    let files = publish(&mirror, "2024-03-05-0", "2024-03-05-1", &[]);
    let (run, output) = ingest(
        &world,
        &mirror,
        "2024-03-05T02:30:00Z",
        &[
            ("INGEST_START_HOUR", "2024-03-05-0"),
            ("RAW_COMPRESSION", "zstd"),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(run.hours_ingested, 2);
    for (h, gz) in &files {
        let key = format!("landing/ghactivity/{h}.json.zst");
        let stored = world
            .get(&key)
            .await
            .unwrap_or_else(|| panic!("{key} missing"));
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut json)
            .unwrap();
        assert_eq!(zstd::decode_all(&stored[..]).unwrap(), json, "{h}");
        let result = run.hours.iter().find(|r| r.hour == *h).unwrap();
        assert_eq!(result.bytes, stored.len() as u64);
        assert_eq!(result.source_bytes, gz.len() as u64);
    }
}

/// Non-blank lines of a gzipped hour file, and how many distinct event ids they hold.
fn lines_and_distinct_ids(gzipped: &[u8]) -> (u64, u64) {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(gzipped)
        .read_to_string(&mut text)
        .unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let ids: std::collections::HashSet<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
        .collect();
    (lines.len() as u64, ids.len() as u64)
}

#[test]
fn elt_run_ingests_and_transforms_a_folder_mirror_locally() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let mut sources = HashMap::new();
    for h in Hour::range(hour("2024-03-05-22"), hour("2024-03-06-1")) {
        let bytes = hour_file(h, 80);
        std::fs::write(mirror.join(format!("{h}.json.gz")), &bytes).unwrap();
        sources.insert(h, bytes);
    }
    let lake = dir.path().join("lake");
    let run = |until: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_elt"))
            .args(["run", "--lake", lake.to_str().unwrap()])
            .args(["--source", &format!("file://{}", mirror.display())])
            .args(["--from", "2024-03-05-22", "--until", until])
            .env("MAX_HOURS_PER_RUN", "2")
            .env_remove("ELT_NOW")
            .output()
            .unwrap()
    };
    let output = run("2024-03-06-1");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summaries: Vec<events::TransformSummary> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        summaries.len(),
        4,
        "each ingested hour is transformed: {stderr}"
    );
    for summary in &summaries {
        // The accounting against the raw file, counted here rather than taken from the engine:
        // each line a row, a repeat of an id seen before, or a row a neighbouring hour holds.
        let (lines, distinct_ids) = lines_and_distinct_ids(&sources[&summary.hour]);
        assert_eq!((summary.lines, summary.rejected), (lines, 0));
        assert_eq!(summary.duplicates, lines - distinct_ids, "{summary:?}");
        assert_eq!(
            summary.rows + summary.duplicates_across_hours,
            distinct_ids,
            "{summary:?}"
        );
        assert!(!summary.outputs.is_empty());
        for output in &summary.outputs {
            assert!(lake.join(output).is_file(), "{output}");
        }
    }
    for (h, bytes) in &sources {
        let raw = std::fs::read(lake.join("raw").join(format!("{h}.json.gz"))).unwrap();
        assert!(raw == *bytes, "{h}: raw file differs from the mirror");
    }
    assert!(lake.join("state.sqlite").is_file());

    // Caught up: a second run stores and transforms nothing.
    let again = run("2024-03-06-1");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).trim().is_empty());

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_elt"))
        .args(["status", "--lake", lake.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("bookmark: 2024-03-06-1 (ingested"), "{text}");
    assert!(text.contains("until"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// job items seeded by hand; hours that never arrive whole

/// Runs `command`, failing the test (instead of hanging it) if it has not returned within
/// `limit`: a job item the ingest cannot handle used to make it spin until the Lambda timeout.
fn output_within(command: &mut std::process::Command, limit: Duration) -> Output {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("elt starts");
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    match receiver.recv_timeout(limit) {
        Ok(output) => output.expect("elt's output"),
        Err(_) => {
            // SAFETY: signalling the child this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("`{command:?}` had not returned after {limit:?}");
        }
    }
}

fn record_of(output: &Output) -> IngestRun {
    support::run_record(output)
}

/// A `jobs` item as a person writes it with the console or `aws dynamodb put-item`.
fn item(job_id: &str, fields: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
    let mut item: HashMap<String, AttributeValue> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    item.insert("job_id".into(), AttributeValue::S(job_id.into()));
    item
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn n(number: &str) -> AttributeValue {
    AttributeValue::N(number.into())
}

fn bookmark_map(fields: &[(&str, AttributeValue)]) -> AttributeValue {
    AttributeValue::M(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// Every style of job item a person may have written: (job id, item, first hour, hours).
fn seeding_styles() -> Vec<(
    &'static str,
    HashMap<String, AttributeValue>,
    &'static str,
    u32,
)> {
    let day = ("baseline_day", s("2024-03-05"));
    let original_bookmark = bookmark_map(&[
        (
            "last_run_file_name",
            s("s3://github-activity/landing/ghactivity//2024-03-05-2.json.gz"),
        ),
        ("status_code", n("200")),
    ]);
    let bookmark = |name: &str| bookmark_map(&[("last_run_file_name", s(name))]);
    vec![
        (
            "no_version",
            item("no_version", &[("baseline_days", n("0")), day.clone()]),
            "2024-03-05-0",
            6,
        ),
        (
            "day_only",
            item("day_only", std::slice::from_ref(&day)),
            "2024-03-05-0",
            6,
        ),
        (
            "days_only",
            item("days_only", &[("baseline_days", n("0"))]),
            "2024-03-05-0",
            6,
        ),
        (
            "numbers_as_text",
            item(
                "numbers_as_text",
                &[("baseline_days", s("0")), ("version", s("4"))],
            ),
            "2024-03-05-0",
            6,
        ),
        ("id_only", item("id_only", &[]), "2024-03-05-0", 6),
        (
            "bookmark_only",
            item(
                "bookmark_only",
                &[("job_run_bookmark_details", bookmark("2024-03-05-2"))],
            ),
            "2024-03-05-3",
            3,
        ),
        (
            "padded_bookmark",
            item(
                "padded_bookmark",
                &[("job_run_bookmark_details", bookmark("2024-03-05-02"))],
            ),
            "2024-03-05-3",
            3,
        ),
        (
            "file_bookmark",
            item(
                "file_bookmark",
                &[("job_run_bookmark_details", bookmark("2024-03-05-2.json.gz"))],
            ),
            "2024-03-05-3",
            3,
        ),
        (
            "original_project",
            item(
                "original_project",
                &[
                    ("job_description", s("Ingest ghactivity data to s3")),
                    ("is_active", s("Y")),
                    ("baseline_days", n("3")),
                    ("job_run_bookmark_details", original_bookmark),
                ],
            ),
            "2024-03-05-3",
            3,
        ),
    ]
}

#[tokio::test]
async fn job_items_seeded_by_hand_in_every_style_ingest_at_once() {
    let world = AwsWorld::new(false).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&world.sdk);
    let dir = tempfile::tempdir().unwrap();
    for h in Hour::range(hour("2024-03-05-0"), hour("2024-03-05-5")) {
        let bytes = support::gzip_lines(&h.to_string(), 20);
        std::fs::write(dir.path().join(format!("{h}.json.gz")), bytes).unwrap();
    }
    let mirror = format!("file://{}/", dir.path().display());
    for (job_id, seeded, first, hours) in seeding_styles() {
        dynamo
            .put_item()
            .table_name(&world.jobs_table)
            .set_item(Some(seeded))
            .send()
            .await
            .unwrap();
        let output = output_within(
            elt(&world, &["ingest", "--aws"])
                .env("INGEST_JOB_ID", job_id)
                .env("RAW_PREFIX", format!("{job_id}/"))
                .env("BASELINE_DAYS", "0")
                .env("GHARCHIVE_BASE_URL", &mirror)
                .env("ELT_NOW", "2024-03-05T06:30:00Z"),
            Duration::from_secs(120),
        );
        let run = record_of(&output);
        assert!(output.status.success(), "{job_id}: {run:?}");
        assert_eq!(
            hours_of(&run).first().map(String::as_str),
            Some(first),
            "{job_id}"
        );
        assert_eq!(
            (run.hours_ingested, run.stop),
            (hours, StopReason::CaughtUp),
            "{job_id}"
        );
        let job = world.job(job_id).await;
        assert_eq!(bookmark(&job).as_deref(), Some("2024-03-05-5"), "{job_id}");
        assert!(job.lease.is_none(), "{job_id}: the lease is released");
    }
    // What the item carried beyond the job's own attributes is still there.
    let original = dynamo
        .get_item()
        .table_name(&world.jobs_table)
        .key("job_id", s("original_project"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        original["job_description"],
        s("Ingest ghactivity data to s3")
    );
    assert_eq!(original["is_active"], s("Y"));
}

/// The first half of a whole gzip hour, served as if it were the file: GHArchive has served
/// truncated files.
fn truncated_gzip(h: &str) -> Vec<u8> {
    let whole = support::gzip_lines(h, 200);
    whole[..whole.len() / 2].to_vec()
}

/// An error page as GHArchive's storage serves one, with status 200, under the hour's name.
const XML_ERROR_PAGE: &[u8] = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";

fn parked_hours(job: &Job) -> Vec<String> {
    job.parked_hours
        .iter()
        .map(|p| p.hour.to_string())
        .collect()
}

#[tokio::test]
async fn hours_served_broken_forever_are_parked_and_the_bookmark_moves_on() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    let mut files = publish(&mirror, "2024-03-05-0", "2024-03-05-7", &[]);
    mirror.put("2024-03-05-2.json.gz", XML_ERROR_PAGE.to_vec());
    mirror.put("2024-03-05-3.json.gz", truncated_gzip("2024-03-05-3"));
    let now = "2024-03-05T08:30:00Z";
    let env = [
        ("INGEST_START_HOUR", "2024-03-05-0"),
        ("DOWNLOAD_ATTEMPTS", "2"),
    ];

    // Three runs fail on each hour (MISSING_HOUR_ATTEMPTS, 3 by default); the third parks it.
    let mut records = Vec::new();
    for _ in 0..5 {
        let (run, output) = ingest(&world, &mirror, now, &env);
        records.push((run, output.status.success()));
    }
    let ok: Vec<bool> = records.iter().map(|(_, ok)| *ok).collect();
    assert_eq!(ok, [false, false, false, false, true]);
    let (first, _) = &records[0];
    assert!(
        first
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("2024-03-05-2: the body is not a whole gzip stream"),
        "{first:?}"
    );
    assert_eq!(
        first.bookmark_lag_hours,
        Some(6),
        "2024-03-05-2 ..= 2024-03-05-7 are due"
    );
    let (third, _) = &records[2];
    assert_eq!(hours_of(third), ["2024-03-05-2", "2024-03-05-3"]);
    assert_eq!(third.hours[0].outcome, HourOutcome::Skipped);
    assert!(third.hours[0]
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("SKIPPED"));
    let (last, _) = &records[4];
    assert_eq!(
        hours_of(last),
        [
            "2024-03-05-3",
            "2024-03-05-4",
            "2024-03-05-5",
            "2024-03-05-6",
            "2024-03-05-7"
        ]
    );
    assert_eq!(
        (last.hours_ingested, last.stop, last.bookmark_lag_hours),
        (4, StopReason::CaughtUp, Some(0))
    );
    assert_eq!(
        mirror.requests("2024-03-05-2.json.gz"),
        9,
        "3 runs of 2 attempts, 3 two-byte probes (is the hour before 2024-03-05-3 served?), then never again"
    );

    let parked = job(&world).await;
    assert_eq!(bookmark(&parked).as_deref(), Some("2024-03-05-7"));
    assert_eq!(parked_hours(&parked), ["2024-03-05-2", "2024-03-05-3"]);
    assert!(parked
        .parked_hours
        .iter()
        .all(|p| p.attempts == 3 && p.reason.contains("not a whole gzip stream")));
    assert!(parked.failing_hour.is_none());
    for h in ["2024-03-05-2", "2024-03-05-3"] {
        assert_eq!(
            world.get(&raw_key(hour(h))).await,
            None,
            "{h}: nothing stored"
        );
        files.remove(&hour(h));
    }
    assert_stored(&world, &files).await;
    assert_status_says(&world, now, &["parked: 2024-03-05-2 (run ", "lag: 0 hours"]);

    retry_brings_parked_hours_back(&world, &mirror, now, &env).await;
}

/// `elt status --aws` at `now` says each of `texts`.
fn assert_status_says(world: &AwsWorld, now: &str, texts: &[&str]) {
    let status = elt(world, &["status", "--aws"])
        .env("ELT_NOW", now)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    for expected in texts {
        assert!(text.contains(expected), "{expected}: {text}");
    }
}

#[tokio::test]
async fn status_shows_a_run_record_it_cannot_read_and_why() {
    let world = AwsWorld::new(false).await;
    let job_id = events::jobs::DEFAULT_INGEST_JOB_ID;
    // Written by hand, or by a version of the ingest that wrote other fields.
    let stored = item(
        job_id,
        &[
            ("job_run_time", AttributeValue::N("1709691000000".into())),
            ("note", AttributeValue::S("by hand".into())),
        ],
    );
    aws_sdk_dynamodb::Client::new(&world.sdk)
        .put_item()
        .table_name(&world.runs_table)
        .set_item(Some(stored))
        .send()
        .await
        .unwrap();
    assert_status_says(
        &world,
        "2024-03-06T03:00:00Z",
        &[
            "last 1 runs, newest first:",
            "2024-03-06 02:10:00  the run record at job_run_time 1709691000000 could not be read: not an ingest run record: missing field `run_id`",
        ],
    );
}

/// `elt ARGS --aws` for an operator command: its JSON line, or its error.
fn operate(world: &AwsWorld, args: &[&str], now: &str) -> Result<serde_json::Value, String> {
    let output = elt(world, args)
        .arg("--aws")
        .env("ELT_NOW", now)
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).expect("a JSON line"))
}

/// Once the mirror serves 2024-03-05-2 whole, `elt retry` brings it back; 2024-03-05-3, still
/// broken, is parked again after three more runs.
async fn retry_brings_parked_hours_back(
    world: &AwsWorld,
    mirror: &Mirror,
    now: &str,
    env: &[(&str, &str)],
) {
    let fixed = hour_file(hour("2024-03-05-2"), 60);
    mirror.put("2024-03-05-2.json.gz", fixed.clone());
    let queued = operate(world, &["retry", "2024-03-05-2"], now).unwrap();
    assert_eq!(
        (queued["action"].as_str(), queued["hour"].as_str()),
        (Some("queued"), Some("2024-03-05-2"))
    );
    let again = operate(world, &["retry", "2024-03-05-2"], now).unwrap_err();
    assert!(again.contains("queued already"), "{again}");
    let not_parked = operate(world, &["retry", "2024-03-05-4"], now).unwrap_err();
    assert!(
        not_parked.contains("2024-03-05-4 is not parked (parked: 2024-03-05-3)"),
        "{not_parked}"
    );

    let (run, output) = ingest(world, mirror, now, env);
    assert!(output.status.success(), "{run:?}");
    assert_eq!(
        (hours_of(&run), run.hours_ingested),
        (vec!["2024-03-05-2".to_string()], 1)
    );
    assert_eq!(world.get(&raw_key(hour("2024-03-05-2"))).await, Some(fixed));
    let after = job(world).await;
    assert!(after.retry_hours.is_empty());
    assert_eq!(parked_hours(&after), ["2024-03-05-3"]);

    operate(world, &["retry", "2024-03-05-3"], now).unwrap();
    let outcomes: Vec<(HourOutcome, bool)> = (0..3)
        .map(|_| {
            let (run, output) = ingest(world, mirror, now, env);
            (run.hours[0].outcome, output.status.success())
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (HourOutcome::Queued, false),
            (HourOutcome::Queued, false),
            (HourOutcome::Skipped, false)
        ]
    );
    let after = job(world).await;
    assert!(after.retry_hours.is_empty());
    assert_eq!(parked_hours(&after), ["2024-03-05-3"], "parked again");
    assert_eq!(
        bookmark(&after).as_deref(),
        Some("2024-03-05-7"),
        "the bookmark was never held up"
    );
}

#[tokio::test]
async fn skip_parks_the_next_hour_at_once_and_a_later_one_when_the_run_gets_there() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    publish(&mirror, "2024-03-05-0", "2024-03-05-4", &[]);
    let now = "2024-03-05T05:30:00Z";
    let env = [
        ("INGEST_START_HOUR", "2024-03-05-0"),
        ("INGEST_UNTIL_HOUR", "2024-03-05-0"),
    ];
    let (first, _) = ingest(&world, &mirror, now, &env);
    assert_eq!(first.bookmark_after, Some(hour("2024-03-05-0")));

    let next = operate(
        &world,
        &["skip", "2024-03-05-1", "--reason", "known bad"],
        now,
    )
    .unwrap();
    assert_eq!(
        (next["action"].as_str(), next["bookmark_after"].as_str()),
        (Some("parked"), Some("2024-03-05-1"))
    );
    let later = operate(&world, &["skip", "2024-03-05-3"], now).unwrap();
    assert_eq!(
        later["bookmark_after"].as_str(),
        Some("2024-03-05-1"),
        "a later hour waits for the run"
    );
    let behind = operate(&world, &["skip", "2024-03-05-0"], now).unwrap_err();
    assert!(behind.contains("behind the bookmark"), "{behind}");
    let twice = operate(&world, &["skip", "2024-03-05-3"], now).unwrap_err();
    assert!(twice.contains("parked already"), "{twice}");

    let (run, output) = ingest(&world, &mirror, now, &[]);
    assert!(output.status.success(), "{run:?}");
    let outcomes: Vec<HourOutcome> = run.hours.iter().map(|r| r.outcome).collect();
    assert_eq!(
        hours_of(&run),
        ["2024-03-05-2", "2024-03-05-3", "2024-03-05-4"]
    );
    assert_eq!(
        outcomes,
        [
            HourOutcome::Ingested,
            HourOutcome::Skipped,
            HourOutcome::Ingested
        ]
    );
    assert_eq!(
        mirror.requests("2024-03-05-1.json.gz"),
        0,
        "parked by hand: never fetched"
    );
    assert_eq!(mirror.requests("2024-03-05-3.json.gz"), 0);
    let parked = job(&world).await;
    assert_eq!(parked_hours(&parked), ["2024-03-05-1", "2024-03-05-3"]);
    assert_eq!(parked.parked_hours[0].reason, "known bad");

    operate(&world, &["retry", "2024-03-05-1"], now).unwrap();
    let (run, _) = ingest(&world, &mirror, now, &[]);
    assert_eq!(hours_of(&run), ["2024-03-05-1"]);
    assert_eq!(run.hours_ingested, 1);
    assert_eq!(parked_hours(&job(&world).await), ["2024-03-05-3"]);
}

#[tokio::test]
async fn an_outage_of_the_source_parks_nothing() {
    outage_parks_nothing(Fault::Status(503)).await;
}

#[tokio::test]
async fn an_error_page_for_every_file_parks_nothing() {
    outage_parks_nothing(Fault::Garbage).await;
}

/// The source answers `fault` for every hour, then for one hour only.
async fn outage_parks_nothing(fault: Fault) {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    publish(&mirror, "2024-03-05-0", "2024-03-05-2", &[]);
    let now = "2024-03-05T03:30:00Z";
    let env = [
        ("INGEST_START_HOUR", "2024-03-05-0"),
        ("DOWNLOAD_ATTEMPTS", "1"),
        ("MISSING_HOUR_ATTEMPTS", "2"),
    ];
    let mut until = env.to_vec();
    until.push(("INGEST_UNTIL_HOUR", "2024-03-05-0"));
    ingest(&world, &mirror, now, &until);

    // GHArchive answers badly for everything: the failures are not the hour's.
    for h in ["2024-03-05-0", "2024-03-05-1", "2024-03-05-2"] {
        mirror.always(&format!("{h}.json.gz"), fault.clone());
    }
    for _ in 0..3 {
        let (run, output) = ingest(&world, &mirror, now, &env);
        assert!(!output.status.success());
        assert!(
            run.error
                .as_deref()
                .unwrap_or_default()
                .contains("not counted against the hour"),
            "{run:?}"
        );
    }
    let during = job(&world).await;
    assert!(during.failing_hour.is_none() && during.parked_hours.is_empty());
    assert_eq!(bookmark(&during).as_deref(), Some("2024-03-05-0"));

    mirror.heal("2024-03-05-0.json.gz");
    mirror.heal("2024-03-05-2.json.gz");
    if matches!(fault, Fault::Garbage) {
        // Only 2024-03-05-1 is an error page now: that is the hour's fault, parked after two runs.
        let (_, output) = ingest(&world, &mirror, now, &env);
        assert!(!output.status.success());
        let (run, output) = ingest(&world, &mirror, now, &env);
        assert!(output.status.success(), "{run:?}");
        assert_eq!(hours_of(&run), ["2024-03-05-1", "2024-03-05-2"]);
        assert_eq!(parked_hours(&job(&world).await), ["2024-03-05-1"]);
    } else {
        // A server error on one hour while its neighbours are served is still not its fault:
        // it is queued at once, the bookmark moves on, and it is never parked.
        for _ in 0..3 {
            let (run, output) = ingest(&world, &mirror, now, &env);
            assert!(output.status.success(), "{run:?}");
            assert_eq!(run.hours[0].hour, hour("2024-03-05-1"));
            assert_eq!(run.hours[0].outcome, HourOutcome::Queued);
        }
        let after = job(&world).await;
        assert!(after.parked_hours.is_empty(), "{after:?}");
        assert_eq!(after.retry_hours.len(), 1);
        assert_eq!(bookmark(&after).as_deref(), Some("2024-03-05-2"));
    }
}

#[test]
fn broken_hours_are_parked_and_taken_back_in_a_local_lake() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    for h in ["2024-03-05-0", "2024-03-05-2", "2024-03-05-3"] {
        std::fs::write(
            mirror.join(format!("{h}.json.gz")),
            support::gzip_lines(h, 20),
        )
        .unwrap();
    }
    std::fs::write(
        mirror.join("2024-03-05-1.json.gz"),
        truncated_gzip("2024-03-05-1"),
    )
    .unwrap();
    let lake = dir.path().join("lake");
    let elt_local = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_elt"))
            .args(args)
            .args(["--lake", lake.to_str().unwrap()])
            .env(
                "GHARCHIVE_BASE_URL",
                format!("file://{}/", mirror.display()),
            )
            .env("INGEST_START_HOUR", "2024-03-05-0")
            .env("MISSING_HOUR_ATTEMPTS", "2")
            .env("RETRY_BASE_MS", "1")
            .env("ELT_NOW", "2024-03-05T03:30:00Z")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (
            output.status.success(),
            stdout,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let run = |ok: bool| {
        let (success, stdout, stderr) = elt_local(&["ingest"]);
        assert_eq!(success, ok, "{stderr}");
        serde_json::from_str::<IngestRun>(stdout.lines().next().unwrap_or_default()).unwrap()
    };
    assert_eq!(hours_of(&run(false)), ["2024-03-05-0", "2024-03-05-1"]);
    let second = run(true);
    assert_eq!(hours_of(&second), ["2024-03-05-1", "2024-03-05-2"]);
    assert_eq!(second.hours[0].outcome, HourOutcome::Skipped);
    let (_, status, _) = elt_local(&["status"]);
    assert!(status.contains("parked: 2024-03-05-1"), "{status}");
    assert!(!lake.join("raw/2024-03-05-1.json.gz").exists());

    std::fs::write(
        mirror.join("2024-03-05-1.json.gz"),
        support::gzip_lines("2024-03-05-1", 20),
    )
    .unwrap();
    let (ok, queued, stderr) = elt_local(&["retry", "2024-03-05-1"]);
    assert!(
        ok && queued.contains(r#""action":"queued""#),
        "{queued}{stderr}"
    );
    let (ok, skipped, stderr) = elt_local(&["skip", "2024-03-05-3"]);
    assert!(
        ok && skipped.contains(r#""bookmark_after":"2024-03-05-3""#),
        "{skipped}{stderr}"
    );
    let third = run(true);
    assert_eq!(
        hours_of(&third),
        ["2024-03-05-1"],
        "the queued hour; 2024-03-05-3 is skipped"
    );
    assert!(lake.join("raw/2024-03-05-1.json.gz").is_file());
    assert!(!lake.join("raw/2024-03-05-3.json.gz").exists());
}

#[tokio::test]
async fn every_run_writes_its_record_even_when_the_jobs_table_fails() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    publish(&mirror, "2024-03-05-0", "2024-03-05-0", &[]);
    let output = output_within(
        elt(&world, &["ingest", "--aws"])
            .env("JOBS_TABLE", "no-such-table")
            .env("GHARCHIVE_BASE_URL", &mirror.url)
            .env("INGEST_START_HOUR", "2024-03-05-0")
            .env("ELT_NOW", "2024-03-05T01:30:00Z"),
        Duration::from_secs(120),
    );
    assert!(!output.status.success());
    let run = record_of(&output);
    assert_eq!(
        (run.status, run.stop),
        (RunStatus::Error, StopReason::Failed)
    );
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("could not change job ghactivity_ingest in 5 attempts"),
        "{error}"
    );
    let stored = runs(&world).await;
    assert_eq!(stored.len(), 1, "the failed run is recorded");
    assert_eq!(stored[0].run_id, run.run_id);

    // And when the record cannot be written, the run says so.
    let output = output_within(
        elt(&world, &["ingest", "--aws"])
            .env("JOB_RUNS_TABLE", "no-such-table")
            .env("GHARCHIVE_BASE_URL", &mirror.url)
            .env("INGEST_START_HOUR", "2024-03-05-0")
            .env("ELT_NOW", "2024-03-05T01:30:00Z"),
        Duration::from_secs(120),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the run record could not be written"),
        "{stderr}"
    );
    assert!(stderr.contains("1 hours ingested"), "{stderr}");
}
