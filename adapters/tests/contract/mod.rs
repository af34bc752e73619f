//! The stores' contract: what `JobStore`, `RunLog` and `CommitStore` promise, whichever store
//! keeps the tables. Each check is a function over a [`Subject`]; `tests/stores.rs` runs every
//! one against SQLite and against DynamoDB (on a moto server).

use adapters::{CommitStore, JobStore, RunLog, StoredRun};
use async_trait::async_trait;
use events::commits::{CommitCounts, CommitState, HourCommit, SourceVersion};
use events::jobs::{
    IngestRun, Job, RunKind, RunRecord, RunStatus, StopReason, TransformRun, TRANSFORM_JOB_ID,
};

/// A store under test, and what a person (or a store of another version) could write behind
/// its back.
#[async_trait]
pub trait Subject: Send + Sync {
    fn jobs(&self) -> &dyn JobStore;
    fn runs(&self) -> &dyn RunLog;
    fn commits(&self) -> &dyn CommitStore;
    /// Writes a `jobs` item as a person would, past the store: `item` as it is, with its
    /// `version` (a number, a string, or none) as the item's version.
    async fn seed_job(&self, item: serde_json::Value);
    /// The `jobs` item of `job_id` as stored.
    async fn stored_job(&self, job_id: &str) -> serde_json::Value;
    /// Writes a run record as it is, past the store.
    async fn seed_run(&self, job_id: &str, job_run_time: i64, item: serde_json::Value);
}

fn job(version: u64) -> Job {
    Job {
        version,
        ..Job::new("j", 3, chrono::Utc::now())
    }
}

pub async fn put_job_is_conditional_on_the_version(s: &impl Subject) {
    let jobs = s.jobs();
    assert!(jobs.get_job("j").await.unwrap().is_none());
    assert!(
        !jobs.put_job(&job(1), Some(0)).await.unwrap(),
        "written over no item"
    );
    assert!(jobs.put_job(&job(0), None).await.unwrap());
    assert!(!jobs.put_job(&job(0), None).await.unwrap(), "created twice");
    assert!(jobs.put_job(&job(1), Some(0)).await.unwrap());
    assert!(
        !jobs.put_job(&job(2), Some(0)).await.unwrap(),
        "stale version won"
    );
    assert_eq!(jobs.get_job("j").await.unwrap().unwrap().version, 1);
}

pub async fn a_job_seeded_by_hand_is_version_zero_and_keeps_its_own_attributes(s: &impl Subject) {
    // As the original project told people to: no version, numbers as text, a file name.
    s.seed_job(serde_json::json!({
        "job_id": "j", "baseline_days": "2", "note": "mine",
        "job_run_bookmark_details": {"last_run_file_name": "2024-03-05-14.json.gz"},
    }))
    .await;
    let jobs = s.jobs();
    let mut seeded = jobs.get_job("j").await.unwrap().unwrap();
    assert_eq!((seeded.version, seeded.baseline_days), (0, Some(2)));
    assert!(!jobs.put_job(&seeded, None).await.unwrap(), "it exists");
    seeded.baseline_days = None;
    seeded.version = 1;
    assert!(jobs.put_job(&seeded, Some(0)).await.unwrap());
    assert!(!jobs.put_job(&seeded, Some(0)).await.unwrap(), "stale");

    let item = s.stored_job("j").await;
    assert_eq!(item["note"], "mine", "{item}");
    assert!(item.get("baseline_days").is_none(), "{item}");
    assert_eq!(
        item["job_run_bookmark_details"]["last_run_file_name"],
        "2024-03-05-14"
    );
    assert_eq!(jobs.get_job("j").await.unwrap().unwrap().version, 1);
}

pub async fn a_version_written_as_text_counts_as_its_number(s: &impl Subject) {
    s.seed_job(serde_json::json!({"job_id": "j", "version": "4"}))
        .await;
    let jobs = s.jobs();
    let mut seeded = jobs.get_job("j").await.unwrap().unwrap();
    assert_eq!(seeded.version, 4);
    seeded.version = 5;
    assert!(!jobs.put_job(&seeded, Some(3)).await.unwrap(), "stale");
    assert!(jobs.put_job(&seeded, Some(4)).await.unwrap());
    assert!(!jobs.put_job(&seeded, Some(4)).await.unwrap(), "twice");
    assert_eq!(jobs.get_job("j").await.unwrap().unwrap().version, 5);
}

fn ingest_run(run_id: &str, job_run_time: i64) -> RunRecord {
    let started_at = chrono::DateTime::from_timestamp_millis(job_run_time).unwrap_or_default();
    RunRecord::Ingest(IngestRun {
        job_id: "ingest".into(),
        job_run_time,
        run_id: run_id.into(),
        kind: RunKind::Scheduled,
        started_at,
        ended_at: started_at,
        status: RunStatus::Ok,
        stop: StopReason::CaughtUp,
        bookmark_before: None,
        bookmark_after: None,
        bookmark_lag_hours: Some(0),
        hours_ingested: 0,
        bytes: 0,
        hours: Vec::new(),
        error: None,
        set_aside: None,
    })
}

/// The run ids of `runs`, in order; an unreadable record as `?`.
fn run_ids(runs: &[StoredRun]) -> Vec<String> {
    runs.iter()
        .map(|r| match r {
            Ok(record) => record.run_id().unwrap_or("-").to_string(),
            Err(_) => "?".to_string(),
        })
        .collect()
}

