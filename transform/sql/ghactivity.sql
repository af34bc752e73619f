-- gh-elt's transform: one GHArchive hour file → the rows of the `ghactivity` table.
--
-- Input: `raw_events`, one row per valid record in file order, with the declared schema documented
-- in docs/COLUMNS.md (envelope fields, the `payload` struct of declared payload fields, the raw
-- `payload_json` text, `other` (top-level fields no column takes), `source_file` and the 1-based
-- `line`). Records of every era arrive in this one shape: a 2012–2014 timeline record's
-- `actor`, `repository` and Pacific-time `created_at` are already read into `actor`, `repo`,
-- `org` and UTC, and records without an id carry a made-up negative one.
-- `first_seen(id)` is true the first time an id appears in the file: it drops duplicate events,
-- first occurrence wins, without holding rows in memory.
-- The 2011–2014 payloads' own spellings are read into today's fields before the SQL sees them
-- (docs/COLUMNS.md, "Every era"): `"issue": 545975` is `payload.issue.id`, `"member": "x"` is
-- `payload.member.login`, `issue_id` / `comment_id` / `commit` beside a comment are
-- `payload.issue.id` / `payload.comment.id` / `payload.comment.commit_id`, a CreateEvent's
-- `object` / `object_name` are `payload.ref_type` / `payload.ref`.
--
-- Change this file and pass it with `elt transform --sql FILE` (or TRANSFORM_SQL on Lambda).
-- Every row the query drops is counted as a duplicate in the run's accounting.
SELECT
    id                                               AS event_id,
    type                                             AS event_type,
    created_at,
    actor.id                                         AS actor_id,
    actor.login                                      AS actor_login,
    repo.id                                          AS repo_id,
    repo.name                                        AS repo_name,
    org.id                                           AS org_id,
    org.login                                        AS org_login,
    public,

    -- Flattened payload fields: null where they do not apply to the event type.
    payload.action                                   AS action,
    payload.ref                                      AS ref,
    payload.ref_type                                 AS ref_type,
    payload.head                                     AS head,
    payload.before                                   AS before,
    payload.push_id                                  AS push_id,
    payload.size                                     AS push_size,
    payload.distinct_size                            AS push_distinct_size,
    coalesce(payload.number, payload.issue.number, payload.pull_request.number) AS number,
    payload.issue.id                                 AS issue_id,
    coalesce(payload.issue.title, payload.pull_request.title)                   AS title,
    coalesce(payload.comment.body, payload.review.body, payload.issue.body,
             payload.pull_request.body, payload.release.body)                    AS body,
    coalesce(payload.issue.state, payload.pull_request.state)                   AS state,
    coalesce(payload.issue.locked, payload.pull_request.locked)                 AS locked,
    coalesce(payload.issue.labels, payload.pull_request.labels)                 AS labels,
    coalesce(payload.issue.assignee.login, payload.pull_request.assignee.login) AS assignee,
    coalesce(payload.issue.assignees, payload.pull_request.assignees)           AS assignees,
    coalesce(payload.issue.comments, payload.pull_request.comments)             AS comments,
    coalesce(payload.comment.author_association, payload.review.author_association,
             payload.issue.author_association, payload.pull_request.author_association) AS author_association,
    coalesce(payload.issue.closed_at, payload.pull_request.closed_at)           AS closed_at,
    payload.pull_request.merged_at                   AS merged_at,
    -- Since 2025-10-07 the Events API trims pull requests, and a merge arrives as the action
    -- 'merged' without the pull request's own `merged`.
    coalesce(payload.pull_request.merged,
             CASE WHEN payload.action = 'merged' THEN true END)                 AS merged,
    payload.pull_request.merge_commit_sha            AS merge_commit_sha,
    payload.pull_request.head.ref                    AS head_ref,
    payload.pull_request.head.sha                    AS head_sha,
    payload.pull_request.base.ref                    AS base_ref,
    payload.pull_request.base.sha                    AS base_sha,
    payload.pull_request.additions                   AS additions,
    payload.pull_request.deletions                   AS deletions,
    payload.pull_request.changed_files               AS changed_files,
    payload.pull_request.commits                     AS commits,
    payload.pull_request.review_comments             AS review_comments,
    payload.pull_request.requested_reviewers         AS requested_reviewers,
    payload.comment.id                               AS comment_id,
    payload.comment.path                             AS path,
    payload.comment.position                         AS position,
    payload.comment.line                             AS line,
    coalesce(payload.comment.commit_id, payload.review.commit_id)               AS commit_id,
    payload.comment.diff_hunk                        AS diff_hunk,
    payload.review.state                             AS review_state,
    payload.release.tag_name                         AS release_tag_name,
    payload.release.name                             AS release_name,
    payload.member.login                             AS member_login,
    payload.forkee.full_name                         AS forkee_full_name,
    coalesce(payload.comment."user".login, payload.review."user".login, payload.issue."user".login,
             payload.pull_request."user".login, payload.release.author.login)   AS creator_user_login,

    -- Provenance, the payload exactly as it stood in the line, and every other top-level field no
    -- column takes (as a JSON object), so nothing is lost.
    source_file,
    payload_json                                     AS payload,
    other
FROM raw_events
WHERE first_seen(id)
