//! End-to-end tests of `elt transform` and `elt query`: the real binary on real GHArchive events
//! and on poison files, with the Parquet checked through DataFusion and the parquet reader.

mod lake;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;

use base64::Engine;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::parquet::basic::{LogicalType, Type as PhysicalType};
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use events::RejectRecord;
use lake::{elt, gzip, raw_payload, Lake};
use serde_json::Value;

const REAL_EVENTS: &str = include_str!("../fixtures/real-events.jsonl");
const HOUR: &str = "2024-03-05-14";

#[test]
fn real_events_become_typed_flattened_parquet() {
    let lake = Lake::new();
    let raw = lake.write_raw(&format!("{HOUR}.json.gz"), &gzip(REAL_EVENTS.as_bytes()));
    let summary = &lake.transform(&[&raw], &[]).unwrap()[0];
    let lines = REAL_EVENTS.lines().count() as u64;
    assert_eq!(
        (
            summary.lines,
            summary.records,
            summary.rows,
            summary.duplicates,
            summary.rejected
        ),
        (lines, lines, lines, 0, 0)
    );
    // One part per UTC day of the events' `created_at` (the fixture spans 2012–2026), each
    // named by the source hour; the days are found here from the JSON, not from the engine.
    let days: BTreeSet<String> = REAL_EVENTS
        .lines()
        .map(|l| {
            let event: Value = serde_json::from_str(l).unwrap();
            utc_day(event["created_at"].as_str().unwrap())
        })
        .collect();
    let expected: Vec<String> = days
        .iter()
        .map(|day| {
            let (y, m, d) = (&day[..4], &day[5..7], &day[8..10]);
            format!("ghactivity/year={y}/month={m}/dayofmonth={d}/part-{HOUR}-0000.snappy.parquet")
        })
        .collect();
    let slots: Vec<String> = summary
        .outputs
        .iter()
        .map(|k| lake::without_run(k))
        .collect();
    assert_eq!(slots, expected);
    assert_eq!(summary.json_bytes, REAL_EVENTS.len() as u64);

    // The Parquet schema: the documented columns, in order, with their types.
    let file = lake.lake().join(&summary.outputs[0]);
    let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    let meta = reader.metadata();
    let columns = meta.file_metadata().schema_descr();
    let created_at = columns
        .columns()
        .iter()
        .find(|c| c.name() == "created_at")
        .unwrap();
    assert_eq!(
        created_at.physical_type(),
        PhysicalType::INT64,
        "never INT96"
    );
    let logical = format!("{:?}", created_at.logical_type_ref());
    assert!(
        matches!(
            created_at.logical_type_ref(),
            Some(LogicalType::Timestamp(_))
        ) && logical.contains("is_adjusted_to_u_t_c: true")
            && logical.contains("MILLIS"),
        "{logical}"
    );
    for rg in meta.row_groups() {
        for col in rg.columns() {
            assert_eq!(
                col.compression(),
                datafusion::parquet::basic::Compression::SNAPPY
            );
        }
    }
    let arrow_schema = datafusion::parquet::arrow::parquet_to_arrow_schema(columns, None).unwrap();
    let expected: Vec<(&str, DataType)> = expected_columns();
    let actual: Vec<(String, DataType)> = arrow_schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let expected: Vec<(String, DataType)> = expected
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    assert_eq!(actual, expected);

    // Every row against the JSON it came from.
    let rows = lake.rows("SELECT * FROM ghactivity");
    assert_eq!(rows.len() as u64, lines);
    let by_id: HashMap<i64, &serde_json::Map<String, Value>> = rows
        .iter()
        .map(|r| (r["event_id"].as_i64().unwrap(), r))
        .collect();
    assert_eq!(by_id.len(), rows.len(), "event_id is unique");
    let mut trimmed_merges = 0;
    for line in REAL_EVENTS.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let (id, payload_text) = raw_payload(line);
        let row = by_id[&id.parse::<i64>().unwrap()];
        let p = &event["payload"];
        let pr = &p["pull_request"];
        let issue = &p["issue"];
        assert_eq!(
            row["payload"].as_str().unwrap(),
            payload_text,
            "payload kept byte for byte"
        );
        assert_eq!(row["event_type"], event["type"]);
        assert_eq!(row.get("actor_login"), event["actor"].get("login"));
        assert_eq!(row.get("repo_name"), event["repo"].get("name"));
        assert_eq!(row.get("repo_id"), event["repo"].get("id"));
        assert_eq!(
            row.get("org_login"),
            event.get("org").and_then(|o| o.get("login"))
        );
        assert_eq!(row["source_file"], format!("{HOUR}.json.gz"));
        assert_eq!(
            row.get("other"),
            None,
            "an Events API record leaves nothing over"
        );
        let day = utc_day(event["created_at"].as_str().unwrap());
        assert_eq!(
            (&row["year"], &row["month"], &row["dayofmonth"]),
            (
                &Value::from(day[..4].parse::<i64>().unwrap()),
                &Value::from(day[5..7].parse::<i64>().unwrap()),
                &Value::from(day[8..10].parse::<i64>().unwrap())
            ),
            "each row in the partition of its created_at's UTC day"
        );
        let or_null = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
        // Columns taken straight from one payload field.
        for (column, pointer) in [
            ("action", "/action"),
            ("ref", "/ref"),
            ("push_size", "/size"),
            ("head_ref", "/pull_request/head/ref"),
            ("additions", "/pull_request/additions"),
            ("review_state", "/review/state"),
            ("comment_id", "/comment/id"),
        ] {
            assert_eq!(
                or_null(row.get(column)),
                or_null(p.pointer(pointer)),
                "{id} {column}"
            );
        }
        // Since 2025-10-07 a merge is the action `merged`, without the pull request's `merged`.
        let merged = or_null(p.pointer("/pull_request/merged"))
            .or_else(|| (p["action"] == "merged").then_some(Value::Bool(true)));
        assert_eq!(or_null(row.get("merged")), merged, "{id} merged");
        if p["action"] == "merged" {
            trimmed_merges += 1;
            assert_eq!(row.get("merged"), Some(&Value::Bool(true)), "{id}");
        }
        let number = or_null(p.get("number"))
            .or(or_null(issue.get("number")))
            .or(or_null(pr.get("number")));
        assert_eq!(or_null(row.get("number")), number, "{id}");
        let labels = issue
            .get("labels")
            .or(pr.get("labels"))
            .and_then(|l| l.as_array())
            .map(|l| Value::Array(l.iter().map(|x| x["name"].clone()).collect()));
        assert_eq!(or_null(row.get("labels")), labels, "{id}");
        let created =
            chrono::DateTime::parse_from_rfc3339(event["created_at"].as_str().unwrap()).unwrap();
        let stored =
            chrono::DateTime::parse_from_rfc3339(row["created_at"].as_str().unwrap()).unwrap();
        assert_eq!(created, stored, "{id}");
    }
    assert_eq!(
        trimmed_merges, 17,
        "the real merges of the trimmed era, each merged = true"
    );

    // Partition columns work as integers, as Athena's projection gives them, and a query pruned
    // by them returns what a filter on created_at alone returns.
    let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
    for line in REAL_EVENTS.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        *per_day
            .entry(utc_day(event["created_at"].as_str().unwrap()))
            .or_default() += 1;
    }
    let (busiest, events) = per_day.iter().max_by_key(|(_, n)| **n).unwrap();
    assert_eq!(lake.rows_of_day(busiest), (*events, *events));
}

