//! The ingest gets every hour that exists: faults that are not the hour's own never park it, an
//! hour that is parked is fetched again by itself once it is served, a source cannot hold a run
//! past `FETCH_TIMEOUT_SECONDS` nor send it to another host, and a job item whose numbers are
//! out of range gives a clear error in the run record. Against a test mirror, on moto, with the
//! clock set by `ELT_NOW`.

#![allow(dead_code)]

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use events::jobs::{HourOutcome, IngestRun, Job, RunStatus};
use events::Hour;
use support::{gzip_lines, AwsWorld, Fault, Mirror};

fn hour(s: &str) -> Hour {
    s.parse().unwrap()
}

/// `elt ingest --aws` at `now` from the mirror at `url`: the run record it printed, and its
/// output.
fn ingest(world: &AwsWorld, url: &str, now: &str, env: &[(&str, &str)]) -> (IngestRun, Output) {
    let mut command = world.command(env!("CARGO_BIN_EXE_elt"), &["ingest", "--aws"]);
    command.env("GHARCHIVE_BASE_URL", url).env("ELT_NOW", now);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("elt runs");
    (support::run_record(&output), output)
}

async fn job(world: &AwsWorld) -> Job {
    world.job(events::jobs::DEFAULT_INGEST_JOB_ID).await
}

/// Publishes 2024-03-05-0 … 2024-03-05-5 on the mirror.
fn publish(mirror: &Mirror) {
    for h in 0..6 {
        let name = format!("2024-03-05-{h}");
        mirror.put(&format!("{name}.json.gz"), gzip_lines(&name, 20));
    }
}

async fn stored(world: &AwsWorld, h: &str) -> bool {
    let key = format!("landing/ghactivity/{h}.json.gz");
    world.get(&key).await.is_some()
}

/// The published hours only, however late the clock.
const START: [(&str, &str); 3] = [
    ("INGEST_START_HOUR", "2024-03-05-0"),
    ("MISSING_HOUR_ATTEMPTS", "2"),
    ("INGEST_UNTIL_HOUR", "2024-03-05-5"),
];

/// Server errors, throttling, refusals and resets on one hour, for days, while the source
/// serves the hours around it: never counted against the hour, never parked; the first run
/// after the source serves it stores it.
#[tokio::test]
async fn faults_that_are_not_the_hours_never_park_it_and_it_lands_once_served() {
    for fault in [
        Fault::Status(503),
        Fault::Status(429),
        Fault::Status(403),
        Fault::Reset,
    ] {
        let world = AwsWorld::new(false).await;
        let mirror = Mirror::start();
        publish(&mirror);
        mirror.always("2024-03-05-2.json.gz", fault.clone());
        let env = [START[0], START[1], START[2], ("DOWNLOAD_ATTEMPTS", "2")];
        // A run an hour after, a day after, and three days after: all long past the hour.
        for now in [
            "2024-03-05T07:30:00Z",
            "2024-03-06T07:30:00Z",
            "2024-03-08T07:30:00Z",
            "2024-03-09T07:30:00Z",
        ] {
            let (run, output) = ingest(&world, &mirror.url, now, &env);
            assert!(output.status.success(), "{fault:?}: {run:?}");
            let tried = run
                .hours
                .iter()
                .find(|h| h.hour == hour("2024-03-05-2"))
                .expect("tried on every run");
            assert_eq!(tried.outcome, HourOutcome::Queued, "{fault:?}: {tried:?}");
            let after = job(&world).await;
            assert!(after.parked_hours.is_empty(), "{fault:?} parked it");
            assert!(
                after.retry_hours.iter().all(|q| q.attempts == 0),
                "{fault:?} was counted against the hour: {after:?}"
            );
        }
        assert!(!stored(&world, "2024-03-05-2").await);
        mirror.heal("2024-03-05-2.json.gz");
        let (run, _) = ingest(&world, &mirror.url, "2024-03-09T08:30:00Z", &env);
        assert_eq!(
            (run.hours[0].hour, run.hours[0].outcome),
            (hour("2024-03-05-2"), HourOutcome::Ingested),
            "{fault:?}: the first run after recovery"
        );
        assert!(stored(&world, "2024-03-05-2").await);
        assert!(job(&world).await.retry_hours.is_empty());
    }
}

