//! A row with every field present, for tracing the schema of `raw_events` from the structs.
//!
//! Every struct is written out field by field (no `..Default::default()`), so a field added to
//! a struct must be added here too, or this does not compile; its type and name come from the
//! struct.

use std::borrow::Cow;

use super::RawEventRow;
use crate::envelope::{Actor, Org, Repo};
use crate::payload::{Comment, Forkee, GitRef, Issue, Payload, PullRequest, Release, Review, User};

fn text() -> Option<Cow<'static, str>> {
    Some(Cow::Borrowed("x"))
}
fn number() -> Option<i64> {
    Some(1)
}
fn names() -> Option<Vec<Cow<'static, str>>> {
    Some(vec![Cow::Borrowed("x")])
}
fn user() -> Option<User<'static>> {
    Some(User { login: text() })
}
fn git_ref() -> Option<GitRef<'static>> {
    Some(GitRef {
        git_ref: text(),
        sha: text(),
    })
}

pub(super) fn full_row() -> RawEventRow<'static> {
    RawEventRow {
        id: 1,
        event_type: Cow::Borrowed("PushEvent"),
        created_at: 1,
        actor: Some(Actor {
            id: number(),
            login: text(),
            display_login: text(),
        }),
        repo: Some(Repo {
            id: number(),
            name: text(),
        }),
        org: Some(Org {
            id: number(),
            login: text(),
        }),
        public: Some(true),
        payload: Box::new(full_payload()),
        payload_json: Some("{}"),
        other: Some("{}".into()),
        source_file: "x",
        line: 1,
    }
}

fn full_payload() -> Payload<'static> {
    Payload {
        action: text(),
        git_ref: text(),
        ref_type: text(),
        head: text(),
        before: text(),
        push_id: number(),
        size: number(),
        distinct_size: number(),
        number: number(),
        issue: Some(full_issue()),
        pull_request: Some(full_pull_request()),
        comment: Some(Comment {
            id: number(),
            body: text(),
            path: text(),
            position: number(),
            line: number(),
            commit_id: text(),
            diff_hunk: text(),
            author_association: text(),
            user: user(),
        }),
        review: Some(Review {
            id: number(),
            state: text(),
            body: text(),
            commit_id: text(),
            author_association: text(),
            user: user(),
        }),
        release: Some(Release {
            id: number(),
            tag_name: text(),
            name: text(),
            body: text(),
            author: user(),
        }),
        member: user(),
        forkee: Some(Forkee {
            id: number(),
            full_name: text(),
        }),
        // Read from the archive's first years and folded into the fields above; never written.
        issue_id: None,
        comment_id: None,
        commit: None,
        object: None,
        object_name: None,
    }
}

fn full_issue() -> Issue<'static> {
    Issue {
        id: number(),
        number: number(),
        title: text(),
        body: text(),
        state: text(),
        locked: Some(true),
        labels: names(),
        assignee: user(),
        assignees: names(),
        comments: number(),
        author_association: text(),
        closed_at: number(),
        user: user(),
    }
}

fn full_pull_request() -> PullRequest<'static> {
    PullRequest {
        id: number(),
        number: number(),
        title: text(),
        body: text(),
        state: text(),
        locked: Some(true),
        labels: names(),
        assignee: user(),
        assignees: names(),
        comments: number(),
        author_association: text(),
        closed_at: number(),
        merged_at: number(),
        merged: Some(true),
        merge_commit_sha: text(),
        head: git_ref(),
        base: git_ref(),
        additions: number(),
        deletions: number(),
        changed_files: number(),
        commits: number(),
        review_comments: number(),
        requested_reviewers: names(),
        user: user(),
    }
}