/// `YYYY-MM-DD` of an RFC 3339 time in UTC (chrono here; the engine parses by hand).
fn utc_day(time: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(time)
        .unwrap()
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%d")
        .to_string()
}

fn expected_columns() -> Vec<(&'static str, DataType)> {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let list = DataType::List(std::sync::Arc::new(
        datafusion::arrow::datatypes::Field::new("element", DataType::Utf8, false),
    ));
    let (i, s, b) = (DataType::Int64, DataType::Utf8, DataType::Boolean);
    let mut cols = vec![
        ("event_id", i.clone()),
        ("event_type", s.clone()),
        ("created_at", ts.clone()),
        ("actor_id", i.clone()),
        ("actor_login", s.clone()),
        ("repo_id", i.clone()),
        ("repo_name", s.clone()),
        ("org_id", i.clone()),
        ("org_login", s.clone()),
        ("public", b.clone()),
    ];
    for name in ["action", "ref", "ref_type", "head", "before"] {
        cols.push((name, s.clone()));
    }
    for name in [
        "push_id",
        "push_size",
        "push_distinct_size",
        "number",
        "issue_id",
    ] {
        cols.push((name, i.clone()));
    }
    cols.extend([
        ("title", s.clone()),
        ("body", s.clone()),
        ("state", s.clone()),
        ("locked", b.clone()),
    ]);
    cols.extend([
        ("labels", list.clone()),
        ("assignee", s.clone()),
        ("assignees", list.clone()),
    ]);
    cols.extend([
        ("comments", i.clone()),
        ("author_association", s.clone()),
        ("closed_at", ts.clone()),
    ]);
    cols.extend([
        ("merged_at", ts),
        ("merged", b),
        ("merge_commit_sha", s.clone()),
    ]);
    for name in ["head_ref", "head_sha", "base_ref", "base_sha"] {
        cols.push((name, s.clone()));
    }
    for name in [
        "additions",
        "deletions",
        "changed_files",
        "commits",
        "review_comments",
    ] {
        cols.push((name, i.clone()));
    }
    cols.extend([
        ("requested_reviewers", list),
        ("comment_id", i.clone()),
        ("path", s.clone()),
    ]);
    cols.extend([
        ("position", i.clone()),
        ("line", i),
        ("commit_id", s.clone()),
        ("diff_hunk", s.clone()),
    ]);
    for name in [
        "review_state",
        "release_tag_name",
        "release_name",
        "member_login",
        "forkee_full_name",
        "creator_user_login",
        "source_file",
        "payload",
        "other",
    ] {
        cols.push((name, s.clone()));
    }
    cols
}

