//! Storing one hour from every source at once, and what their answers come to together: the
//! hour is stored when any source delivered it; the sources that did not are tried again later
//! (`late_sources`); when none did, the most hopeful failure speaks for the hour.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use events::jobs::{HourOutcome, HourResult, LateSource, SourceResult};
use events::Hour;

use super::{Ingest, Until};
use crate::fate::{self, Answer, Verdict};
use crate::fetch::{Deadline, Fetched, Origin, Placing};
use crate::Failure;

/// What one source gave of an hour.
pub(super) struct FromSource {
    pub result: SourceResult,
    pub answer: Answer,
}

/// What storing one hour came to.
pub(super) struct HourStore {
    pub result: HourResult,
    pub answer: Answer,
    /// The source whose failure the answer is, when the hour was not stored.
    failed: Option<usize>,
    /// When some source delivered: the others, and what they answered.
    lagging: Vec<FromSource>,
}

/// When the verdict asks whether the source serves the hours around the failed one.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Probe {
    /// Whenever it matters (the bookmark's next hour).
    Always,
    /// Only for a broken body (a queued hour: unreachable never counts, either way).
    Broken,
    /// Never (a parked hour tried again: nothing counts).
    Never,
}

impl HourStore {
    /// Whether a source that did not deliver failed in a way that may pass (it was unreachable,
    /// or our side or the deadline stopped it), while another source delivered.
    pub fn lag_may_pass(&self) -> bool {
        self.lagging
            .iter()
            .any(|s| matches!(s.answer, Answer::Failed(kind) if kind != Failure::Broken))
    }

    /// The sources that did not deliver, to be tried again while the hour is recent.
    pub fn late_sources(&self, now: DateTime<Utc>) -> Vec<LateSource> {
        self.lagging
            .iter()
            .map(|s| &s.result)
            .map(|r| LateSource {
                hour: self.result.hour,
                source: r.source.clone(),
                since: now,
                reason: r.error.clone().unwrap_or_else(|| "not found (404)".into()),
                tries: 0,
            })
            .collect()
    }
}

impl Ingest {
    /// Stores `hour` from every source as `placing` says (or finds it stored), transfers cut off
    /// at `until`.
    pub(super) async fn store_hour(&self, hour: Hour, placing: Placing, until: Until) -> HourStore {
        let started = Instant::now();
        let deadline = self.fetcher.deadline(until.transfers);
        let each = self
            .fetcher
            .origins
            .iter()
            .map(|origin| self.store_from(hour, origin, placing, deadline));
        let each = futures::future::join_all(each).await;
        let mut stored = combine(hour, each);
        stored.result.seconds = started.elapsed().as_secs_f64();
        stored
    }

    /// Stores `hour` from `origin` (or finds it stored).
    pub(super) async fn store_from(
        &self,
        hour: Hour,
        origin: &Origin,
        placing: Placing,
        deadline: Deadline,
    ) -> FromSource {
        let key = self.fetcher.key(hour, origin);
        let mut result = SourceResult {
            source: origin.name.clone(),
            outcome: HourOutcome::Ingested,
            key: Some(key),
            bytes: 0,
            source_bytes: 0,
            attempts: 0,
            error: None,
        };
        if placing != Placing::Replace {
            match self.fetcher.existing(hour, origin).await {
                Ok(Some(size)) => {
                    result.outcome = HourOutcome::AlreadyPresent;
                    result.bytes = size;
                    return FromSource {
                        result,
                        answer: Answer::Stored,
                    };
                }
                Ok(None) => {}
                Err(e) => return failed(result, format!("{e:#}"), Failure::Ours),
            }
        }
        let (fetched, attempts) = self.fetcher.fetch(hour, origin, placing, deadline).await;
        result.attempts = attempts;
        match fetched {
            Fetched::Stored(stored) => {
                if stored.already_present {
                    result.outcome = HourOutcome::AlreadyPresent;
                }
                result.bytes = stored.bytes;
                result.source_bytes = stored.source_bytes;
                FromSource {
                    result,
                    answer: Answer::Stored,
                }
            }
            Fetched::NotFound => {
                result.outcome = HourOutcome::Missing;
                result.error = Some(format!("{} is missing (404)", origin.source.location(hour)));
                FromSource {
                    result,
                    answer: Answer::NotFound,
                }
            }
            Fetched::Failed(e) => failed(result, e.message, e.kind),
        }
    }

    /// The verdict on an hour's answer ([`fate::verdict`]), probing the failed source's
    /// neighbouring hours when `probe` asks it.
    pub(super) async fn verdict_of(&self, hour: Hour, stored: &HourStore, probe: Probe) -> Verdict {
        let now = self.config.now();
        let late = now - hour.end() > Duration::hours(self.config.missing_after_hours.into());
        let asked = match probe {
            Probe::Always => stored.answer.needs_probe(),
            Probe::Broken => stored.answer == Answer::Failed(Failure::Broken),
            Probe::Never => false,
        };
        let up = match (asked, stored.failed) {
            (true, Some(i)) => self.source_up(hour, &self.fetcher.origins[i]).await,
            _ => true,
        };
        fate::verdict(stored.answer, late, up)
    }

    /// Whether `origin` serves the hour before `hour`, or the hour after once it has ended, as
    /// gzip: evidence that it is up and sane when `hour` fails to arrive whole.
    async fn source_up(&self, hour: Hour, origin: &Origin) -> bool {
        let after_is_over = hour.next().end() <= self.config.now();
        origin.source.serves(hour.previous()).await
            || (after_is_over && origin.source.serves(hour.next()).await)
    }
}

fn failed(mut result: SourceResult, error: String, kind: Failure) -> FromSource {
    result.outcome = HourOutcome::Failed;
    result.error = Some(error);
    FromSource {
        result,
        answer: Answer::Failed(kind),
    }
}

