//! `elt compact` as readers and the checks see it: a reader polling a day's rows while the day is
//! compacted (and the compaction killed, and run again) only ever sees the same rows; an hour
//! transformed again after its day was compacted replaces exactly its own rows; a compaction and
//! a transform of the same day at once leave one whole result; the compacted Parquet reads in
//! pyarrow and DuckDB as Athena needs it; and the same on S3.

mod lake;
mod support;

use std::process::Command;
use std::time::Duration;

use lake::readers::{generated_hour, python_rows, run_or_kill, start_poller, stop_poller};
use lake::Lake;
use serde_json::Value;

const DAY: &str = "2024-04-02";

/// `HOURS` hours of `DAY`, `events` each, transformed: their raw files and the table's rows.
fn day_of_hours(lake: &Lake, hours: &[u32], events: u64) -> (Vec<std::path::PathBuf>, u64) {
    let raws: Vec<_> = hours
        .iter()
        .map(|h| generated_hour(lake, &format!("{DAY}-{h}"), events))
        .collect();
    let refs: Vec<&std::path::Path> = raws.iter().map(|p| p.as_path()).collect();
    let summaries = lake.transform(&refs, &[]).unwrap();
    (raws, summaries.iter().map(|s| s.rows).sum())
}

fn elt_command(lake: &Lake, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_elt"));
    command.args(args).arg("--lake").arg(lake.lake());
    command
}

/// The day's files in the table: (name, tags).
fn day_files(lake: &Lake) -> Vec<String> {
    let prefix = format!("ghactivity/{}", partition(DAY));
    lake.table_keys()
        .into_iter()
        .filter(|k| k.starts_with(&prefix))
        .map(|k| k.rsplit('/').next().unwrap().to_string())
        .collect()
}

fn partition(day: &str) -> String {
    let (y, rest) = day.split_once('-').unwrap();
    let (m, d) = rest.split_once('-').unwrap();
    format!("year={y}/month={m}/dayofmonth={d}/")
}

fn outcome(report: &[Value]) -> Vec<&str> {
    report
        .iter()
        .map(|day| day["outcome"].as_str().unwrap())
        .collect()
}

#[test]
fn a_reader_sees_the_same_rows_while_a_day_is_compacted_killed_and_compacted_again() {
    let lake = Lake::new();
    let (raws, whole) = day_of_hours(&lake, &[3, 4, 5, 6], 4000);
    let table = lake.lake().join("ghactivity");
    let (child, out, stop) = start_poller(table.to_str().unwrap(), lake.path(), None);
    for round in 0..support::trials(4) as u64 {
        // Killed at a different moment each round (before, during and after the sort).
        let compact = elt_command(&lake, &["compact", "--from", DAY, "--to", DAY]);
        run_or_kill(compact, Some(Duration::from_millis(150 + round * 400)));
        run_or_kill(
            elt_command(&lake, &["compact", "--from", DAY, "--to", DAY]),
            None,
        );
        // An hour of the compacted day transformed again: its rows leave the compacted file in
        // the hour's own commit, and the next compaction takes in its new part.
        let raw = &raws[(round as usize) % raws.len()];
        let mut transform = elt_command(&lake, &["transform"]);
        transform.arg(raw);
        run_or_kill(transform, None);
    }
    run_or_kill(
        elt_command(&lake, &["compact", "--from", DAY, "--to", DAY]),
        None,
    );
    let polled = stop_poller(child, &out, &stop);
    assert!(polled.len() > 5, "the reader polled: {polled:?}");
    let torn: Vec<_> = polled.iter().filter(|(_, rows)| *rows != whole).collect();
    assert!(
        torn.is_empty(),
        "a reader saw other than the day's {whole} rows: {torn:?}"
    );
    assert_eq!(python_rows(table.to_str().unwrap(), None), whole);
    let files = day_files(&lake);
    assert!(
        files.len() == 1 && files[0].starts_with("compact-"),
        "the day is one compacted file: {files:?}"
    );
    // Killed compactions leave files no commit names: orphans, which a vacuum removes.
    let kinds: Vec<String> = lake
        .findings(&format!("{DAY}-3"), &format!("{DAY}-6"))
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.iter().all(|k| k == "orphan"), "{kinds:?}");
    lake.vacuum_now();
    assert_eq!(
        lake.findings(&format!("{DAY}-3"), &format!("{DAY}-6")),
        Vec::<Value>::new()
    );
    // Compacting a compacted day again changes nothing.
    assert_eq!(outcome(&lake.compact(DAY, DAY)), ["already_compact"]);
}

