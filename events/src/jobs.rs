//! Job state as stored in the `jobs` and `job_run_details` tables (DynamoDB on AWS, SQLite
//! locally). Field names are the item's attribute names.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::Hour;

pub mod lenient;
mod runs;

pub use runs::{
    HourOutcome, HourResult, IngestRun, RunKind, RunRecord, RunStatus, SetAside, SourceResult,
    StopReason, TransformRun, UnreadableRun, TRANSFORM_JOB_ID,
};

/// Default `job_id` of the GHArchive ingest.
pub const DEFAULT_INGEST_JOB_ID: &str = "ghactivity_ingest";

/// The `jobs` item of one ingest job.
///
/// Read leniently: people seed this item by hand, as the original project told them to ("set the
/// baseline day in the `jobs` table"), so every field but `job_id` may be missing, numbers may be
/// written as strings, and the bookmark may name a file rather than an hour (see [`lenient`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    /// A job without a bookmark (and without `baseline_day`) starts at 00:00 UTC of today minus
    /// this many days; when it is missing too, the ingest's `BASELINE_DAYS` decides.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::optional_count"
    )]
    pub baseline_days: Option<u32>,
    /// The day a job without a bookmark starts at (00:00 UTC), e.g. `2024-03-05`. Pinned when the
    /// job is created or first claimed, so the start does not drift while nothing has been
    /// ingested yet.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::optional_day"
    )]
    pub baseline_day: Option<NaiveDate>,
    /// The last hour done, as the original project stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_run_bookmark_details: Option<Bookmark>,
    /// Raised by every write; each write is conditional on the version it read. An item without
    /// one (seeded by hand) is version 0.
    #[serde(default, deserialize_with = "lenient::count")]
    pub version: u64,
    /// The run that holds the job, so that two runs never work on it at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// The next hour, while runs keep failing on it (missing or broken), and how many did.
    /// Items written before it had a reason call it `missing_hour`.
    #[serde(
        default,
        alias = "missing_hour",
        skip_serializing_if = "Option::is_none"
    )]
    pub failing_hour: Option<FailingHour>,
    /// Hours the job moved on without: failed on `MISSING_HOUR_ATTEMPTS` runs, or parked by hand
    /// (`elt skip`; such an hour can lie ahead of the bookmark, and the run passes it by).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parked_hours: Vec<ParkedHour>,
    /// Hours every run tries first: parked hours an operator took back (`elt retry`), and
    /// hours a run set aside because the source did not deliver them (see [`QueuedHour`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_hours: Vec<QueuedHour>,
    /// Hours stored from one source that another has not delivered yet: runs try that source
    /// again until it does, or until `MISSING_AFTER_HOURS` after the hour's end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub late_sources: Vec<LateSource>,
}

/// An hour one source has not delivered, though another did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateSource {
    pub hour: Hour,
    /// The source's name.
    pub source: String,
    pub since: DateTime<Utc>,
    /// What it answered last.
    pub reason: String,
    #[serde(default)]
    pub tries: u32,
}

/// The attributes of a `jobs` item that [`Job`] reads and writes. A write sets those it has and
/// removes the others, and leaves alone any other attribute a person gave the item (the original
/// project's `job_description` and `is_active`, say). `missing_hour` is the old name of
/// `failing_hour`.
pub const JOB_ATTRIBUTES: &[&str] = &[
    "job_id",
    "baseline_days",
    "baseline_day",
    "job_run_bookmark_details",
    "version",
    "lease",
    "failing_hour",
    "missing_hour",
    "parked_hours",
    "retry_hours",
    "late_sources",
];

impl Job {
    /// A new job, its baseline day pinned: `baseline_days` before `now`'s day.
    pub fn new(job_id: &str, baseline_days: u32, now: DateTime<Utc>) -> Job {
        Job {
            job_id: job_id.to_string(),
            baseline_days: Some(baseline_days),
            baseline_day: Some(days_before(now, baseline_days)),
            job_run_bookmark_details: None,
            version: 0,
            lease: None,
            failing_hour: None,
            parked_hours: Vec::new(),
            retry_hours: Vec::new(),
            late_sources: Vec::new(),
        }
    }

    /// The last hour done, if any.
    pub fn bookmark_hour(&self) -> Option<Hour> {
        self.job_run_bookmark_details
            .as_ref()
            .map(|b| b.last_run_file_name)
    }

