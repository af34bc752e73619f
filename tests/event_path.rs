//! End-to-end tests of the event path on AWS: raw objects land in the raw bucket, S3 notifies an
//! SQS queue (with a redrive policy to a DLQ), `elt worker` works the queue with the transform
//! handler, `elt redrive` brings parked messages back. All against a moto server.

mod support;

use std::collections::BTreeMap;
use std::process::Output;

use adapters::RunLog;
use aws_sdk_sqs::types::QueueAttributeName;
use events::jobs::{RunRecord, RunStatus};
use events::TransformSummary;
use support::{unique, AwsWorld};

const REAL_EVENTS: &str = include_str!("../fixtures/real-events.jsonl");
const PREFIX: &str = "landing/ghactivity/";

struct EventPath {
    world: AwsWorld,
    curated: String,
    queue: String,
    dlq: String,
    sqs: aws_sdk_sqs::Client,
}

impl EventPath {
    /// Raw and curated buckets, a queue with a redrive policy (3 receives) to a DLQ, and the raw
    /// bucket's notification to the queue for the raw prefix.
    async fn new() -> EventPath {
        let world = AwsWorld::new(false).await;
        let curated = unique("curated");
        world.s3_in(&curated, reqwest::Method::PUT, "", None).await;
        let sqs = aws_sdk_sqs::Client::new(&world.sdk);
        let (queue, dlq) = support::queue_with_dead_letters(&world.sdk, "raw-files", 3).await;
        world.notify(&queue, PREFIX).await;
        EventPath {
            world,
            curated,
            queue,
            dlq,
            sqs,
        }
    }

    fn store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        support::s3_store(bucket)
    }

    /// Puts a raw object (S3 then notifies the queue).
    async fn put_raw(&self, key: &str, bytes: Vec<u8>) {
        use object_store::ObjectStoreExt;
        self.store(&self.world.bucket)
            .put(&object_store::path::Path::from(key), bytes.into())
            .await
            .unwrap();
    }

    /// `elt worker --until-idle` on the queue; the summaries it printed, and its output.
    fn worker(&self) -> (Vec<TransformSummary>, Output) {
        let output = self
            .world
            .command(
                env!("CARGO_BIN_EXE_elt"),
                &[
                    "worker",
                    "--queue",
                    &self.queue,
                    "--wait",
                    "3",
                    "--visibility",
                    "1",
                    "--until-idle",
                ],
            )
            .env("CURATED_BUCKET", &self.curated)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summaries = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (summaries, output)
    }

    /// The curated bucket as readers see it (the table's parts by slot, and the quarantine).
    async fn curated_objects(&self) -> BTreeMap<String, Vec<u8>> {
        support::table_objects(&self.curated).await
    }

    async fn depth(&self, url: &str) -> usize {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        attributes
            .attributes
            .and_then(|a| {
                a.get(&QueueAttributeName::ApproximateNumberOfMessages)
                    .cloned()
            })
            .and_then(|n| n.parse().ok())
            .expect("the queue reports its depth")
    }
}

