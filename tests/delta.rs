//! The lake is a Delta table, as independent readers see it: Python `deltalake` reads what the
//! transforms wrote, a reader polling while an hour is transformed again (and runs are killed)
//! only ever sees whole results, `elt verify` finds what is wrong with the table, and
//! `elt migrate` / `elt vacuum` keep it.

mod lake;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lake::readers::{generated_hour, python_rows, run_or_kill, start_poller, stop_poller};
use lake::{elt, Lake};
use serde_json::Value;

fn rows_of(summaries: &[events::TransformSummary]) -> u64 {
    summaries.iter().map(|s| s.rows).sum()
}

#[test]
fn python_deltalake_reads_what_demo_and_transforms_wrote() {
    let lake = Lake::new();
    let dir = lake.lake();
    let out = elt(&[
        "demo",
        "--lake",
        dir.to_str().unwrap(),
        "--hours",
        "2",
        "--events",
        "3000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = dir.join("ghactivity");
    let after_demo = python_rows(table.to_str().unwrap(), None);
    assert!(after_demo > 5000, "{after_demo}");

    // Real events, and generated hours of two eras, on top.
    let real = lake.write_raw(
        "2024-03-06-10.json.gz",
        &lake::gzip(include_bytes!("../fixtures/real-events.jsonl")),
    );
    let generated = lake.path().join("raw/2013-05-01-3.json.gz");
    let gen = elt(&[
        "gen",
        "--hour",
        "2013-05-01-3",
        "--events",
        "2000",
        generated.to_str().unwrap(),
    ]);
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let summaries = lake.transform(&[&real, &generated], &[]).unwrap();
    let expected = after_demo + rows_of(&summaries);
    assert_eq!(python_rows(table.to_str().unwrap(), None), expected);
    let ours = lake.rows("SELECT count(*) AS n FROM ghactivity")[0]["n"]
        .as_u64()
        .unwrap();
    assert_eq!(ours, expected, "elt query and deltalake agree");
}

/// A raw hour of `events` generated events.
/// Re-transforms an hour `rounds` times, alternating 1 MiB parts with the default, killing
/// every third run at a different moment; `transform(max_part_mib)` builds the command.
fn churn(rounds: u32, transform: impl Fn(Option<&str>) -> Command) {
    for round in 0..rounds {
        let parts = (round % 2 == 0).then_some("1");
        let kill = (round % 3 == 2).then(|| Duration::from_millis(300 + u64::from(round) * 350));
        run_or_kill(transform(parts), kill);
    }
    // A last whole run, so that what the kills left is taken over.
    run_or_kill(transform(None), None);
}

fn assert_only_whole(polled: &[(u64, u64)], whole: u64) {
    assert!(polled.len() > 5, "the reader polled: {polled:?}");
    let torn: Vec<_> = polled.iter().filter(|(_, rows)| *rows != whole).collect();
    assert!(
        torn.is_empty(),
        "a reader saw other than the hour's {whole} rows: {torn:?}"
    );
    let versions: std::collections::BTreeSet<u64> = polled.iter().map(|(v, _)| *v).collect();
    assert!(
        versions.len() > 2,
        "the table moved on while polled: {versions:?}"
    );
}

#[test]
fn a_reader_sees_whole_hours_while_the_hour_is_transformed_again_and_runs_are_killed() {
    let lake = Lake::new();
    let raw = generated_hour(&lake, "2024-04-02-7", 6000);
    let summaries = lake.transform(&[&raw], &[]).unwrap();
    let whole = rows_of(&summaries);
    let table = lake.lake().join("ghactivity");
    let (child, out, stop) = start_poller(table.to_str().unwrap(), lake.path(), None);
    churn(support::trials(5) as u32, |parts| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_elt"));
        command.env("COMMIT_LEASE_SECONDS", "1").args([
            "transform",
            "--lake",
            lake.lake().to_str().unwrap(),
        ]);
        if let Some(mib) = parts {
            command.args(["--max-part-mib", mib]);
        }
        command.arg(&raw);
        command
    });
    let polled = stop_poller(child, &out, &stop);
    assert_only_whole(&polled, whole);
    assert_eq!(python_rows(table.to_str().unwrap(), None), whole);
    let (_, report) = lake.verify_json("2024-04-02-7", "2024-04-02-7");
    let kinds: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .filter(|k| *k != "raw_missing")
        .collect();
    assert!(
        kinds.iter().all(|k| *k == "orphan"),
        "only the killed runs' files are left over: {report}"
    );
    // They go with a vacuum (a retention of 0 hours here: nobody else reads this lake).
    lake.vacuum_now();
    assert!(lake.findings("2024-04-02-7", "2024-04-02-7").is_empty());
    assert_eq!(python_rows(table.to_str().unwrap(), None), whole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_a_reader_sees_whole_hours_while_the_hour_is_transformed_again() {
    let world = support::AwsWorld::new(false).await;
    let curated = support::unique("curated");
    world.s3_in(&curated, reqwest::Method::PUT, "", None).await;
    let lake = Lake::new();
    let hour = "2024-04-03-8";
    let raw = generated_hour(&lake, hour, 6000);
    let key = format!("landing/ghactivity/{hour}.json.gz");
    world
        .s3_in(
            &world.bucket,
            reqwest::Method::PUT,
            &format!("/{key}"),
            Some(std::fs::read(&raw).unwrap()),
        )
        .await;
    let url = format!("s3://{}/{key}", world.bucket);
    let transform = |parts: Option<&str>| {
        let mut args = vec!["transform", "--aws"];
        if let Some(mib) = parts {
            args.extend(["--max-part-mib", mib]);
        }
        args.push(&url);
        let mut command = world.command(env!("CARGO_BIN_EXE_elt"), &args);
        command
            .env("CURATED_BUCKET", &curated)
            .env("COMMIT_LEASE_SECONDS", "1");
        command
    };
    run_or_kill(transform(None), None);
    let options = support::delta_storage_options();
    let uri = format!("s3://{curated}/ghactivity");
    let whole = python_rows(&uri, Some(&options));
    assert!(whole > 5000, "{whole}");
    let (child, out, stop) = start_poller(&uri, lake.path(), Some(&options));
    churn(support::trials(4) as u32, transform);
    let polled = stop_poller(child, &out, &stop);
    assert_only_whole(&polled, whole);
}

/// The lines of a gzip file.
fn lines_of(bytes: &[u8]) -> Vec<String> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text.lines().map(str::to_string).collect()
}

fn kinds(findings: &[Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn verify_finds_an_orphan_a_removed_file_and_an_event_lost_across_hours() {
    let lake = Lake::new();
    let (a, b) = ("2025-03-05-14", "2025-03-05-15");
    let a_lines = lines_of(&support::gzip_lines(a, 200));
    let mut b_lines = lines_of(&support::gzip_lines(b, 200));
    // B also holds ten of A's events: B's commit drops them, A holds them.
    b_lines.extend(a_lines[..10].iter().cloned());
    let raw_a = lake.write_raw(
        &format!("{a}.json.gz"),
        &lake::gzip(a_lines.join("\n").as_bytes()),
    );
    let raw_b = lake.write_raw(
        &format!("{b}.json.gz"),
        &lake::gzip(b_lines.join("\n").as_bytes()),
    );
    lake.transform(&[&raw_a], &[]).unwrap();
    let summary = lake.transform(&[&raw_b], &[]).unwrap();
    assert_eq!(summary[0].duplicates_across_hours, 10);
    assert!(lake.findings(a, b).is_empty(), "a good lake is clean");

    // A new upload of A without those ten: B's copies of them are no longer anywhere.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&raw_a, lake::gzip(a_lines[10..].join("\n").as_bytes())).unwrap();
    lake.transform(&[&raw_a], &[]).unwrap();
    let found = lake.findings(a, b);
    assert_eq!(kinds(&found), ["lost_across_hours"], "{found:?}");
    assert_eq!(found[0]["hour"], b);
    // Transforming B again keeps them.
    let again = lake.transform(&[&raw_b], &[]).unwrap();
    assert_eq!(again[0].duplicates_across_hours, 0);
    assert!(lake.findings(a, b).is_empty());
    assert_eq!(
        python_rows(lake.lake().join("ghactivity").to_str().unwrap(), None),
        400,
        "each event once: A's 190 left, B's 200 and the 10 it holds again"
    );

    // A planted copy of a part is an orphan; a part of the table removed is missing.
    let record = &lake.commits()[a];
    let part = lake.lake().join(&record.parts[0]);
    let planted = part.with_file_name(format!("part-{a}-0042.snappy.parquet"));
    std::fs::copy(&part, &planted).unwrap();
    let found = lake.findings(a, b);
    assert_eq!(kinds(&found), ["orphan"], "{found:?}");
    std::fs::remove_file(&part).unwrap();
    let found = lake.findings(a, b);
    assert!(
        kinds(&found).contains(&"part_missing".to_string()),
        "{found:?}"
    );
    // Transforming the hour again mends the table; a vacuum takes the planted copy.
    lake.transform(&[&raw_a], &[]).unwrap();
    let vacuumed = lake.vacuum_now();
    assert!(
        vacuumed.iter().any(|k| k.contains("0042")),
        "the planted copy is vacuumed: {vacuumed:?}"
    );
    assert!(lake.findings(a, b).is_empty());
}

#[test]
fn migrate_turns_a_lake_of_the_older_layout_into_the_table_in_place() {
    let lake = Lake::new();
    let hours = ["2025-06-01-0", "2025-06-01-1"];
    let raws: Vec<PathBuf> = hours
        .iter()
        .map(|h| lake.write_raw(&format!("{h}.json.gz"), &support::gzip_lines(h, 300)))
        .collect();
    let refs: Vec<&Path> = raws.iter().map(PathBuf::as_path).collect();
    let summaries = lake.transform(&refs, &[]).unwrap();
    // The older layout: the same parts and records, no log.
    let table = lake.lake().join("ghactivity");
    std::fs::remove_dir_all(table.join("_delta_log")).unwrap();
    let before = lake.all_files();
    let migrate = |lake: &Lake| {
        let out = elt(&["migrate", "--lake", lake.lake().to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let report = migrate(&lake);
    assert_eq!(report["hours"], 2, "{report}");
    // Nothing copied or rewritten: every file as it was, beside the new log.
    let after = lake.all_files();
    for (key, bytes) in &before {
        assert_eq!(after.get(key), Some(bytes), "{key} untouched");
    }
    assert_eq!(
        python_rows(table.to_str().unwrap(), None),
        rows_of(&summaries)
    );
    assert!(lake.findings(hours[0], hours[1]).is_empty());
    let again = migrate(&lake);
    assert_eq!(
        (again["hours"].as_u64(), again["already"].as_u64()),
        (Some(0), Some(2))
    );
    // A transform after the migration replaces the hour's migrated parts.
    lake.transform(&refs[..1], &[]).unwrap();
    assert!(lake.findings(hours[0], hours[1]).is_empty());
    assert_eq!(
        python_rows(table.to_str().unwrap(), None),
        rows_of(&summaries)
    );
}

#[test]
fn every_hundredth_commit_writes_a_checkpoint_that_readers_and_verify_use() {
    let lake = Lake::new();
    let first: events::Hour = "2025-07-01-0".parse().unwrap();
    let hours: Vec<events::Hour> = std::iter::successors(Some(first), |h| Some(h.next()))
        .take(102)
        .collect();
    let raws: Vec<PathBuf> = hours
        .iter()
        .map(|h| {
            let name = h.to_string();
            lake.write_raw(&format!("{name}.json.gz"), &support::gzip_lines(&name, 3))
        })
        .collect();
    let refs: Vec<&Path> = raws.iter().map(PathBuf::as_path).collect();
    let summaries = lake.transform(&refs, &[]).unwrap();
    let log = lake.lake().join("ghactivity/_delta_log");
    assert!(log.join("00000000000000000100.checkpoint.parquet").exists());
    let last: Value =
        serde_json::from_slice(&std::fs::read(log.join("_last_checkpoint")).unwrap()).unwrap();
    assert_eq!(last["version"], 100);
    let table = lake.lake().join("ghactivity");
    assert_eq!(
        python_rows(table.to_str().unwrap(), None),
        rows_of(&summaries)
    );
    // verify reads each hour's generation from the checkpoint and the commits after it.
    let from = hours[0].to_string();
    let to = hours[hours.len() - 1].to_string();
    assert!(lake.findings(&from, &to).is_empty());
}