    /// The first hour of a job without a bookmark: 00:00 UTC of the baseline day, or of `now`'s day
    /// minus `baseline_days` (`default_days` when the item has none) when no day is pinned.
    pub fn baseline_hour(&self, now: DateTime<Utc>, default_days: u32) -> Hour {
        let day = self
            .baseline_day
            .unwrap_or_else(|| days_before(now, self.baseline_days.unwrap_or(default_days)));
        Hour::containing(day.and_time(chrono::NaiveTime::MIN).and_utc())
    }

    /// The hour a run works on next: the one after the bookmark, or for a job without one
    /// `start` (`--from`) or the baseline hour.
    pub fn next_hour(&self, start: Option<Hour>, now: DateTime<Utc>, default_days: u32) -> Hour {
        match self.bookmark_hour() {
            Some(done) => done.next(),
            None => start.unwrap_or_else(|| self.baseline_hour(now, default_days)),
        }
    }

    /// The parked entry of `hour`, if it is parked.
    pub fn parked(&self, hour: Hour) -> Option<&ParkedHour> {
        self.parked_hours.iter().find(|p| p.hour == hour)
    }

    /// The queued entry of `hour`, if an operator queued it for another try.
    pub fn queued(&self, hour: Hour) -> Option<&QueuedHour> {
        self.retry_hours.iter().find(|q| q.hour == hour)
    }

    /// How many hours the job holds apart from the bookmark.
    pub fn set_aside(&self) -> SetAside {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        SetAside {
            parked: count(self.parked_hours.len()),
            queued: count(self.retry_hours.len()),
            late_sources: count(self.late_sources.len()),
        }
    }

    /// The lease, if a run holds it at `now_ms` (epoch ms).
    pub fn live_lease(&self, now_ms: i64) -> Option<&Lease> {
        self.lease.as_ref().filter(|l| l.expires_at > now_ms)
    }
}

/// The day `days` before `now`'s, never before GHArchive's first day (a job item's
/// `baseline_days` is bounded when it is read, see [`MAX_BASELINE_DAYS`]).
pub fn days_before(now: DateTime<Utc>, days: u32) -> NaiveDate {
    let first = crate::FIRST_HOUR.start().date_naive();
    now.date_naive()
        .checked_sub_days(chrono::Days::new(days.into()))
        .map_or(first, |day| day.max(first))
}

/// The most days back a job may start: a century is far before GHArchive's first hour.
pub const MAX_BASELINE_DAYS: u32 = 36_600;

/// Hours that have ended by `now` and are not done yet when `next` is the next hour due: 0 when
/// caught up. The newest hour that should exist is the last one that has ended (GHArchive
/// publishes it a few minutes later, so 1 is normal just after the hour).
pub fn lag_hours(next: Hour, now: DateTime<Utc>) -> u32 {
    let newest = Hour::containing(now).previous();
    if next > newest {
        return 0;
    }
    let hours = (newest.start() - next.start()).num_hours() + 1;
    u32::try_from(hours).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bookmark {
    /// The last hour ingested (or skipped), e.g. `2024-03-05-14`. Also read from a file name or
    /// an S3 URL (`s3://bucket/landing/ghactivity//2024-03-05-14.json.gz`), as the original
    /// project stored it.
    #[serde(deserialize_with = "lenient::hour_or_file_name")]
    pub last_run_file_name: Hour,
    #[serde(default)]
    pub status: BookmarkStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// The run that moved it (none when written by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookmarkStatus {
    /// The hour's file is in the raw bucket (also what a bookmark written by hand means).
    #[default]
    Ingested,
    /// The hour is parked: the job moved on without it.
    Skipped,
    /// The source failed to deliver the hour for reasons not its own: the job moved on, and
    /// the hour waits in `retry_hours`, tried by every run until it arrives.
    Queued,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub run_id: String,
    /// Epoch milliseconds; after that another run may take the job over.
    pub expires_at: i64,
}

/// The next hour while runs fail on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailingHour {
    pub hour: Hour,
    /// Runs that failed on it.
    pub attempts: u32,
    /// Why the last one failed.
    #[serde(default)]
    pub reason: String,
    /// The run that counted the last attempt: a run whose write was answered by a lost reply
    /// finds its own count on reading again, and does not count twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// An hour the job moved on without. It is not given up: runs try it again by themselves, at
/// growing intervals ([`PARKED_RETRY_INTERVALS`]), until the source serves it or an operator
/// parks it for good (`elt skip --forever`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedHour {
    pub hour: Hour,
    pub reason: String,
    pub parked_at: DateTime<Utc>,
    /// `run <id>` when runs gave up on it, `elt skip <id>` when parked by hand.
    pub by: String,
    /// Runs that failed on it (0 when parked by hand).
    #[serde(default)]
    pub attempts: u32,
    /// Parked for good by an operator: never tried again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forever: bool,
    /// When a run tries it next. Items parked before there were such tries have none: they
    /// are due an interval after `parked_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_try_at: Option<DateTime<Utc>>,
    /// Runs that tried it since it was parked, and the last few of those tries, oldest first.
    #[serde(default)]
    pub tries: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<ParkedTry>,
}

