//! The declared schema of `raw_events`, the table the transform SQL reads.
//!
//! One row per valid line, in file order. Only the fields declared here are decoded (everything
//! else is skipped while parsing, and kept in `payload_json`); a declared field holding a value of
//! another JSON type makes the line a reject. The structs borrow from the line, so decoding
//! allocates only for strings that contain escapes.
//!
//! Lists of objects that SQL would otherwise have to map over (`labels`, `assignees`,
//! `requested_reviewers`) are declared as lists of their names or logins.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit,
};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The top-level fields of one line, with the payload still as raw JSON text.
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(deserialize_with = "event_id")]
    pub id: i64,
    #[serde(borrow, rename = "type")]
    pub event_type: Cow<'a, str>,
    #[serde(deserialize_with = "timestamp_millis")]
    pub created_at: i64,
    #[serde(borrow, default)]
    pub actor: Option<Actor<'a>>,
    #[serde(borrow, default)]
    pub repo: Option<Repo<'a>>,
    #[serde(borrow, default)]
    pub org: Option<Org<'a>>,
    #[serde(default)]
    pub public: Option<bool>,
    #[serde(borrow)]
    pub payload: &'a RawValue,
}

/// One row of `raw_events`, as serde_arrow appends it to the Arrow builders.
#[derive(Serialize)]
pub(crate) struct RawEventRow<'a> {
    pub id: i64,
    #[serde(rename = "type")]
    pub event_type: Cow<'a, str>,
    pub created_at: i64,
    pub actor: Option<Actor<'a>>,
    pub repo: Option<Repo<'a>>,
    pub org: Option<Org<'a>>,
    pub public: Option<bool>,
    pub payload: Payload<'a>,
    pub payload_json: &'a str,
    pub source_file: &'a str,
    pub line: u64,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct Actor<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(borrow, default)]
    pub login: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub display_login: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct Repo<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct Org<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(borrow, default)]
    pub login: Option<Cow<'a, str>>,
}

/// A GitHub user (or the author of a release) reduced to its login.
#[derive(Deserialize, Serialize)]
pub(crate) struct User<'a> {
    #[serde(borrow, default)]
    pub login: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct GitRef<'a> {
    #[serde(borrow, default, rename = "ref")]
    pub git_ref: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub sha: Option<Cow<'a, str>>,
}

/// The payload fields that the flattened columns come from. Unknown fields are skipped.
#[derive(Deserialize, Serialize, Default)]
pub(crate) struct Payload<'a> {
    #[serde(borrow, default)]
    pub action: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "ref")]
    pub git_ref: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub ref_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub head: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub before: Option<Cow<'a, str>>,
    #[serde(default)]
    pub push_id: Option<i64>,
    #[serde(default)]
    pub size: Option<i64>,
    #[serde(default)]
    pub distinct_size: Option<i64>,
    #[serde(default)]
    pub number: Option<i64>,
    #[serde(borrow, default)]
    pub issue: Option<Issue<'a>>,
    #[serde(borrow, default)]
    pub pull_request: Option<PullRequest<'a>>,
    #[serde(borrow, default)]
    pub comment: Option<Comment<'a>>,
    #[serde(borrow, default)]
    pub review: Option<Review<'a>>,
    #[serde(borrow, default)]
    pub release: Option<Release<'a>>,
    #[serde(borrow, default)]
    pub member: Option<User<'a>>,
    #[serde(borrow, default)]
    pub forkee: Option<Forkee<'a>>,
}

// `Issue` and `PullRequest` repeat their common fields rather than share them through
// `#[serde(flatten)]`, which would buffer every payload before decoding it: this is the hot path.
#[derive(Deserialize, Serialize)]
pub(crate) struct Issue<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub number: Option<i64>,
    #[serde(borrow, default)]
    pub title: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub body: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub state: Option<Cow<'a, str>>,
    #[serde(default)]
    pub locked: Option<bool>,
    #[serde(borrow, default, deserialize_with = "names")]
    pub labels: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    pub assignee: Option<User<'a>>,
    #[serde(borrow, default, deserialize_with = "logins")]
    pub assignees: Option<Vec<Cow<'a, str>>>,
    #[serde(default)]
    pub comments: Option<i64>,
    #[serde(borrow, default)]
    pub author_association: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "optional_timestamp_millis")]
    pub closed_at: Option<i64>,
    #[serde(borrow, default)]
    pub user: Option<User<'a>>,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct PullRequest<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub number: Option<i64>,
    #[serde(borrow, default)]
    pub title: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub body: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub state: Option<Cow<'a, str>>,
    #[serde(default)]
    pub locked: Option<bool>,
    #[serde(borrow, default, deserialize_with = "names")]
    pub labels: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    pub assignee: Option<User<'a>>,
    #[serde(borrow, default, deserialize_with = "logins")]
    pub assignees: Option<Vec<Cow<'a, str>>>,
    #[serde(default)]
    pub comments: Option<i64>,
    #[serde(borrow, default)]
    pub author_association: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "optional_timestamp_millis")]
    pub closed_at: Option<i64>,
    #[serde(default, deserialize_with = "optional_timestamp_millis")]
    pub merged_at: Option<i64>,
    #[serde(default)]
    pub merged: Option<bool>,
    #[serde(borrow, default)]
    pub merge_commit_sha: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub head: Option<GitRef<'a>>,
    #[serde(borrow, default)]
    pub base: Option<GitRef<'a>>,
    #[serde(default)]
    pub additions: Option<i64>,
    #[serde(default)]
    pub deletions: Option<i64>,
    #[serde(default)]
    pub changed_files: Option<i64>,
    #[serde(default)]
    pub commits: Option<i64>,
    #[serde(default)]
    pub review_comments: Option<i64>,
    #[serde(borrow, default, deserialize_with = "logins")]
    pub requested_reviewers: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    pub user: Option<User<'a>>,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct Comment<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(borrow, default)]
    pub body: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub path: Option<Cow<'a, str>>,
    #[serde(default)]
    pub position: Option<i64>,
    #[serde(default)]
    pub line: Option<i64>,
    #[serde(borrow, default)]
    pub commit_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub diff_hunk: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub author_association: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub user: Option<User<'a>>,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct Review<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(borrow, default)]
    pub state: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub body: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub commit_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub author_association: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub user: Option<User<'a>>,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct Release<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(borrow, default)]
    pub tag_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub body: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub author: Option<User<'a>>,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct Forkee<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(borrow, default)]
    pub full_name: Option<Cow<'a, str>>,
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
                Field::new("payload_json", DataType::Utf8, false),
                Field::new("source_file", DataType::Utf8, false),
                Field::new("line", DataType::UInt64, false),
            ]))
        })
        .clone()
}

