//! The lake's own health: an hour's rows against the same hour a day and a week before.
//!
//! GHArchive's hours have lost events before (the crawler's first-page-only era since 2025-05-24,
//! one day of 2025-10 with 18,241 rows against 424,570 the next); an hour that fell by more than
//! half against both its neighbours in time is worth an operator's look, and perhaps a mirror.
//! Traffic has a daily and a weekly rhythm, so the same hour of the day before and of the week
//! before are the fair comparisons. A flag is a warning, not a defect of the lake: GitHub itself
//! has quiet hours and outages.

use chrono::Duration;
use serde::Serialize;

use crate::Hour;

/// How far back the two comparisons look.
pub const DAY_BEFORE_HOURS: i64 = 24;
pub const WEEK_BEFORE_HOURS: i64 = 7 * 24;

/// An hour's rows and those of the same hour a day and a week before (where committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Completeness {
    pub hour: Hour,
    pub rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub week_before: Option<u64>,
    /// Fewer than half the rows of every comparison there is.
    pub fell_by_half: bool,
}

impl Completeness {
    /// The hours `hour` is compared with: the same hour a day and a week before.
    pub fn baselines(hour: Hour) -> [Hour; 2] {
        [DAY_BEFORE_HOURS, WEEK_BEFORE_HOURS]
            .map(|back| Hour::containing(hour.start() - Duration::hours(back)))
    }

    /// `rows` of `hour` against `day_before` and `week_before`. With no comparison there is
    /// nothing to flag; with one, it alone decides. Both must show the fall, so that a Monday
    /// after a quiet Sunday, or a day after a burst, is not flagged.
    pub fn assess(
        hour: Hour,
        rows: u64,
        day_before: Option<u64>,
        week_before: Option<u64>,
    ) -> Completeness {
        let fell = |before: u64| rows.saturating_mul(2) < before;
        let compared: Vec<u64> = [day_before, week_before].into_iter().flatten().collect();
        Completeness {
            hour,
            rows,
            day_before,
            week_before,
            fell_by_half: !compared.is_empty() && compared.into_iter().all(fell),
        }
    }

    /// Rows as a percentage of the day before's, where there is one with rows.
    pub fn percent_of_day_before(&self) -> Option<f64> {
        percent(self.rows, self.day_before)
    }

    /// Rows as a percentage of the week before's, where there is one with rows.
    pub fn percent_of_week_before(&self) -> Option<f64> {
        percent(self.rows, self.week_before)
    }
}

fn percent(rows: u64, before: Option<u64>) -> Option<f64> {
    before
        .filter(|b| *b > 0)
        .map(|b| rows as f64 * 100.0 / b as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(name: &str) -> Hour {
        name.parse().expect("an hour")
    }

    #[test]
    fn baselines_are_the_same_hour_a_day_and_a_week_before() {
        assert_eq!(
            Completeness::baselines(hour("2025-10-08-0")),
            [hour("2025-10-07-0"), hour("2025-10-01-0")]
        );
    }

    #[test]
    fn a_fall_by_more_than_half_against_every_comparison_is_flagged() {
        let h = hour("2025-10-08-0");
        // GHArchive's issue #312: 18,241 rows in a day against 424,570 the next.
        let cases = [
            (18_241, Some(424_570), Some(400_000), true),
            (18_241, Some(424_570), None, true),
            (18_241, None, Some(424_570), true),
            (50, Some(100), Some(100), false),
            (49, Some(100), Some(100), true),
            // a quiet day before, the week before shows the fall: not both
            (40, Some(60), Some(100), false),
            (0, Some(0), None, false),
            (5, None, None, false),
            (0, Some(1), Some(1), true),
        ];
        for (rows, day, week, flagged) in cases {
            let c = Completeness::assess(h, rows, day, week);
            assert_eq!(c.fell_by_half, flagged, "{rows} vs {day:?} / {week:?}");
        }
    }

    #[test]
    fn percentages_need_a_comparison_with_rows() {
        let c = Completeness::assess(hour("2025-10-08-0"), 25, Some(100), Some(0));
        assert_eq!(c.percent_of_day_before(), Some(25.0));
        assert_eq!(c.percent_of_week_before(), None);
        let huge = Completeness::assess(hour("2025-10-08-0"), u64::MAX, Some(1), None);
        assert!(!huge.fell_by_half);
    }
}
