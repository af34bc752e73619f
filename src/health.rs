//! The lake's health per hour, read from the commit records: which sources each hour was made
//! of, and its rows against the same hour a day and a week before
//! ([`events::completeness`]). `elt verify` and `elt status` show it.

use events::commits::HourCommit;

pub use adapters::commits::{commit_records, completeness, with_baselines};

/// The sources an hour's commit was made of, for people: `first`, `opendigger`, …
pub fn source_labels(commit: &HourCommit) -> Vec<String> {
    commit
        .by_source
        .iter()
        .map(|s| events::sources::source_label(&s.source_file).to_string())
        .collect()
}

/// A percentage for a table column, `-` where there is nothing to compare with.
pub fn percent_cell(percent: Option<f64>) -> String {
    percent.map_or("-".into(), |p| format!("{p:.0}%"))
}