/// A 404 long after the hour, and an error page: the hour's own fault, so it is parked; once
/// the source serves it, a run fetches it by itself (its next try comes an hour after it was
/// parked), without `elt retry`.
#[tokio::test]
async fn a_parked_hour_is_fetched_by_itself_once_served() {
    for fault in [Fault::NotFound, Fault::Garbage] {
        let world = AwsWorld::new(false).await;
        let mirror = Mirror::start();
        publish(&mirror);
        mirror.always("2024-03-05-2.json.gz", fault.clone());
        let env = [START[0], START[1], START[2], ("DOWNLOAD_ATTEMPTS", "1")];
        let now = "2024-03-07T00:30:00Z";
        for _ in 0..2 {
            ingest(&world, &mirror.url, now, &env);
        }
        let parked = job(&world).await;
        assert_eq!(parked.parked_hours.len(), 1, "{fault:?}: {parked:?}");
        let entry = &parked.parked_hours[0];
        assert_eq!(entry.hour, hour("2024-03-05-2"));
        assert!(!entry.forever);

        mirror.heal("2024-03-05-2.json.gz");
        // Not due yet: the run leaves it be.
        let before = mirror.requests("2024-03-05-2.json.gz");
        ingest(&world, &mirror.url, now, &env);
        assert_eq!(mirror.requests("2024-03-05-2.json.gz"), before, "{fault:?}");
        // Two hours later it is due, and served.
        let (run, output) = ingest(&world, &mirror.url, "2024-03-07T02:30:00Z", &env);
        assert!(output.status.success(), "{run:?}");
        assert!(
            run.hours
                .iter()
                .any(|h| h.hour == hour("2024-03-05-2") && h.outcome == HourOutcome::Ingested),
            "{fault:?}: {run:?}"
        );
        assert!(stored(&world, "2024-03-05-2").await);
        assert!(job(&world).await.parked_hours.is_empty());
    }
}

/// A body that trickles a byte at a time (each read well inside the per-read timeout) cannot
/// hold the run past `FETCH_TIMEOUT_SECONDS`; the run record names the hour.
#[tokio::test]
async fn a_trickling_body_ends_within_the_fetch_timeout() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    publish(&mirror);
    mirror.always(
        "2024-03-05-1.json.gz",
        Fault::Trickle(Duration::from_millis(100)),
    );
    let env = [
        START[0],
        START[1],
        START[2],
        ("DOWNLOAD_ATTEMPTS", "1"),
        ("FETCH_TIMEOUT_SECONDS", "3"),
        ("READ_TIMEOUT_SECONDS", "30"),
    ];
    let started = Instant::now();
    let (run, _) = ingest(&world, &mirror.url, "2024-03-05T07:30:00Z", &env);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let held = run
        .hours
        .iter()
        .find(|h| h.hour == hour("2024-03-05-1"))
        .expect("the run record names the hour");
    let error = held.error.as_deref().unwrap_or_default();
    assert!(error.contains("FETCH_TIMEOUT_SECONDS"), "{held:?}");
    assert!(!stored(&world, "2024-03-05-1").await);
}

/// A redirect to another origin over plain http (here a second local server) is refused; one
/// within the source's own origin is followed.
#[tokio::test]
async fn redirects_leave_the_sources_origin_only_for_https() {
    let world = AwsWorld::new(false).await;
    let (mirror, elsewhere) = (Mirror::start(), Mirror::start());
    publish(&mirror);
    publish(&elsewhere);
    let away = format!("{}2024-03-05-1.json.gz", elsewhere.url);
    mirror.always("2024-03-05-1.json.gz", Fault::Redirect(away));
    let within = format!("{}moved/2024-03-05-0.json.gz", mirror.url);
    mirror.put("moved/2024-03-05-0.json.gz", gzip_lines("2024-03-05-0", 20));
    mirror.always("2024-03-05-0.json.gz", Fault::Redirect(within));
    let env = [START[0], START[1], START[2], ("DOWNLOAD_ATTEMPTS", "1")];
    let (run, _) = ingest(&world, &mirror.url, "2024-03-05T07:30:00Z", &env);
    assert!(
        stored(&world, "2024-03-05-0").await,
        "the redirect within the origin: {run:?}"
    );
    // Fetched, and asked again when the refused hour next to it was checked against it.
    assert!(mirror.requests("moved/2024-03-05-0.json.gz") >= 1);
    assert_eq!(
        elsewhere.requests("2024-03-05-1.json.gz"),
        0,
        "the other server was never asked"
    );
    assert!(!stored(&world, "2024-03-05-1").await);
    let refused = run
        .hours
        .iter()
        .find(|h| h.hour == hour("2024-03-05-1"))
        .expect("the hour is in the record");
    let error = refused.error.as_deref().unwrap_or_default();
    assert!(error.contains("redirect"), "{refused:?}");
}

/// A `baseline_days` of 10^9 written into the job item by hand: a clear error in the run
/// record, no panic, nothing stored.
#[tokio::test]
async fn a_job_item_out_of_range_is_a_clear_error_in_the_run_record() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    publish(&mirror);
    let dynamo = aws_sdk_dynamodb::Client::new(&world.sdk);
    dynamo
        .put_item()
        .table_name(&world.jobs_table)
        .item("job_id", AttributeValue::S("ghactivity_ingest".into()))
        .item("baseline_days", AttributeValue::N("1000000000".into()))
        .send()
        .await
        .unwrap();
    let (run, output) = ingest(&world, &mirror.url, "2024-03-05T07:30:00Z", &[]);
    assert!(!output.status.success());
    assert_eq!(run.status, RunStatus::Error);
    let error = run.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("baseline_days 1000000000 is out of range"),
        "{run:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(world.keys().await.is_empty());
}