#[test]
fn an_hour_transformed_again_after_compaction_replaces_exactly_its_own_rows() {
    let lake = Lake::new();
    let (raws, _) = day_of_hours(&lake, &[10, 11, 12], 3000);
    let per_hour = |lake: &Lake| -> Vec<(String, u64)> {
        lake.rows("SELECT source_file, count(*) AS n FROM ghactivity GROUP BY 1 ORDER BY 1")
            .iter()
            .map(|r| {
                (
                    r["source_file"].as_str().unwrap().to_string(),
                    r["n"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let before = per_hour(&lake);
    let report = lake.compact(DAY, DAY);
    assert_eq!(outcome(&report), ["compacted"], "{report:?}");
    assert_eq!(report[0]["inputs"], 3);
    assert_eq!(report[0]["outputs"], 1);
    assert_eq!(
        per_hour(&lake),
        before,
        "compaction keeps every hour's rows"
    );
    assert_eq!(
        lake.findings(&format!("{DAY}-10"), &format!("{DAY}-12")),
        Vec::<Value>::new()
    );

    // Hour 11 again, from a raw file that lost a third of its lines.
    let text = String::from_utf8(lake::readers::gunzip(&std::fs::read(&raws[1]).unwrap())).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&raws[1], lake::gzip(kept.join("\n").as_bytes())).unwrap();
    let summaries = lake.transform(&[&raws[1]], &[]).unwrap();
    let after = per_hour(&lake);
    assert_eq!(after[0], before[0], "hour 10 untouched");
    assert_eq!(after[2], before[2], "hour 12 untouched");
    assert_eq!(after[1].1, summaries[0].rows, "hour 11 is its new result");
    assert!(after[1].1 < before[1].1);
    let files = day_files(&lake);
    assert_eq!(
        files.len(),
        2,
        "the rewritten compacted file and the hour's new part: {files:?}"
    );
    assert_eq!(
        lake.findings(&format!("{DAY}-10"), &format!("{DAY}-12")),
        Vec::<Value>::new()
    );

    // The day compacted again: one file, the same rows.
    assert_eq!(outcome(&lake.compact(DAY, DAY)), ["compacted"]);
    assert_eq!(per_hour(&lake), after);
    assert_eq!(day_files(&lake).len(), 1);
    assert_eq!(
        lake.findings(&format!("{DAY}-10"), &format!("{DAY}-12")),
        Vec::<Value>::new()
    );
    compacted_parquet_reads_as_athena_needs(&lake);
}

/// The compacted file, read by pyarrow and DuckDB: sorted, dictionaries on the names, bloom
/// filters, page index, timestamps as INT64 milliseconds (no INT96, no nanoseconds).
fn compacted_parquet_reads_as_athena_needs(lake: &Lake) {
    let folder = lake.lake().join("ghactivity").join(partition(DAY));
    let script = r#"
import glob, json, sys
import pyarrow.parquet as pq
path = glob.glob(sys.argv[1] + "/compact-*.parquet")[0]
f = pq.ParquetFile(path)
meta = f.metadata
names = [meta.schema.column(i).name for i in range(meta.num_columns)]
col = lambda name: meta.row_group(0).column(names.index(name))
created = meta.schema.column(names.index("created_at"))
table = f.read(columns=["event_type", "repo_name", "created_at"])
keys = list(zip(table.column("event_type").to_pylist(), [r or "" for r in table.column("repo_name").to_pylist()], table.column("created_at").to_pylist()))
out = {
    "physical": created.physical_type,
    "logical": str(created.logical_type),
    "sorted": keys == sorted(keys),
    "repo_dictionary": "RLE_DICTIONARY" in col("repo_name").encodings or "PLAIN_DICTIONARY" in col("repo_name").encodings,
    "page_index": col("repo_name").has_column_index and col("repo_name").has_offset_index,
    "bloom": col("repo_name").bloom_filter_offset is not None,
    "rows": meta.num_rows,
}
import duckdb
out["duckdb_rows"] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script, folder.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["physical"], "INT64", "{found}");
    assert!(
        found["logical"].as_str().unwrap().contains("milliseconds"),
        "{found}"
    );
    assert_eq!(found["sorted"], true, "{found}");
    assert_eq!(found["repo_dictionary"], true, "{found}");
    assert_eq!(found["page_index"], true, "{found}");
    assert_eq!(found["bloom"], true, "a bloom filter on repo_name: {found}");
    assert_eq!(found["duckdb_rows"], found["rows"], "{found}");
}

#[test]
fn a_compaction_and_a_transform_of_the_same_day_at_once_leave_one_whole_result() {
    let lake = Lake::new();
    let (raws, whole) = day_of_hours(&lake, &[20, 21, 22], 3000);
    for round in 0..support::trials(3) {
        let raw = &raws[round % raws.len()];
        // The transform pauses between its claim and its commit, so the compaction lands
        // in between in some rounds and after it in others.
        let mut transform = elt_command(&lake, &["transform"]);
        transform
            .env(
                "COMMIT_STEP_DELAY_MS",
                (200 * round as u64 + 100).to_string(),
            )
            .arg(raw);
        let mut transform = transform.spawn().unwrap();
        let compact = lake.compact(DAY, DAY);
        assert!(transform.wait().unwrap().success());
        assert!(!compact.is_empty());
        assert_eq!(
            lake.rows("SELECT count(*) AS n FROM ghactivity")[0]["n"],
            whole
        );
        assert_eq!(
            lake.findings(&format!("{DAY}-20"), &format!("{DAY}-22")),
            Vec::<Value>::new(),
            "round {round}"
        );
    }
    lake.compact(DAY, DAY);
    assert_eq!(day_files(&lake).len(), 1);
    assert_eq!(
        python_rows(lake.lake().join("ghactivity").to_str().unwrap(), None),
        whole
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_a_day_is_compacted_and_an_hour_transformed_again_replaces_its_rows() {
    let world = support::AwsWorld::new(false).await;
    let curated = support::unique("curated");
    world.s3_in(&curated, reqwest::Method::PUT, "", None).await;
    let lake = Lake::new();
    let mut urls = Vec::new();
    for hour in ["2024-04-03-1", "2024-04-03-2"] {
        let raw = generated_hour(&lake, hour, 3000);
        let key = format!("landing/ghactivity/{hour}.json.gz");
        let body = Some(std::fs::read(&raw).unwrap());
        world
            .s3_in(
                &world.bucket,
                reqwest::Method::PUT,
                &format!("/{key}"),
                body,
            )
            .await;
        urls.push(format!("s3://{}/{key}", world.bucket));
    }
    let elt_aws = |args: &[&str]| {
        let mut command = world.command(env!("CARGO_BIN_EXE_elt"), args);
        command.env("CURATED_BUCKET", &curated);
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    for url in &urls {
        elt_aws(&["transform", "--aws", url]);
    }
    let uri = format!("s3://{curated}/ghactivity");
    let options = support::delta_storage_options();
    let whole = python_rows(&uri, Some(&options));
    let compact_the_day = || {
        let args = [
            "compact",
            "--aws",
            "--from",
            "2024-04-03",
            "--to",
            "2024-04-03",
        ];
        let report = elt_aws(&args);
        assert!(report.contains(r#""outcome":"compacted""#), "{report}");
    };
    let verify_findings = || -> Vec<Value> {
        let args = [
            "verify",
            "--aws",
            "--from",
            "2024-04-03-1",
            "--to",
            "2024-04-03-2",
        ];
        let mut command = world.command(env!("CARGO_BIN_EXE_elt"), &args);
        command
            .args(["--format", "json"])
            .env("CURATED_BUCKET", &curated);
        let out = command.output().unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["findings"].as_array().unwrap().clone()
    };
    compact_the_day();
    assert_eq!(python_rows(&uri, Some(&options)), whole);
    elt_aws(&["transform", "--aws", &urls[0]]);
    assert_eq!(python_rows(&uri, Some(&options)), whole);
    assert_eq!(verify_findings(), Vec::<Value>::new());
    compact_the_day();
    assert_eq!(python_rows(&uri, Some(&options)), whole);
    assert_eq!(verify_findings(), Vec::<Value>::new());
}

#[test]
fn real_events_of_every_era_compact_into_their_days_and_verify_clean() {
    // GHArchive's real events, 2011 to 2026, as one hour: its rows fall in some 200 days.
    let lake = Lake::new();
    let real = lake.write_raw(
        "2024-03-05-14.json.gz",
        &lake::gzip(include_bytes!("../fixtures/real-events.jsonl")),
    );
    let legacy = lake.write_raw(
        "2013-03-05-10.json.gz",
        &lake::gzip(include_bytes!("../fixtures/legacy-events.jsonl")),
    );
    let rows: u64 = lake
        .transform(&[&real, &legacy], &[])
        .unwrap()
        .iter()
        .map(|s| s.rows)
        .sum();
    let report = lake.compact("2011-01-01", "2026-12-31");
    assert!(report.len() > 100, "{} days", report.len());
    assert!(
        outcome(&report).iter().all(|o| *o == "compacted"),
        "{report:?}"
    );
    let table = lake.lake().join("ghactivity");
    assert_eq!(python_rows(table.to_str().unwrap(), None), rows);
    for hour in ["2024-03-05-14", "2013-03-05-10"] {
        assert_eq!(lake.findings(hour, hour), Vec::<Value>::new(), "{hour}");
    }
    let again = lake.compact("2011-01-01", "2026-12-31");
    assert!(outcome(&again).iter().all(|o| *o == "already_compact"));
}
