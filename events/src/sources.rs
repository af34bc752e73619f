//! Several archives of the same hours: where each one's raw files go, and how a raw key names
//! its source and hour.
//!
//! The first source keeps the raw prefix's own keys (`landing/ghactivity/2024-03-05-14.json.gz`),
//! so a stack or lake with one source is unchanged; every other source (a mirror) has a folder
//! of its own below it: `landing/ghactivity/sources/opendigger/2024-03-05-14.json.gz`. The
//! transform of an hour reads every source's file of that hour and commits their union.

use crate::{Compression, Hour};

/// The folder, below the raw prefix, of the mirrors' raw files.
pub const MIRRORS_FOLDER: &str = "sources/";

/// Whether `name` can name a mirror's folder: lower-case letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit, at most 63 characters.
pub fn valid_source_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok
        && name.len() <= 63
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The folder of a source's raw files: the raw prefix itself for the first source (`None`),
/// `RAW_PREFIX/sources/NAME/` for a mirror.
pub fn source_prefix(raw_prefix: &str, mirror: Option<&str>) -> String {
    match mirror {
        None => raw_prefix.to_string(),
        Some(name) => format!("{raw_prefix}{MIRRORS_FOLDER}{name}/"),
    }
}

/// The source a `source_file` (as in the table and the accounting) came from, for people:
/// `first` for the first source's, the mirror's name for `sources/NAME/HOUR.json.gz`.
pub fn source_label(source_file: &str) -> &str {
    source_file
        .strip_prefix(MIRRORS_FOLDER)
        .and_then(|rest| rest.split_once('/'))
        .map_or("first", |(name, _)| name)
}

/// What a raw key names: the source (`None`: the first one) and the hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawKey {
    pub mirror: Option<String>,
    pub hour: Hour,
    pub compression: Compression,
}

impl RawKey {
    /// Reads `key` as exactly `raw_prefix` + an hour file name, or `raw_prefix` +
    /// `sources/NAME/` + an hour file name; why not otherwise. Keys in other folders
    /// (`landing/ghactivity/tmp/2024-03-05-14.json.gz`) are no source's hour file and must not
    /// replace its output; hour names must be exactly GHArchive's (see
    /// [`Hour::from_file_name`]).
    pub fn parse(raw_prefix: &str, key: &str) -> Result<RawKey, String> {
        let Some(rest) = key.strip_prefix(raw_prefix) else {
            return Err(format!("outside {raw_prefix}"));
        };
        let (mirror, name) = match rest.rsplit_once('/') {
            None => (None, rest),
            Some((folder, name)) => match folder.strip_prefix(MIRRORS_FOLDER.trim_end_matches('/'))
            {
                Some(source) if source.starts_with('/') && valid_source_name(&source[1..]) => {
                    (Some(source[1..].to_string()), name)
                }
                _ => {
                    return Err(format!(
                        "in a folder below {raw_prefix} that is no source's, not a raw hour file"
                    ))
                }
            },
        };
        let (hour, compression) = Hour::from_file_name(name).map_err(|e| e.to_string())?;
        Ok(RawKey {
            mirror,
            hour,
            compression,
        })
    }

    /// The key again, below `raw_prefix`.
    pub fn key(&self, raw_prefix: &str) -> String {
        let folder = source_prefix(raw_prefix, self.mirror.as_deref());
        self.hour.raw_key(&folder, self.compression)
    }

    /// The name the transform gives this file in `source_file` and in its accounting: the key
    /// below the raw prefix (`2024-03-05-14.json.gz`, `sources/opendigger/2024-03-05-14.json.gz`).
    pub fn source_file(&self) -> String {
        self.key("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "landing/ghactivity/";

    #[test]
    fn a_source_file_is_labelled_by_its_source() {
        assert_eq!(source_label("2024-03-05-14.json.gz"), "first");
        assert_eq!(
            source_label("sources/opendigger/2024-03-05-14.json.gz"),
            "opendigger"
        );
        assert_eq!(source_label("sources/2024-03-05-14.json.gz"), "first");
    }

    #[test]
    fn the_first_source_keeps_its_keys_and_mirrors_have_folders() {
        let first = RawKey::parse(PREFIX, "landing/ghactivity/2024-03-05-14.json.gz").unwrap();
        assert_eq!(first.mirror, None);
        assert_eq!(first.source_file(), "2024-03-05-14.json.gz");
        let key = "landing/ghactivity/sources/opendigger/2024-03-05-9.json.zst";
        let mirror = RawKey::parse(PREFIX, key).unwrap();
        assert_eq!(mirror.mirror.as_deref(), Some("opendigger"));
        assert_eq!(
            (mirror.hour.to_string().as_str(), mirror.compression),
            ("2024-03-05-9", Compression::Zstd)
        );
        assert_eq!(mirror.key(PREFIX), key);
        assert_eq!(
            mirror.source_file(),
            "sources/opendigger/2024-03-05-9.json.zst"
        );
        assert_eq!(
            source_prefix(PREFIX, Some("x")),
            "landing/ghactivity/sources/x/"
        );
    }

    #[test]
    fn other_keys_are_no_hour_file() {
        for key in [
            "elsewhere/2024-03-05-14.json.gz",
            "landing/ghactivity/tmp/2024-03-05-14.json.gz",
            "landing/ghactivity/sources/2024-03-05-14.json.gz",
            "landing/ghactivity/sources/Bad Name/2024-03-05-14.json.gz",
            "landing/ghactivity/sources/a/b/2024-03-05-14.json.gz",
            "landing/ghactivity/sourcesx/a/2024-03-05-14.json.gz",
            "landing/ghactivity/2024-03-05-09.json.gz",
            "landing/ghactivity/+2024-3-05-14.json.gz",
            "landing/ghactivity/2024- 3-05-14.json.gz",
            "landing/ghactivity/sources/a/2024-03-05-09.json.gz",
        ] {
            assert!(RawKey::parse(PREFIX, key).is_err(), "{key}");
        }
    }

    #[test]
    fn source_names_are_folder_safe() {
        for good in ["opendigger", "data.gharchive.org", "m-2", "0x"] {
            assert!(valid_source_name(good), "{good}");
        }
        for bad in ["", "Open", "-a", "a/b", "a b", &"x".repeat(64)] {
            assert!(!valid_source_name(bad), "{bad}");
        }
    }
}
