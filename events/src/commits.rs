//! The commit record of one hour: which run's output the lake holds for it, kept in the job
//! store (the `jobs` table on AWS, SQLite locally) under [`commit_key`].
//!
//! Every write of a record is conditional on the generation it replaces (and on the generations
//! of the neighbouring hours' records the run read), so of two runs of one hour exactly one wins,
//! and an hour never keeps an event its neighbour already holds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Hour;

/// Prefix (at the curated bucket's root, outside the table) under which runs stage their parts.
/// The stack expires what a dead run leaves there.
pub const STAGING_PREFIX: &str = "_staging/";
/// Prefix (at the curated bucket's root) of each committed run's sorted `event_id`s, which the
/// neighbouring hours read to drop events already committed.
pub const EVENT_IDS_PREFIX: &str = "_commits/";

/// The job-store key of `hour`'s commit record for the table at `curated_prefix`.
pub fn commit_key(curated_prefix: &str, hour: Hour) -> String {
    format!("commit#{curated_prefix}{hour}")
}

/// Where the runs of `hour` stage their objects: `_staging/ghactivity/2024-03-05-14/`.
pub fn staging_prefix(curated_prefix: &str, hour: Hour) -> String {
    format!("{STAGING_PREFIX}{curated_prefix}{hour}/")
}

/// Where the runs of `hour` keep their `event_id`s: `_commits/ghactivity/2024-03-05-14/`.
pub fn event_ids_prefix(curated_prefix: &str, hour: Hour) -> String {
    format!("{EVENT_IDS_PREFIX}{curated_prefix}{hour}/")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourCommit {
    /// The store key, [`commit_key`] (the `jobs` table's partition key).
    pub job_id: String,
    pub hour: Hour,
    /// Raised by every commit of the hour; each write is conditional on the one it replaces.
    pub generation: u64,
    pub state: CommitState,
    /// The run whose output this is.
    pub run_id: String,
    /// When this state was written.
    pub updated_at: DateTime<Utc>,
    /// While `committing`: until when (epoch ms) the run may still be moving its parts into
    /// place; after that another run of the hour may take over.
    pub lease_until: i64,
    /// The raw object that was read: the first source's file of the hour present.
    pub source: SourceVersion,
    /// The other sources' files of the hour that were read with it, in the order read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_sources: Vec<SourceVersion>,
    /// The Parquet parts, in key order: exactly the hour's rows.
    pub parts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
    /// Key of the run's sorted `event_id`s (little-endian i64s), for the neighbouring hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_ids: Option<String>,
    /// Key of the sorted `event_id`s this run dropped because a neighbouring hour held them
    /// (`elt verify` checks the neighbours still do: `lost_across_hours`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_ids: Option<String>,
    /// The table's version that holds this result (its Delta commit), once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_version: Option<u64>,
    /// Parts of earlier runs of the hour that this commit removes (a later run that completes an
    /// interrupted commit removes them too).
    #[serde(default)]
    pub replaced: Vec<String>,
    /// Where the run staged its objects (under [`STAGING_PREFIX`]).
    pub staging: String,
    /// The accounting of the run.
    pub counts: CommitCounts,
    /// The accounting per source, in the order read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_source: Vec<crate::SourceCount>,
}

impl HourCommit {
    /// Every raw object the run read, the first source's first.
    pub fn inputs(&self) -> impl Iterator<Item = &SourceVersion> + Clone {
        std::iter::once(&self.source).chain(&self.more_sources)
    }
}

/// Whether a run reading `ours` read an older upload of one of the files `theirs` holds (the
/// same location, stored earlier): its result must not replace theirs.
pub fn any_older<'a>(
    ours: &[SourceVersion],
    theirs: impl IntoIterator<Item = &'a SourceVersion> + Clone,
) -> bool {
    ours.iter().any(|mine| {
        theirs
            .clone()
            .into_iter()
            .any(|t| t.location == mine.location && mine.older_than(t))
    })
}