pub async fn add_run_never_replaces_another_run_s_record(s: &impl Subject) {
    let runs = s.runs();
    assert_eq!(runs.add_run(&ingest_run("a", 5)).await.unwrap(), 5);
    assert_eq!(
        runs.add_run(&ingest_run("b", 5)).await.unwrap(),
        6,
        "a second run at the same time moves on by a millisecond"
    );
    assert_eq!(runs.add_run(&ingest_run("c", 5)).await.unwrap(), 7);
    let stored = runs.recent_runs("ingest", 10).await.unwrap();
    assert_eq!(run_ids(&stored), ["c", "b", "a"]);
    let Ok(RunRecord::Ingest(b)) = &stored[1] else {
        panic!("{:?}", stored[1]);
    };
    assert_eq!(
        b.job_run_time, 6,
        "the record carries the time it is stored at"
    );
}

pub async fn a_run_written_again_after_a_lost_reply_is_stored_once(s: &impl Subject) {
    let runs = s.runs();
    assert_eq!(runs.add_run(&ingest_run("other", 9)).await.unwrap(), 9);
    let ours = ingest_run("ours", 9);
    assert_eq!(runs.add_run(&ours).await.unwrap(), 10);
    // The reply was lost: the run writes the same record again.
    assert_eq!(
        runs.add_run(&ours).await.unwrap(),
        10,
        "found its own record"
    );
    let stored = runs.recent_runs("ingest", 10).await.unwrap();
    assert_eq!(run_ids(&stored), ["ours", "other"]);
}

pub async fn transform_runs_read_back_as_written(s: &impl Subject) {
    let started_at = chrono::DateTime::from_timestamp_millis(1_709_691_000_000).unwrap_or_default();
    let summary = events::TransformSummary::empty(
        "2024-03-05-14.json.gz".into(),
        "2024-03-05-14".parse().unwrap(),
    );
    let ok = TransformRun::new("s3://raw/k".into(), started_at, 1.5, Ok(&summary));
    let failed = TransformRun::new("s3://raw/k".into(), started_at, 0.25, Err("broken".into()));
    let runs = s.runs();
    let first = runs.add_run(&ok.clone().into()).await.unwrap();
    let second = runs.add_run(&failed.clone().into()).await.unwrap();
    assert_eq!(second, first + 1, "records without a run id never meet");
    let stored = runs.recent_runs(TRANSFORM_JOB_ID, 10).await.unwrap();
    let expected_failed = TransformRun {
        job_run_time: second,
        ..failed
    };
    assert_eq!(
        stored,
        [Ok(expected_failed.into()), Ok(RunRecord::Transform(ok))]
    );
}

pub async fn recent_runs_are_newest_first_and_limited(s: &impl Subject) {
    let runs = s.runs();
    for (id, time) in [("10", 10), ("30", 30), ("20", 20), ("50", 50), ("40", 40)] {
        runs.add_run(&ingest_run(id, time)).await.unwrap();
    }
    let stored = runs.recent_runs("ingest", 3).await.unwrap();
    assert_eq!(run_ids(&stored), ["50", "40", "30"]);
    assert!(runs.recent_runs("another", 3).await.unwrap().is_empty());
}

pub async fn an_unreadable_run_record_is_returned_with_the_reason(s: &impl Subject) {
    s.seed_run("ingest", 100, serde_json::json!({"note": "by hand"}))
        .await;
    s.runs().add_run(&ingest_run("good", 200)).await.unwrap();
    let stored = s.runs().recent_runs("ingest", 10).await.unwrap();
    assert_eq!(run_ids(&stored), ["good", "?"]);
    let Err(unreadable) = &stored[1] else {
        panic!("{:?}", stored[1]);
    };
    assert_eq!(unreadable.job_run_time, Some(100));
    assert!(
        unreadable.error.contains("not an ingest run record"),
        "{unreadable}"
    );
}

fn commit(key: &str, generation: u64) -> HourCommit {
    HourCommit {
        job_id: key.into(),
        hour: "2024-03-05-14".parse().unwrap(),
        generation,
        state: CommitState::Committed,
        run_id: "r".into(),
        updated_at: chrono::Utc::now(),
        lease_until: 0,
        source: SourceVersion::default(),
        parts: vec![],
        quarantine: None,
        event_ids: None,
        dropped_ids: None,
        table_version: None,
        replaced: vec![],
        staging: String::new(),
        counts: CommitCounts::default(),
        more_sources: vec![],
        by_source: vec![],
    }
}

pub async fn commits_are_conditional_on_own_and_neighbour_generations(s: &impl Subject) {
    let store = s.commits();
    assert!(store.put_commit(&commit("a", 1), None, &[]).await.unwrap());
    assert!(!store.put_commit(&commit("a", 1), None, &[]).await.unwrap());
    assert!(!store
        .put_commit(&commit("a", 2), Some(5), &[])
        .await
        .unwrap());
    let neighbour_absent = [("b".to_string(), None)];
    assert!(store
        .put_commit(&commit("b", 1), None, &[("a".into(), Some(1))])
        .await
        .unwrap());
    assert!(
        !store
            .put_commit(&commit("a", 2), Some(1), &neighbour_absent)
            .await
            .unwrap(),
        "the neighbour committed meanwhile: the write must fail"
    );
    assert!(
        !store
            .put_commit(&commit("a", 2), Some(1), &[("b".into(), Some(7))])
            .await
            .unwrap(),
        "the neighbour is at another generation"
    );
    assert!(store
        .put_commit(&commit("a", 2), Some(1), &[("b".into(), Some(1))])
        .await
        .unwrap());
    assert_eq!(store.get_commit("a").await.unwrap().unwrap().generation, 2);
    assert!(store.get_commit("c").await.unwrap().is_none());
}
