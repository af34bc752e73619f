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
/// they stand for what today's payloads nest; [`Payload::fold_legacy`] reads them into today's
/// fields, so `raw_events` (and the SQL) has one spelling for every era.
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
    #[serde(borrow, default, deserialize_with = "object_or_plain")]
    pub pull_request: Option<PullRequest<'a>>,
    #[serde(borrow, default, deserialize_with = "object_or_plain")]
    pub comment: Option<Comment<'a>>,
    #[serde(borrow, default, deserialize_with = "object_or_plain")]
    pub review: Option<Review<'a>>,
    #[serde(borrow, default, deserialize_with = "object_or_plain")]
    pub release: Option<Release<'a>>,
    #[serde(borrow, default, deserialize_with = "object_or_plain")]
    pub member: Option<User<'a>>,
    #[serde(borrow, default, deserialize_with = "object_or_plain")]
    pub forkee: Option<Forkee<'a>>,
    #[serde(default, skip_serializing)]
    pub issue_id: Option<i64>,
    #[serde(default, skip_serializing)]
    pub comment_id: Option<i64>,
    #[serde(borrow, default, skip_serializing)]
    pub commit: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing)]
    pub object: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing)]
    pub object_name: Option<Cow<'a, str>>,
}

impl Payload<'_> {
    /// Reads the 2011–2014 spellings into today's fields (where today's are absent):
    ///
    /// * `issue_id` (a comment's issue) → `issue.id`;
    /// * `comment_id` → `comment.id`, and with it `commit` (the SHA a commit comment is on) →
    ///   `comment.commit_id` (a `commit` without a comment, as in a ForkApplyEvent, stays put);
    /// * a CreateEvent's `object` → `ref_type`, and its `object_name` → `ref` unless the object
    ///   is the repository itself (today's `ref` is null there).
    ///
    /// Done here rather than in the SQL: one spelling per field keeps the transform SQL as plain
    /// (and as fast) for every era as it is for today's events.
    pub fn fold_legacy(&mut self) {
        if let Some(id) = self.issue_id.take() {
            let issue = self.issue.get_or_insert_with(Issue::default);
            issue.id.get_or_insert(id);
        }
        if let Some(id) = self.comment_id.take() {
            let comment = self.comment.get_or_insert_with(Comment::default);
            comment.id.get_or_insert(id);
            if let Some(sha) = self.commit.take() {
                comment.commit_id.get_or_insert(sha);
            }
        }
        if let Some(object) = self.object.take() {
            let name = self.object_name.take();
            if self.ref_type.is_none() {
                if object != "repository" {
                    self.git_ref = self.git_ref.take().or(name);
                }
                self.ref_type = Some(object);
            }
        }
    }
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

#[derive(Deserialize, Serialize, Default)]
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

#[derive(Deserialize, Serialize, Default)]
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

#[derive(Deserialize, Serialize, Default)]
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

#[derive(Deserialize, Serialize, Default)]
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

/// Objects that may stand as their plain id: 2011's `"issue": 545975` is the issue's id, its
/// `"forkee": 1367487` the new fork's repository id; a comment, pull request, review or release
/// given as a number is read the same way.
macro_rules! from_plain_id {
    ($($object:ident),*) => {$(
        impl FromPlain<'_> for $object<'_> {
            fn from_id(id: i64) -> Option<Self> {
                Some($object {
                    id: Some(id),
                    ..$object::default()
                })
            }
        }
    )*};
}

from_plain_id!(Issue, Forkee, PullRequest, Comment, Review, Release);

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
        let p = payload(r#"{"forkee":1367487,"member":"rnirmal","comment":9}"#).unwrap();
        assert_eq!(p.comment.unwrap().id, Some(9));
        assert_eq!(p.forkee.unwrap().id, Some(1367487));
        assert_eq!(p.member.unwrap().login.as_deref(), Some("rnirmal"));
    }

    fn folded(text: &str) -> Payload<'_> {
        let mut p = payload(text).unwrap();
        p.fold_legacy();
        p
    }

    #[test]
    fn old_names_are_read_into_todays_fields() {
        // A 2013 IssueCommentEvent; a 2011 CommitCommentEvent.
        let p = folded(r#"{"issue_id":11,"comment_id":12}"#);
        assert_eq!(
            (p.issue.unwrap().id, p.comment.unwrap().id),
            (Some(11), Some(12))
        );
        let p = folded(r#"{"comment_id":271424,"commit":"f9b4"}"#);
        let comment = p.comment.unwrap();
        assert_eq!(
            (comment.id, comment.commit_id.as_deref()),
            (Some(271424), Some("f9b4"))
        );
        // A ForkApplyEvent's commit is no comment's.
        assert!(folded(r#"{"head":"master","commit":"f6df"}"#)
            .comment
            .is_none());
        // 2011 CreateEvents.
        let p = folded(r#"{"name":"Minepack","object":"branch","object_name":"master"}"#);
        assert_eq!(
            (p.ref_type.as_deref(), p.git_ref.as_deref()),
            (Some("branch"), Some("master"))
        );
        let p = folded(r#"{"name":"x","object":"repository","object_name":"x"}"#);
        assert_eq!(
            (p.ref_type.as_deref(), p.git_ref.as_deref()),
            (Some("repository"), None)
        );
        // Today's fields win.
        let p = folded(
            r#"{"ref":"a","ref_type":"tag","object":"branch","object_name":"b","issue":{"id":1},"issue_id":2}"#,
        );
        assert_eq!(
            (p.ref_type.as_deref(), p.git_ref.as_deref()),
            (Some("tag"), Some("a"))
        );
        assert_eq!(p.issue.unwrap().id, Some(1));
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