#[test]
fn zstd_and_plain_files_with_duplicates_keep_the_first_of_each_id() {
    let lake = Lake::new();
    let zst = lake.path().join("raw/2024-03-05-1.json.zst");
    let out = elt(&[
        "gen",
        "--hour",
        "2024-03-05-1",
        "--events",
        "3000",
        "--seed",
        "9",
        "--duplicate-share",
        "0.02",
        zst.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut text = String::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(&zst).unwrap())
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    // Not the next hour: that one would find every event already committed (see tests/exactly_once.rs).
    let plain = lake.write_raw("2024-03-05-4.json", text.as_bytes());
    let summaries = lake.transform(&[&zst, &plain], &[]).unwrap();
    // The first occurrence of each id, found independently of the engine.
    let mut first: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let (id, payload) = raw_payload(line);
        first.entry(id).or_insert(payload);
    }
    for s in &summaries {
        assert_eq!(s.lines, 3000);
        assert_eq!(s.duplicates, generated["duplicates"].as_u64().unwrap());
        assert_eq!(s.rows as usize, first.len());
        assert_eq!(s.rejected, 0);
    }
    let rows = lake.rows("SELECT event_id, payload, created_at FROM ghactivity WHERE dayofmonth = 5 AND source_file = '2024-03-05-1.json.zst'");
    assert_eq!(rows.len(), first.len());
    for row in rows {
        let id = row["event_id"].as_i64().unwrap().to_string();
        assert_eq!(row["payload"].as_str(), Some(first[&id].as_str()));
    }
}

