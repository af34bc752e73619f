//! A backfill fanned out on AWS (moto): `elt backfill --fan-out` cuts the range into messages on
//! a backfill queue; several `elt worker`s consume it as the ingest Lambda's event source mapping
//! would; the raw bucket's notifications then feed the transforms (more workers), and
//! `elt verify --aws` audits the range. `ELT_FANOUT_HOURS` sets the range, spanning the end of
//! the timeline era and the start of today's: 480 hours in CI (about 4 minutes in a debug
//! build), `ELT_FANOUT_HOURS=2000` for the full-scale proof (about 14 minutes: moto is one Python
//! process).

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Output, Stdio};

use events::jobs::{HourOutcome, IngestRun, RunKind, RunStatus};
use events::{Hour, TransformSummary};
use gh_elt::gen::{generate, GenOptions};
use support::{queue_with_dead_letters, unique, AwsWorld};

const PREFIX: &str = "landing/ghactivity/";
const EVENTS_PER_HOUR: u64 = 4;

struct Backfill {
    world: AwsWorld,
    curated: String,
    backfill_queue: String,
    notifications: String,
    mirror: tempfile::TempDir,
}

impl Backfill {
    async fn new() -> Backfill {
        // Versioned: an hour stored twice would show as two versions of its key.
        let world = AwsWorld::new(true).await;
        let curated = unique("curated");
        world.s3_in(&curated, reqwest::Method::PUT, "", None).await;
        let (notifications, _) = queue_with_dead_letters(&world.sdk, "raw-files", 3).await;
        // The ingest stores every hour by a multipart upload: one notification each, as S3 sends.
        let completed = "s3:ObjectCreated:CompleteMultipartUpload";
        world.notify_of(&notifications, PREFIX, completed).await;
        let (backfill_queue, _) = queue_with_dead_letters(&world.sdk, "backfill", 3).await;
        Backfill {
            world,
            curated,
            backfill_queue,
            notifications,
            mirror: tempfile::tempdir().unwrap(),
        }
    }

    /// GHArchive-shaped files of `hours` in the mirror folder; the distinct events they hold.
    fn mirror_hours(&self, hours: &[Hour]) -> u64 {
        let mut distinct = 0;
        for (i, &hour) in hours.iter().enumerate() {
            let path = self.mirror.path().join(format!("{hour}.json.gz"));
            let options = GenOptions {
                seed: i as u64 + 1,
                duplicate_share: 0.0,
                ..GenOptions::new(hour, EVENTS_PER_HOUR)
            };
            let stats = generate(&path, &options, |_| {}).unwrap();
            distinct += stats.events - stats.duplicates;
        }
        distinct
    }

    fn elt(&self, args: &[&str]) -> std::process::Command {
        let mut command = self.world.command(env!("CARGO_BIN_EXE_elt"), args);
        command
            .env(
                "GHARCHIVE_BASE_URL",
                format!("file://{}/", self.mirror.path().display()),
            )
            .env("CURATED_BUCKET", &self.curated);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = self.elt(args).output().unwrap();
        assert!(output.status.success(), "elt {args:?}: {}", stderr(&output));
        output
    }

