//! Contracts between gh-elt's stages: GHArchive hour names, the object keys every stage agrees on,
//! and the records a transform run reports. Plain data, no I/O: both stages and the `elt` command
//! depend on this crate, and it depends on neither.

pub mod backfill;
pub mod commits;
pub mod completeness;
mod gaps;
pub mod jobs;
mod keys;
pub mod notifications;
pub mod sources;

pub use gaps::known_gap;
pub use keys::{part_hour, part_slot, Compression, Day, Hour, HourError, FIRST_HOUR};
use serde::{Deserialize, Serialize};

/// Default key prefix of raw hour files in the raw bucket.
pub const DEFAULT_RAW_PREFIX: &str = "landing/ghactivity/";
/// Default key prefix of the Parquet table in the curated bucket (or the local lake).
pub const DEFAULT_CURATED_PREFIX: &str = "ghactivity/";
/// Default key prefix of quarantined lines.
pub const DEFAULT_REJECTS_PREFIX: &str = "_rejects/ghactivity/";

/// What transforming one raw file did. `records == rows + duplicates + duplicates_across_hours +
/// rejected` always holds.
///
/// A record is one JSON value, or one piece of a line that is not one: usually a line holds one
/// record, but GHArchive has lines holding two events glued together, or a cut-off event glued
/// to the next; each piece is counted (and landed or quarantined) on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformSummary {
    /// The raw file's name or key.
    pub source: String,
    pub hour: Hour,
    /// Non-blank physical lines read (a line holding only NUL bytes is blank).
    pub lines: u64,
    /// Records read: the unit of the accounting.
    pub records: u64,
    /// Rows written to Parquet.
    pub rows: u64,
    /// Rows the SQL dropped: with the built-in SQL, events whose `event_id` was already seen.
    pub duplicates: u64,
    /// Events dropped because the hour before or after has already committed them (GHArchive
    /// repeats events across files; since 2025 an hour can repeat the hour before).
    #[serde(default)]
    pub duplicates_across_hours: u64,
    /// Records quarantined, each with its reason, in `quarantine`.
    pub rejected: u64,
    /// Damage repaired on the way: nothing here is lost, it is what made the records readable.
    #[serde(default)]
    pub repairs: Repairs,
    /// Keys of the Parquet parts written, in part order.
    pub outputs: Vec<String>,
    /// Key of the quarantine file, when any line was rejected.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quarantine: Option<String>,
    /// The hour's commit generation this run wrote (see [`commits::HourCommit`]).
    #[serde(default)]
    pub generation: u64,
    /// Set when another run's result for the hour stands instead of this one's (it committed
    /// first from the same raw object, or read a newer one): why. Nothing of this run was kept.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub superseded: Option<String>,
    /// Bytes of the raw file as stored (compressed) and of its JSON once decompressed.
    pub raw_bytes: u64,
    pub json_bytes: u64,
    pub seconds: f64,
    /// The accounting per source, in the order they were read (the first source wins an
    /// `event_id` that several hold): one entry for each source's file of the hour present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceCount>,
}

/// One source's part of an hour's accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCount {
    /// The source's file, as in the table's `source_file` column.
    pub source_file: String,
    /// Records read from this source's file.
    pub records: u64,
    /// Rows of the hour's result that came from it (its `rows_by_source`).
    pub rows: u64,
    /// Of its events (by `event_id`), how many another source of the hour also had.
    pub shared: u64,
}

impl TransformSummary {
    /// The summary of a run that read nothing (its hour was already committed from a newer
    /// upload of the raw object).
    pub fn empty(source: String, hour: Hour) -> TransformSummary {
        TransformSummary {
            source,
            hour,
            lines: 0,
            records: 0,
            rows: 0,
            duplicates: 0,
            duplicates_across_hours: 0,
            rejected: 0,
            repairs: Repairs::default(),
            outputs: Vec::new(),
            quarantine: None,
            generation: 0,
            superseded: None,
            raw_bytes: 0,
            json_bytes: 0,
            seconds: 0.0,
            sources: Vec::new(),
        }
    }
}

/// Damage in a raw file that the transform repaired (GHArchive issues #17, #53, #169, #190, #271).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repairs {
    /// Lines that held more than one record (or a cut-off record and the next), split apart.
    pub lines_split: u64,
    /// Runs of NUL bytes removed, alone on a line or between records.
    pub nul_runs: u64,
}

/// One quarantined record in `_rejects/…/HOUR.jsonl.gz`. The exact line is kept in `raw` when it is
/// UTF-8 text within the line limit, otherwise in `raw_base64` (its bytes, base64-encoded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectRecord {
    pub source: String,
    /// 1-based physical line number in the decompressed file (a line holding several records
    /// gives each of them its number).
    pub line: u64,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub raw: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub raw_base64: Option<String>,
    /// Length of the line in bytes, when it was streamed because it passed the limit.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_round_trips_as_json() {
        let s = TransformSummary {
            source: "2024-03-05-14.json.gz".into(),
            hour: "2024-03-05-14".parse().unwrap(),
            lines: 2,
            records: 3,
            rows: 1,
            duplicates: 1,
            duplicates_across_hours: 0,
            rejected: 1,
            repairs: Repairs {
                lines_split: 1,
                nul_runs: 0,
            },
            outputs: vec!["a".into()],
            quarantine: Some("b".into()),
            generation: 1,
            superseded: None,
            raw_bytes: 10,
            json_bytes: 20,
            seconds: 0.5,
            sources: vec![SourceCount {
                source_file: "2024-03-05-14.json.gz".into(),
                records: 3,
                rows: 1,
                shared: 0,
            }],
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""hour":"2024-03-05-14""#), "{text}");
        assert_eq!(serde_json::from_str::<TransformSummary>(&text).unwrap(), s);
    }
}
