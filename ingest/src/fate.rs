//! What becomes of an hour after the sources answered for it: one pure decision, used by the run
//! for the bookmark's next hour, for the queued hours and for the parked ones alike, and tested
//! here with a table of cases.
//!
//! Only the hour's own fault counts against it: a 404 long after the hour ended, or a body that
//! is not the hour (an error page, not gzip, a truncated or corrupt gzip) while the source serves
//! the hours around it whole. Server errors, refusals (401, 403, 408, 429), resets and time-outs
//! never count, whatever the neighbours do: when the source serves the hours around it, the hour
//! is queued and tried by every run until it arrives; when it serves nothing whole, it is an
//! outage, and the run stops where it is.

use events::jobs::{RunStatus, StopReason};

use crate::Failure;

/// What the sources answered for an hour, taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A source's file is in the raw store (fetched now, or found stored).
    Stored,
    /// Every source answered 404.
    NotFound,
    /// No source delivered it; the most hopeful of their failures.
    Failed(Failure),
}

impl Answer {
    /// Whether the verdict depends on the source serving the hours around this one.
    pub fn needs_probe(self) -> bool {
        matches!(
            self,
            Answer::Failed(Failure::Broken) | Answer::Failed(Failure::Unreachable)
        )
    }
}

/// What an answer says about the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Stored,
    /// 404 within `MISSING_AFTER_HOURS` of the hour's end: GHArchive has not published it yet.
    NotPublished,
    /// The hour's own fault: counts against it.
    HoursFault,
    /// Not the hour's fault, and the source serves the hours around it: try it on every run.
    NotTheHours,
    /// The source serves nothing whole: an outage (or an error page for every file).
    Outage,
    /// Our side failed (the raw store, the ingest): nothing is said about the hour.
    Ours,
    /// The run's deadline came in the middle of the transfer.
    Interrupted,
}

/// The verdict on `answer`: `late` when the hour ended more than `MISSING_AFTER_HOURS` ago,
/// `source_up` when the source serves the hour before or after whole (asked only when
/// [`Answer::needs_probe`]).
pub fn verdict(answer: Answer, late: bool, source_up: bool) -> Verdict {
    match answer {
        Answer::Stored => Verdict::Stored,
        Answer::NotFound if late => Verdict::HoursFault,
        Answer::NotFound => Verdict::NotPublished,
        Answer::Failed(Failure::Ours) => Verdict::Ours,
        Answer::Failed(Failure::Interrupted) => Verdict::Interrupted,
        Answer::Failed(_) if !source_up => Verdict::Outage,
        Answer::Failed(Failure::Broken) => Verdict::HoursFault,
        Answer::Failed(Failure::Unreachable) => Verdict::NotTheHours,
    }
}

/// What the run does about the bookmark's next hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHour {
    /// Stored: move the bookmark past it.
    Advance,
    /// Queue it for every run to try first, and move the bookmark past it.
    Queue,
    /// Count the run against it and stop; the bookmark waits.
    Count,
    /// It failed on `MISSING_HOUR_ATTEMPTS` runs: park it and move the bookmark past it.
    Park,
    /// Stop where it is, with this reason and status; nothing is counted.
    Stop(StopReason, RunStatus),
}

/// The bookmark's next hour, on `verdict`, when `failed_runs` runs (this one included) have
/// counted against it and `park_after` is `MISSING_HOUR_ATTEMPTS`.
pub fn next_hour(verdict: Verdict, failed_runs: u32, park_after: u32) -> NextHour {
    match verdict {
        Verdict::Stored => NextHour::Advance,
        Verdict::NotTheHours => NextHour::Queue,
        Verdict::HoursFault if failed_runs >= park_after => NextHour::Park,
        Verdict::HoursFault => NextHour::Count,
        Verdict::NotPublished => NextHour::Stop(StopReason::NotPublished, RunStatus::Ok),
        Verdict::Interrupted => NextHour::Stop(StopReason::Deadline, RunStatus::Ok),
        Verdict::Outage | Verdict::Ours => NextHour::Stop(StopReason::Failed, RunStatus::Error),
    }
}

/// What the run does about a queued hour (or a parked one it tries again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retried {
    /// Stored: out of the queue (or no longer parked).
    Done,
    /// Still not there: it stays, counted against it or not.
    Again { counts: bool },
    /// Stop trying hours in this run: our side failed, or the deadline came.
    Stop,
}

