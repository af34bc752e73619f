//! The records of `job_run_details`: one per ingest run ([`IngestRun`]) and one per raw file
//! the transform worked on ([`TransformRun`], under the job [`TRANSFORM_JOB_ID`]), one per backfill
//! fanned out ([`BackfillPlan`], under [`BACKFILL_JOB_ID`]). They are
//! written as the documents they have always been; [`RunRecord::read`] reads a stored one back
//! as its job's kind, and an [`UnreadableRun`] says why when it cannot.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backfill::{BackfillPlan, BACKFILL_JOB_ID};
use crate::{Hour, TransformSummary};

/// One ingest run, as recorded in `job_run_details` (sort key `job_run_time`, epoch ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestRun {
    pub job_id: String,
    pub job_run_time: i64,
    pub run_id: String,
    pub kind: RunKind,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub status: RunStatus,
    /// Why the run ended.
    pub stop: StopReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmark_before: Option<Hour>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmark_after: Option<Hour>,
    /// Hours that have ended and are not done yet, when the run ended (see [`lag_hours`]); none
    /// for a backfill, or when the job could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmark_lag_hours: Option<u32>,
    /// Hours whose file this run stored.
    pub hours_ingested: u32,
    /// Bytes this run stored.
    pub bytes: u64,
    pub hours: Vec<HourResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The hours the job held apart when the run ended; none for a backfill, or when the job
    /// could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_aside: Option<SetAside>,
}

/// How many hours a job holds apart from the bookmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAside {
    /// Parked: tried again at growing intervals (or never, when parked for good).
    pub parked: u32,
    /// Queued: tried by every run.
    pub queued: u32,
    /// Hours stored from one source that another has not delivered yet.
    pub late_sources: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Follows the bookmark (the scheduled Lambda, `elt ingest`, `elt run`).
    Scheduled,
    /// `elt backfill`: a range, the bookmark untouched.
    Backfill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Ok,
    /// Another run held the job; this one did nothing.
    Busy,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The next hour is not over yet.
    CaughtUp,
    /// GHArchive does not have the next hour yet (404 shortly after the hour).
    NotPublished,
    /// `--until` was reached.
    Until,
    MaxHours,
    /// The Lambda deadline (minus the safety margin) was near.
    Deadline,
    /// Another run holds the job.
    Busy,
    /// An hour failed; the bookmark stays before it.
    Failed,
    /// Backfill: the whole range was tried.
    RangeDone,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourResult {
    pub hour: Hour,
    pub outcome: HourOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Bytes stored (after recompression, when any).
    #[serde(default)]
    pub bytes: u64,
    /// Bytes received from GHArchive.
    #[serde(default)]
    pub source_bytes: u64,
    /// Download attempts made (retries included).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Each source's part, when the job has more than one (see `events::sources`): the fields
    /// above then sum them up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceResult>,
}

/// What one source gave of an hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceResult {
    /// The source's name (`GHARCHIVE_SOURCES`).
    pub source: String,
    pub outcome: HourOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub source_bytes: u64,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HourOutcome {
    /// Downloaded and stored.
    Ingested,
    /// Already in the bucket (a run that stopped before moving the bookmark, or a backfill).
    AlreadyPresent,
    /// GHArchive answered 404 for an hour long past.
    Missing,
    /// Parked: failed on too many runs, or parked by hand; the bookmark moved past it.
    Skipped,
    /// Download or upload failed after its retries.
    Failed,
    /// The source did not deliver it, for reasons that are not the hour's, while it served the
    /// hours around it: the bookmark moved on, and every run tries it until it arrives.
    Queued,
}

impl HourResult {
    pub fn new(hour: Hour, outcome: HourOutcome) -> HourResult {
        HourResult {
            hour,
            outcome,
            key: None,
            bytes: 0,
            source_bytes: 0,
            attempts: 0,
            seconds: 0.0,
            error: None,
            sources: Vec::new(),
        }
    }
}

/// `job_id` of the transform's run records. Every other job in `job_run_details` is an ingest.
pub const TRANSFORM_JOB_ID: &str = "transform";