    /// `workers` `elt worker --until-idle` at once on `queue`; their outputs. A received batch
    /// stays hidden for five minutes (the stack's queues hide a message longer than a run can
    /// last), so no message is redelivered while it is being worked.
    fn workers(&self, queue: &str, workers: usize) -> Vec<Output> {
        let args = [
            "worker",
            "--queue",
            queue,
            "--wait",
            "2",
            "--visibility",
            "300",
            "--until-idle",
        ];
        let children: Vec<Child> = (0..workers)
            .map(|_| {
                self.elt(&args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Each worker's output is read as it comes: a worker whose pipe filled up would wait.
        let readers: Vec<_> = children
            .into_iter()
            .map(|child| std::thread::spawn(move || child.wait_with_output().unwrap()))
            .collect();
        readers
            .into_iter()
            .map(|reader| {
                let output = reader.join().unwrap();
                assert!(output.status.success(), "worker: {}", stderr(&output));
                output
            })
            .collect()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn hours_from_env() -> usize {
    std::env::var("ELT_FANOUT_HOURS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(480)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanned_out_backfill_stores_each_hour_once_and_its_transforms_verify_clean() {
    let backfill = Backfill::new().await;
    let from: Hour = "2014-12-20-0".parse().unwrap();
    let hours: Vec<Hour> = Hour::range(
        from,
        Hour::containing(from.start() + chrono::Duration::hours(hours_from_env() as i64 - 1)),
    )
    .collect();
    let to = *hours.last().unwrap();
    let distinct_events = backfill.mirror_hours(&hours);
    let (from_text, to_text) = (from.to_string(), to.to_string());

    let fanned = backfill.run(&[
        "backfill",
        "--aws",
        "--from",
        &from_text,
        "--to",
        &to_text,
        "--fan-out",
        &backfill.backfill_queue,
    ]);
    let enqueued = &json_lines(&fanned)[0];
    assert_eq!(enqueued["hours"], hours.len());
    assert_eq!(enqueued["messages"], hours.len().div_ceil(4));

    // Four consumers of the backfill queue, as the ingest Lambda's mapping would run them. SQS
    // delivers at least once (moto even hands one message to two consumers at once now and
    // then): a message worked again finds its hours stored, so each hour is ingested once.
    let runs: Vec<IngestRun> = backfill
        .workers(&backfill.backfill_queue, 4)
        .iter()
        .flat_map(json_lines)
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert!(runs.len() >= hours.len().div_ceil(4), "a run per message");
    assert!(runs
        .iter()
        .all(|r| r.status == RunStatus::Ok && r.kind == RunKind::Backfill));
    let mut ingested: BTreeMap<Hour, usize> = BTreeMap::new();
    for result in runs.iter().flat_map(|r| &r.hours) {
        let times = ingested.entry(result.hour).or_default();
        *times += usize::from(result.outcome == HourOutcome::Ingested);
    }
    assert!(
        hours.iter().all(|h| ingested.get(h) == Some(&1)),
        "hours not ingested exactly once: {:?}",
        ingested.iter().filter(|(_, &n)| n != 1).collect::<Vec<_>>()
    );
    // Every hour stored, once: one version of each key, nothing else under the prefix, and no
    // staged upload left beside it.
    let versions = backfill.world.versions().await;
    let expected: BTreeMap<String, usize> = hours
        .iter()
        .map(|h| (format!("{PREFIX}{h}.json.gz"), 1))
        .collect();
    let versions: BTreeMap<String, usize> = versions
        .into_iter()
        .filter(|(key, _)| key.starts_with(PREFIX))
        .collect();
    let differing: Vec<_> = expected
        .keys()
        .chain(versions.keys())
        .filter(|k| versions.get(*k) != expected.get(*k))
        .collect();
    assert!(
        differing.is_empty(),
        "{} keys differ: {differing:?}",
        differing.len()
    );
    let staged = backfill
        .world
        .s3_in(
            &backfill.world.bucket,
            reqwest::Method::GET,
            "?list-type=2&prefix=_staging/",
            None,
        )
        .await;
    assert!(!String::from_utf8_lossy(&staged).contains("<Key>"));

    // The notifications the raw objects made, worked as the transform Lambda's mapping would.
    let summaries: Vec<TransformSummary> = backfill
        .workers(&backfill.notifications, 4)
        .iter()
        .flat_map(json_lines)
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    // Each hour committed; a notification delivered twice (SQS delivers at least once) does the
    // hour again, to the same result.
    let mut latest: BTreeMap<&str, &TransformSummary> = BTreeMap::new();
    for summary in summaries.iter().filter(|s| s.superseded.is_none()) {
        let kept = latest.entry(summary.source.as_str()).or_insert(summary);
        if summary.generation > kept.generation {
            *kept = summary;
        }
    }
    assert_eq!(latest.len(), hours.len());
    let rows: u64 = latest.values().map(|s| s.rows).sum();
    assert_eq!(rows, distinct_events, "one row per event");

    let verify = backfill
        .elt(&["verify", "--aws", "--from", &from_text, "--to", &to_text])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&verify.stdout),
        stderr(&verify)
    );

    // `elt status` shows the backfill done.
    let status = backfill.run(&["status", "--aws"]);
    let text = String::from_utf8_lossy(&status.stdout);
    let n = hours.len();
    assert!(
        text.contains(&format!("{n} planned, {n} ingested, {n} transformed")),
        "{text}"
    );
    assert!(text.contains("0 waiting, 0 in flight, 0 failed"), "{text}");
}

#[test]
fn the_plan_answers_before_anything_runs() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_elt"))
        .args([
            "backfill",
            "--plan",
            "--from",
            "2024-01-01-0",
            "--to",
            "2024-01-20-23",
        ])
        .args(["--concurrency", "50"])
        .env_remove("RAW_BUCKET")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let plan = &json_lines(&output)[0];
    assert_eq!(plan["hours"], 480);
    assert_eq!(plan["messages"], 120);
    // 2024's hours are about 110 MiB of gzip each.
    let gzip_gib = plan["gzip_bytes"].as_f64().unwrap() / f64::from(1 << 30);
    assert!((40.0..60.0).contains(&gzip_gib), "{plan}");
    for field in [
        "lambda_gb_seconds",
        "usd",
        "wall_seconds",
        "s3_requests",
        "sqs_requests",
    ] {
        assert!(plan[field].as_f64().unwrap() > 0.0, "{field}: {plan}");
    }
    // An hour of 2011 is a few hundred KB: the same span then costs far less.
    let early = std::process::Command::new(env!("CARGO_BIN_EXE_elt"))
        .args([
            "backfill",
            "--plan",
            "--from",
            "2011-03-01-0",
            "--to",
            "2011-03-20-23",
        ])
        .output()
        .unwrap();
    let early = &json_lines(&early)[0];
    assert!(early["usd"].as_f64().unwrap() < plan["usd"].as_f64().unwrap() / 3.0);
    assert!(early["gzip_bytes"].as_f64().unwrap() < plan["gzip_bytes"].as_f64().unwrap() / 100.0);
}