/// Whether every file of `ours` is among `theirs`, as stored: a result from `theirs` holds
/// everything a run reading `ours` would commit.
pub fn all_among<'a>(
    ours: &[SourceVersion],
    theirs: impl IntoIterator<Item = &'a SourceVersion> + Clone,
) -> bool {
    ours.iter().all(|mine| {
        theirs
            .clone()
            .into_iter()
            .any(|t| t.location == mine.location && mine.same_as(t))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitState {
    /// The run won the hour and is moving its parts into place.
    Committing,
    /// The parts are in place and nothing else of the hour is.
    Committed,
}

/// The version of a raw object a run read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceVersion {
    /// Where it was read: `s3://bucket/key` or a local path.
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
    #[serde(default)]
    pub size: u64,
}

impl SourceVersion {
    /// Whether `self` and `other` are the same object as stored (same version or ETag).
    pub fn same_as(&self, other: &SourceVersion) -> bool {
        match (&self.version, &other.version, &self.e_tag, &other.e_tag) {
            (Some(a), Some(b), _, _) => a == b,
            (_, _, Some(a), Some(b)) => a == b,
            _ => self.last_modified == other.last_modified && self.size == other.size,
        }
    }

    /// Whether `self` was stored before `other`: an older upload of the hour.
    pub fn older_than(&self, other: &SourceVersion) -> bool {
        match (self.last_modified, other.last_modified) {
            (Some(a), Some(b)) => !self.same_as(other) && a < b,
            _ => false,
        }
    }
}

/// A committed run's accounting: `records = rows + duplicates + duplicates_across_hours +
/// rejected`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCounts {
    pub records: u64,
    pub rows: u64,
    pub duplicates: u64,
    #[serde(default)]
    pub duplicates_across_hours: u64,
    pub rejected: u64,
}

/// Encodes sorted `event_id`s as the neighbours read them: little-endian i64s.
pub fn encode_event_ids(ids: &[i64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

/// Decodes [`encode_event_ids`]; `None` when the length is not a multiple of 8.
pub fn decode_event_ids(bytes: &[u8]) -> Option<Vec<i64>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(e_tag: &str, minute: u32) -> SourceVersion {
        SourceVersion {
            location: "s3://raw/landing/ghactivity/2024-03-05-14.json.gz".into(),
            e_tag: Some(e_tag.into()),
            version: None,
            last_modified: Some(
                chrono::NaiveDate::from_ymd_opt(2024, 3, 5)
                    .and_then(|d| d.and_hms_opt(15, minute, 0))
                    .map(|t| t.and_utc())
                    .unwrap(),
            ),
            size: 10,
        }
    }

    #[test]
    fn an_older_upload_is_recognised_by_its_time_not_its_etag() {
        let (first, second) = (version("\"a\"", 1), version("\"b\"", 2));
        assert!(first.older_than(&second));
        assert!(!second.older_than(&first));
        assert!(
            !first.older_than(&version("\"a\"", 3)),
            "same ETag: same object"
        );
        assert!(first.same_as(&version("\"a\"", 3)));
    }

    #[test]
    fn keys_are_per_table_and_hour() {
        let hour: Hour = "2024-03-05-9".parse().unwrap();
        assert_eq!(
            commit_key("ghactivity/", hour),
            "commit#ghactivity/2024-03-05-9"
        );
        assert_eq!(
            staging_prefix("ghactivity/", hour),
            "_staging/ghactivity/2024-03-05-9/"
        );
        assert_eq!(
            event_ids_prefix("ghactivity/", hour),
            "_commits/ghactivity/2024-03-05-9/"
        );
    }

    #[test]
    fn event_ids_round_trip() {
        let ids = vec![i64::MIN, -1, 0, 42, i64::MAX];
        assert_eq!(decode_event_ids(&encode_event_ids(&ids)), Some(ids));
        assert_eq!(decode_event_ids(&[1, 2, 3]), None);
    }
}
