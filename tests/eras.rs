//! End-to-end: every era of the archive through the `elt` binary. The real legacy events record by
//! record against expectations read here from the JSON (not from the engine), generated 2011 and
//! 2013 hours, each row in the partition of its `created_at`'s UTC day (a Pacific-named evening
//! hour, a 2025 hour with late events across midnight), damaged copies repaired with exact
//! accounting, and re-runs of a two-partition hour.

mod lake;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use lake::{elt, gzip, Lake};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

const LEGACY_EVENTS: &str = include_str!("../fixtures/legacy-events.jsonl");
const REAL_EVENTS: &str = include_str!("../fixtures/real-events.jsonl");

/// `elt gen` into the lake's raw folder; returns the file and the generator's numbers.
fn gen(lake: &Lake, hour: &str, events: u64, extra: &[&str]) -> (std::path::PathBuf, Value) {
    let path = lake.path().join(format!("raw/{hour}.json"));
    let events = events.to_string();
    let mut args = vec!["gen", "--hour", hour, "--events", &events];
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    let out = elt(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (path, serde_json::from_slice(&out.stdout).unwrap())
}

/// Milliseconds since the epoch, UTC, of an RFC 3339 time with any offset.
fn utc_millis(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time)
        .unwrap()
        .timestamp_millis()
}

/// (year, month, day) of the UTC day of an RFC 3339 time.
fn utc_day(time: &str) -> (i64, i64, i64) {
    let t = chrono::DateTime::parse_from_rfc3339(time)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let date = t.format("%Y %m %d").to_string();
    let mut parts = date.split(' ').map(|p| p.parse::<i64>().unwrap());
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

/// The documented id of a record without one: -1 - (XXH3-64 of its bytes & (2^63 - 1)).
fn made_up_id(record: &str) -> i64 {
    let hash = twox_hash::XxHash3_64::oneshot(record.as_bytes()) & (i64::MAX as u64);
    -1 - hash as i64
}

/// What a reader of the three formats expects of one record's columns, from its JSON alone.
fn expected_row(line: &str) -> Map<String, Value> {
    let event: Value = serde_json::from_str(line).unwrap();
    let raw: BTreeMap<String, Box<RawValue>> = serde_json::from_str(line).unwrap();
    let get = |v: &Value, key: &str| v.get(key).filter(|x| !x.is_null()).cloned();
    let mut row = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        row.insert(k.to_string(), v.unwrap_or(Value::Null));
    };
    let id = match event.get("id").and_then(Value::as_str) {
        Some(id) => id.parse::<i64>().unwrap(),
        None => made_up_id(line),
    };
    put("event_id", Some(id.into()));
    put("event_type", get(&event, "type"));
    let (actor, attributes) = (&event["actor"], &event["actor_attributes"]);
    let login = actor
        .as_str()
        .map(Value::from)
        .or_else(|| get(actor, "login"))
        .or_else(|| get(attributes, "login"));
    put("actor_login", login);
    put("actor_id", get(actor, "id"));
    let (repo, repository) = (&event["repo"], &event["repository"]);
    if repo.is_object() {
        put("repo_id", get(repo, "id"));
        put("repo_name", get(repo, "name"));
    } else if repository.is_object() {
        put("repo_id", get(repository, "id"));
        let name = format!(
            "{}/{}",
            repository["owner"].as_str().unwrap(),
            repository["name"].as_str().unwrap()
        );
        put("repo_name", Some(name.into()));
    } else {
        put("repo_id", None);
        put("repo_name", None);
    }
    let org = &event["org"];
    put("org_id", get(org, "id"));
    put(
        "org_login",
        get(org, "login").or_else(|| get(repository, "organization")),
    );
    put("public", get(&event, "public"));
    put(
        "payload",
        raw.get("payload")
            .map(|p| p.get())
            .filter(|p| *p != "null")
            .map(Value::from),
    );
    // The 2011 plain values and the 2012–2014 names, as docs/COLUMNS.md maps them.
    let p = &event["payload"];
    let issue_id = p["issue"]
        .as_i64()
        .or(p["issue"]["id"].as_i64())
        .or(p["issue_id"].as_i64());
    put("issue_id", issue_id.map(Value::from));
    put(
        "comment_id",
        p["comment"]["id"]
            .as_i64()
            .or(p["comment_id"].as_i64())
            .map(Value::from),
    );
    let member = p["member"].as_str().or(p["member"]["login"].as_str());
    put("member_login", member.map(Value::from));
    if event["type"] == "CommitCommentEvent" {
        let commit = p["comment"]["commit_id"].as_str().or(p["commit"].as_str());
        put("commit_id", commit.map(Value::from));
    }
    if event["type"] == "CreateEvent" {
        let object_name = (p["object"] != "repository").then(|| p["object_name"].clone());
        put(
            "ref",
            get(p, "ref").or(object_name.filter(|v| !v.is_null())),
        );
        put("ref_type", get(p, "ref_type").or_else(|| get(p, "object")));
    }
    put("push_size", get(p, "size"));
    row
}

