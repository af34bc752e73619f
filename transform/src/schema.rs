//! The declared schema of `raw_events`, the table the transform SQL reads.
//!
//! One row per record, in file order. Only the fields declared here are decoded (everything else
//! is skipped while parsing, and kept in `payload_json` or `other`); how each era's record is read
//! into them is in [`crate::envelope`] and [`crate::payload`].

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit,
};
use serde::Serialize;

use crate::envelope::{Actor, Org, Repo};
use crate::payload::Payload;

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
    pub payload: Payload<'a>,
    /// The payload as it stood in the line; `None` where the record has none.
    pub payload_json: Option<&'a str>,
    /// The top-level fields no column takes, as a JSON object; `None` where there are none.
    pub other: Option<String>,
    pub source_file: &'a str,
    pub line: u64,
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn int(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}
fn boolean(name: &str) -> Field {
    Field::new(name, DataType::Boolean, true)
}
fn timestamp(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        true,
    )
}
fn strings(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("element", DataType::Utf8, false))),
        true,
    )
}
fn object(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}
fn user(name: &str) -> Field {
    object(name, vec![utf8("login")])
}

/// The Arrow schema of `raw_events`; field for field the serialised form of [`RawEventRow`].
pub fn raw_events_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let git_ref = |name: &str| object(name, vec![utf8("ref"), utf8("sha")]);
            // Issues and pull requests share their first fields (same order as the structs).
            let issue_like = |name: &str, own: Vec<Field>| {
                let mut fields = vec![
                    int("id"),
                    int("number"),
                    utf8("title"),
                    utf8("body"),
                    utf8("state"),
                    boolean("locked"),
                    strings("labels"),
                    user("assignee"),
                    strings("assignees"),
                    int("comments"),
                    utf8("author_association"),
                    timestamp("closed_at"),
                ];
                fields.extend(own);
                fields.push(user("user"));
                object(name, fields)
            };
            let issue = issue_like("issue", vec![]);
            let pull_request = issue_like(
                "pull_request",
                vec![
                    timestamp("merged_at"),
                    boolean("merged"),
                    utf8("merge_commit_sha"),
                    git_ref("head"),
                    git_ref("base"),
                    int("additions"),
                    int("deletions"),
                    int("changed_files"),
                    int("commits"),
                    int("review_comments"),
                    strings("requested_reviewers"),
                ],
            );
            let comment = object(
                "comment",
                vec![
                    int("id"),
                    utf8("body"),
                    utf8("path"),
                    int("position"),
                    int("line"),
                    utf8("commit_id"),
                    utf8("diff_hunk"),
                    utf8("author_association"),
                    user("user"),
                ],
            );
            let review = object(
                "review",
                vec![
                    int("id"),
                    utf8("state"),
                    utf8("body"),
                    utf8("commit_id"),
                    utf8("author_association"),
                    user("user"),
                ],
            );
            let release = object(
                "release",
                vec![
                    int("id"),
                    utf8("tag_name"),
                    utf8("name"),
                    utf8("body"),
                    user("author"),
                ],
            );
            let payload = Field::new(
                "payload",
                DataType::Struct(Fields::from(vec![
                    utf8("action"),
                    utf8("ref"),
                    utf8("ref_type"),
                    utf8("head"),
                    utf8("before"),
                    int("push_id"),
                    int("size"),
                    int("distinct_size"),
                    int("number"),
                    issue,
                    pull_request,
                    comment,
                    review,
                    release,
                    user("member"),
                    object("forkee", vec![int("id"), utf8("full_name")]),
                ])),
                false,
            );
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("type", DataType::Utf8, false),
                Field::new(
                    "created_at",
                    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                    false,
                ),
                object(
                    "actor",
                    vec![int("id"), utf8("login"), utf8("display_login")],
                ),
                object("repo", vec![int("id"), utf8("name")]),
                object("org", vec![int("id"), utf8("login")]),
                boolean("public"),
                payload,
                utf8("payload_json"),
                utf8("other"),
                Field::new("source_file", DataType::Utf8, false),
                Field::new("line", DataType::UInt64, false),
            ]))
        })
        .clone()
}

pub(crate) fn raw_events_fields() -> Vec<FieldRef> {
    raw_events_schema().fields().iter().cloned().collect()
}
