//! The handler's filtering and its run records, on a local lake: notifications as SQS delivers
//! them (moto's shape: the key URL-encoded, no time zone), test events, deletions, keys that are
//! not the hour's raw file, and a body that is no notification at all.

use std::sync::Arc;

use events::jobs::{RunRecord, RunStatus, TRANSFORM_JOB_ID};

use super::*;

#[test]
fn only_raw_prefix_plus_an_hour_file_name_is_a_raw_hour() {
    let prefix = events::DEFAULT_RAW_PREFIX;
    let hour = |key: &str| raw_hour_key(prefix, key).map(|h| h.to_string());
    assert_eq!(
        hour("landing/ghactivity/2024-03-05-14.json.gz").as_deref(),
        Ok("2024-03-05-14")
    );
    assert!(hour("landing/ghactivity/2024-03-05-14.json.zst").is_ok());
    assert_eq!(
        hour("landing/ghactivity/sources/opendigger/2024-03-05-9.json.gz").as_deref(),
        Ok("2024-03-05-9"),
        "a mirror's file is the hour's too"
    );
    for other in [
        "landing/ghactivity/+2024-3-05-14.json.gz",
        "landing/ghactivity/2024- 3-05-14.json.gz",
        "landing/ghactivity/2024-03-05-09.json.gz",
        "landing/ghactivity/sources/2024-03-05-14.json.gz",
        "landing/ghactivity/sources/Big/2024-03-05-14.json.gz",
        "landing/ghactivity/sources/a/b/2024-03-05-14.json.gz",
        "landing/ghactivity/tmp/2024-03-05-14.json.gz",
        "landing/ghactivity/backup/2024-03-05-14.json.gz",
        "landing/other/2024-03-05-14.json.gz",
        "landing/ghactivity/2024-03-05-14.json.gz.bak",
        "landing/ghactivity/notes.txt",
    ] {
        assert!(hour(other).is_err(), "{other} was taken for a raw hour");
    }
}

struct LocalWorld {
    handler: Handler,
    runs: Arc<adapters::SqliteJobStore>,
    raw: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn local_world() -> LocalWorld {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let state = Arc::new(adapters::SqliteJobStore::open(&dir.path().join("state.sqlite")).unwrap());
    let lake = Lake {
        store: adapters::objects::folder(&dir.path().join("lake")).unwrap(),
        commits: state.clone(),
        place: lake_table::Place::Folder(dir.path().join("lake")),
    };
    let raw_dir = raw.clone();
    let open_bucket: OpenBucket = Box::new(move |bucket: &str| {
        assert_eq!(bucket, "raw-bucket");
        adapters::objects::folder(&raw_dir)
    });
    let handler = Handler::new(
        events::DEFAULT_RAW_PREFIX.to_string(),
        TransformOptions::default(),
        lake,
        open_bucket,
        Some(state.clone()),
    );
    LocalWorld {
        handler,
        runs: state,
        raw,
        _dir: dir,
    }
}

/// An S3 notification as moto sends it through SQS.
fn notification(event_name: &str, key: &str) -> String {
    let encoded: String = key.replace('/', "%2F");
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2024-03-05T15:00:01.000",
        "eventName": event_name,
        "s3": {"bucket": {"name": "raw-bucket"}, "object": {"key": encoded, "size": 1}},
    }]})
    .to_string()
}

fn ignored(handled: Handled) -> String {
    match handled {
        Handled::Ignored(reason) => reason,
        Handled::Transformed(summaries) => panic!("transformed: {summaries:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_a_new_raw_hour_file_is_acknowledged_with_the_reason_and_not_recorded() {
    let world = local_world();
    let handler = &world.handler;
    let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"raw-bucket"}"#;
    assert_eq!(
        ignored(handler.handle_message(test_event).await.unwrap()),
        "s3:TestEvent"
    );
    let cases = [
        (
            "ObjectRemoved:Delete",
            "landing/ghactivity/2024-03-05-14.json.gz",
            "ObjectRemoved:Delete",
        ),
        (
            "ObjectCreated:Put",
            "landing/other/2024-03-05-14.json.gz",
            "outside landing/ghactivity/",
        ),
        (
            "ObjectCreated:Put",
            "landing/ghactivity/tmp/2024-03-05-14.json.gz",
            "in a folder below",
        ),
        (
            "ObjectCreated:Put",
            "landing/ghactivity/notes.txt",
            "notes.txt",
        ),
    ];
    for (event_name, key, why) in cases {
        let reason = ignored(
            handler
                .handle_message(&notification(event_name, key))
                .await
                .unwrap(),
        );
        assert!(
            reason.contains(key) && reason.contains(why),
            "{key}: {reason}"
        );
    }
    let runs = world.runs.recent_runs(TRANSFORM_JOB_ID, 10).await.unwrap();
    assert!(runs.is_empty(), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_raw_hour_file_is_transformed_and_its_run_recorded() {
    let world = local_world();
    let events = include_str!("../../../fixtures/real-events.jsonl");
    let key = "landing/ghactivity/2024-03-05-14.json";
    std::fs::create_dir_all(world.raw.join("landing/ghactivity")).unwrap();
    std::fs::write(world.raw.join(key), events).unwrap();
    let handled = world
        .handler
        .handle_message(&notification("ObjectCreated:Put", key))
        .await
        .unwrap();
    let Handled::Transformed(summaries) = handled else {
        panic!("not transformed: {handled:?}");
    };
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].rows, events.lines().count() as u64);

    let runs = world.runs.recent_runs(TRANSFORM_JOB_ID, 10).await.unwrap();
    let [Ok(RunRecord::Transform(run))] = runs.as_slice() else {
        panic!("one transform run expected: {runs:?}");
    };
    assert_eq!(run.source, format!("s3://raw-bucket/{key}"));
    assert_eq!(run.status, RunStatus::Ok);
    assert_eq!(
        run.summary.as_ref().map(|s| s.rows),
        Some(summaries[0].rows)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_no_notification_is_an_error_and_a_missing_object_too() {
    let world = local_world();
    let error = world.handler.handle_message("not json").await.unwrap_err();
    assert!(format!("{error:#}").contains("JSON"), "{error:#}");
    let missing = notification(
        "ObjectCreated:Put",
        "landing/ghactivity/2024-03-05-15.json.gz",
    );
    assert!(world.handler.handle_message(&missing).await.is_err());
    // The failed file's run is recorded with its error.
    let runs = world.runs.recent_runs(TRANSFORM_JOB_ID, 10).await.unwrap();
    let [Ok(RunRecord::Transform(run))] = runs.as_slice() else {
        panic!("one transform run expected: {runs:?}");
    };
    assert_eq!(run.status, RunStatus::Error);
    assert!(run.error.is_some());
}