#[test]
fn bad_lines_are_quarantined_with_reason_and_exact_bytes() {
    let lake = Lake::new();
    let good: Vec<&str> = REAL_EVENTS.lines().take(20).collect();
    let pr_line = REAL_EVENTS
        .lines()
        .find(|l| l.contains(r#""type":"PullRequestEvent""#) && l.contains(r#""number":"#))
        .unwrap();
    let mut bad_number: Value = serde_json::from_str(pr_line).unwrap();
    bad_number["payload"]["pull_request"]["number"] = Value::from("seven");
    bad_number["id"] = Value::from("99999999901");
    let mut bad_id: Value = serde_json::from_str(good[0]).unwrap();
    bad_id["id"] = Value::from("not-a-number");
    let mut no_created: Value = serde_json::from_str(good[1]).unwrap();
    no_created.as_object_mut().unwrap().remove("created_at");
    let mut bad_time: Value = serde_json::from_str(good[2]).unwrap();
    bad_time["created_at"] = Value::from("yesterday");
    let mut payload_text: Value = serde_json::from_str(good[3]).unwrap();
    payload_text["payload"] = Value::from("oops");
    payload_text["id"] = Value::from("99999999902");

    let mut file: Vec<u8> = Vec::new();
    let mut push = |bytes: &[u8]| {
        file.extend_from_slice(bytes);
        file.push(b'\n');
    };
    for line in &good {
        push(line.as_bytes()); // lines 1..=20
    }
    push(b"{this is not json"); // 21
    push(bad_number.to_string().as_bytes()); // 22
    push(bad_id.to_string().as_bytes()); // 23
    push(no_created.to_string().as_bytes()); // 24
    push(bad_time.to_string().as_bytes()); // 25
    push(payload_text.to_string().as_bytes()); // 26
    let mut not_utf8 = good[4].as_bytes().to_vec();
    let at = not_utf8.len() - 10;
    not_utf8[at] = 0xff;
    push(&not_utf8); // 27
    push(b""); // 28: blank, not a line
    push(b"   \r"); // 29: blank
    push(b"[1, 2, 3]"); // 30
    push(b"\x00\x9f\x92\x96 binary \xc3\x28 garbage"); // 31
                                                       // 32: a whole event (line 6 again) and garbage after it: the event is read (a duplicate),
                                                       // the garbage quarantined on its own.
    push(format!("{} trailing", good[5]).as_bytes());
    let raw = lake.write_raw(&format!("{HOUR}.json.gz"), &gzip(&file));
    let summary = lake.transform(&[&raw], &[]).unwrap().remove(0);
    assert_eq!(
        (
            summary.lines,
            summary.records,
            summary.rejected,
            summary.rows,
            summary.duplicates
        ),
        (30, 31, 10, 20, 1),
        "{summary:?}"
    );
    assert_eq!(summary.repairs.lines_split, 1);
    assert_eq!(
        summary.quarantine.as_deref(),
        Some(format!("_rejects/ghactivity/{HOUR}.jsonl.gz").as_str())
    );

    let rejects = lake.rejects(HOUR);
    let by_line: BTreeMap<u64, &RejectRecord> = rejects.iter().map(|r| (r.line, r)).collect();
    assert_eq!(
        by_line.keys().copied().collect::<Vec<_>>(),
        vec![21, 22, 23, 24, 25, 26, 27, 30, 31, 32]
    );
    let expected_reasons: [(u64, &str); 10] = [
        (21, "not valid JSON"),
        (
            22,
            "payload.pull_request.number: invalid type: string \"seven\"",
        ),
        (23, "\"not-a-number\" is not a number"),
        (24, "missing field `created_at`"),
        (25, "not an RFC 3339 time"),
        (26, "payload: invalid type"),
        (27, "not valid UTF-8"),
        (30, "invalid type"),
        (31, "not valid UTF-8"),
        (32, "not valid JSON"),
    ];
    for (line, reason) in expected_reasons {
        let error = &by_line[&line].error;
        let fits = if reason.starts_with("payload") || reason.starts_with("not valid JSON") {
            error.starts_with(reason)
        } else {
            error.contains(reason)
        };
        assert!(fits, "line {line}: {error:?} should say {reason:?}");
    }
    // Nothing is lost: each reject holds its line exactly (the piece of it that was not an event,
    // where a line held an event too).
    let mut physical: Vec<&[u8]> = file.split(|&b| b == b'\n').collect();
    physical[31] = b"trailing";
    for r in &rejects {
        let kept = match (&r.raw, &r.raw_base64) {
            (Some(text), None) => text.as_bytes().to_vec(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
            other => panic!("line {}: {other:?}", r.line),
        };
        assert_eq!(kept, physical[(r.line - 1) as usize], "line {}", r.line);
        assert_eq!(r.source, format!("{HOUR}.json.gz"));
    }
}

#[test]
fn a_twenty_megabyte_line_is_streamed_to_the_quarantine() {
    let lake = Lake::new();
    let good: Vec<&str> = REAL_EVENTS.lines().take(3).collect();
    let mut huge: Value = serde_json::from_str(good[0]).unwrap();
    huge["payload"]["description"] = Value::from("x".repeat(20 * 1024 * 1024));
    let huge = huge.to_string();
    let file = format!("{}\n{huge}\n{}\n{}", good[0], good[1], good[2]);
    let raw = lake.write_raw(&format!("{HOUR}.json"), file.as_bytes());
    let summary = lake.transform(&[&raw], &[]).unwrap().remove(0);
    assert_eq!((summary.lines, summary.rows, summary.rejected), (4, 3, 1));
    let rejects = lake.rejects(HOUR);
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].line, 2);
    assert!(
        rejects[0].error.contains("longer than the maximum"),
        "{}",
        rejects[0].error
    );
    assert_eq!(rejects[0].bytes, Some(huge.len() as u64));
    let kept = base64::engine::general_purpose::STANDARD
        .decode(rejects[0].raw_base64.as_ref().unwrap())
        .unwrap();
    assert!(kept == huge.as_bytes());

    // A smaller limit applies to lines that fit in one read as well.
    let lake = Lake::new();
    let raw = lake.write_raw(&format!("{HOUR}.json"), REAL_EVENTS.as_bytes());
    let longest = REAL_EVENTS.lines().map(str::len).max().unwrap();
    let over = REAL_EVENTS.lines().filter(|l| l.len() > 10_000).count() as u64;
    let summary = lake
        .transform(&[&raw], &["--max-line-bytes", "10000"])
        .unwrap()
        .remove(0);
    assert!(longest > 10_000 && over > 0);
    assert_eq!(summary.rejected, over);
}

#[test]
fn garbage_and_empty_files() {
    let lake = Lake::new();
    // Binary garbage that is not compressed: every line is quarantined, nothing is lost.
    let mut state = 0x2545F4914F6CDD1Du64;
    let garbage: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let mut garbage = garbage;
    garbage[0] = b'G'; // not a compression magic
    let raw = lake.write_raw("2024-03-05-3.json", &garbage);
    let s = lake.transform(&[&raw], &[]).unwrap().remove(0);
    assert_eq!(s.rows, 0);
    assert!(s.rejected > 100 && s.lines == s.rejected, "{s:?}");
    assert!(s.outputs.is_empty());
    let expected: Vec<(u64, &[u8])> = garbage
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i as u64 + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    let mut kept: Vec<(u64, Vec<u8>)> = lake
        .rejects("2024-03-05-3")
        .into_iter()
        .map(|r| {
            let bytes = match (r.raw, r.raw_base64) {
                (Some(text), None) => text.into_bytes(),
                (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
                other => panic!("{other:?}"),
            };
            (r.line, bytes)
        })
        .collect();
    kept.sort();
    assert_eq!(kept.len(), expected.len());
    for ((line, bytes), (want_line, want)) in kept.iter().zip(&expected) {
        assert_eq!((line, bytes.as_slice()), (want_line, *want));
    }

    // Empty: a zero-byte file and an empty gzip stream give no Parquet and a clean summary.
    for (name, bytes) in [
        ("2024-03-05-4.json", Vec::new()),
        ("2024-03-05-5.json.gz", gzip(b"")),
    ] {
        let raw = lake.write_raw(name, &bytes);
        let s = lake.transform(&[&raw], &[]).unwrap().remove(0);
        assert_eq!(
            (s.lines, s.rows, s.duplicates, s.rejected, s.outputs.len()),
            (0, 0, 0, 0, 0)
        );
        assert_eq!(s.quarantine, None);
    }
    assert!(!lake.files().keys().any(|k| k.ends_with(".parquet")));
}

#[test]
fn a_corrupt_or_truncated_file_fails_whole_and_changes_nothing() {
    let lake = Lake::new();
    let gz = gzip(REAL_EVENTS.as_bytes());
    let name = format!("{HOUR}.json.gz");
    let raw = lake.write_raw(&name, &gz);
    lake.transform(&[&raw], &[]).unwrap();
    let before = lake.files();

    let truncated = lake.write_raw(&format!("truncated/{name}"), &gz[..gz.len() / 2]);
    let error = lake.transform(&[&truncated], &[]).unwrap_err();
    assert!(
        error.contains("truncated or corrupt") && error.contains("nothing was written"),
        "{error}"
    );

    let mut corrupt = gz.clone();
    let middle = corrupt.len() / 2;
    for b in &mut corrupt[middle..middle + 64] {
        *b ^= 0x5a;
    }
    let corrupt = lake.write_raw(&format!("corrupt/{name}"), &corrupt);
    let error = lake.transform(&[&corrupt], &[]).unwrap_err();
    assert!(error.contains("truncated or corrupt"), "{error}");

    let mut zst = zstd::encode_all(REAL_EVENTS.as_bytes(), 3).unwrap();
    zst.truncate(zst.len() - 100);
    let zst = lake.write_raw(&format!("{HOUR}.json.zst"), &zst);
    assert!(lake
        .transform(&[&zst], &[])
        .unwrap_err()
        .contains("truncated or corrupt"));

    let after = lake.files();
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "no staging files left"
    );
    assert!(after == before, "the lake is byte for byte as before");
}

#[test]
fn reruns_replace_the_same_keys_and_remove_stale_parts() {
    let lake = Lake::new();
    let raw = lake.path().join(format!("raw/{HOUR}.json.gz"));
    let out = elt(&[
        "gen",
        "--hour",
        HOUR,
        "--events",
        "6000",
        raw.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let small = lake
        .transform(&[&raw], &["--max-part-mib", "1"])
        .unwrap()
        .remove(0);
    assert!(small.outputs.len() >= 3, "{:?}", small.outputs);
    for (i, key) in small.outputs.iter().enumerate() {
        assert!(
            lake::without_run(key).ends_with(&format!("part-{HOUR}-{i:04}.snappy.parquet")),
            "{key}"
        );
    }
    let rows = lake.rows("SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM ghactivity");
    assert_eq!(rows[0]["n"].as_u64(), Some(small.rows));
    assert_eq!(rows[0]["ids"].as_u64(), Some(small.rows));

    let whole = lake.transform(&[&raw], &[]).unwrap().remove(0);
    assert_eq!(whole.outputs.len(), 1);
    assert_eq!(
        lake.data_keys(),
        vec![whole.outputs[0].clone()],
        "stale parts removed, nothing else left"
    );
    let first = lake.files();
    lake.transform(&[&raw], &[]).unwrap();
    assert_eq!(
        lake.files().keys().collect::<Vec<_>>(),
        first.keys().collect::<Vec<_>>()
    );
    let rows = lake.rows("SELECT count(*) AS n FROM ghactivity");
    assert_eq!(rows[0]["n"].as_u64(), Some(whole.rows));

    // A rerun without rejects removes the earlier quarantine.
    let plain = lake.write_raw(
        &format!("again/{HOUR}.json"),
        format!("{}\nnot json\n", REAL_EVENTS.lines().next().unwrap()).as_bytes(),
    );
    assert_eq!(lake.transform(&[&plain], &[]).unwrap()[0].rejected, 1);
    assert!(lake.files().keys().any(|k| k.starts_with("_rejects/")));
    let clean = lake.write_raw(
        &format!("clean/{HOUR}.json"),
        REAL_EVENTS.lines().next().unwrap().as_bytes(),
    );
    assert_eq!(lake.transform(&[&clean], &[]).unwrap()[0].rejected, 0);
    assert!(!lake.files().keys().any(|k| k.starts_with("_rejects/")));
}

#[test]
fn the_sql_can_be_changed_without_recompiling() {
    let lake = Lake::new();
    let sql = lake.write_raw(
        "pushes.sql",
        b"SELECT id AS event_id, type AS event_type, repo.name AS repo_name, payload.size AS commits_pushed \
          FROM raw_events WHERE first_seen(id) AND type = 'PushEvent'",
    );
    let raw = lake.write_raw(&format!("{HOUR}.json"), REAL_EVENTS.as_bytes());
    let s = lake
        .transform(&[&raw], &["--sql", sql.to_str().unwrap()])
        .unwrap()
        .remove(0);
    let pushes = REAL_EVENTS
        .lines()
        .filter(|l| l.contains(r#""type":"PushEvent""#))
        .count() as u64;
    assert_eq!(s.rows, pushes);
    let rows = lake.rows("SELECT * FROM ghactivity LIMIT 1");
    let columns: HashSet<&str> = rows[0].keys().map(String::as_str).collect();
    assert!(
        columns.is_superset(&HashSet::from(["event_id", "event_type", "repo_name"])),
        "{columns:?}"
    );

    let before = lake.files();
    let doubling = lake.write_raw(
        "doubling.sql",
        b"SELECT unnest(make_array(id, id)) AS event_id FROM raw_events",
    );
    let error = lake
        .transform(&[&raw], &["--sql", doubling.to_str().unwrap()])
        .unwrap_err();
    assert!(error.contains("at most one row per event"), "{error}");
    assert!(
        lake.files() == before,
        "a failed file leaves the lake as it was"
    );

    let broken = lake.write_raw("broken.sql", b"SELECT no_such_column FROM raw_events");
    let error = lake
        .transform(&[&raw], &["--sql", broken.to_str().unwrap()])
        .unwrap_err();
    assert!(
        error.contains("does not plan against raw_events") && error.contains("no_such_column"),
        "{error}"
    );
}

#[test]
fn names_that_are_not_hours_are_refused_clearly() {
    let lake = Lake::new();
    let raw = lake.write_raw("events.json.gz", &gzip(b"{}"));
    let error = lake.transform(&[&raw], &[]).unwrap_err();
    assert!(error.contains("YYYY-MM-DD-H.json.gz"), "{error}");
}

#[test]
fn query_prints_table_csv_and_json() {
    let lake = Lake::new();
    let raw = lake.write_raw(&format!("{HOUR}.json"), REAL_EVENTS.as_bytes());
    lake.transform(&[&raw], &[]).unwrap();
    let sql = "SELECT event_type, count(*) AS n FROM ghactivity GROUP BY event_type ORDER BY n DESC, event_type LIMIT 2";
    let run = |format: &str| {
        let out = elt(&[
            "query",
            "--lake",
            lake.lake().to_str().unwrap(),
            "--format",
            format,
            sql,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let pushes = REAL_EVENTS
        .lines()
        .filter(|l| l.contains(r#""type":"PushEvent""#))
        .count();
    assert!(
        run("table").contains(&format!("| PushEvent         | {pushes}")),
        "{}",
        run("table")
    );
    assert!(
        run("csv").starts_with(&format!("event_type,n\nPushEvent,{pushes}\n")),
        "{}",
        run("csv")
    );
    assert!(
        run("json").starts_with(&format!("{{\"event_type\":\"PushEvent\",\"n\":{pushes}}}")),
        "{}",
        run("json")
    );
    let empty = Lake::new();
    let out = elt(&["query", "--lake", empty.lake().to_str().unwrap(), sql]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no table under")
    );
}