impl QueuedHour {
    /// A newly queued hour, tried by the next run; `reason` says why a run set it aside.
    pub fn new(hour: Hour, now: DateTime<Utc>, by: String, reason: Option<String>) -> QueuedHour {
        QueuedHour {
            hour,
            queued_at: now,
            by,
            attempts: 0,
            tries: 0,
            reason,
            run_id: None,
        }
    }
}

/// One try of a parked hour by a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedTry {
    pub at: DateTime<Utc>,
    /// `run <id>`.
    pub by: String,
    /// Why it failed again.
    pub reason: String,
}

/// The pauses before each automatic try of a parked hour: an hour, six hours, a day, a week, and
/// weekly from then on. A source that serves the hour again has it fetched within a week.
pub const PARKED_RETRY_INTERVALS: [Duration; 4] = [
    Duration::hours(1),
    Duration::hours(6),
    Duration::days(1),
    Duration::weeks(1),
];

/// Tries of a parked hour kept in its history.
pub const PARKED_HISTORY: usize = 10;

impl ParkedHour {
    /// A newly parked hour, first tried again an interval from `now`.
    pub fn new(
        hour: Hour,
        reason: String,
        now: DateTime<Utc>,
        by: String,
        attempts: u32,
    ) -> ParkedHour {
        ParkedHour {
            hour,
            reason,
            parked_at: now,
            by,
            attempts,
            forever: false,
            next_try_at: Some(now + PARKED_RETRY_INTERVALS[0]),
            tries: 0,
            history: Vec::new(),
        }
    }

    /// When a run tries it next; `None` when it is parked for good.
    pub fn next_try(&self) -> Option<DateTime<Utc>> {
        if self.forever {
            return None;
        }
        Some(
            self.next_try_at
                .unwrap_or(self.parked_at + PARKED_RETRY_INTERVALS[0]),
        )
    }

    /// Whether a run at `now` should try it.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.next_try().is_some_and(|at| at <= now)
    }

    /// Records a failed try at `now`, and when the next one is.
    pub fn tried(&mut self, at: DateTime<Utc>, by: String, reason: String) {
        self.tries = self.tries.saturating_add(1);
        let step = usize::try_from(self.tries).unwrap_or(usize::MAX);
        let pause = PARKED_RETRY_INTERVALS[step.min(PARKED_RETRY_INTERVALS.len() - 1)];
        self.next_try_at = Some(at + pause);
        self.history.push(ParkedTry { at, by, reason });
        let extra = self.history.len().saturating_sub(PARKED_HISTORY);
        self.history.drain(..extra);
    }
}

