//! How the table's Parquet is written so that readers skip what a question does not need, in
//! the hourly parts and the compacted files alike.
//!
//! - **Row groups and pages sized for skipping**: a reader prunes a row group by its footer
//!   statistics, then pages inside it by the page index (column index + offset index), so pages
//!   hold at most [`PAGE_ROWS`] rows and carry their own min/max.
//! - **Dictionaries where values repeat**: the few-valued columns, and the names people filter
//!   by (`repo_name`, `actor_login`, `org_login`, …). In a compacted file, sorted by
//!   [`SORT_COLUMNS`], a name's rows are adjacent, so its dictionary indices run-length encode to
//!   almost nothing.
//! - **Bloom filters on `repo_name` and `actor_login`**: the question "this repository, this
//!   person" skips a row group whose min/max span the name but which does not hold it.
//! - **No statistics on the long free text** (`payload`, `body`, …): they cost time and bound
//!   nothing. Timestamps stay INT64 milliseconds (Athena's reader: no INT96, no nanoseconds).

use deltalake_core::parquet::basic::Compression;
use deltalake_core::parquet::file::properties::{
    EnabledStatistics, WriterProperties, WriterPropertiesBuilder,
};
use deltalake_core::parquet::schema::types::ColumnPath;

/// The compacted files' order: ClickHouse's `github_events` sorting key. A question about one
/// event type and one repository (or a top-N of one type) reads a narrow run of rows.
pub const SORT_COLUMNS: &[&str] = &["event_type", "repo_name", "created_at"];

/// Long free-text columns: dictionaries and min/max statistics cost time there and buy nothing.
pub const LONG_TEXT_COLUMNS: &[&str] = &["payload", "body", "title", "diff_hunk", "other"];

/// Columns whose values repeat: a dictionary makes them small and quick to filter. The others
/// (ids, SHAs, text) are written plain: they would fill the dictionary only to fall back.
pub const DICTIONARY_COLUMNS: &[&str] = &[
    "event_type",
    "public",
    "action",
    "ref_type",
    "state",
    "locked",
    "author_association",
    "merged",
    "review_state",
    "source_file",
    "repo_name",
    "actor_login",
    "org_login",
    "creator_user_login",
    "member_login",
];

/// Columns with a bloom filter in each row group.
pub const BLOOM_FILTER_COLUMNS: &[&str] = &["repo_name", "actor_login"];

/// Rows in a row group at most.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// A compacted file's row group closes once its encoded size passes this (GHArchive rows are
/// wide: 128 Ki rows of them are about 110 MB), which bounds the writer's memory.
pub const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// Rows in a data page at most: the granularity at which the page index selects rows.
pub const PAGE_ROWS: usize = 8 * 1024;

/// Distinct values a row group's bloom filter is sized for.
const BLOOM_DISTINCT_VALUES: u64 = 20_000;

/// False positives of a bloom filter. At 1% over a row group's distinct names the filter is about
/// 1.2 bytes per distinct value.
const BLOOM_FALSE_POSITIVES: f64 = 0.01;

/// The writer properties of every data file of the table.
pub fn writer_properties() -> WriterProperties {
    builder().build()
}

/// [`writer_properties`], open for a caller's own additions (row group size, say).
pub fn builder() -> WriterPropertiesBuilder {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(false)
        .set_created_by(format!("gh-elt {}", env!("CARGO_PKG_VERSION")));
    for name in LONG_TEXT_COLUMNS {
        let column = ColumnPath::from(*name);
        props = props.set_column_statistics_enabled(column, EnabledStatistics::None);
    }
    for name in DICTIONARY_COLUMNS {
        props = props.set_column_dictionary_enabled(ColumnPath::from(*name), true);
    }
    // Distinct names of a row group: a compacted one (64 MiB, about 75 Ki rows) holds some
    // 20,000–30,000 repositories of the generated day; a filter sized for more costs every reader that
    // probes it (its size is what a probe reads).
    let distinct = BLOOM_DISTINCT_VALUES;
    for name in BLOOM_FILTER_COLUMNS {
        let column = ColumnPath::from(*name);
        props = props
            .set_column_bloom_filter_enabled(column.clone(), true)
            .set_column_bloom_filter_fpp(column.clone(), BLOOM_FALSE_POSITIVES)
            .set_column_bloom_filter_max_ndv(column, distinct);
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_dictionaries_and_blooms_text_has_no_statistics() {
        let props = writer_properties();
        let name = ColumnPath::from("repo_name");
        assert!(props.dictionary_enabled(&name));
        assert!(props.bloom_filter_properties(&name).is_some());
        assert_eq!(props.statistics_enabled(&name), EnabledStatistics::Page);
        let payload = ColumnPath::from("payload");
        assert!(!props.dictionary_enabled(&payload));
        assert!(props.bloom_filter_properties(&payload).is_none());
        assert_eq!(props.statistics_enabled(&payload), EnabledStatistics::None);
        assert!(!props.dictionary_enabled(&ColumnPath::from("event_id")));
        assert_eq!(props.data_page_row_count_limit(), PAGE_ROWS);
    }
}
