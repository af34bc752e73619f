//! GHArchive hours and the object keys derived from them: raw files, Parquet parts in their day
//! partitions, quarantine files.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// One GHArchive hour, named as GHArchive names its files: `YYYY-MM-DD-H`, the hour not
/// zero-padded (`2024-03-05-9`). Parsing also accepts a padded hour (`2024-03-05-09`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(NaiveDateTime);

/// The compression of a raw file as its name announces it. The transform trusts magic bytes over
/// this; the name only decides which names are hour files at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// The file-name extension GHArchive-style raw files carry for this compression.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => ".json.gz",
            Compression::Zstd => ".json.zst",
            Compression::None => ".json",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HourError {
    #[error("`{0}` is not a GHArchive hour: expected YYYY-MM-DD-H, for example 2024-03-05-14 or 2024-03-05-9")]
    BadHour(String),
    #[error("`{0}` is not named as a GHArchive hour file: expected YYYY-MM-DD-H.json.gz, .json.zst or .json, for example 2024-03-05-14.json.gz")]
    BadFileName(String),
    #[error("`{0}` is not a day: expected YYYY-MM-DD, for example 2024-03-05")]
    BadDay(String),
}

/// GHArchive's first hour: its archive begins on 2011-02-12.
pub const FIRST_HOUR: Hour = match NaiveDate::from_ymd_opt(2011, 2, 12) {
    Some(day) => match day.and_hms_opt(0, 0, 0) {
        Some(start) => Hour(start),
        None => panic!("midnight is a time"),
    },
    None => panic!("2011-02-12 is a day"),
};

impl Hour {
    /// The hour that contains `time`.
    pub fn containing(time: DateTime<Utc>) -> Hour {
        let t = time.naive_utc();
        let start = t.date().and_hms_opt(t.hour(), 0, 0);
        Hour(start.expect("the hour of a valid time is a valid time"))
    }

    /// Parses a file name (or a key or path ending in one) exactly as GHArchive names its files:
    /// `2024-03-05-14.json.gz`, `2024-03-05-9.json.zst`. The hour is not padded (`-09` is not
    /// GHArchive's name): a key is an hour's raw file only under its one true name, so that an
    /// upload under a look-alike key never replaces the hour's result.
    pub fn from_file_name(name: &str) -> Result<(Hour, Compression), HourError> {
        let (hour, compression) = Hour::from_file_name_leniently(name)?;
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        if base != hour.raw_key("", compression) {
            return Err(HourError::BadFileName(base.to_string()));
        }
        Ok((hour, compression))
    }