/// The top-level fields no column takes, byte for byte, or none.
fn expected_other(line: &str) -> Option<BTreeMap<String, String>> {
    let raw: BTreeMap<String, Box<RawValue>> = serde_json::from_str(line).unwrap();
    let columns = [
        "id",
        "type",
        "created_at",
        "actor",
        "repo",
        "org",
        "public",
        "payload",
    ];
    let other: BTreeMap<String, String> = raw
        .into_iter()
        .filter(|(k, _)| !columns.contains(&k.as_str()))
        .map(|(k, v)| (k, v.get().to_string()))
        .collect();
    (!other.is_empty()).then_some(other)
}

#[test]
fn every_legacy_record_lands_with_the_columns_its_json_gives() {
    let lake = Lake::new();
    let raw = lake.write_raw("2013-02-15-0.json.gz", &gzip(LEGACY_EVENTS.as_bytes()));
    let summary = lake.transform(&[&raw], &[]).unwrap().remove(0);
    let records = LEGACY_EVENTS.lines().count() as u64;
    assert_eq!(
        (
            summary.records,
            summary.rows,
            summary.duplicates,
            summary.rejected
        ),
        (records, records, 0, 0),
        "{summary:?}"
    );
    let rows = lake.rows("SELECT * FROM ghactivity");
    let by_id: HashMap<i64, &Map<String, Value>> = rows
        .iter()
        .map(|r| (r["event_id"].as_i64().unwrap(), r))
        .collect();
    assert_eq!(
        by_id.len(),
        rows.len(),
        "ids, real and made up, are distinct"
    );
    let mut checked = 0;
    for line in LEGACY_EVENTS.lines() {
        let expected = expected_row(line);
        let id = expected["event_id"].as_i64().unwrap();
        let row = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("no row for {line}"));
        for (column, value) in &expected {
            let actual = row.get(column).cloned().unwrap_or(Value::Null);
            assert_eq!(&actual, value, "{column} of {line}");
        }
        let created_at = serde_json::from_str::<Value>(line).unwrap()["created_at"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            utc_millis(row["created_at"].as_str().unwrap()),
            utc_millis(&created_at),
            "{line}"
        );
        let (y, m, d) = utc_day(&created_at);
        assert_eq!(
            (&row["year"], &row["month"], &row["dayofmonth"]),
            (&Value::from(y), &Value::from(m), &Value::from(d)),
            "{line}"
        );
        let other = row.get("other").and_then(Value::as_str).map(|text| {
            let kept: BTreeMap<String, Box<RawValue>> = serde_json::from_str(text).unwrap();
            kept.into_iter()
                .map(|(k, v)| (k, v.get().to_string()))
                .collect::<BTreeMap<_, _>>()
        });
        assert_eq!(other, expected_other(line), "other of {line}");
        checked += 1;
    }
    assert_eq!(checked, 130);
    // Every era lands: timeline records (no id) are the negative ones.
    let made_up = rows
        .iter()
        .filter(|r| r["event_id"].as_i64() < Some(0))
        .count();
    let timeline = LEGACY_EVENTS
        .lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap()
                .get("id")
                .is_none()
        })
        .count();
    assert_eq!(made_up, timeline);
    assert!(timeline >= 39);
}

