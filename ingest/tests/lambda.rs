//! The real `ingest` Lambda binary through its runtime loop: a stand-in for the Lambda Runtime
//! API hands it the sample EventBridge event, and the test reads what it answers. Storage is the
//! moto server, the source an HTTP mirror.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::Duration;

use events::jobs::{IngestRun, RunStatus};
use support::{runtime_api, runtime_api_until, AwsWorld, Fault, Mirror};

const SCHEDULE: &str = include_str!("../../events/samples/eventbridge-schedule.json");

#[tokio::test]
async fn the_lambda_answers_a_scheduled_event_with_the_run_record() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    let mut sources = Vec::new();
    for h in ["2024-03-05-0", "2024-03-05-1"] {
        let bytes = support::gzip_lines(h, 50);
        mirror.put(&format!("{h}.json.gz"), bytes.clone());
        sources.push((h, bytes));
    }
    // The second invocation finds 2024-03-05-2 missing long after it ended: a failed run,
    // which the function reports as an error (so that Lambda's error alarms see it).
    let (address, answers) = runtime_api(vec![SCHEDULE.to_string(), SCHEDULE.to_string()]);
    let mut command = world.lambda(env!("CARGO_BIN_EXE_ingest"), &address);
    command
        .env("GHARCHIVE_BASE_URL", &mirror.url)
        .env("INGEST_START_HOUR", "2024-03-05-0")
        .env("MAX_HOURS_PER_RUN", "2")
        .env("ELT_NOW", "2024-03-10T00:00:00Z")
        .env_remove("RUST_LOG")
        // As the stack sets it (LoggingConfig.LogFormat: JSON).
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the ingest binary starts");

    let first = answers.recv_timeout(Duration::from_secs(60));
    let second = answers.recv_timeout(Duration::from_secs(60));
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    // The runtime's subscriber writes the logs to stdout, beside the metric lines.
    let logs = String::from_utf8_lossy(&output.stdout).into_owned();
    let (first, second) = match (first, second) {
        (Ok(first), Ok(second)) => (first, second),
        other => panic!("no answers ({other:?}); logs:\n{logs}"),
    };

    assert_eq!(
        (first.request_id.as_str(), first.kind.as_str()),
        ("request-0", "response")
    );
    let run: IngestRun = serde_json::from_str(&first.body).unwrap();
    assert_eq!(run.status, RunStatus::Ok);
    assert_eq!(run.hours_ingested, 2);
    for (h, bytes) in &sources {
        let stored = world.get(&format!("landing/ghactivity/{h}.json.gz")).await;
        assert!(stored.as_ref() == Some(bytes), "{h} not stored as received");
    }
    assert_eq!(
        (second.request_id.as_str(), second.kind.as_str()),
        ("request-1", "error")
    );
    assert!(second.body.contains("missing (404)"), "{}", second.body);

    // Each run's bookmark lag is a CloudWatch metric (Embedded Metric Format on stdout), the
    // failed run's too: 2024-03-05-2 ..= 2024-03-09-23 are due.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lags: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == "BookmarkLagHours")
        .collect();
    assert_eq!(lags.len(), 2, "{stdout}");
    assert_eq!(lags[0]["BookmarkLagHours"], 118);
    assert_eq!(
        (&lags[1]["Stage"], &lags[1]["Function"]),
        (&"ingest".into(), &"ingest".into())
    );

    // Logs are JSON lines on Lambda, with the request id of the invocation.
    let invoked = logs
        .lines()
        .find(|l| l.contains("scheduled run"))
        .unwrap_or_else(|| panic!("no invocation log line in:\n{logs}"));
    let log: serde_json::Value = serde_json::from_str(invoked).expect("a JSON log line");
    assert_eq!(log["fields"]["request_id"], "request-0", "{invoked}");
}

