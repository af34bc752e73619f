//! What the ingest Lambda tells CloudWatch: the bookmark's lag and the hours and bytes a run
//! stored, as an Embedded Metric Format line on stdout, which CloudWatch turns into the metrics
//! `gh-elt` / `BookmarkLagHours`, `HoursIngested`, `BytesIngested`, `ParkedHours` and
//! `QueuedHours`. The template's alarm
//! watches the lag, and alarms when it is missing too (the ingest stopped); its dashboard shows
//! all three.
//!
//! Written by hand, not with an EMF crate: `metrics_cloudwatch_embedded` (the maintained one)
//! is a backend of the `metrics` facade: a process-wide recorder that sums counters between
//! flushes and stamps the flush time. Here each line is one run's own numbers at the run's end
//! (a warm Lambda must not carry one run's counts into the next), beside properties that say
//! which run (`run_id`, `bookmark`); a recorder would need resetting around every run and still
//! not take the run's time. The format is a dozen fixed fields, and the tests read them back.

use events::jobs::IngestRun;

/// The EMF line of a run's bookmark lag, if the run knows it. Dimensions `Stage` and
/// `Function`, as the transform's metrics, so that two stacks in one account keep apart.
pub fn bookmark_lag_line(run: &IngestRun, function: &str) -> Option<serde_json::Value> {
    let lag = run.bookmark_lag_hours?;
    Some(serde_json::json!({
        "_aws": {
            "Timestamp": run.ended_at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "gh-elt",
                "Dimensions": [["Stage", "Function"]],
                "Metrics": [
                    {"Name": "BookmarkLagHours", "Unit": "Count"},
                    {"Name": "HoursIngested", "Unit": "Count"},
                    {"Name": "BytesIngested", "Unit": "Bytes"},
                    {"Name": "ParkedHours", "Unit": "Count"},
                    {"Name": "QueuedHours", "Unit": "Count"},
                ],
            }],
        },
        "Stage": "ingest",
        "Function": function,
        "BookmarkLagHours": lag,
        "HoursIngested": run.hours_ingested,
        "BytesIngested": run.bytes,
        "ParkedHours": run.set_aside.map_or(0, |s| s.parked),
        "QueuedHours": run.set_aside.map_or(0, |s| s.queued),
        "job_id": run.job_id,
        "run_id": run.run_id,
        "bookmark": run.bookmark_after,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lag: Option<u32>) -> IngestRun {
        let record = serde_json::json!({
            "job_id": "ghactivity_ingest", "job_run_time": 1, "run_id": "r", "kind": "scheduled",
            "started_at": "2024-03-06T02:10:00Z", "ended_at": "2024-03-06T02:11:00Z",
            "status": "ok", "stop": "caught_up", "bookmark_after": "2024-03-06-0",
            "hours_ingested": 1, "bytes": 1, "hours": [], "bookmark_lag_hours": lag,
        });
        serde_json::from_value(record).unwrap()
    }

    #[test]
    fn the_lag_is_an_emf_metric_per_function() {
        let line = bookmark_lag_line(&run(Some(1)), "gh-elt-ingest").unwrap();
        let spec = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "gh-elt");
        assert_eq!(
            spec["Dimensions"],
            serde_json::json!([["Stage", "Function"]])
        );
        assert_eq!(spec["Metrics"][0]["Name"], "BookmarkLagHours");
        assert_eq!(
            (&line["Stage"], &line["Function"]),
            (&"ingest".into(), &"gh-elt-ingest".into())
        );
        assert_eq!(line["BookmarkLagHours"], 1);
        assert_eq!(line["_aws"]["Timestamp"], 1709691060000_i64);
        assert!(
            bookmark_lag_line(&run(None), "f").is_none(),
            "no lag, no data point"
        );
    }
}