#[test]
fn generated_2011_and_2013_hours_land_whole_with_stable_made_up_ids() {
    let lake = Lake::new();
    let (old, old_stats) = gen(&lake, "2011-02-15-14", 4000, &[]);
    let (timeline, timeline_stats) = gen(&lake, "2013-02-15-20", 4000, &[]);
    let summaries = lake.transform(&[&old, &timeline], &[]).unwrap();
    for (summary, stats) in summaries.iter().zip([&old_stats, &timeline_stats]) {
        assert_eq!(summary.rejected, 0, "{summary:?}");
        assert_eq!(summary.duplicates, stats["duplicates"].as_u64().unwrap());
        assert_eq!(summary.records, 4000);
    }
    // The 2011 file is named in UTC; the 2013 file by a Pacific clock: 20:00 there is 04:00 UTC
    // the next day, so its rows are in the 16th's partition.
    assert_eq!(
        summaries[0]
            .outputs
            .iter()
            .map(|k| lake::without_run(k))
            .collect::<Vec<_>>(),
        vec!["ghactivity/year=2011/month=02/dayofmonth=15/part-2011-02-15-14-0000.snappy.parquet"]
    );
    assert_eq!(
        summaries[1]
            .outputs
            .iter()
            .map(|k| lake::without_run(k))
            .collect::<Vec<_>>(),
        vec!["ghactivity/year=2013/month=02/dayofmonth=16/part-2013-02-15-20-0000.snappy.parquet"]
    );
    let ids = |lake: &Lake| -> Vec<i64> {
        lake.rows("SELECT event_id FROM ghactivity WHERE source_file = '2013-02-15-20.json' ORDER BY event_id")
            .iter()
            .map(|r| r["event_id"].as_i64().unwrap())
            .collect()
    };
    let first = ids(&lake);
    assert_eq!(first.len() as u64, summaries[1].rows);
    assert!(first.iter().all(|&id| id < 0));
    let text = std::fs::read_to_string(&timeline).unwrap();
    let expected: BTreeSet<i64> = text.lines().map(made_up_id).collect();
    assert_eq!(first.iter().copied().collect::<BTreeSet<_>>(), expected);
    // Another run, another lake: the same ids.
    let again = Lake::new();
    let copy = again.write_raw("2013-02-15-20.json", text.as_bytes());
    again.transform(&[&copy], &[]).unwrap();
    assert_eq!(ids(&again), first);
    let counts = lake.rows(
        "SELECT count(*) AS n FROM ghactivity WHERE year = 2013 AND month = 2 AND dayofmonth = 16",
    );
    assert_eq!(counts[0]["n"].as_u64(), Some(summaries[1].rows));
}

#[test]
fn partitions_follow_created_at_across_a_pacific_evening_and_midnight() {
    let lake = Lake::new();
    let (evening, _) = gen(&lake, "2013-02-15-20", 2000, &[]);
    let (late, late_stats) = gen(&lake, "2025-06-02-0", 3000, &["--late-share", "0.05"]);
    let summaries = lake.transform(&[&evening, &late], &[]).unwrap();
    assert_eq!(
        summaries[1]
            .outputs
            .iter()
            .map(|k| lake::without_run(k))
            .collect::<Vec<_>>(),
        vec![
            "ghactivity/year=2025/month=06/dayofmonth=01/part-2025-06-02-0-0000.snappy.parquet",
            "ghactivity/year=2025/month=06/dayofmonth=02/part-2025-06-02-0-0000.snappy.parquet",
        ]
    );
    let days = lake.rows_per_day();
    assert_eq!(
        days.keys().collect::<Vec<_>>(),
        vec!["2013-02-16", "2025-06-01", "2025-06-02"]
    );
    assert!(days["2025-06-01"] >= late_stats["late"].as_u64().unwrap() / 2);
    assert_eq!(
        days.values().sum::<u64>(),
        summaries[0].rows + summaries[1].rows
    );
}

