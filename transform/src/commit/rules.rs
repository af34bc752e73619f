//! The commit's decisions, as plain functions of the records a run meets, tested here.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::commits::{all_among, any_older, CommitState, HourCommit, SourceVersion};

/// Clocks of two machines may disagree by this much: a claim is waited for this long after its
/// lease has run out before it is taken over.
pub(super) const CLOCK_SKEW_MS: i64 = 10_000;

/// What a run makes of the hour's record as it now stands, when that is not the record its
/// claim was written against.
#[derive(Debug, PartialEq)]
pub(super) enum Meeting {
    /// The record is the one the run read (a neighbour had moved): claim again.
    Again,
    /// Another run's result stands: it read the same raw objects (or more sources' of the hour)
    /// and committed, or a newer upload of one.
    GiveWay(String),
    /// Build on the record: claim over it (once it is no live claim of another run's).
    Replace,
}

pub(super) fn meeting(
    current: &HourCommit,
    expected: Option<u64>,
    ours: &[SourceVersion],
) -> Meeting {
    if Some(current.generation) == expected {
        return Meeting::Again;
    }
    if any_older(ours, current.inputs()) {
        return Meeting::GiveWay(newer_source(current));
    }
    if current.state == CommitState::Committed && all_among(ours, current.inputs()) {
        let what = match current.more_sources.is_empty() {
            true => "the same raw object",
            false => "the same raw objects",
        };
        return Meeting::GiveWay(format!(
            "run {} committed {what} first (generation {})",
            current.run_id, current.generation
        ));
    }
    Meeting::Replace
}

/// Whether `record` is another run's claim that may still be moving its parts into place: a
/// run waits for it to finish (or for its lease, and the clock skew, to run out).
pub(super) fn live_claim(record: &HourCommit, run_id: &str, now: DateTime<Utc>) -> bool {
    record.state == CommitState::Committing
        && record.run_id != run_id
        && record.lease_until + CLOCK_SKEW_MS > now.timestamp_millis()
}

pub(super) fn newer_source(committed: &HourCommit) -> String {
    format!(
        "the hour is committed (generation {}, run {}) from a newer upload of the raw object",
        committed.generation, committed.run_id
    )
}

/// The parts a commit removes: those found near the hour and those the record it replaces
/// named (or was removing), other than the run's own.
pub(super) fn replaced(
    ours: &[String],
    near: &BTreeSet<String>,
    prior: Option<&HourCommit>,
) -> Vec<String> {
    let mut keys: BTreeSet<&String> = near.iter().collect();
    if let Some(prior) = prior {
        keys.extend(prior.parts.iter().chain(&prior.replaced));
    }
    keys.into_iter()
        .filter(|k| !ours.contains(k))
        .cloned()
        .collect()
}

/// Whether every value of the sorted list `wanted` is in one of the sorted lists `lists`.
pub(super) fn all_within(wanted: &[i64], lists: &[&[i64]]) -> bool {
    wanted
        .iter()
        .all(|id| lists.iter().any(|list| list.binary_search(id).is_ok()))
}

