//! The lake is a Delta table, as independent readers see it: Python `deltalake` reads what the
//! transforms wrote, a reader polling while an hour is transformed again (and runs are killed)
//! only ever sees whole results, `elt verify` finds what is wrong with the table, and
//! `elt migrate` / `elt vacuum` keep it.

mod lake;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lake::{elt, Lake};
use serde_json::Value;

/// Polls a Delta table's row count with Python `deltalake` until told to stop.
const POLLER: &str = r#"
import json, os, sys
from deltalake import DeltaTable
uri, out, stop = sys.argv[1], sys.argv[2], sys.argv[3]
options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
with open(out, "w") as f:
    while not os.path.exists(stop):
        try:
            table = DeltaTable(uri, storage_options=options)
            rows = table.to_pyarrow_dataset().count_rows()
            f.write(f"{table.version()} {rows}\n")
        except Exception as e:
            f.write("error " + f"{type(e).__name__}: {e}".replace("\n", " ") + "\n")
        f.flush()
# deltalake's threads may abort a normal interpreter exit
os._exit(0)
"#;

/// Python `deltalake`'s row count of the table at `uri`.
fn python_rows(uri: &str, options: Option<&Value>) -> u64 {
    let script = "import json, os, sys\nfrom deltalake import DeltaTable\n\
        o = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None\n\
        t = DeltaTable(sys.argv[1], storage_options=o)\n\
        print(t.to_pyarrow_dataset().count_rows(), flush=True)\nos._exit(0)\n";
    let mut command = Command::new("python3");
    command.args(["-c", script, uri]);
    if let Some(options) = options {
        command.arg(options.to_string());
    }
    let out = command.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "python deltalake: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

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
fn generated_hour(lake: &Lake, hour: &str, events: u64) -> PathBuf {
    let path = lake.path().join(format!("raw/{hour}.json.gz"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let out = elt(&[
        "gen",
        "--hour",
        hour,
        "--events",
        &events.to_string(),
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Starts the poller on `uri`; `stop` ends it.
fn start_poller(uri: &str, work: &Path, options: Option<&Value>) -> (Child, PathBuf, PathBuf) {
    let (out, stop) = (work.join("polled.txt"), work.join("stop"));
    let mut command = Command::new("python3");
    command
        .args([
            "-c",
            POLLER,
            uri,
            out.to_str().unwrap(),
            stop.to_str().unwrap(),
        ])
        .stdout(Stdio::null());
    if let Some(options) = options {
        command.arg(options.to_string());
    }
    (command.spawn().expect("python3 runs"), out, stop)
}

/// Stops the poller; what it saw: (table version, rows) per poll.
fn stop_poller(mut child: Child, out: &Path, stop: &Path) -> Vec<(u64, u64)> {
    std::fs::write(stop, b"").unwrap();
    child.wait().unwrap();
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|line| {
            let (version, rows) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("a poll: {line}"));
            let version = version
                .parse()
                .unwrap_or_else(|_| panic!("the reader failed: {line}"));
            (version, rows.parse().unwrap())
        })
        .collect()
}

/// Runs `command` to its end, or kills it (SIGKILL) after `kill_after`.
fn run_or_kill(mut command: Command, kill_after: Option<Duration>) {
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    match kill_after {
        Some(after) => {
            std::thread::sleep(after);
            let _ = child.kill();
            let _ = child.wait();
        }
        None => assert!(child.wait().unwrap().success(), "a transform failed"),
    }
}

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
    assert!(findings(&lake, "2024-04-02-7", "2024-04-02-7").is_empty());
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
    let options = serde_json::json!({
        "AWS_ENDPOINT_URL": support::moto().endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ALLOW_HTTP": "true",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
    });
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

fn findings(lake: &Lake, from: &str, to: &str) -> Vec<Value> {
    let (_, report) = lake.verify_json(from, to);
    // The raw files of these tests are outside the lake.
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] != "raw_missing")
        .cloned()
        .collect()
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
    assert!(findings(&lake, a, b).is_empty(), "a good lake is clean");

    // A new upload of A without those ten: B's copies of them are no longer anywhere.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&raw_a, lake::gzip(a_lines[10..].join("\n").as_bytes())).unwrap();
    lake.transform(&[&raw_a], &[]).unwrap();
    let found = findings(&lake, a, b);
    assert_eq!(kinds(&found), ["lost_across_hours"], "{found:?}");
    assert_eq!(found[0]["hour"], b);
    // Transforming B again keeps them.
    let again = lake.transform(&[&raw_b], &[]).unwrap();
    assert_eq!(again[0].duplicates_across_hours, 0);
    assert!(findings(&lake, a, b).is_empty());
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
    let found = findings(&lake, a, b);
    assert_eq!(kinds(&found), ["orphan"], "{found:?}");
    std::fs::remove_file(&part).unwrap();
    let found = findings(&lake, a, b);
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
    assert!(findings(&lake, a, b).is_empty());
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
    assert!(findings(&lake, hours[0], hours[1]).is_empty());
    let again = migrate(&lake);
    assert_eq!(
        (again["hours"].as_u64(), again["already"].as_u64()),
        (Some(0), Some(2))
    );
    // A transform after the migration replaces the hour's migrated parts.
    lake.transform(&refs[..1], &[]).unwrap();
    assert!(findings(&lake, hours[0], hours[1]).is_empty());
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
    assert!(findings(&lake, &from, &to).is_empty());
}
