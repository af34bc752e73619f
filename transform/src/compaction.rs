//! The compaction stage: which days are due, and each compacted in turn
//! ([`lake_table::compact::compact_day`]). The same entry point serves `elt compact` and the
//! compaction Lambda.
//!
//! A day is due when its partition holds hourly parts: never compacted, or one of its hours
//! transformed again since. On the schedule a day is compacted only once it has settled: every
//! hour whose rows may fall in it is committed (the day's own hours and the next day's first;
//! for the 2012–2014 files, named by a Pacific clock, the day before's last hours too), so that
//! a day is not rewritten for every hour that lands in it.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use events::commits::{commit_key, CommitState};
use events::{Day, Hour};
use lake_table::compact::{CompactOptions, Outcome};
use serde::Serialize;

use crate::Lake;

/// The next day's hours a day waits for (late events of its last hour arrive in them).
const NEXT_DAY_HOURS: i64 = 3;
/// Pacific-clock files (2012–2014) hold rows of the UTC day before their name's: this many of
/// the day before's last hours.
const PACIFIC_HOURS: i64 = 8;
/// The first day of the Events API's UTC-named files.
const FIRST_UTC_NAMED_YEAR: i32 = 2015;

/// How the compaction runs (shared by `elt compact` and the Lambda).
#[derive(clap::Args, Clone, Debug)]
pub struct CompactSettings {
    /// Memory (MiB) the sort may hold before it spills to the spill folder.
    #[arg(long, env = "COMPACT_MEMORY_MIB", default_value_t = 256)]
    pub memory_mib: usize,
    /// Where the sort spills (default: the system's temporary folder).
    #[arg(long, env = "COMPACT_SPILL_DIR")]
    pub spill_dir: Option<std::path::PathBuf>,
    /// The largest compacted file (MiB): a larger day is cut into files of about equal size.
    #[arg(long, env = "COMPACT_TARGET_FILE_MIB", default_value_t = 1024)]
    pub target_file_mib: u64,
    /// Without a range: how many days back from today to look for days to compact.
    #[arg(long, env = "COMPACT_LOOKBACK_DAYS", default_value_t = 30)]
    pub lookback_days: u32,
    /// Lay the days out by a Z-order over these columns (comma-separated, e.g.
    /// `repo_name,actor_login`) instead of sorting by (event_type, repo_name, created_at): for
    /// comparing layouts.
    #[arg(long, env = "COMPACT_ZORDER", value_delimiter = ',', hide = true)]
    pub zorder: Vec<String>,
}

impl CompactSettings {
    pub fn options(&self) -> CompactOptions {
        CompactOptions {
            max_file_bytes: self.target_file_mib.saturating_mul(1024 * 1024).max(1),
            memory_bytes: self.memory_mib.saturating_mul(1024 * 1024),
            spill_dir: self.spill_dir.clone(),
            order: match self.zorder.is_empty() {
                true => lake_table::compact::Order::Sorted,
                false => lake_table::compact::Order::ZOrder(self.zorder.clone()),
            },
        }
    }
}

/// Which days, and under which rule.
#[derive(Debug, Clone)]
pub struct CompactRequest {
    /// The days `from..=to`; `None`: the last `lookback_days` days up to today.
    pub days: Option<(Day, Day)>,
    /// Compact only settled days (the schedule), or every due day (by hand).
    pub settled_only: bool,
    /// Start no day after this (a Lambda's deadline less the time a day takes).
    pub deadline: Option<Instant>,
}

/// What happened to one day.
#[derive(Debug, Serialize)]
pub struct DayReport {
    pub day: String,
    #[serde(flatten)]
    pub result: DayResult,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum DayResult {
    Done(Outcome),
    Waiting(Waiting),
}

#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Waiting {
    /// Hours whose rows may fall in the day are not committed yet.
    NotSettled { uncommitted: Vec<Hour> },
    /// Left for the next run: the time left would not do it.
    OutOfTime,
}