/// Whether two sorted lists share a value.
pub(super) fn sorted_overlap(a: &[i64], b: &[i64]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// 50 ms doubling per attempt (at most 2 s), with up to half again of jitter.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = (50u64 << attempt.min(10)).min(2000);
    let jitter =
        u64::from(std::process::id() ^ Utc::now().timestamp_subsec_nanos()) % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::commits::CommitCounts;

    pub(crate) fn record() -> HourCommit {
        HourCommit {
            job_id: "k".into(),
            hour: "2024-03-05-14".parse().unwrap(),
            generation: 1,
            state: CommitState::Committed,
            run_id: "r".into(),
            updated_at: Utc::now(),
            lease_until: 0,
            source: SourceVersion::default(),
            parts: vec![],
            quarantine: None,
            event_ids: None,
            dropped_ids: None,
            table_version: None,
            replaced: vec![],
            staging: String::new(),
            counts: CommitCounts::default(),
            more_sources: vec![],
            by_source: vec![],
        }
    }

    fn source(e_tag: &str, minute: u32) -> SourceVersion {
        located(
            "s3://raw/landing/ghactivity/2024-03-05-14.json.gz",
            e_tag,
            minute,
        )
    }

    fn located(location: &str, e_tag: &str, minute: u32) -> SourceVersion {
        SourceVersion {
            location: location.into(),
            e_tag: Some(e_tag.into()),
            version: None,
            last_modified: DateTime::from_timestamp(1_709_650_000 + i64::from(minute) * 60, 0),
            size: 1,
        }
    }

    #[test]
    fn a_run_gives_way_to_the_same_or_a_newer_object_and_builds_on_anything_else() {
        let ours = [source("a", 5)];
        let met = |state, e_tag, minute| HourCommit {
            generation: 4,
            state,
            source: source(e_tag, minute),
            ..record()
        };
        use CommitState::{Committed, Committing};
        // The record the run read: only a neighbour moved.
        assert_eq!(
            meeting(&met(Committed, "b", 9), Some(4), &ours),
            Meeting::Again
        );
        // Another run committed the same raw object, or read a newer one: its result stands.
        for other in [met(Committed, "a", 5), met(Committing, "b", 9)] {
            let decided = meeting(&other, Some(3), &ours);
            assert!(matches!(decided, Meeting::GiveWay(_)), "{decided:?}");
        }
        // An older object, or a claim not finished: build on it.
        assert_eq!(
            meeting(&met(Committed, "b", 1), Some(3), &ours),
            Meeting::Replace
        );
        assert_eq!(
            meeting(&met(Committing, "a", 5), Some(3), &ours),
            Meeting::Replace
        );
        assert_eq!(
            meeting(&met(Committed, "b", 1), None, &ours),
            Meeting::Replace
        );
    }

    #[test]
    fn a_result_from_more_sources_stands_and_a_source_that_arrives_late_replaces_it() {
        let mirror = located(
            "s3://raw/landing/ghactivity/sources/m/2024-03-05-14.json.gz",
            "m",
            7,
        );
        let both = HourCommit {
            generation: 4,
            more_sources: vec![mirror.clone()],
            source: source("a", 5),
            ..record()
        };
        let alone = HourCommit {
            generation: 4,
            source: source("a", 5),
            ..record()
        };
        // A run that read the first source only: the union already holds all of it.
        let decided = meeting(&both, Some(3), &[source("a", 5)]);
        assert!(
            matches!(&decided, Meeting::GiveWay(why) if why.contains("raw objects")),
            "{decided:?}"
        );
        // The mirror's file arrived after the first commit: the union replaces it.
        let union = [source("a", 5), mirror.clone()];
        assert_eq!(meeting(&alone, Some(3), &union), Meeting::Replace);
        // The same two files, committed: nothing to do.
        assert!(matches!(
            meeting(&both, Some(3), &union),
            Meeting::GiveWay(_)
        ));
        // An older upload of the mirror's file never replaces the newer one.
        let stale = [source("a", 5), located(&mirror.location, "old", 1)];
        assert!(matches!(
            meeting(&both, Some(3), &stale),
            Meeting::GiveWay(_)
        ));
    }

    #[test]
    fn another_runs_claim_is_waited_for_until_its_lease_and_the_clock_skew_run_out() {
        let now = Utc::now();
        let claim = |run_id: &str, lease_ms: i64| HourCommit {
            state: CommitState::Committing,
            run_id: run_id.into(),
            lease_until: now.timestamp_millis() + lease_ms,
            ..record()
        };
        assert!(live_claim(&claim("other", 60_000), "me", now));
        assert!(
            live_claim(&claim("other", -1_000), "me", now),
            "within the skew"
        );
        assert!(!live_claim(&claim("other", -CLOCK_SKEW_MS - 1), "me", now));
        assert!(
            !live_claim(&claim("me", 60_000), "me", now),
            "its own claim"
        );
        assert!(!live_claim(&record(), "me", now), "a finished commit");
    }

    #[test]
    fn a_commit_replaces_what_it_found_and_what_the_record_named_but_never_its_own() {
        let ours = vec!["t/a-0".to_string()];
        let near: BTreeSet<String> = ["t/a-0", "t/a-1"].map(String::from).into();
        let prior = HourCommit {
            parts: vec!["far/a-0".into()],
            replaced: vec!["far/a-7".into(), "t/a-0".into()],
            ..record()
        };
        assert_eq!(
            replaced(&ours, &near, Some(&prior)),
            vec!["far/a-0", "far/a-7", "t/a-1"]
        );
    }

    #[test]
    fn sorted_lists() {
        assert!(sorted_overlap(&[1, 5, 9], &[2, 9]));
        assert!(!sorted_overlap(&[1, 5, 9], &[2, 6, 10]));
        assert!(!sorted_overlap(&[], &[1]));
        assert!(all_within(&[2, 9], &[&[1, 2], &[9]]));
        assert!(!all_within(&[2, 3], &[&[1, 2], &[9]]));
        assert!(all_within(&[], &[]));
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(0) >= Duration::from_millis(50));
        assert!(backoff(30) <= Duration::from_millis(3000));
    }
}
