//! Job state as stored in the `jobs` and `job_run_details` tables (DynamoDB on AWS, SQLite
//! locally). Field names are the item's attribute names.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::Hour;

/// Default `job_id` of the GHArchive ingest.
pub const DEFAULT_INGEST_JOB_ID: &str = "ghactivity_ingest";

/// The `jobs` item of one ingest job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    /// A job without a bookmark (and without `baseline_day`) starts at 00:00 UTC of today minus
    /// this many days.
    pub baseline_days: u32,
    /// The day a job without a bookmark starts at (00:00 UTC), e.g. `2024-03-05`. Pinned when the
    /// job is created (by `infra/init.sh` or the first run), so the start does not drift while
    /// nothing has been ingested yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_day: Option<NaiveDate>,
    /// The last hour done, as the original project stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_run_bookmark_details: Option<Bookmark>,
    /// Raised by every write; each write is conditional on the version it read.
    #[serde(default)]
    pub version: u64,
    /// The run that holds the job, so that two runs never work on it at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// A long-past hour GHArchive has no file for, and how many runs found it missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_hour: Option<MissingHour>,
}

impl Job {
    /// A new job, its baseline day pinned: `baseline_days` before `now`'s day.
    pub fn new(job_id: &str, baseline_days: u32, now: DateTime<Utc>) -> Job {
        Job {
            job_id: job_id.to_string(),
            baseline_days,
            baseline_day: Some(now.date_naive() - chrono::Duration::days(baseline_days.into())),
            job_run_bookmark_details: None,
            version: 0,
            lease: None,
            missing_hour: None,
        }
    }

    /// The last hour done, if any.
    pub fn bookmark_hour(&self) -> Option<Hour> {
        self.job_run_bookmark_details
            .as_ref()
            .map(|b| b.last_run_file_name)
    }

    /// The first hour of a job without a bookmark: 00:00 UTC of the baseline day, or of `now`'s day
    /// minus `baseline_days` when no day is pinned.
    pub fn baseline_hour(&self, now: DateTime<Utc>) -> Hour {
        let day = self.baseline_day.unwrap_or_else(|| {
            now.date_naive() - chrono::Duration::days(self.baseline_days.into())
        });
        Hour::containing(day.and_time(chrono::NaiveTime::MIN).and_utc())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bookmark {
    /// The last hour ingested (or skipped), e.g. `2024-03-05-14`.
    pub last_run_file_name: Hour,
    pub status: BookmarkStatus,
    pub updated_at: DateTime<Utc>,
    pub run_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookmarkStatus {
    /// The hour's file is in the raw bucket.
    Ingested,
    /// GHArchive never published the hour; the job moved on without it.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub run_id: String,
    /// Epoch milliseconds; after that another run may take the job over.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingHour {
    pub hour: Hour,
    pub attempts: u32,
}

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
    /// Hours whose file this run stored.
    pub hours_ingested: u32,
    /// Bytes this run stored.
    pub bytes: u64,
    pub hours: Vec<HourResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    /// Missing too many times: the bookmark moved past it.
    Skipped,
    /// Download or upload failed after its retries.
    Failed,
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(baseline_days: u32, baseline_day: Option<&str>) -> Job {
        Job {
            baseline_day: baseline_day.map(|d| d.parse().unwrap()),
            ..Job::new("j", baseline_days, Utc::now())
        }
    }

    #[test]
    fn baseline_is_midnight_of_the_pinned_day_or_days_back() {
        let now = DateTime::parse_from_rfc3339("2024-03-06T02:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(job(1, None).baseline_hour(now).to_string(), "2024-03-05-0");
        assert_eq!(job(0, None).baseline_hour(now).to_string(), "2024-03-06-0");
        let pinned = job(1, Some("2024-01-31"));
        assert_eq!(pinned.baseline_hour(now).to_string(), "2024-01-31-0");
    }
}
