//! The declared schema of `raw_events`, the table the transform SQL reads.
//!
//! One row per record, in file order. Only the fields declared here are decoded (everything else
//! is skipped while parsing, and kept in `payload_json` or `other`); how each era's record is read
//! into them is in [`crate::envelope`] and [`crate::payload`].

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use serde::Serialize;
use serde_arrow::schema::{SchemaLike, TracingOptions};

use crate::envelope::{Actor, Org, Repo};
use crate::payload::Payload;

mod sample;

/// One row of `raw_events`, as serde_arrow appends it to the Arrow builders.
#[derive(Serialize)]
pub(crate) struct RawEventRow<'a> {
    /// The record's `id`, or [`crate::envelope::made_up_id`] where it has none.
    pub id: i64,
    #[serde(rename = "type")]
    pub event_type: std::borrow::Cow<'a, str>,
    pub created_at: i64,
    pub actor: Option<Actor<'a>>,
    pub repo: Option<Repo<'a>>,
    pub org: Option<Org<'a>>,
    pub public: Option<bool>,
    pub payload: Box<Payload<'a>>,
    /// The payload as it stood in the line; `None` where the record has none. Not serialised:
    /// the parser copies it into a column sized for the whole chunk at once (the largest column,
    /// which serde_arrow would grow by doubling), placed at [`PAYLOAD_JSON`]'s position.
    #[serde(skip)]
    pub payload_json: Option<&'a str>,
    /// The top-level fields no column takes, as a JSON object; `None` where there are none.
    pub other: Option<String>,
    pub source_file: &'a str,
    pub line: u64,
}

/// The fields that serialise as plain `i64` but are times: milliseconds since the epoch, UTC.
const TIMESTAMPS: [&str; 4] = [
    "created_at",
    "payload.issue.closed_at",
    "payload.pull_request.closed_at",
    "payload.pull_request.merged_at",
];
/// How the rows are traced: plain `Utf8` strings and lists, and the times above.
fn tracing_options() -> serde_arrow::Result<TracingOptions> {
    let mut options = TracingOptions::default()
        .strings_as_large_utf8(false)
        .sequence_as_large_list(false);
    for path in TIMESTAMPS {
        let field = serde_json::json!({
            "name": last_name(path),
            "data_type": "Timestamp(Millisecond, Some(\"UTC\"))",
            "nullable": path != "created_at",
        });
        options = options.overwrite(path, field)?;
    }
    Ok(options)
}

fn last_name(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// The column of [`RawEventRow::payload_json`], and the column it follows.
pub(crate) const PAYLOAD_JSON: &str = "payload_json";
const PAYLOAD_JSON_AFTER: &str = "payload";

/// The Arrow schema of `raw_events`: what [`RawEventRow`] and the structs it holds serialise
/// to, traced by serde_arrow from [`sample::full_row`], so the rows the parsers append and their
/// schema cannot drift apart; and `payload_json` after `payload`.
pub fn raw_events_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let fields = tracing_options()
                .and_then(|options| Vec::<FieldRef>::from_samples(&[sample::full_row()], options));
            // The types are fixed at compile time, and a unit test traces them.
            #[allow(clippy::expect_used)]
            let mut fields = fields.expect("tracing raw_events from RawEventRow");
            let at = fields
                .iter()
                .position(|f| f.name() == PAYLOAD_JSON_AFTER)
                .map_or(fields.len(), |i| i + 1);
            fields.insert(at, Arc::new(Field::new(PAYLOAD_JSON, DataType::Utf8, true)));
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// The fields [`RawEventRow`] serialises: `raw_events` but `payload_json`.
pub(crate) fn serialised_fields() -> Vec<FieldRef> {
    raw_events_schema()
        .fields()
        .iter()
        .filter(|f| f.name() != PAYLOAD_JSON)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_traced_from_the_rows() {
        let schema = raw_events_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "type",
                "created_at",
                "actor",
                "repo",
                "org",
                "public",
                "payload",
                "payload_json",
                "other",
                "source_file",
                "line"
            ]
        );
        // What every record has is declared so; the rest may be null.
        for field in schema.fields() {
            let required = ["id", "type", "created_at", "payload", "source_file", "line"];
            assert_eq!(
                field.is_nullable(),
                !required.contains(&field.name().as_str())
            );
        }
    }
}