/// The sources' answers for `hour`, in source order, as one.
fn combine(hour: Hour, each: Vec<FromSource>) -> HourStore {
    let several = each.len() > 1;
    let delivered = each.iter().any(|s| s.answer == Answer::Stored);
    let answer = if delivered {
        Answer::Stored
    } else {
        most_hopeful(&each)
    };
    let failed = each
        .iter()
        .position(|s| s.answer == answer && answer != Answer::Stored);
    let mut result = HourResult::new(hour, HourOutcome::Failed);
    result.outcome = match answer {
        Answer::Stored
            if each
                .iter()
                .any(|s| s.result.outcome == HourOutcome::Ingested) =>
        {
            HourOutcome::Ingested
        }
        Answer::Stored => HourOutcome::AlreadyPresent,
        Answer::NotFound => HourOutcome::Missing,
        Answer::Failed(_) => HourOutcome::Failed,
    };
    // Bytes stored by this run; for an hour found stored, what is there.
    let sum = |keep: &dyn Fn(&FromSource) -> bool| {
        each.iter()
            .filter(|s| keep(s))
            .fold(0u64, |n, s| n.saturating_add(s.result.bytes))
    };
    let ingested = sum(&|s| s.result.outcome == HourOutcome::Ingested);
    let first_stored = each.iter().find(|s| s.answer == Answer::Stored);
    result.bytes = match (ingested, first_stored) {
        (0, Some(s)) => s.result.bytes,
        _ => ingested,
    };
    result.key = first_stored
        .or_else(|| each.first())
        .and_then(|s| s.result.key.clone());
    for source in &each {
        result.source_bytes = result
            .source_bytes
            .saturating_add(source.result.source_bytes);
        result.attempts = result.attempts.max(source.result.attempts);
    }
    let errors: Vec<String> = each
        .iter()
        .filter_map(|s| {
            let error = s.result.error.as_ref()?;
            Some(match several {
                true => format!("{}: {error}", s.result.source),
                false => error.clone(),
            })
        })
        .collect();
    if !errors.is_empty() {
        result.error = Some(errors.join("; "));
    }
    let lagging = match delivered {
        true => each
            .iter()
            .filter(|s| s.answer != Answer::Stored)
            .map(|s| FromSource {
                result: s.result.clone(),
                answer: s.answer,
            })
            .collect(),
        false => Vec::new(),
    };
    if several {
        result.sources = each.into_iter().map(|s| s.result).collect();
    }
    HourStore {
        result,
        answer,
        failed,
        lagging,
    }
}

/// Of several sources that did not deliver: the most hopeful failure (one unreachable source
/// may yet deliver), or not found when every source said so.
fn most_hopeful(each: &[FromSource]) -> Answer {
    each.iter()
        .filter_map(|s| match s.answer {
            Answer::Failed(kind) => Some(kind),
            _ => None,
        })
        .max_by_key(|kind| kind.hope())
        .map_or(Answer::NotFound, Answer::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(source: &str, answer: Answer, outcome: HourOutcome, bytes: u64) -> FromSource {
        FromSource {
            result: SourceResult {
                source: source.into(),
                outcome,
                key: Some(format!("{source}/k")),
                bytes,
                source_bytes: bytes,
                attempts: 1,
                error: (answer != Answer::Stored).then(|| format!("{source} failed")),
            },
            answer,
        }
    }

    fn hour() -> Hour {
        "2024-03-05-1".parse().unwrap()
    }

    #[test]
    fn one_source_delivering_stores_the_hour_and_the_others_lag() {
        let stored = combine(
            hour(),
            vec![
                from("a", Answer::NotFound, HourOutcome::Missing, 0),
                from("b", Answer::Stored, HourOutcome::Ingested, 7),
            ],
        );
        assert_eq!(stored.answer, Answer::Stored);
        assert_eq!(stored.result.outcome, HourOutcome::Ingested);
        assert_eq!(
            (stored.result.key.as_deref(), stored.result.bytes),
            (Some("b/k"), 7)
        );
        assert_eq!(stored.result.sources.len(), 2);
        let late = stored.late_sources(Utc::now());
        assert_eq!(late.len(), 1);
        assert_eq!(
            (late[0].source.as_str(), late[0].reason.as_str()),
            ("a", "a failed")
        );
    }

    #[test]
    fn without_a_delivery_the_most_hopeful_failure_speaks() {
        let unreachable = Answer::Failed(Failure::Unreachable);
        let stored = combine(
            hour(),
            vec![
                from("a", Answer::Failed(Failure::Broken), HourOutcome::Failed, 0),
                from("b", unreachable, HourOutcome::Failed, 0),
            ],
        );
        assert_eq!((stored.answer, stored.failed), (unreachable, Some(1)));
        assert!(stored.late_sources(Utc::now()).is_empty());
        assert_eq!(
            stored.result.error.as_deref(),
            Some("a: a failed; b: b failed")
        );
        let missing = combine(
            hour(),
            vec![
                from("a", Answer::NotFound, HourOutcome::Missing, 0),
                from("b", Answer::NotFound, HourOutcome::Missing, 0),
            ],
        );
        assert_eq!(missing.answer, Answer::NotFound);
        assert_eq!(missing.result.outcome, HourOutcome::Missing);
        let one = combine(
            hour(),
            vec![from("a", Answer::Stored, HourOutcome::AlreadyPresent, 3)],
        );
        assert!(
            one.result.sources.is_empty(),
            "one source: the record as before"
        );
        assert_eq!(
            (one.result.outcome, one.result.bytes),
            (HourOutcome::AlreadyPresent, 3)
        );
    }
}