    /// Parses a file name as a person may write it: the hour padded or not
    /// (`2024-03-05-09.json.gz`). For names people type, never for keys found in a bucket.
    pub fn from_file_name_leniently(name: &str) -> Result<(Hour, Compression), HourError> {
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let bad = || HourError::BadFileName(base.to_string());
        for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
            if let Some(stem) = base.strip_suffix(compression.extension()) {
                return stem.parse().map(|h| (h, compression)).map_err(|_| bad());
            }
        }
        Err(bad())
    }

    pub fn start(self) -> DateTime<Utc> {
        self.0.and_utc()
    }
    pub fn year(self) -> i32 {
        self.0.year()
    }
    pub fn month(self) -> u32 {
        self.0.month()
    }
    pub fn day(self) -> u32 {
        self.0.day()
    }
    pub fn hour(self) -> u32 {
        self.0.hour()
    }
    pub fn next(self) -> Hour {
        Hour(self.0 + Duration::hours(1))
    }
    pub fn previous(self) -> Hour {
        Hour(self.0 - Duration::hours(1))
    }
    /// When the hour is over: GHArchive publishes its file shortly after.
    pub fn end(self) -> DateTime<Utc> {
        self.start() + Duration::hours(1)
    }
    /// The hours from `first` to `last`, both included (empty if `last` is before `first`).
    pub fn range(first: Hour, last: Hour) -> impl Iterator<Item = Hour> {
        std::iter::successors(Some(first), |h| Some(h.next())).take_while(move |h| *h <= last)
    }

    /// `landing/ghactivity/2024-03-05-14.json.gz`
    pub fn raw_key(self, raw_prefix: &str, compression: Compression) -> String {
        format!("{raw_prefix}{self}{}", compression.extension())
    }

    /// The UTC day the hour belongs to.
    pub fn date(self) -> Day {
        Day(self.0.date())
    }

    /// The file name of Parquet part `index` of this hour written by run `run`:
    /// `part-2024-03-05-14-0000-RUN.snappy.parquet`. The run makes the name new for every run
    /// of the hour, so a file a table version names is never written over (a reader of that
    /// version, or a run that lost its claim, would meet another file under its name).
    pub fn part_file_name(self, index: usize, run: &str) -> String {
        format!("part-{self}-{index:04}-{run}.snappy.parquet")
    }

    /// Reads the part index back from a file name of this hour (with a run, or of the older
    /// layout without), or `None` if the name is not one.
    pub fn part_index(self, file_name: &str) -> Option<usize> {
        let rest = file_name.strip_prefix(&format!("part-{self}-"))?;
        let rest = rest.strip_suffix(".snappy.parquet")?;
        let (digits, run) = rest.split_once('-').unwrap_or((rest, "0"));
        let plain = |s: &str, at_least: usize| {
            s.len() >= at_least && s.bytes().all(|b| b.is_ascii_alphanumeric())
        };
        if !plain(digits, 4) || !digits.bytes().all(|b| b.is_ascii_digit()) || !plain(run, 1) {
            return None;
        }
        digits.parse().ok()
    }

    /// Part `index` of this hour's rows of `day`, by run `run`:
    /// `ghactivity/year=2024/month=03/dayofmonth=05/part-2024-03-05-14-0000-RUN.snappy.parquet`.
    /// Parts are named by the source hour, whichever day partition they are in.
    pub fn part_key(self, curated_prefix: &str, day: Day, index: usize, run: &str) -> String {
        format!(
            "{}{}",
            day.partition_prefix(curated_prefix),
            self.part_file_name(index, run)
        )
    }

    /// `_rejects/ghactivity/2024-03-05-14.jsonl.gz`
    pub fn rejects_key(self, rejects_prefix: &str) -> String {
        format!("{rejects_prefix}{self}.jsonl.gz")
    }
}

/// The source hour of a part's file name (`part-2024-03-05-14-0000[-RUN].snappy.parquet`).
pub fn part_hour(file_name: &str) -> Option<Hour> {
    let rest = file_name.strip_prefix("part-")?;
    // The hour is the first four dash-separated fields.
    let mut cut = rest.match_indices('-').map(|(at, _)| at);
    let end = cut.nth(3)?;
    let hour: Hour = rest[..end].parse().ok()?;
    hour.part_index(file_name).map(|_| hour)
}

/// A part's name without the run that wrote it (`part-HOUR-NNNN-RUN.snappy.parquet` →
/// `part-HOUR-NNNN.snappy.parquet`, the older layout's name): the slot the file fills, whichever
/// run filled it.
pub fn part_slot(file_name: &str) -> Option<String> {
    let hour = part_hour(file_name)?;
    let index = hour.part_index(file_name)?;
    Some(format!("part-{hour}-{index:04}.snappy.parquet"))
}

impl fmt::Display for Hour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0.format("%Y-%m-%d"), self.hour())
    }
}