#[test]
fn rerunning_a_two_partition_hour_leaves_no_stale_part() {
    let lake = Lake::new();
    let (raw, _) = gen(&lake, "2025-06-02-0", 6000, &["--late-share", "0.3"]);
    let small = lake
        .transform(&[&raw], &["--max-part-mib", "1"])
        .unwrap()
        .remove(0);
    let per_day =
        |outputs: &[String], day: &str| outputs.iter().filter(|o| o.contains(day)).count();
    assert!(
        per_day(&small.outputs, "dayofmonth=01/") >= 2,
        "{:?}",
        small.outputs
    );
    assert!(
        per_day(&small.outputs, "dayofmonth=02/") >= 2,
        "{:?}",
        small.outputs
    );

    let whole = lake.transform(&[&raw], &[]).unwrap().remove(0);
    assert_eq!(whole.outputs.len(), 2);
    assert_eq!(
        lake.data_keys(),
        whole.outputs,
        "stale parts removed in both partitions"
    );
    lake.rows_per_day();

    // The hour fetched again without late events: the day before is left with nothing of it.
    let (fixed, _) = gen(&lake, "2025-06-02-0", 3000, &["--seed", "2"]);
    let again = lake.transform(&[&fixed], &[]).unwrap().remove(0);
    assert_eq!(
        again
            .outputs
            .iter()
            .map(|k| lake::without_run(k))
            .collect::<Vec<_>>(),
        vec!["ghactivity/year=2025/month=06/dayofmonth=02/part-2025-06-02-0-0000.snappy.parquet"]
    );
    assert_eq!(lake.data_keys(), again.outputs);
    let counted = lake.rows_per_day();
    assert_eq!(counted.values().sum::<u64>(), again.rows);
}

#[test]
fn a_rerun_removes_stale_parts_in_days_far_from_the_hour() {
    // An hour file whose events span years (the real fixture, as a user might hand it over),
    // then the same hour as GHArchive serves it: every far-away part of the first run goes.
    let lake = Lake::new();
    let far = lake.write_raw("2024-03-05-14.json", REAL_EVENTS.as_bytes());
    let first = lake.transform(&[&far], &[]).unwrap().remove(0);
    assert!(first.outputs.len() > 50, "{}", first.outputs.len());
    assert_eq!(lake.data_keys(), first.outputs);
    let (near, _) = gen(&lake, "2024-03-05-14", 500, &[]);
    let again = lake.transform(&[&near], &[]).unwrap().remove(0);
    assert_eq!(
        again
            .outputs
            .iter()
            .map(|k| lake::without_run(k))
            .collect::<Vec<_>>(),
        vec!["ghactivity/year=2024/month=03/dayofmonth=05/part-2024-03-05-14-0000.snappy.parquet"]
    );
    assert_eq!(lake.data_keys(), again.outputs);
    assert_eq!(lake.rows_per_day().values().sum::<u64>(), again.rows);
}

/// A damaged copy of a real-shaped hour, as GHArchive's issues report them; returns the copy and
/// the records whose every byte is in it (those must all land).
struct Damaged {
    text: String,
    whole: Vec<String>,
    cut: Vec<String>,
    glued_lines: u64,
    nul_runs: u64,
}