/// An hour behind the bookmark that every run tries first: taken back by `elt retry`, or set
/// aside by a run because the source failed to deliver it for reasons that are not the hour's
/// (a server error, a refusal, a reset, a time-out) while it served the hours around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedHour {
    pub hour: Hour,
    pub queued_at: DateTime<Utc>,
    /// Who queued it: `elt retry <id>`, or `run <id>` for an hour a run set aside.
    #[serde(default)]
    pub by: String,
    /// Runs whose try counted against it (the hour's own fault: missing long after it ended, or
    /// served broken); at `MISSING_HOUR_ATTEMPTS` it is parked. Failures that are not the
    /// hour's never count.
    #[serde(default)]
    pub attempts: u32,
    /// Runs that have tried it since it was queued, whatever came of it.
    #[serde(default)]
    pub tries: u32,
    /// Why the last try failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The run that counted the last try (see [`FailingHour::run_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn job(baseline_days: Option<u32>, baseline_day: Option<&str>) -> Job {
        Job {
            baseline_days,
            baseline_day: baseline_day.map(|d| d.parse().unwrap()),
            ..Job::new("j", 0, Utc::now())
        }
    }

    #[test]
    fn baseline_is_midnight_of_the_pinned_day_or_days_back() {
        let now = at("2024-03-06T02:30:00Z");
        let base = |job: Job| job.baseline_hour(now, 9).to_string();
        assert_eq!(base(job(Some(1), None)), "2024-03-05-0");
        assert_eq!(base(job(Some(0), None)), "2024-03-06-0");
        assert_eq!(base(job(None, None)), "2024-02-26-0", "the default days");
        assert_eq!(base(job(Some(1), Some("2024-01-31"))), "2024-01-31-0");
    }

    fn read(json: &str) -> Job {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn items_seeded_by_hand_in_every_style_are_read() {
        let now = at("2024-03-06T02:30:00Z");
        let next = |job: &Job| job.next_hour(None, now, 2).to_string();

        let no_version =
            read(r#"{"job_id": "j", "baseline_days": 1, "baseline_day": "2024-03-01"}"#);
        assert_eq!(
            (no_version.version, next(&no_version).as_str()),
            (0, "2024-03-01-0")
        );
        let day_only = read(r#"{"job_id": "j", "baseline_day": "2024-03-02"}"#);
        assert_eq!(
            (day_only.baseline_days, next(&day_only).as_str()),
            (None, "2024-03-02-0")
        );
        let days_only = read(r#"{"job_id": "j", "baseline_days": 1}"#);
        assert_eq!(next(&days_only), "2024-03-05-0");
        let days_as_text = read(r#"{"job_id": "j", "baseline_days": "1", "version": "4"}"#);
        assert_eq!(
            (days_as_text.baseline_days, days_as_text.version),
            (Some(1), 4)
        );
        let nothing = read(r#"{"job_id": "j"}"#);
        assert_eq!(next(&nothing), "2024-03-04-0", "the ingest's BASELINE_DAYS");

        let bookmark_only = read(
            r#"{"job_id": "j", "job_run_bookmark_details": {"last_run_file_name": "2024-03-05-14"}}"#,
        );
        assert_eq!(next(&bookmark_only), "2024-03-05-15");
        let bookmark = bookmark_only.job_run_bookmark_details.unwrap();
        assert_eq!(
            (bookmark.status, bookmark.run_id),
            (BookmarkStatus::Ingested, None)
        );
        let padded = read(
            r#"{"job_id": "j", "job_run_bookmark_details": {"last_run_file_name": "2024-03-05-09"}}"#,
        );
        assert_eq!(next(&padded), "2024-03-05-10");
        // What the original project wrote: extra fields, a file's S3 URL, a status code.
        let original = read(
            r#"{"job_id": "ghactivity_ingest", "job_description": "Ingest ghactivity data to s3",
                "is_active": "Y", "baseline_days": 3,
                "job_run_bookmark_details": {"last_run_file_name": "s3://github-activity/landing/ghactivity//2023-09-24-0.json.gz",
                                             "status_code": 200}}"#,
        );
        assert_eq!(next(&original), "2023-09-24-1");
        let file_name = read(
            r#"{"job_id": "j", "job_run_bookmark_details": {"last_run_file_name": "2024-03-05-23.json.gz"}}"#,
        );
        assert_eq!(next(&file_name), "2024-03-06-0");

        let legacy = read(
            r#"{"job_id": "j", "version": 3, "missing_hour": {"hour": "2024-03-05-2", "attempts": 1}}"#,
        );
        let failing = legacy.failing_hour.unwrap();
        assert_eq!(
            (failing.hour.to_string().as_str(), failing.attempts),
            ("2024-03-05-2", 1)
        );
    }

    #[test]
    fn items_that_name_no_hour_are_refused_with_the_reason() {
        let error = serde_json::from_str::<Job>(
            r#"{"job_id": "j", "job_run_bookmark_details": {"last_run_file_name": "yesterday"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("last_run_file_name `yesterday`"), "{error}");
        assert!(
            serde_json::from_str::<Job>(r#"{"baseline_days": 3}"#).is_err(),
            "no job_id"
        );
    }

    #[test]
    fn written_items_read_back_the_same() {
        let mut job = Job::new("j", 3, at("2024-03-06T02:30:00Z"));
        job.job_run_bookmark_details = Some(Bookmark {
            last_run_file_name: "2024-03-05-9".parse().unwrap(),
            status: BookmarkStatus::Skipped,
            updated_at: Some(at("2024-03-06T02:31:00Z")),
            run_id: Some("r".into()),
        });
        job.version = 12;
        let text = serde_json::to_string(&job).unwrap();
        assert!(
            text.contains(r#""last_run_file_name":"2024-03-05-9""#),
            "{text}"
        );
        assert!(
            !text.contains("parked_hours"),
            "empty lists are left out: {text}"
        );
        assert_eq!(read(&text), job);
    }

    #[test]
    fn a_full_item_has_only_the_listed_attributes() {
        let now = at("2024-03-06T02:30:00Z");
        let hour: Hour = "2024-03-05-9".parse().unwrap();
        let mut job = Job::new("j", 3, now);
        job.job_run_bookmark_details = Some(Bookmark {
            last_run_file_name: hour,
            status: BookmarkStatus::Ingested,
            updated_at: None,
            run_id: None,
        });
        job.lease = Some(Lease {
            run_id: "r".into(),
            expires_at: 1,
        });
        job.failing_hour = Some(FailingHour {
            hour,
            attempts: 1,
            reason: String::new(),
            run_id: None,
        });
        job.parked_hours.push(ParkedHour::new(
            hour,
            "x".into(),
            now,
            "elt skip 1a2b3c4d".into(),
            0,
        ));
        job.parked_hours[0].tried(now, "run r".into(), "still broken".into());
        job.retry_hours.push(QueuedHour::new(
            hour,
            now,
            "elt retry 1a2b3c4d".into(),
            None,
        ));
        let value = serde_json::to_value(&job).unwrap();
        for key in value.as_object().unwrap().keys() {
            assert!(
                JOB_ATTRIBUTES.contains(&key.as_str()),
                "{key} is not listed"
            );
        }
    }

    #[test]
    fn a_parked_hour_is_tried_again_at_growing_intervals_unless_parked_for_good() {
        let parked_at = at("2024-03-06T02:30:00Z");
        let hour: Hour = "2024-03-05-9".parse().unwrap();
        let mut parked = ParkedHour::new(hour, "broken".into(), parked_at, "run a".into(), 3);
        assert!(!parked.due(parked_at));
        let mut at_try = parked.next_try().unwrap();
        assert_eq!(at_try, at("2024-03-06T03:30:00Z"), "an hour later");
        let mut pauses = Vec::new();
        for n in 0..(PARKED_HISTORY + 3) {
            assert!(parked.due(at_try));
            parked.tried(at_try, format!("run {n}"), "still broken".into());
            let next = parked.next_try().unwrap();
            pauses.push((next - at_try).num_hours());
            at_try = next;
        }
        assert_eq!(&pauses[..5], [6, 24, 168, 168, 168]);
        assert_eq!(parked.tries, (PARKED_HISTORY + 3) as u32);
        assert_eq!(parked.history.len(), PARKED_HISTORY, "the last few tries");
        assert_eq!(parked.history[0].by, "run 3");
        // Parked before tries were kept: due an hour after it was parked.
        let legacy: ParkedHour = serde_json::from_str(
            r#"{"hour": "2024-03-05-9", "reason": "x", "parked_at": "2024-03-06T02:30:00Z", "by": "run a"}"#,
        )
        .unwrap();
        assert!(legacy.due(at("2024-03-06T03:30:00Z")) && !legacy.due(parked_at));
        parked.forever = true;
        assert_eq!(parked.next_try(), None);
        assert!(!parked.due(at("2030-01-01T00:00:00Z")));
    }

    #[test]
    fn baseline_days_out_of_range_are_refused_and_days_back_stop_at_the_first_day() {
        let error = serde_json::from_str::<Job>(r#"{"job_id": "j", "baseline_days": 1000000000}"#)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("baseline_days 1000000000 is out of range"),
            "{error}"
        );
        let now = at("2024-03-06T02:30:00Z");
        assert_eq!(
            days_before(now, MAX_BASELINE_DAYS).to_string(),
            "2011-02-12"
        );
        assert_eq!(days_before(now, u32::MAX).to_string(), "2011-02-12");
        assert_eq!(days_before(now, 1).to_string(), "2024-03-05");
    }

    #[test]
    fn lag_counts_the_hours_ended_and_not_done() {
        let now = at("2024-03-06T02:30:00Z");
        let hour = |s: &str| s.parse::<Hour>().unwrap();
        assert_eq!(
            lag_hours(hour("2024-03-06-2"), now),
            0,
            "the hour under way"
        );
        assert_eq!(
            lag_hours(hour("2024-03-06-1"), now),
            1,
            "the newest hour is due"
        );
        assert_eq!(lag_hours(hour("2024-03-05-0"), now), 26);
        assert_eq!(lag_hours(hour("2024-03-07-0"), now), 0);
    }
}
