//! The archive's three wire formats, and how a template event is dressed as a new event of one:
//! its id, its time (on the clock the era's files were named by), its actor and repository.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc, Weekday};
use events::Hour;
use serde_json::Value;

/// A GHArchive era, by the wire format of its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Era {
    /// 2011 – early 2012: an `id`, `api.github.dev` URLs, plain values in payloads.
    Backfill,
    /// 2012 – 2014: no `id`, `actor` a login, a `repository` object, Pacific-time offsets; files
    /// named by a Pacific clock.
    Timeline,
    /// 2015 – today: the Events API.
    Events,
}

impl Era {
    /// The era GHArchive's file of `hour` is in.
    pub fn of(hour: Hour) -> Era {
        let start = hour.start();
        if start < utc(2012, 3, 11) {
            Era::Backfill
        } else if start < utc(2015, 1, 1) {
            Era::Timeline
        } else {
            Era::Events
        }
    }

    /// Its name, as `--era` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Era::Backfill => "backfill",
            Era::Timeline => "timeline",
            Era::Events => "events",
        }
    }

    /// Whether the era's records carry an `id` (a timeline duplicate is the same bytes again).
    pub fn has_ids(self) -> bool {
        self != Era::Timeline
    }

    /// The first event id of an hour's file, rising by one per event (ids of the era's size,
    /// far enough apart from one hour to the next for any hour's events).
    pub fn first_id(self, hour: Hour) -> i64 {
        let seconds = hour.start().timestamp() % 1_000_000;
        match self {
            Era::Backfill => 1_100_000_000 + seconds * 100,
            Era::Timeline => 0,
            Era::Events => 36_000_000_000 + seconds * 1_000,
        }
    }

    /// `created_at` of an event `offset` into the file of `hour`, as the era wrote it: UTC for
    /// the Events API, local Pacific time with its offset for the timeline (whose files are
    /// named by that clock: the file of 20:00 holds 20:xx Pacific, the next UTC day).
    pub fn created_at(self, hour: Hour, offset: Duration) -> String {
        let named = hour.start().naive_utc() + offset;
        match self {
            Era::Timeline => {
                let hours = pacific_offset_hours(named);
                format!("{}-{:02}:00", named.format("%Y-%m-%dT%H:%M:%S"), -hours)
            }
            Era::Backfill | Era::Events => named.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }
    }

    /// Makes a template a new event: its id, time, repository and actor, where the era keeps them.
    pub fn dress(self, event: &mut Value, new: &NewEvent) {
        match self {
            Era::Events => {
                event["id"] = Value::from(new.id.to_string());
                event["created_at"] = Value::from(new.created_at.as_str());
                set_repo(event, new, "https://api.github.com/repos/");
                set_actor(event, new);
            }
            Era::Backfill => {
                event["id"] = Value::from(new.id.to_string());
                event["created_at"] = Value::from(new.created_at.as_str());
                set_repo(event, new, "https://api.github.dev/repos/");
                set_actor(event, new);
                event["actor"]["url"] =
                    Value::from(format!("https://api.github.dev/users/{}", new.login));
                // Backfill payloads repeat the actor's login and the repository's name.
                for (field, value) in [("actor", &new.login), ("repo", &new.repo_name)] {
                    if event["payload"].get(field).is_some_and(Value::is_string) {
                        event["payload"][field] = Value::from(value.as_str());
                    }
                }
            }
            Era::Timeline => dress_timeline(event, new),
        }
    }
}

/// What makes an event new: drawn once per event, whatever the era.
pub struct NewEvent {
    pub id: i64,
    pub created_at: String,
    pub repo_id: i64,
    pub repo_name: String,
    pub actor_id: i64,
    pub login: String,
}

fn set_repo(event: &mut Value, new: &NewEvent, url_base: &str) {
    event["repo"]["id"] = Value::from(new.repo_id);
    event["repo"]["name"] = Value::from(new.repo_name.as_str());
    event["repo"]["url"] = Value::from(format!("{url_base}{}", new.repo_name));
}