fn damage(lines: &[&str]) -> Damaged {
    let nuls = "\0".repeat(512);
    let mut d = Damaged {
        text: String::new(),
        whole: Vec::new(),
        cut: Vec::new(),
        glued_lines: 0,
        nul_runs: 0,
    };
    let last = lines.len() - 1;
    for (i, line) in lines.iter().enumerate() {
        match i % 50 {
            _ if i == last => {
                // #241: the last line cut short.
                let cut = &line[..line.floor_char_boundary(line.len() / 2)];
                d.text.push_str(cut);
                d.cut.push(cut.to_string());
                continue;
            }
            7 => {
                // #17, #53: two events with no newline between.
                d.text.push_str(line);
                d.whole.push(line.to_string());
                d.glued_lines += 1;
                continue;
            }
            19 => {
                // #169, #271: an event cut short, the next glued to it.
                let cut = &line[..line.floor_char_boundary(line.len() * 2 / 3)];
                d.text.push_str(cut);
                d.cut.push(cut.to_string());
                d.glued_lines += 1;
                continue;
            }
            23 => {
                // #190: a run of NULs alone on a line, and one before an event.
                d.text.push_str(&nuls);
                d.text.push('\n');
                d.text.push_str(&nuls);
                d.nul_runs += 2;
            }
            31 => {
                // An event, NULs, and the next event on the same line.
                d.text.push_str(line);
                d.text.push_str(&nuls);
                d.whole.push(line.to_string());
                d.nul_runs += 1;
                d.glued_lines += 1;
                continue;
            }
            _ => {}
        }
        d.text.push_str(line);
        d.text.push('\n');
        d.whole.push(line.to_string());
    }
    d
}

#[test]
fn damaged_copies_lose_no_event_and_account_for_every_record() {
    let lake = Lake::new();
    let (clean, _) = gen(&lake, "2013-02-15-20", 1500, &["--duplicate-share", "0"]);
    let (recent, _) = gen(&lake, "2024-03-05-14", 1500, &["--duplicate-share", "0"]);
    for source in [clean, recent] {
        let text = std::fs::read_to_string(&source).unwrap();
        let lines: Vec<&str> = text.lines().chain(LEGACY_EVENTS.lines()).collect();
        let damaged = damage(&lines);
        let name = source.file_name().unwrap().to_str().unwrap().to_string();
        let hour = name.trim_end_matches(".json").to_string();
        let broken = lake.write_raw(
            &format!("damaged/{name}.gz"),
            &gzip(damaged.text.as_bytes()),
        );
        let summary = lake.transform(&[&broken], &[]).unwrap().remove(0);
        let whole = damaged.whole.len() as u64;
        assert_eq!(
            (
                summary.records,
                summary.rows,
                summary.rejected,
                summary.duplicates
            ),
            (
                whole + damaged.cut.len() as u64,
                whole,
                damaged.cut.len() as u64,
                0
            ),
            "{summary:?}"
        );
        assert_eq!(
            summary.repairs.lines_split, damaged.glued_lines,
            "{summary:?}"
        );
        assert_eq!(summary.repairs.nul_runs, damaged.nul_runs, "{summary:?}");
        let physical = damaged
            .text
            .lines()
            .filter(|l| !l.trim_matches('\0').is_empty());
        assert_eq!(summary.lines, physical.count() as u64, "{summary:?}");
        // Every whole event is in the lake; the cut ones are in the quarantine, byte for byte.
        let ids: BTreeSet<i64> = lake
            .rows(&format!(
                "SELECT event_id FROM ghactivity WHERE source_file = '{name}.gz'"
            ))
            .iter()
            .map(|r| r["event_id"].as_i64().unwrap())
            .collect();
        let expected: BTreeSet<i64> = damaged
            .whole
            .iter()
            .map(|l| expected_row(l)["event_id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, expected);
        // (The quarantine is in the order the parser threads finished, not in line order.)
        let kept: BTreeSet<String> = lake
            .rejects(&hour)
            .into_iter()
            .map(|r| r.raw.unwrap())
            .collect();
        let cut: BTreeSet<String> = damaged.cut.iter().cloned().collect();
        assert!(kept == cut, "the cut records, byte for byte");
    }
}