impl FromStr for Hour {
    type Err = HourError;
    fn from_str(s: &str) -> Result<Hour, HourError> {
        let bad = || HourError::BadHour(s.to_string());
        // Digits only, in fixed places: chrono alone would take `+2024-3-05` or `2024- 3-05`.
        let digits = |text: &str, lengths: std::ops::RangeInclusive<usize>| {
            lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
        };
        let mut fields = s.split('-');
        let (Some(year), Some(month), Some(day), Some(hour), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(bad());
        };
        if !(digits(year, 4..=4)
            && digits(month, 2..=2)
            && digits(day, 2..=2)
            && digits(hour, 1..=2))
        {
            return Err(bad());
        }
        let number = |text: &str| text.parse::<u32>().map_err(|_| bad());
        let year = i32::try_from(number(year)?).map_err(|_| bad())?;
        NaiveDate::from_ymd_opt(year, number(month)?, number(day)?)
            .and_then(|date| date.and_hms_opt(number(hour).ok()?, 0, 0))
            .map(Hour)
            .ok_or_else(bad)
    }
}

/// One UTC day: the partition of the rows whose `created_at` falls in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(NaiveDate);

impl Day {
    /// The day `days` days after 1970-01-01 (Arrow's `Date32`); `None` outside chrono's range.
    pub fn from_days_since_epoch(days: i32) -> Option<Day> {
        NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|epoch| epoch.checked_add_signed(Duration::days(i64::from(days))))
            .map(Day)
    }

    pub fn previous(self) -> Day {
        self.0.pred_opt().map_or(self, Day)
    }
    pub fn next(self) -> Day {
        self.0.succ_opt().map_or(self, Day)
    }

    /// The day's first hour (00:00 UTC).
    pub fn first_hour(self) -> Hour {
        Hour(self.0.and_time(chrono::NaiveTime::MIN))
    }

    /// The day of a partition folder in a key (`…/year=2024/month=03/dayofmonth=05/…`).
    pub fn of_partition(key: &str) -> Option<Day> {
        let field = |name: &str| {
            key.split('/')
                .find_map(|segment| segment.strip_prefix(name))
                .and_then(|value| value.parse::<u32>().ok())
        };
        let year = i32::try_from(field("year=")?).ok()?;
        NaiveDate::from_ymd_opt(year, field("month=")?, field("dayofmonth=")?).map(Day)
    }

    /// The partition folder: `ghactivity/year=2024/month=03/dayofmonth=05/`.
    pub fn partition_prefix(self, curated_prefix: &str) -> String {
        format!(
            "{curated_prefix}year={:04}/month={:02}/dayofmonth={:02}/",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl FromStr for Day {
    type Err = HourError;
    /// `2024-03-05`.
    fn from_str(s: &str) -> Result<Day, HourError> {
        let well_formed = s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        well_formed
            .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .flatten()
            .map(Day)
            .ok_or_else(|| HourError::BadDay(s.to_string()))
    }
}

impl Serialize for Hour {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hour {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hour, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_print_and_come_from_partition_keys() {
        let day: Day = "2024-03-05".parse().unwrap();
        assert_eq!(day.to_string(), "2024-03-05");
        assert_eq!(day.first_hour().to_string(), "2024-03-05-0");
        assert_eq!(day.next().to_string(), "2024-03-06");
        for bad in [
            "2024-3-05",
            "2024-02-30",
            "20240305",
            "2024-03-05-1",
            "",
            "+024-03-05",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad}");
        }
        let key =
            "ghactivity/year=2024/month=03/dayofmonth=05/part-2024-03-05-14-0000-ab.snappy.parquet";
        assert_eq!(Day::of_partition(key), Some(day));
        assert_eq!(
            Day::of_partition(&day.partition_prefix("ghactivity/")),
            Some(day)
        );
        assert_eq!(
            Day::of_partition("ghactivity/year=2024/month=13/dayofmonth=05/x"),
            None
        );
        assert_eq!(Day::of_partition("ghactivity/x.parquet"), None);
    }

    #[test]
    fn hour_names_follow_gharchive() {
        let h: Hour = "2024-03-05-9".parse().unwrap();
        assert_eq!(h.to_string(), "2024-03-05-9");
        assert_eq!("2024-03-05-09".parse::<Hour>().unwrap(), h);
        assert_eq!(h.next().to_string(), "2024-03-05-10");
        assert_eq!(
            "2024-03-05-23".parse::<Hour>().unwrap().next().to_string(),
            "2024-03-06-0"
        );
        for bad in [
            "2024-03-05",
            "2024-03-05-24",
            "2024-3-5-1",
            "x",
            "2024-03-05-1a",
            "2024-03-05-123",
            "",
            "+2024-3-05-14",
            "2024- 3-05-14",
            "2024-03-05- 1",
            "2024-03-05-+1",
            "02024-03-05-1",
            "2024-03-05-1-1",
        ] {
            assert!(bad.parse::<Hour>().is_err(), "{bad}");
        }
    }

    #[test]
    fn file_names_give_hour_and_compression() {
        let (h, c) = Hour::from_file_name("/tmp/x/2024-03-05-14.json.gz").unwrap();
        assert_eq!(
            (h.to_string().as_str(), c),
            ("2024-03-05-14", Compression::Gzip)
        );
        assert_eq!(
            Hour::from_file_name("2024-03-05-14.json.zst").unwrap().1,
            Compression::Zstd
        );
        assert_eq!(
            Hour::from_file_name("2024-03-05-14.json").unwrap().1,
            Compression::None
        );
        for look_alike in [
            "2024-03-05-09.json.gz",
            "+2024-3-05-14.json.gz",
            "2024- 3-05-14.json.gz",
            "2024-03-05-14.JSON.GZ",
        ] {
            assert!(Hour::from_file_name(look_alike).is_err(), "{look_alike}");
        }
        assert_eq!(
            Hour::from_file_name_leniently("2024-03-05-09.json.gz")
                .unwrap()
                .0
                .to_string(),
            "2024-03-05-9",
            "as a person writes it"
        );
        let err = Hour::from_file_name("events.json.gz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("YYYY-MM-DD-H.json.gz"), "{err}");
        assert!(Hour::from_file_name("2024-03-05-14.csv").is_err());
    }

    #[test]
    fn keys_match_the_lake_layout() {
        let h: Hour = "2024-03-05-14".parse().unwrap();
        assert_eq!(
            h.part_key("ghactivity/", h.date(), 0, "r1"),
            "ghactivity/year=2024/month=03/dayofmonth=05/part-2024-03-05-14-0000-r1.snappy.parquet"
        );
        assert_eq!(
            h.rejects_key(crate::DEFAULT_REJECTS_PREFIX),
            "_rejects/ghactivity/2024-03-05-14.jsonl.gz"
        );
        assert_eq!(
            h.raw_key(crate::DEFAULT_RAW_PREFIX, Compression::Gzip),
            "landing/ghactivity/2024-03-05-14.json.gz"
        );
        assert_eq!(
            h.part_index("part-2024-03-05-14-0012.snappy.parquet"),
            Some(12)
        );
        assert_eq!(
            h.part_index("part-2024-03-05-14-0012-a1b2.snappy.parquet"),
            Some(12)
        );
        assert_eq!(
            part_hour("part-2024-03-05-14-0012-a1b2.snappy.parquet"),
            Some(h)
        );
        assert_eq!(part_hour("part-2024-03-05-14-0012.snappy.parquet"), Some(h));
        assert_eq!(part_hour("part-2024-03-05-14.snappy.parquet"), None);
        assert_eq!(part_hour("other.parquet"), None);
        assert_eq!(
            part_slot("part-2024-03-05-14-0012-a1b2.snappy.parquet").as_deref(),
            Some("part-2024-03-05-14-0012.snappy.parquet")
        );
        assert_eq!(
            h.part_index("part-2024-03-05-14-0012-.snappy.parquet"),
            None
        );
        assert_eq!(h.part_index("part-2024-03-05-1-0012.snappy.parquet"), None);
        assert_eq!(
            h.part_index("part-2024-03-05-14-0012.snappy.parquet.tmp"),
            None
        );
    }
}