/// Compacts the due days of the request, reporting each to `report` as it is done.
pub async fn compact(
    lake: &Lake,
    curated_prefix: &str,
    request: &CompactRequest,
    settings: &CompactSettings,
    mut report: impl FnMut(&DayReport) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<DayReport>> {
    let table = lake.table(curated_prefix);
    let (from, to) = request
        .days
        .unwrap_or_else(|| lookback(settings.lookback_days));
    let held = lake_table::compact::day_files(&table, from, to).await?;
    let options = settings.options();
    let mut reports = Vec::new();
    let mut slowest = Duration::ZERO;
    for (day, files) in held {
        let result = if files.hourly == 0 {
            DayResult::Done(Outcome::AlreadyCompact {
                files: files.compacted,
            })
        } else if request
            .deadline
            .is_some_and(|d| Instant::now() + slowest * 2 > d)
        {
            DayResult::Waiting(Waiting::OutOfTime)
        } else {
            let uncommitted = match request.settled_only {
                true => uncommitted(lake, curated_prefix, day).await?,
                false => Vec::new(),
            };
            if uncommitted.is_empty() {
                let started = Instant::now();
                let outcome = lake_table::compact::compact_day(&table, day, &options)
                    .await
                    .with_context(|| format!("compacting {day}"))?;
                slowest = slowest.max(started.elapsed());
                DayResult::Done(outcome)
            } else {
                DayResult::Waiting(Waiting::NotSettled { uncommitted })
            }
        };
        let day_report = DayReport {
            day: day.to_string(),
            result,
        };
        report(&day_report)?;
        reports.push(day_report);
    }
    Ok(reports)
}

/// The days an invocation asks for: `{"from": "2024-03-05", "to": "2024-03-06"}` (both
/// inclusive); `None` for a scheduled event (or any event without them).
pub fn requested_days(event: &serde_json::Value) -> anyhow::Result<Option<(Day, Day)>> {
    let day = |field: &str| -> anyhow::Result<Option<Day>> {
        match event.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(text)) => Ok(Some(text.parse()?)),
            Some(other) => {
                anyhow::bail!("`{field}` must be a day such as \"2024-03-05\", not {other}")
            }
        }
    };
    match (day("from")?, day("to")?) {
        (None, None) => Ok(None),
        (Some(from), to) => Ok(Some((from, to.unwrap_or(from)))),
        (None, Some(_)) => anyhow::bail!("`to` without `from`"),
    }
}

/// The last `days` days up to today (UTC).
fn lookback(days: u32) -> (Day, Day) {
    let today = Day::from_days_since_epoch(
        i32::try_from(Utc::now().timestamp().div_euclid(86_400)).unwrap_or(i32::MAX),
    )
    .unwrap_or_else(|| events::FIRST_HOUR.date());
    let mut from = today;
    for _ in 0..days {
        from = from.previous();
    }
    (from, today)
}

/// The hours whose rows may fall in `day` that have no committed record yet.
async fn uncommitted(lake: &Lake, curated_prefix: &str, day: Day) -> anyhow::Result<Vec<Hour>> {
    let mut missing = Vec::new();
    for hour in settling_hours(day) {
        let record = lake
            .commits
            .get_commit(&commit_key(curated_prefix, hour))
            .await?;
        if !record.is_some_and(|r| r.state == CommitState::Committed) {
            missing.push(hour);
        }
    }
    Ok(missing)
}

/// The hours whose rows may fall in `day`.
fn settling_hours(day: Day) -> Vec<Hour> {
    let first = day.first_hour();
    let before = match first.year() < FIRST_UTC_NAMED_YEAR {
        true => PACIFIC_HOURS,
        false => 0,
    };
    let start = Hour::containing(first.start() - chrono::Duration::hours(before));
    let end = Hour::containing(first.start() + chrono::Duration::hours(23 + NEXT_DAY_HOURS));
    Hour::range(start, end).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations_name_days_or_leave_them_to_the_schedule() {
        let days = |v: serde_json::Value| {
            requested_days(&v).map(|d| d.map(|(a, b)| (a.to_string(), b.to_string())))
        };
        assert_eq!(days(serde_json::json!({})).unwrap(), None);
        assert_eq!(
            days(serde_json::json!({"source": "aws.events", "detail": {}})).unwrap(),
            None
        );
        assert_eq!(
            days(serde_json::json!({"from": "2024-03-05", "to": "2024-03-06"})).unwrap(),
            Some(("2024-03-05".into(), "2024-03-06".into()))
        );
        assert_eq!(
            days(serde_json::json!({"from": "2024-03-05"})).unwrap(),
            Some(("2024-03-05".into(), "2024-03-05".into()))
        );
        assert!(days(serde_json::json!({"from": "2024-3-5"})).is_err());
        assert!(days(serde_json::json!({"from": 5})).is_err());
        assert!(days(serde_json::json!({"to": "2024-03-05"})).is_err());
    }

    #[test]
    fn a_day_settles_with_its_hours_and_the_next_days_first() {
        let hours = settling_hours("2024-03-05".parse().unwrap());
        assert_eq!(hours.len(), 27);
        assert_eq!(hours[0].to_string(), "2024-03-05-0");
        assert_eq!(hours[26].to_string(), "2024-03-06-2");
        let pacific = settling_hours("2013-03-05".parse().unwrap());
        assert_eq!(pacific.len(), 35);
        assert_eq!(pacific[0].to_string(), "2013-03-04-16");
    }
}
