//! Readers for the fields of a `jobs` item that people write by hand: numbers that arrive as
//! strings (the DynamoDB console and `aws dynamodb put-item` make that easy), days with a time
//! after them, and bookmarks naming a file, a key or an S3 URL rather than an hour.

use std::fmt;

use chrono::NaiveDate;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::Hour;

/// A whole number, written as a number or as a string of digits.
struct Count(u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        d.deserialize_any(CountVisitor).map(Count)
    }
}

struct CountVisitor;

impl Visitor<'_> for CountVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number (or a string of digits)")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
        Ok(n)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
        u64::try_from(n).map_err(|_| E::custom(format!("{n} is negative")))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<u64, E> {
        // DynamoDB numbers such as "3.0" arrive as floats.
        if n.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&n) {
            Ok(n as u64)
        } else {
            Err(E::custom(format!("{n} is not a whole number")))
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
        let trimmed = s.trim();
        if let Ok(n) = trimmed.parse::<u64>() {
            return Ok(n);
        }
        match trimmed.parse::<f64>() {
            Ok(n) => self.visit_f64(n),
            Err(_) => Err(E::custom(format!("`{s}` is not a whole number"))),
        }
    }
}

/// `version`: a number or a string of digits.
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Count::deserialize(d).map(|c| c.0)
}

/// `baseline_days`: a number or a string of digits; null means none.
pub fn optional_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<Count>::deserialize(d)? {
        None => Ok(None),
        Some(Count(n)) if n > u64::from(super::MAX_BASELINE_DAYS) => Err(de::Error::custom(
            format!(
                "baseline_days {n} is out of range: at most {} (a century; GHArchive begins on 2011-02-12)",
                super::MAX_BASELINE_DAYS
            ),
        )),
        Some(Count(n)) => u32::try_from(n)
            .map(Some)
            .map_err(|_| de::Error::custom(format!("{n} days is too many"))),
    }
}

/// `baseline_day`: `2024-03-05`, also with a time after it (`2024-03-05T00:00:00Z`); null or an
/// empty string means none.
pub fn optional_day<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.get(..10)
        .and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
        .map(Some)
        .ok_or_else(|| {
            de::Error::custom(format!(
                "baseline_day `{text}` is not a day: expected YYYY-MM-DD, e.g. 2024-03-05"
            ))
        })
}

/// `last_run_file_name`: an hour (`2024-03-05-14`, `2024-03-05-09`) or a file name, key or URL
/// ending in one (`2024-03-05-14.json.gz`, `s3://bucket/landing/ghactivity//2024-03-05-14.json.gz`).
pub fn hour_or_file_name<'de, D: Deserializer<'de>>(d: D) -> Result<Hour, D::Error> {
    let text = String::deserialize(d)?;
    parse_hour_or_file_name(&text).ok_or_else(|| {
        de::Error::custom(format!(
            "last_run_file_name `{text}` names no GHArchive hour: expected e.g. 2024-03-05-14 or 2024-03-05-14.json.gz"
        ))
    })
}

fn parse_hour_or_file_name(text: &str) -> Option<Hour> {
    let text = text.trim();
    text.parse().ok().or_else(|| {
        Hour::from_file_name_leniently(text)
            .ok()
            .map(|(hour, _)| hour)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bookmark_may_name_an_hour_a_file_a_key_or_a_url() {
        let hour: Hour = "2024-03-05-9".parse().unwrap();
        for text in [
            "2024-03-05-9",
            "2024-03-05-09",
            " 2024-03-05-9 ",
            "2024-03-05-9.json.gz",
            "2024-03-05-09.json.gz",
            "landing/ghactivity/2024-03-05-9.json.gz",
            "s3://github-activity/landing/ghactivity//2024-03-05-9.json.gz",
        ] {
            assert_eq!(parse_hour_or_file_name(text), Some(hour), "{text}");
        }
        for text in ["", "2024-03-05", "yesterday", "2024-03-05-24.json.gz"] {
            assert_eq!(parse_hour_or_file_name(text), None, "{text}");
        }
    }

    #[derive(Deserialize)]
    struct Fields {
        #[serde(default, deserialize_with = "count")]
        version: u64,
        #[serde(default, deserialize_with = "optional_count")]
        days: Option<u32>,
        #[serde(default, deserialize_with = "optional_day")]
        day: Option<NaiveDate>,
    }

    fn fields(json: &str) -> Result<Fields, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn numbers_may_be_strings_and_days_may_carry_a_time() {
        let f = fields(r#"{"version": "7", "days": "3", "day": "2024-03-05T00:00:00Z"}"#).unwrap();
        assert_eq!((f.version, f.days), (7, Some(3)));
        assert_eq!(f.day.map(|d| d.to_string()).as_deref(), Some("2024-03-05"));
        let f = fields(r#"{"version": 7.0, "days": null, "day": ""}"#).unwrap();
        assert_eq!((f.version, f.days, f.day), (7, None, None));
        let f = fields("{}").unwrap();
        assert_eq!((f.version, f.days, f.day), (0, None, None));
        for bad in [
            r#"{"version": -1}"#,
            r#"{"version": 1.5}"#,
            r#"{"version": "seven"}"#,
            r#"{"days": 5000000000}"#,
            r#"{"days": 1000000000}"#,
            r#"{"days": "36601"}"#,
            r#"{"day": "5 March"}"#,
        ] {
            assert!(fields(bad).is_err(), "{bad}");
        }
    }
}
