"""The peer in `cargo bench`: DuckDB doing the transform's job on the same hour file with 2
threads: declared envelope columns, the same flattened payload fields, dedupe by id keeping the
first line, the raw payload kept as text, Snappy Parquet. Prints its DuckDB version."""
import sys

import duckdb

src, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads = 2")
columns = {
    "id": "VARCHAR",
    "type": "VARCHAR",
    "created_at": "TIMESTAMPTZ",
    "actor": "STRUCT(id BIGINT, login VARCHAR)",
    "repo": "STRUCT(id BIGINT, name VARCHAR)",
    "org": "STRUCT(id BIGINT, login VARCHAR)",
    "public": "BOOLEAN",
    "payload": "JSON",
}
text = {
    "action": "$.action", "ref": "$.ref", "ref_type": "$.ref_type", "head": "$.head", "before": "$.before",
    "title": "$.pull_request.title", "body": "$.comment.body", "state": "$.pull_request.state",
    "author_association": "$.comment.author_association", "merge_commit_sha": "$.pull_request.merge_commit_sha",
    "head_ref": "$.pull_request.head.ref", "head_sha": "$.pull_request.head.sha",
    "base_ref": "$.pull_request.base.ref", "base_sha": "$.pull_request.base.sha",
    "path": "$.comment.path", "commit_id": "$.comment.commit_id", "diff_hunk": "$.comment.diff_hunk",
    "review_state": "$.review.state", "release_tag_name": "$.release.tag_name", "release_name": "$.release.name",
    "member_login": "$.member.login", "forkee_full_name": "$.forkee.full_name",
    "creator_user_login": "$.comment.user.login", "assignee": "$.issue.assignee.login",
}
numbers = {
    "push_id": "$.push_id", "push_size": "$.size", "push_distinct_size": "$.distinct_size",
    "number": "$.number", "comments": "$.issue.comments", "additions": "$.pull_request.additions",
    "deletions": "$.pull_request.deletions", "changed_files": "$.pull_request.changed_files",
    "commits": "$.pull_request.commits", "review_comments": "$.pull_request.review_comments",
    "comment_id": "$.comment.id", "position": "$.comment.position", "line": "$.comment.line",
}
flattened = ",\n".join(
    [f"payload->>'{path}' AS {name}" for name, path in text.items()]
    + [f"TRY_CAST(payload->>'{path}' AS BIGINT) AS {name}" for name, path in numbers.items()]
    + [
        "TRY_CAST(payload->>'$.pull_request.merged' AS BOOLEAN) AS merged",
        "TRY_CAST(payload->>'$.pull_request.merged_at' AS TIMESTAMPTZ) AS merged_at",
        "TRY_CAST(payload->>'$.issue.closed_at' AS TIMESTAMPTZ) AS closed_at",
        "json_extract_string(payload, '$.issue.labels[*].name') AS labels",
    ]
)
con.execute(
    f"""
    COPY (
      SELECT CAST(id AS BIGINT) AS event_id, type AS event_type, created_at,
             actor.id AS actor_id, actor.login AS actor_login, repo.id AS repo_id, repo.name AS repo_name,
             org.id AS org_id, org.login AS org_login, public,
             {flattened},
             '{src.rsplit('/', 1)[-1]}' AS source_file, CAST(payload AS VARCHAR) AS payload
      FROM (SELECT *, row_number() OVER () AS line
            FROM read_json('{src}', format = 'newline_delimited', columns = {columns}))
      QUALIFY row_number() OVER (PARTITION BY id ORDER BY line) = 1
    ) TO '{out}' (FORMAT parquet, COMPRESSION snappy)
    """
)
print(f"duckdb {duckdb.__version__}")