pub(crate) fn raw_events_fields() -> Vec<FieldRef> {
    raw_events_schema().fields().iter().cloned().collect()
}

/// GHArchive's `id` is a string of digits; very old files have it as a number. Either is accepted.
fn event_id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct Visitor;
    impl<'de> de::Visitor<'de> for Visitor {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an event id: a string of digits or an integer")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(E::custom(format_args!("id {v:?} is not a number")));
            }
            v.parse()
                .map_err(|_| E::custom(format_args!("id {v:?} does not fit in 64 bits")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format_args!("id {v} does not fit in 64 bits")))
        }
    }
    d.deserialize_any(Visitor)
}

fn timestamp_millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = <Cow<'de, str>>::deserialize(d)?;
    parse_timestamp_millis(&text)
        .ok_or_else(|| de::Error::custom(format_args!("{text:?} is not an RFC 3339 time")))
}

fn optional_timestamp_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match <Option<Cow<'de, str>>>::deserialize(d)? {
        None => Ok(None),
        Some(text) => parse_timestamp_millis(&text)
            .map(Some)
            .ok_or_else(|| de::Error::custom(format_args!("{text:?} is not an RFC 3339 time"))),
    }
}

/// Milliseconds since the epoch. GHArchive writes `2024-03-05T14:00:01Z`, parsed by hand here
/// because it is on the hot path; anything else (offsets, fractions) goes through chrono.
pub(crate) fn parse_timestamp_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
    {
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            b[r].iter().try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
        let time = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
        return Some(time.and_utc().timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WithLogin<'a> {
    #[serde(borrow, default)]
    login: Option<Cow<'a, str>>,
}

/// `[{"name": "bug", …}, …]` → `["bug", …]`
fn names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Cow<'de, str>>>, D::Error> {
    let items = <Option<Vec<Named<'de>>>>::deserialize(d)?;
    Ok(items.map(|items| items.into_iter().filter_map(|n| n.name).collect()))
}

/// `[{"login": "octocat", …}, …]` → `["octocat", …]`; entries without a login (teams) are left out.
fn logins<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Cow<'de, str>>>, D::Error> {
    let items = <Option<Vec<WithLogin<'de>>>>::deserialize(d)?;
    Ok(items.map(|items| items.into_iter().filter_map(|u| u.login).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_fast_path_and_offsets() {
        assert_eq!(parse_timestamp_millis("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_timestamp_millis("2012-03-11T07:17:32-07:00"),
            parse_timestamp_millis("2012-03-11T14:17:32Z")
        );
        assert_eq!(
            parse_timestamp_millis("2024-03-05T14:00:01.250Z"),
            Some(1_709_647_201_250)
        );
        for bad in [
            "2024-13-05T14:00:01Z",
            "2024-03-05 14:00:01",
            "",
            "2024-03-05T14:0a:01Z",
        ] {
            assert_eq!(parse_timestamp_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_are_digits_or_integers() {
        let parse = |text: &str| {
            serde_json::from_str::<Envelope>(text)
                .map(|e| e.id)
                .map_err(|e| e.to_string())
        };
        let line = |id: &str| {
            format!(
                r#"{{"id":{id},"type":"X","created_at":"2024-03-05T14:00:01Z","payload":{{}}}}"#
            )
        };
        assert_eq!(parse(&line(r#""26170139443""#)), Ok(26170139443));
        assert_eq!(parse(&line("42")), Ok(42));
        assert!(parse(&line(r#""abc""#))
            .unwrap_err()
            .contains("is not a number"));
        assert!(parse(&line(r#""""#)).is_err());
        assert!(parse(&line("-1")).is_ok());
    }
}
