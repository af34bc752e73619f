//! End-to-end tests of the ingest (`elt ingest | backfill | status --aws`, `elt run`): the real
//! binary against a moto server and a GHArchive mirror over HTTP that misbehaves on request.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::process::Output;
use std::time::Duration;

use adapters::JobStore;
use events::jobs::{HourOutcome, IngestRun, Job, RunKind, RunStatus, StopReason};
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
    let stdout = String::from_utf8_lossy(&output.stdout);
    let run = serde_json::from_str(stdout.lines().next().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "no run record ({e}); stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (run, output)
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
        .map(|v| serde_json::from_value(v).unwrap())
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
    assert_eq!(job.baseline_days, 1);
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
        after_first.missing_hour.as_ref().map(|m| m.attempts),
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
    assert!(after_second.missing_hour.is_none());
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

#[tokio::test]
async fn an_hour_that_keeps_failing_stores_nothing_and_holds_the_bookmark() {
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
    let (run, output) = ingest(&world, &mirror, "2024-03-05T08:30:00Z", &env);
    assert!(!output.status.success());
    assert_eq!(
        (run.status, run.stop),
        (RunStatus::Error, StopReason::Failed)
    );
    let failed = &run.hours[1];
    assert_eq!((failed.outcome, failed.attempts), (HourOutcome::Failed, 3));
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("broke off"),
        "{failed:?}"
    );
    assert_eq!(mirror.requests("2024-03-05-1.json.gz"), 3);
    assert_eq!(
        world.get(&raw_key(hour("2024-03-05-1"))).await,
        None,
        "no partial object"
    );
    assert_eq!(world.open_uploads().await, 0, "no orphan parts");
    assert_eq!(
        bookmark(&job(&world).await).as_deref(),
        Some("2024-03-05-0")
    );

    // The server recovers: the next run
    // picks up where the bookmark stayed.
    mirror.heal("2024-03-05-1.json.gz");
    let (run, _) = ingest(&world, &mirror, "2024-03-05T08:30:00Z", &env);
    assert_eq!(hours_of(&run)[0], "2024-03-05-1");
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
        assert_eq!(summary.lines, 80);
        assert!(!summary.outputs.is_empty());
        assert_eq!(
            summary.lines,
            summary.rows + summary.duplicates + summary.rejected
        );
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
