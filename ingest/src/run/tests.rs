//! The run against the real local adapters: the SQLite job store and run log of a lake in a
//! temporary folder, raw files in its `raw/`, and a `file://` source folder.

use events::jobs::{HourOutcome, IngestRun, Job, RunRecord, RunStatus, StopReason};

use super::Ingest;
use crate::changes::Claim;
use crate::test_world::{hour, World};

fn hours_of(run: &IngestRun) -> Vec<(String, HourOutcome)> {
    run.hours
        .iter()
        .map(|h| (h.hour.to_string(), h.outcome))
        .collect()
}

async fn job(ingest: &Ingest) -> Job {
    let job = ingest.jobs.get_job("ingest").await.expect("readable");
    job.expect("the run created the job")
}

async fn run(ingest: &Ingest) -> IngestRun {
    ingest.run(None).await.expect("the record is written")
}

#[tokio::test]
async fn a_run_claims_the_job_steps_hour_by_hour_and_stops_when_caught_up() {
    let world = World::new();
    let published: Vec<Vec<u8>> = (0..4)
        .map(|h| world.publish(&format!("2024-03-05-{h}")))
        .collect();
    // 04:30: hours 0 to 3 are over, hour 4 is under way.
    let ingest = world.ingest("2024-03-05T04:30:00Z", 3);

    let first = run(&ingest).await;
    let ingested = |hours: &[&str]| -> Vec<(String, HourOutcome)> {
        let outcome = HourOutcome::Ingested;
        hours.iter().map(|h| (h.to_string(), outcome)).collect()
    };
    assert_eq!(
        hours_of(&first),
        ingested(&["2024-03-05-0", "2024-03-05-1", "2024-03-05-2"])
    );
    assert_eq!(
        (first.status, first.stop),
        (RunStatus::Ok, StopReason::MaxHours)
    );
    assert_eq!(first.bookmark_before, None);
    assert_eq!(first.bookmark_after, Some(hour("2024-03-05-2")));
    assert_eq!(first.bookmark_lag_hours, Some(1), "hour 3 is due");
    let after_first = job(&ingest).await;
    assert_eq!(after_first.bookmark_hour(), Some(hour("2024-03-05-2")));
    assert!(after_first.lease.is_none(), "the lease is released");

    let second = run(&ingest).await;
    assert_eq!(hours_of(&second), ingested(&["2024-03-05-3"]));
    assert_eq!(
        (second.status, second.stop),
        (RunStatus::Ok, StopReason::CaughtUp)
    );
    assert_eq!(second.bookmark_before, Some(hour("2024-03-05-2")));
    assert_eq!(second.bookmark_lag_hours, Some(0));
    for (h, bytes) in published.iter().enumerate() {
        let stored = world.raw(&format!("2024-03-05-{h}"));
        assert!(
            stored.as_ref() == Some(bytes),
            "hour {h} stored as published"
        );
    }

    let third = run(&ingest).await;
    assert!(third.hours.is_empty(), "{third:?}");
    assert_eq!(third.stop, StopReason::CaughtUp);
    let recorded = ingest
        .runs
        .recent_runs("ingest", 10)
        .await
        .expect("readable");
    let newest_first = [third, second, first].map(|run| Ok(RunRecord::Ingest(run)));
    assert_eq!(recorded, newest_first, "each run recorded as returned");
}

#[tokio::test]
async fn a_run_while_another_holds_the_lease_is_busy() {
    let world = World::new();
    world.publish("2024-03-05-0");
    let now = "2024-03-05T01:30:00Z";
    let holder = world.ingest(now, 24);
    let (claim, _) = holder.claim("holder").await.expect("claimed");
    assert_eq!(claim, Claim::Held);

    // Another process on the same lake: its own connection to the same database.
    let other = world.ingest(now, 24);
    let busy = run(&other).await;
    assert_eq!(
        (busy.status, busy.stop),
        (RunStatus::Busy, StopReason::Busy)
    );
    assert!(busy.hours.is_empty());
    assert_eq!(busy.bookmark_after, None, "nothing moved");
    let held = job(&other).await;
    let lease = held.lease.expect("still held");
    assert_eq!(lease.run_id, "holder");
    assert!(world.raw("2024-03-05-0").is_none(), "nothing fetched");

    // Once the lease has run out, the next run takes the job over.
    let later = world.ingest("2024-03-05T01:46:00Z", 24);
    let taken_over = run(&later).await;
    assert_eq!(taken_over.status, RunStatus::Ok);
    assert_eq!(
        hours_of(&taken_over),
        [("2024-03-05-0".to_string(), HourOutcome::Ingested)]
    );
}

#[tokio::test]
async fn a_step_whose_fetch_fails_counts_a_failure_then_parks_the_hour() {
    let world = World::new();
    world.publish("2024-03-05-0");
    world.put("2024-03-05-1", b"<html>Service Unavailable</html>");
    world.publish("2024-03-05-2");
    let ingest = world.ingest("2024-03-05T03:30:00Z", 24);

    let failed = run(&ingest).await;
    assert_eq!(
        (failed.status, failed.stop),
        (RunStatus::Error, StopReason::Failed)
    );
    assert_eq!(
        hours_of(&failed),
        [
            ("2024-03-05-0".to_string(), HourOutcome::Ingested),
            ("2024-03-05-1".to_string(), HourOutcome::Failed),
        ]
    );
    assert_eq!(failed.hours[1].attempts, 2, "DOWNLOAD_ATTEMPTS");
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("2024-03-05-1: "), "{error}");
    let counted = job(&ingest).await;
    assert_eq!(counted.bookmark_hour(), Some(hour("2024-03-05-0")));
    let failing = counted.failing_hour.expect("the failure is counted");
    assert_eq!((failing.hour, failing.attempts), (hour("2024-03-05-1"), 1));
    assert!(
        failing.reason.contains("not a whole gzip stream"),
        "{failing:?}"
    );
    assert!(world.raw("2024-03-05-1").is_none(), "nothing stored");

    // The second failed run parks it (MISSING_HOUR_ATTEMPTS = 2) and moves on.
    let parked = run(&ingest).await;
    assert_eq!(
        hours_of(&parked),
        [
            ("2024-03-05-1".to_string(), HourOutcome::Skipped),
            ("2024-03-05-2".to_string(), HourOutcome::Ingested),
        ]
    );
    assert_eq!(
        (parked.status, parked.stop),
        (RunStatus::Ok, StopReason::CaughtUp)
    );
    let moved_on = job(&ingest).await;
    assert_eq!(moved_on.bookmark_hour(), Some(hour("2024-03-05-2")));
    assert!(moved_on.failing_hour.is_none());
    let entry = moved_on.parked(hour("2024-03-05-1")).expect("parked");
    assert_eq!(entry.attempts, 2);
}