fn set_actor(event: &mut Value, new: &NewEvent) {
    event["actor"]["id"] = Value::from(new.actor_id);
    event["actor"]["login"] = Value::from(new.login.as_str());
    if event["actor"].get("display_login").is_some() {
        event["actor"]["display_login"] = Value::from(new.login.as_str());
    }
}

/// A timeline record: no id, the actor a login beside its attributes, `repository` with the
/// owner apart from the name, and a top-level `url` into the repository.
fn dress_timeline(event: &mut Value, new: &NewEvent) {
    if let Some(fields) = event.as_object_mut() {
        fields.remove("id");
    }
    event["created_at"] = Value::from(new.created_at.as_str());
    if !event["actor"].is_null() {
        event["actor"] = Value::from(new.login.as_str());
    }
    if event["actor_attributes"].is_object() {
        event["actor_attributes"]["login"] = Value::from(new.login.as_str());
    }
    if !event["repository"].is_object() {
        return; // a follow or a gist: no repository
    }
    let old_url = event["repository"]["url"].as_str().map(str::to_string);
    let new_url = format!("https://github.com/{}", new.repo_name);
    let (owner, name) = new
        .repo_name
        .split_once('/')
        .unwrap_or(("", &new.repo_name));
    event["repository"]["id"] = Value::from(new.repo_id);
    event["repository"]["name"] = Value::from(name);
    event["repository"]["owner"] = Value::from(owner);
    event["repository"]["url"] = Value::from(new_url.as_str());
    if let (Some(old), Some(url)) = (old_url, event["url"].as_str()) {
        if let Some(rest) = url.strip_prefix(&old) {
            event["url"] = Value::from(format!("{new_url}{rest}"));
        }
    }
}

fn utc(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.and_utc())
}

/// Hours from UTC of US Pacific time at local time `local`: −7 in daylight time (from the
/// second Sunday of March, 02:00, to the first Sunday of November, 02:00: the rule since 2007,
/// all the timeline's years), −8 otherwise. Written out rather than pulling a time-zone
/// database in for one zone's rule over three years.
fn pacific_offset_hours(local: NaiveDateTime) -> i32 {
    let year = local.year();
    let sunday = |month: u32, nth: u8| {
        NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, nth)
            .and_then(|d| d.and_hms_opt(2, 0, 0))
    };
    match (sunday(3, 2), sunday(11, 1)) {
        (Some(start), Some(end)) if local >= start && local < end => -7,
        _ => -8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(s: &str) -> Hour {
        s.parse().unwrap()
    }

    #[test]
    fn eras_follow_the_archive() {
        assert_eq!(Era::of(hour("2011-02-15-0")), Era::Backfill);
        assert_eq!(Era::of(hour("2012-03-10-23")), Era::Backfill);
        assert_eq!(Era::of(hour("2012-03-11-0")), Era::Timeline);
        assert_eq!(Era::of(hour("2014-12-31-23")), Era::Timeline);
        assert_eq!(Era::of(hour("2015-01-01-0")), Era::Events);
    }

    #[test]
    fn timeline_times_are_pacific_and_the_file_is_named_by_that_clock() {
        let at = |h: &str, s: i64| Era::Timeline.created_at(hour(h), Duration::seconds(s));
        assert_eq!(at("2013-02-15-20", 39), "2013-02-15T20:00:39-08:00");
        assert_eq!(at("2014-06-10-19", 0), "2014-06-10T19:00:00-07:00");
        // The switches of 2013: 10 March and 3 November, 02:00 local.
        assert_eq!(at("2013-03-10-1", 0), "2013-03-10T01:00:00-08:00");
        assert_eq!(at("2013-03-10-3", 0), "2013-03-10T03:00:00-07:00");
        assert_eq!(at("2013-11-03-1", 0), "2013-11-03T01:00:00-07:00");
        assert_eq!(at("2013-11-03-2", 0), "2013-11-03T02:00:00-08:00");
        assert_eq!(
            Era::Events.created_at(hour("2024-03-05-14"), Duration::milliseconds(1500)),
            "2024-03-05T14:00:01Z"
        );
    }
}
