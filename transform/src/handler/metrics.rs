//! One file's numbers as a CloudWatch Embedded Metric Format log line (on Lambda), with the
//! hour's rows against the same hour a day and a week before: the dashboard's completeness.

use events::completeness::Completeness;
use events::TransformSummary;

use crate::{Lake, TransformOptions};

/// The committed hour's rows against the same hour a day and a week before, from their commit
/// records; none for a superseded run, or when the records cannot be read (the metric is not
/// worth failing the file for).
pub(super) async fn completeness(
    lake: &Lake,
    options: &TransformOptions,
    summary: &TransformSummary,
) -> Option<Completeness> {
    if summary.superseded.is_some() {
        return None;
    }
    let baselines = Completeness::baselines(summary.hour);
    let records = adapters::commits::commit_records(
        lake.commits.as_ref(),
        &options.curated_prefix,
        baselines,
    );
    match records.await {
        Ok(records) => Some(adapters::commits::compare(
            summary.hour,
            summary.rows,
            &records,
        )),
        Err(e) => {
            tracing::warn!(hour = %summary.hour, error = format!("{e:#}"), "no completeness metric");
            None
        }
    }
}

/// The EMF line: the run's counts, and where there is something to compare with, the hour's
/// rows as a percentage of the same hour a day and a week before, and whether it fell by more
/// than half (1) or not (0).
pub(super) fn line(
    summary: &TransformSummary,
    location: &str,
    health: Option<&Completeness>,
) -> serde_json::Value {
    let metric = |name: &str, unit: &str| serde_json::json!({"Name": name, "Unit": unit});
    let mut metrics = vec![
        metric("Rows", "Count"),
        metric("Duplicates", "Count"),
        metric("DuplicatesAcrossHours", "Count"),
        metric("Rejected", "Count"),
        metric("RawBytes", "Bytes"),
        metric("Seconds", "Seconds"),
    ];
    let mut line = serde_json::json!({
        "Stage": "transform",
        "Function": std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "elt".into()),
        "Rows": summary.rows,
        "Duplicates": summary.duplicates,
        "DuplicatesAcrossHours": summary.duplicates_across_hours,
        "Rejected": summary.rejected,
        "RawBytes": summary.raw_bytes,
        "Seconds": summary.seconds,
        "file": location,
        "hour": summary.hour.to_string(),
    });
    if let Some(health) = health {
        // A metric is declared only with a value: EMF drops a declared metric without one.
        let values = [
            ("RowsVsDayBefore", health.percent_of_day_before()),
            ("RowsVsWeekBefore", health.percent_of_week_before()),
            ("FellByHalf", Some(f64::from(u8::from(health.fell_by_half)))),
        ];
        for (name, value) in values {
            if let Some(value) = value {
                let unit = if name == "FellByHalf" {
                    "Count"
                } else {
                    "Percent"
                };
                metrics.push(metric(name, unit));
                line[name] = serde_json::json!(value);
            }
        }
    }
    line["_aws"] = serde_json::json!({
        "Timestamp": chrono::Utc::now().timestamp_millis(),
        "CloudWatchMetrics": [{
            "Namespace": "gh-elt",
            // Per function, so that two stacks in one account keep their numbers apart.
            "Dimensions": [["Stage", "Function"]],
            "Metrics": metrics,
        }],
    });
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> TransformSummary {
        let hour = "2025-10-08-0".parse().expect("an hour");
        let mut summary = TransformSummary::empty("2025-10-08-0.json.gz".into(), hour);
        summary.rows = 18_241;
        summary
    }

    fn declared(line: &serde_json::Value) -> Vec<String> {
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["Name"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn every_declared_metric_has_its_value() {
        let s = summary();
        let health = Completeness::assess(s.hour, s.rows, Some(424_570), None);
        for line in [line(&s, "f", None), line(&s, "f", Some(&health))] {
            for name in declared(&line) {
                assert!(line[&name].is_number(), "{name} has no value in {line}");
            }
        }
    }

    #[test]
    fn a_fall_by_half_is_a_metric() {
        let s = summary();
        let health = Completeness::assess(s.hour, s.rows, Some(424_570), None);
        let line = line(&s, "f", Some(&health));
        assert_eq!(line["FellByHalf"], 1.0);
        let percent = line["RowsVsDayBefore"].as_f64().expect("a percentage");
        assert!((percent - 4.3).abs() < 0.1, "{percent}");
        assert!(!declared(&line).contains(&"RowsVsWeekBefore".to_string()));
    }
}
