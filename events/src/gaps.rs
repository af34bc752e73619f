//! Hours GHArchive never published and never will (GitHub or its crawler was down), as its
//! maintainer confirmed in the project's issues. `elt verify` reports a missing raw file of one of
//! these as a known gap, not as a finding. Only hours named exactly in an issue are listed: the
//! outage of October 2021 (igrigorik/gharchive.org#260, "a few days") has no published bounds.

use crate::Hour;

/// Inclusive ranges of hours, and the GHArchive issue that reports them.
const KNOWN_GAPS: &[(&str, &str, &str)] = &[
    ("2011-10-27-7", "2011-10-27-7", "igrigorik/gharchive.org#52"),
    ("2012-03-01-8", "2012-03-01-8", "igrigorik/gharchive.org#30"),
    ("2012-03-05-4", "2012-03-05-7", "igrigorik/gharchive.org#30"),
    (
        "2012-03-10-9",
        "2012-03-10-21",
        "igrigorik/gharchive.org#30",
    ),
    ("2012-03-11-2", "2012-03-11-2", "igrigorik/gharchive.org#30"),
    (
        "2013-03-05-20",
        "2013-03-05-20",
        "igrigorik/gharchive.org#52",
    ),
    ("2013-03-10-2", "2013-03-10-2", "igrigorik/gharchive.org#52"),
    (
        "2013-05-31-22",
        "2013-05-31-22",
        "igrigorik/gharchive.org#52",
    ),
    ("2013-08-15-7", "2013-08-15-7", "igrigorik/gharchive.org#52"),
    ("2013-09-06-0", "2013-09-06-0", "igrigorik/gharchive.org#52"),
    (
        "2013-09-11-23",
        "2013-09-11-23",
        "igrigorik/gharchive.org#52",
    ),
    ("2013-09-28-9", "2013-09-28-9", "igrigorik/gharchive.org#52"),
    (
        "2013-10-24-14",
        "2013-10-24-14",
        "igrigorik/gharchive.org#52",
    ),
    (
        "2013-11-25-15",
        "2013-11-25-15",
        "igrigorik/gharchive.org#52",
    ),
    (
        "2014-01-24-10",
        "2014-01-24-10",
        "igrigorik/gharchive.org#52",
    ),
    ("2014-03-09-2", "2014-03-09-2", "igrigorik/gharchive.org#52"),
    (
        "2014-04-29-11",
        "2014-04-29-12",
        "igrigorik/gharchive.org#52",
    ),
    (
        "2014-04-29-21",
        "2014-04-29-21",
        "igrigorik/gharchive.org#52",
    ),
    (
        "2016-10-21-18",
        "2016-10-21-18",
        "igrigorik/gharchive.org#164",
    ),
    (
        "2018-10-21-23",
        "2018-10-22-1",
        "igrigorik/gharchive.org#200",
    ),
];

/// The GHArchive issue that reports `hour` as permanently missing, if one does.
pub fn known_gap(hour: Hour) -> Option<&'static str> {
    KNOWN_GAPS.iter().find_map(|(from, to, source)| {
        let (from, to): (Hour, Hour) = (from.parse().ok()?, to.parse().ok()?);
        (from <= hour && hour <= to).then_some(*source)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_gap_parses_and_is_found() {
        for (from, to, _) in KNOWN_GAPS {
            let (from, to): (Hour, Hour) = (from.parse().unwrap(), to.parse().unwrap());
            assert!(from <= to);
            assert!(known_gap(from).is_some() && known_gap(to).is_some());
        }
        let hour = |s: &str| s.parse::<Hour>().unwrap();
        assert_eq!(
            known_gap(hour("2018-10-22-0")),
            Some("igrigorik/gharchive.org#200")
        );
        assert_eq!(known_gap(hour("2018-10-22-2")), None);
        assert_eq!(known_gap(hour("2024-03-05-14")), None);
    }
}