/// The backfill queue's event source mapping hands the function a batch of backfill messages: it
/// stores their hours and answers with the messages whose hours failed.
#[tokio::test]
async fn the_lambda_answers_a_backfill_batch_with_the_messages_that_failed() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    for h in ["2024-03-05-0", "2024-03-05-1"] {
        mirror.put(&format!("{h}.json.gz"), support::gzip_lines(h, 20));
    }
    let message = |id: &str, from: &str, to: &str| {
        let body = serde_json::json!({"backfill": {"id": "bf-1", "from": from, "to": to}});
        serde_json::json!({
            "messageId": id, "receiptHandle": id, "body": body.to_string(),
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:backfill",
            "attributes": {}, "messageAttributes": {}, "awsRegion": "us-east-1",
        })
    };
    let batch = serde_json::json!({"Records": [
        message("stored", "2024-03-05-0", "2024-03-05-1"),
        message("missing", "2024-03-05-2", "2024-03-05-2"),
    ]});
    let (address, answers) = runtime_api(vec![batch.to_string()]);
    let mut command = world.lambda(env!("CARGO_BIN_EXE_ingest"), &address);
    command
        .env("GHARCHIVE_BASE_URL", &mirror.url)
        .env("ELT_NOW", "2024-03-10T00:00:00Z")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("the ingest binary starts");
    let answer = answers.recv_timeout(Duration::from_secs(60));
    child.kill().unwrap();
    let _ = child.wait();
    let answer = answer.expect("an answer");
    assert_eq!(answer.kind, "response", "{}", answer.body);
    let response: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        response,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "missing"}]})
    );
    for h in ["2024-03-05-0", "2024-03-05-1"] {
        assert!(world
            .get(&format!("landing/ghactivity/{h}.json.gz"))
            .await
            .is_some());
    }
    // The bookmark job is untouched.
    let job = adapters::JobStore::get_job(&world.jobs, "ghactivity_ingest").await;
    assert!(job.unwrap().is_none());
}

/// A source that trickles its body holds the function no longer than its timeout allows: the
/// run stops early enough to write its record (naming the hour) and to answer before Lambda's
/// deadline, instead of being killed with no record.
#[tokio::test]
async fn a_trickling_source_ends_the_run_before_the_lambdas_deadline_with_its_record() {
    let world = AwsWorld::new(false).await;
    let mirror = Mirror::start();
    let hour = "2024-03-05-0";
    mirror.put(&format!("{hour}.json.gz"), support::gzip_lines(hour, 200));
    mirror.always(
        &format!("{hour}.json.gz"),
        Fault::Trickle(Duration::from_millis(100)),
    );
    // The function's timeout: 26 s from the invocation; the run keeps 20 s for its record.
    let timeout = Duration::from_secs(26);
    let (address, answers) = runtime_api_until(vec![SCHEDULE.to_string()], timeout);
    let mut command = world.lambda(env!("CARGO_BIN_EXE_ingest"), &address);
    command
        .env("GHARCHIVE_BASE_URL", &mirror.url)
        .env("INGEST_START_HOUR", hour)
        .env("ELT_NOW", "2024-03-10T00:00:00Z")
        // Only the Lambda's deadline may end this transfer.
        .env("FETCH_TIMEOUT_SECONDS", "600")
        .env("DEADLINE_MARGIN_SECONDS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = std::time::Instant::now();
    let mut child = command.spawn().expect("the ingest binary starts");
    let answer = answers.recv_timeout(Duration::from_secs(60));
    let took = started.elapsed();
    child.kill().unwrap();
    let _ = child.wait();
    let answer = answer.expect("an answer");
    assert!(took < timeout, "answered after {took:?}, past the deadline");
    assert_eq!(answer.kind, "response", "{}", answer.body);
    let run: IngestRun = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(run.stop, events::jobs::StopReason::Deadline, "{run:?}");
    let said = serde_json::to_string(&run).unwrap();
    assert!(said.contains(hour), "the record names the hour: {said}");
    // The same record is in job_run_details.
    let stored = adapters::RunLog::recent_runs(&world.jobs, "ghactivity_ingest", 1)
        .await
        .unwrap();
    let stored =
        serde_json::to_string(&stored.into_iter().next().expect("a run record").unwrap()).unwrap();
    assert!(stored.contains(&run.run_id), "{stored}");
    assert!(stored.contains(hour), "{stored}");
    // Nothing of the hour was counted against it, and nothing half-stored.
    assert!(world
        .get(&format!("landing/ghactivity/{hour}.json.gz"))
        .await
        .is_none());
    let job = adapters::JobStore::get_job(&world.jobs, "ghactivity_ingest")
        .await
        .unwrap()
        .expect("the job");
    assert!(
        job.failing_hour.is_none() && job.parked_hours.is_empty(),
        "{job:?}"
    );
}
