//! The declared payload fields: what the flattened columns are read from. Unknown fields are
//! skipped while parsing (they stay in the raw `payload` text); a declared field holding a value
//! of another JSON type makes the record a reject, except where the archive's eras are known to
//! differ (see [`FromPlain`]).
//!
//! The structs borrow from the line, so decoding allocates only for strings that contain escapes.
//! Lists of objects that SQL would otherwise have to map over (`labels`, `assignees`,
//! `requested_reviewers`) are read as lists of their names or logins.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::fields::{logins, names, object_or_plain, optional_timestamp_millis, FromPlain};

/// A GitHub user (or the author of a release) reduced to its login.
#[derive(Deserialize, Serialize, Default)]
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
///
/// The fields from `issue_id` on exist only in the archive's first years (2011–2014), where
/// they stand for what today's payloads nest: `issue_id` and `comment_id` beside a comment,
/// `commit` (the SHA a commit comment is on), `object` / `object_name` in a CreateEvent for
/// today's `ref_type` / `ref`.
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
    #[serde(borrow, default, deserialize_with = "object_or_plain")]
    pub issue: Option<Issue<'a>>,
    #[serde(borrow, default)]
    pub pull_request: Option<PullRequest<'a>>,
    #[serde(borrow, default)]
    pub comment: Option<Comment<'a>>,
    #[serde(borrow, default)]
    pub review: Option<Review<'a>>,
    #[serde(borrow, default)]
    pub release: Option<Release<'a>>,
    #[serde(borrow, default, deserialize_with = "object_or_plain")]
    pub member: Option<User<'a>>,
    #[serde(borrow, default, deserialize_with = "object_or_plain")]
    pub forkee: Option<Forkee<'a>>,
    #[serde(default)]
    pub issue_id: Option<i64>,
    #[serde(default)]
    pub comment_id: Option<i64>,
    #[serde(borrow, default)]
    pub commit: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub object: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub object_name: Option<Cow<'a, str>>,
}

// `Issue` and `PullRequest` repeat their common fields rather than share them through
// `#[serde(flatten)]`, which would buffer every payload before decoding it: this is the hot path.
#[derive(Deserialize, Serialize, Default)]
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

#[derive(Deserialize, Serialize, Default)]
pub(crate) struct Forkee<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(borrow, default)]
    pub full_name: Option<Cow<'a, str>>,
}

/// 2011's `"issue": 545975` is the issue's id.
impl FromPlain<'_> for Issue<'_> {
    fn from_id(id: i64) -> Option<Self> {
        Some(Issue {
            id: Some(id),
            ..Issue::default()
        })
    }
}

/// 2011's `"forkee": 1367487` is the new fork's repository id.
impl FromPlain<'_> for Forkee<'_> {
    fn from_id(id: i64) -> Option<Self> {
        Some(Forkee {
            id: Some(id),
            ..Forkee::default()
        })
    }
}

/// 2011's `"member": "rnirmal"` (and a timeline repository's `"owner": "begoon"`) is a login.
impl<'de: 'a, 'a> FromPlain<'de> for User<'a> {
    fn from_text(login: Cow<'de, str>) -> Option<Self> {
        Some(User { login: Some(login) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(text: &str) -> Result<Payload<'_>, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    fn refusal(text: &str) -> String {
        payload(text).err().unwrap_or_default()
    }

    #[test]
    fn old_plain_values_fill_the_objects_key() {
        let p = payload(r#"{"number":36,"issue":545975,"action":"closed"}"#).unwrap();
        let issue = p.issue.unwrap();
        assert_eq!((issue.id, issue.number), (Some(545975), None));
        let p = payload(r#"{"forkee":1367487,"member":"rnirmal"}"#).unwrap();
        assert_eq!(p.forkee.unwrap().id, Some(1367487));
        assert_eq!(p.member.unwrap().login.as_deref(), Some("rnirmal"));
        let p = payload(r#"{"issue_id":11,"comment_id":12,"commit":"abc","object":"branch","object_name":"master"}"#).unwrap();
        assert_eq!((p.issue_id, p.comment_id), (Some(11), Some(12)));
        assert_eq!(
            (
                p.commit.as_deref(),
                p.object.as_deref(),
                p.object_name.as_deref()
            ),
            (Some("abc"), Some("branch"), Some("master"))
        );
    }

    #[test]
    fn objects_and_nulls_read_as_today() {
        let p = payload(r#"{"issue":{"id":1,"number":2,"title":"t","labels":[{"name":"bug"}]},"member":{"login":"m"},"forkee":null}"#).unwrap();
        let issue = p.issue.unwrap();
        assert_eq!((issue.id, issue.number), (Some(1), Some(2)));
        assert_eq!(issue.labels.unwrap(), vec!["bug"]);
        assert_eq!(p.member.unwrap().login.as_deref(), Some("m"));
        assert!(p.forkee.is_none());
    }

    #[test]
    fn a_plain_value_where_none_was_ever_sent_is_still_refused() {
        assert!(refusal(r#"{"issue":"x"}"#).contains("invalid type"));
        assert!(refusal(r#"{"member":7}"#).contains("invalid type"));
        assert!(refusal(r#"{"issue":{"number":"x"}}"#).contains("invalid type"));
        assert!(refusal(r#"{"push_id":"five"}"#).contains("invalid type"));
    }
}