pub fn retried(verdict: Verdict) -> Retried {
    match verdict {
        Verdict::Stored => Retried::Done,
        Verdict::HoursFault => Retried::Again { counts: true },
        Verdict::NotPublished | Verdict::NotTheHours | Verdict::Outage => {
            Retried::Again { counts: false }
        }
        Verdict::Ours | Verdict::Interrupted => Retried::Stop,
    }
}

/// Why an answer did not count against the hour, for the run record.
pub fn not_counted_note(verdict: Verdict) -> Option<&'static str> {
    match verdict {
        Verdict::NotTheHours => Some("not the hour's fault (the source serves the hours around it): not counted against it; queued for every run to try until it arrives"),
        Verdict::Outage => Some("not counted against the hour: the source serves neither the hour before nor the hour after whole either (an outage?)"),
        Verdict::Ours => Some("our side: not counted against the hour"),
        Verdict::Interrupted => Some("the run's deadline came during the transfer: not counted against the hour"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROKEN: Answer = Answer::Failed(Failure::Broken);
    const UNREACHABLE: Answer = Answer::Failed(Failure::Unreachable);

    #[test]
    fn only_the_hours_own_fault_counts_against_it() {
        // (answer, late, source up) → verdict
        let cases = [
            (Answer::Stored, false, false, Verdict::Stored),
            (Answer::NotFound, false, true, Verdict::NotPublished),
            (Answer::NotFound, true, true, Verdict::HoursFault),
            (Answer::NotFound, true, false, Verdict::HoursFault),
            (BROKEN, false, true, Verdict::HoursFault),
            (BROKEN, true, false, Verdict::Outage),
            (UNREACHABLE, true, true, Verdict::NotTheHours),
            (UNREACHABLE, false, false, Verdict::Outage),
            (Answer::Failed(Failure::Ours), true, true, Verdict::Ours),
            (
                Answer::Failed(Failure::Interrupted),
                true,
                true,
                Verdict::Interrupted,
            ),
        ];
        for (answer, late, up, expected) in cases {
            assert_eq!(
                verdict(answer, late, up),
                expected,
                "{answer:?}, late {late}, up {up}"
            );
        }
        assert!(BROKEN.needs_probe() && UNREACHABLE.needs_probe());
        assert!(!Answer::NotFound.needs_probe() && !Answer::Stored.needs_probe());
    }

    #[test]
    fn the_next_hour_is_queued_counted_parked_or_waited_for() {
        let cases = [
            (Verdict::Stored, 0, NextHour::Advance),
            (Verdict::NotTheHours, 0, NextHour::Queue),
            (Verdict::NotTheHours, 99, NextHour::Queue),
            (Verdict::HoursFault, 1, NextHour::Count),
            (Verdict::HoursFault, 2, NextHour::Count),
            (Verdict::HoursFault, 3, NextHour::Park),
            (
                Verdict::NotPublished,
                0,
                NextHour::Stop(StopReason::NotPublished, RunStatus::Ok),
            ),
            (
                Verdict::Outage,
                5,
                NextHour::Stop(StopReason::Failed, RunStatus::Error),
            ),
            (
                Verdict::Ours,
                5,
                NextHour::Stop(StopReason::Failed, RunStatus::Error),
            ),
            (
                Verdict::Interrupted,
                0,
                NextHour::Stop(StopReason::Deadline, RunStatus::Ok),
            ),
        ];
        for (verdict, runs, expected) in cases {
            assert_eq!(next_hour(verdict, runs, 3), expected, "{verdict:?}, {runs}");
        }
    }

    #[test]
    fn a_queued_hour_counts_only_its_own_fault() {
        assert_eq!(retried(Verdict::Stored), Retried::Done);
        assert_eq!(
            retried(Verdict::HoursFault),
            Retried::Again { counts: true }
        );
        for verdict in [Verdict::NotTheHours, Verdict::Outage, Verdict::NotPublished] {
            assert_eq!(retried(verdict), Retried::Again { counts: false });
            assert!(verdict == Verdict::NotPublished || not_counted_note(verdict).is_some());
        }
        assert_eq!(retried(Verdict::Ours), Retried::Stop);
        assert_eq!(retried(Verdict::Interrupted), Retried::Stop);
    }
}