/// One raw file the transform worked on, as recorded under [`TRANSFORM_JOB_ID`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformRun {
    pub job_id: String,
    /// When the transform started, in epoch ms (or the next free millisecond).
    pub job_run_time: i64,
    /// The raw object: `s3://bucket/key`.
    pub source: String,
    pub started_at: DateTime<Utc>,
    pub seconds: f64,
    /// `ok`, with the `summary`; or `error`, with the `error`.
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<TransformSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TransformRun {
    /// The record of transforming `source` from `started_at` for `seconds`: what it came to, or
    /// why it failed.
    pub fn new(
        source: String,
        started_at: DateTime<Utc>,
        seconds: f64,
        outcome: Result<&TransformSummary, String>,
    ) -> TransformRun {
        let (status, summary, error) = match outcome {
            Ok(summary) => (RunStatus::Ok, Some(summary.clone()), None),
            Err(error) => (RunStatus::Error, None, Some(error)),
        };
        TransformRun {
            job_id: TRANSFORM_JOB_ID.to_string(),
            job_run_time: started_at.timestamp_millis(),
            source,
            started_at,
            seconds,
            status,
            summary,
            error,
        }
    }
}

/// A record of `job_run_details`. Stored as the run's own document (no tag): which kind a
/// record is follows from its job (see [`RunRecord::read`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RunRecord {
    Ingest(IngestRun),
    Transform(TransformRun),
    /// A backfill fanned out on a queue, under [`BACKFILL_JOB_ID`].
    Backfill(BackfillPlan),
}

/// A stored run record that could not be read as its job's kind, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the run record at job_run_time {} could not be read: {error}", job_run_time.map_or("?".to_string(), |t| t.to_string()))]
pub struct UnreadableRun {
    /// Its key, when that is a number of milliseconds.
    pub job_run_time: Option<i64>,
    pub error: String,
}

impl RunRecord {
    /// Reads the stored document `item` of a record of `job_id` stored at `job_run_time`: a
    /// transform run under [`TRANSFORM_JOB_ID`], an ingest run under any other job.
    pub fn read(
        job_id: &str,
        job_run_time: Option<i64>,
        item: serde_json::Value,
    ) -> Result<RunRecord, UnreadableRun> {
        let read = if job_id == TRANSFORM_JOB_ID {
            serde_json::from_value(item).map(RunRecord::Transform)
        } else if job_id == BACKFILL_JOB_ID {
            serde_json::from_value(item).map(RunRecord::Backfill)
        } else {
            serde_json::from_value(item).map(RunRecord::Ingest)
        };
        read.map_err(|e| UnreadableRun {
            job_run_time,
            error: format!("not {} run record: {e}", Self::kind_of(job_id)),
        })
    }

    fn kind_of(job_id: &str) -> &'static str {
        if job_id == TRANSFORM_JOB_ID {
            "a transform"
        } else if job_id == BACKFILL_JOB_ID {
            "a backfill plan"
        } else {
            "an ingest"
        }
    }

    pub fn job_id(&self) -> &str {
        match self {
            RunRecord::Ingest(run) => &run.job_id,
            RunRecord::Transform(run) => &run.job_id,
            RunRecord::Backfill(plan) => &plan.job_id,
        }
    }

    /// Where the record asks to be stored (epoch ms): the run's start.
    pub fn job_run_time(&self) -> i64 {
        match self {
            RunRecord::Ingest(run) => run.job_run_time,
            RunRecord::Transform(run) => run.job_run_time,
            RunRecord::Backfill(plan) => plan.job_run_time,
        }
    }

    /// The run's id, by which a retried write finds its own record (the transform's records
    /// have none: each file's record is written once).
    pub fn run_id(&self) -> Option<&str> {
        match self {
            RunRecord::Ingest(run) => Some(&run.run_id),
            RunRecord::Transform(_) => None,
            RunRecord::Backfill(plan) => Some(&plan.run_id),
        }
    }

    pub fn status(&self) -> RunStatus {
        match self {
            RunRecord::Ingest(run) => run.status,
            RunRecord::Transform(run) => run.status,
            RunRecord::Backfill(_) => RunStatus::Ok,
        }
    }
}

impl From<IngestRun> for RunRecord {
    fn from(run: IngestRun) -> RunRecord {
        RunRecord::Ingest(run)
    }
}

impl From<TransformRun> for RunRecord {
    fn from(run: TransformRun) -> RunRecord {
        RunRecord::Transform(run)
    }
}