/// The real events, first `n` of them.
fn real_lines(n: usize) -> String {
    REAL_EVENTS
        .lines()
        .take(n)
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test]
async fn notified_files_become_parquet_and_poison_goes_to_the_dlq_and_back() {
    let path = EventPath::new().await;
    let all = REAL_EVENTS.lines().count() as u64;
    path.put_raw(
        &format!("{PREFIX}2024-03-05-14.json.gz"),
        support::gzip(REAL_EVENTS.as_bytes()),
    )
    .await;
    path.put_raw(
        &format!("{PREFIX}2024-03-05-12.json.zst"),
        zstd::encode_all(real_lines(300).as_bytes(), 3).unwrap(),
    )
    .await;
    // Hours two apart: neighbouring hours would find these shared events already committed.
    path.put_raw(
        &format!("{PREFIX}2024-03-05-10.json.gz"),
        support::gzip(real_lines(200).as_bytes()),
    )
    .await;
    // Keys with a space, `+` and `=` arrive URL-encoded in the notification; below a folder of
    // the raw prefix, a file is not the hour's raw file and is acknowledged, not transformed.
    path.put_raw(
        &format!("{PREFIX}odd name+x=y/2024-03-05-16.json.gz"),
        support::gzip(real_lines(200).as_bytes()),
    )
    .await;
    // Poison: a truncated gzip file, in the same batch as the good ones.
    let whole = support::gzip(real_lines(400).as_bytes());
    path.put_raw(
        &format!("{PREFIX}2024-03-05-17.json.gz"),
        whole[..whole.len() / 2].to_vec(),
    )
    .await;
    // Outside the raw prefix: never notified. Not an hour file: acknowledged and ignored.
    path.put_raw("elsewhere/2024-03-05-18.json.gz", support::gzip(b"{}\n"))
        .await;
    path.put_raw(&format!("{PREFIX}README.txt"), b"hello".to_vec())
        .await;

    let (summaries, output) = path.worker();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let by_hour: BTreeMap<String, &TransformSummary> =
        summaries.iter().map(|s| (s.hour.to_string(), s)).collect();
    assert_eq!(
        by_hour.keys().collect::<Vec<_>>(),
        ["2024-03-05-10", "2024-03-05-12", "2024-03-05-14"],
        "{stderr}"
    );
    assert_eq!(by_hour["2024-03-05-14"].records, all);
    assert_eq!(by_hour["2024-03-05-12"].records, 300);
    assert_eq!(by_hour["2024-03-05-10"].records, 200);
    assert!(
        stderr.contains("odd name+x=y/2024-03-05-16.json.gz: in a folder below"),
        "the decoded key is named when it is ignored: {stderr}"
    );
    assert!(
        stderr.contains("README.txt"),
        "ignored keys are logged: {stderr}"
    );
    assert!(
        stderr.contains("received 3 times") && stderr.contains("2024-03-05-17.json.gz"),
        "the poison file failed on each of its 3 receives: {stderr}"
    );

    // The Parquet is in the curated bucket under the partition keys, with the rows counted.
    let objects = path.curated_objects().await;
    for summary in &summaries {
        let mut rows = 0;
        for key in &support::slots(&summary.outputs) {
            let bytes = objects.get(key).unwrap_or_else(|| panic!("{key} missing"));
            let reader = datafusion::parquet::file::reader::SerializedFileReader::new(
                bytes::Bytes::from(bytes.clone()),
            )
            .unwrap();
            rows += datafusion::parquet::file::reader::FileReader::metadata(&reader)
                .file_metadata()
                .num_rows() as u64;
        }
        assert_eq!(rows, summary.rows, "{}", summary.hour);
        // The real events span 2012–2026: each day's rows in its own partition, every part
        // named by the source hour.
        assert!(summary.outputs.len() > 1);
        for key in &summary.outputs {
            let name = key.rsplit('/').next().unwrap();
            assert!(
                key.starts_with("ghactivity/year=")
                    && name.starts_with(&format!("part-{}-", summary.hour)),
                "{key}"
            );
        }
    }
    let runs = path
        .world
        .jobs
        .recent_runs(transform::handler::TRANSFORM_JOB_ID, 100)
        .await
        .unwrap();
    let statuses: Vec<RunStatus> = runs
        .iter()
        .map(|r| match r {
            Ok(RunRecord::Transform(run)) => run.status,
            other => panic!("not a transform run: {other:?}"),
        })
        .collect();
    assert!(
        statuses.contains(&RunStatus::Error),
        "the poison's failures are recorded"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == RunStatus::Ok).count(),
        3,
        "one run record per file done"
    );

    // The poison file is parked in the DLQ; `elt redrive` brings it back.
    assert_eq!(path.depth(&path.queue).await, 0);
    assert_eq!(path.depth(&path.dlq).await, 1, "{stderr}");
    let redrive = path
        .world
        .command(
            env!("CARGO_BIN_EXE_elt"),
            &["redrive", "--from", &path.dlq, "--to", &path.queue],
        )
        .output()
        .unwrap();
    assert!(
        redrive.status.success(),
        "{}",
        String::from_utf8_lossy(&redrive.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&redrive.stdout).unwrap();
    assert_eq!(report["moved"], 1);
    assert_eq!(path.depth(&path.dlq).await, 0);
    assert_eq!(path.depth(&path.queue).await, 1);

    // Fixed at the source and delivered again: it goes through.
    path.put_raw(&format!("{PREFIX}2024-03-05-17.json.gz"), whole)
        .await;
    let (again, _) = path.worker();
    assert!(again.iter().all(|s| s.hour.to_string() == "2024-03-05-17"));
    assert_eq!(
        again.len(),
        2,
        "the redriven message and the new notification"
    );
    assert!(again.iter().all(|s| s.lines == 400));
}

#[tokio::test]
async fn a_duplicate_delivery_leaves_the_lake_unchanged() {
    let path = EventPath::new().await;
    let key = format!("{PREFIX}2024-03-05-14.json.gz");
    path.put_raw(&key, support::gzip(REAL_EVENTS.as_bytes()))
        .await;
    let (first, _) = path.worker();
    assert_eq!(first.len(), 1);
    let before = path.curated_objects().await;
    assert!(!before.is_empty());

    // The same object notified again, as a multipart upload or a redelivery can do.
    let body = serde_json::json!({"Records": [{
        "eventName": "ObjectCreated:CompleteMultipartUpload",
        "eventTime": "2024-03-05T15:00:00.000",
        "s3": {"bucket": {"name": path.world.bucket}, "object": {"key": key}}
    }]});
    for _ in 0..2 {
        path.sqs
            .send_message()
            .queue_url(&path.queue)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }
    let (again, _) = path.worker();
    assert_eq!(again.len(), 2);
    assert!(
        again
            .iter()
            .all(|s| support::slots(&s.outputs) == support::slots(&first[0].outputs)),
        "the same keys"
    );
    // And once more by hand: `elt transform --aws` runs the same handler on the object.
    let by_hand = path
        .world
        .command(
            env!("CARGO_BIN_EXE_elt"),
            &[
                "transform",
                "--aws",
                &format!("s3://{}/{key}", path.world.bucket),
            ],
        )
        .env("CURATED_BUCKET", &path.curated)
        .output()
        .unwrap();
    assert!(
        by_hand.status.success(),
        "{}",
        String::from_utf8_lossy(&by_hand.stderr)
    );
    let summary: TransformSummary = serde_json::from_slice(&by_hand.stdout).unwrap();
    assert_eq!(
        support::slots(&summary.outputs),
        support::slots(&first[0].outputs)
    );

    let after = path.curated_objects().await;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert!(before == after, "the lake changed byte for byte");
}