impl From<BackfillPlan> for RunRecord {
    fn from(plan: BackfillPlan) -> RunRecord {
        RunRecord::Backfill(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ingest record as the ingest has written it since run records began.
    fn stored_ingest_run() -> serde_json::Value {
        serde_json::json!({
            "job_id": "ghactivity_ingest", "job_run_time": 1709691000000_i64, "run_id": "r",
            "kind": "scheduled", "started_at": "2024-03-06T02:10:00Z",
            "ended_at": "2024-03-06T02:11:00Z", "status": "ok", "stop": "caught_up",
            "bookmark_before": "2024-03-05-23", "bookmark_after": "2024-03-06-0",
            "bookmark_lag_hours": 1, "hours_ingested": 1, "bytes": 10,
            "hours": [{"hour": "2024-03-06-0", "outcome": "ingested", "key": "k", "bytes": 10,
                       "source_bytes": 10, "attempts": 1, "seconds": 0.5}],
        })
    }

    /// A transform record as the handler wrote it with `serde_json::json!` before it was typed.
    fn stored_transform_run(status: &str) -> serde_json::Value {
        let mut record = serde_json::json!({
            "job_id": "transform", "job_run_time": 1709691000000_i64,
            "source": "s3://raw/landing/ghactivity/2024-03-05-14.json.gz",
            "started_at": "2024-03-06T02:10:00.123456Z", "seconds": 2, "status": status,
        });
        if status == "ok" {
            let summary = TransformSummary::empty(
                "2024-03-05-14.json.gz".into(),
                "2024-03-05-14".parse().unwrap(),
            );
            record["summary"] = serde_json::to_value(summary).unwrap();
        } else {
            record["error"] = "transforming s3://raw/…: not gzip".into();
        }
        record
    }

    #[test]
    fn stored_records_read_back_as_their_job_s_kind() {
        let ingest = RunRecord::read("ghactivity_ingest", Some(1), stored_ingest_run()).unwrap();
        assert_eq!(
            (ingest.run_id(), ingest.status()),
            (Some("r"), RunStatus::Ok)
        );
        let RunRecord::Transform(ok) =
            RunRecord::read(TRANSFORM_JOB_ID, Some(1), stored_transform_run("ok")).unwrap()
        else {
            panic!("not read as a transform run");
        };
        assert_eq!((ok.status, ok.seconds), (RunStatus::Ok, 2.0));
        assert_eq!(ok.summary.unwrap().hour.to_string(), "2024-03-05-14");
        let failed =
            RunRecord::read(TRANSFORM_JOB_ID, Some(1), stored_transform_run("error")).unwrap();
        assert_eq!((failed.status(), failed.run_id()), (RunStatus::Error, None));
    }

    #[test]
    fn written_records_keep_the_stored_shape() {
        let RunRecord::Transform(run) =
            RunRecord::read(TRANSFORM_JOB_ID, Some(1), stored_transform_run("ok")).unwrap()
        else {
            panic!("not read as a transform run");
        };
        let written = serde_json::to_value(RunRecord::from(run.clone())).unwrap();
        assert_eq!(written["source"], stored_transform_run("ok")["source"]);
        assert!(written.get("error").is_none(), "{written}");
        let again = RunRecord::read(TRANSFORM_JOB_ID, Some(1), written).unwrap();
        assert_eq!(again, RunRecord::Transform(run));

        let ingest = RunRecord::read("j", Some(1), stored_ingest_run()).unwrap();
        let written = serde_json::to_value(&ingest).unwrap();
        assert_eq!(
            written,
            stored_ingest_run(),
            "an ingest record is written as it was"
        );
    }

    #[test]
    fn a_record_that_is_not_its_job_s_kind_says_why() {
        let unreadable =
            RunRecord::read(TRANSFORM_JOB_ID, Some(7), stored_ingest_run()).unwrap_err();
        assert_eq!(unreadable.job_run_time, Some(7));
        assert!(
            unreadable.error.contains("not a transform run record")
                && unreadable.error.contains("source"),
            "{unreadable}"
        );
        let broken = RunRecord::read("j", None, serde_json::json!({"n": 1})).unwrap_err();
        assert!(
            broken.error.contains("not an ingest run record"),
            "{broken}"
        );
        assert!(broken.to_string().contains("job_run_time ?"), "{broken}");
    }
}
