//! Exactly once, whatever happens: concurrent transforms of one hour, `kill -9` at any moment,
//! S3 faults during a transform and its commit, events repeated across neighbouring hours, and
//! `elt verify` catching what is wrong. Many-trial tests run a handful of trials by default;
//! `ELT_TRIALS=N` runs more.

mod lake;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use events::TransformSummary;
use lake::Lake;

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// An hour of `events` real-shaped lines: the first tenth late events of the day before, three
/// lines the quarantine takes; several parts at `--max-part-mib 1`.
fn awkward_hour(hour: &str, events: usize) -> Vec<u8> {
    let text = gunzip(&support::gzip_lines(hour, events));
    let start = hour.parse::<events::Hour>().unwrap().start();
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        let mut event: serde_json::Value = serde_json::from_str(line).unwrap();
        if n < events / 10 {
            let late = start - chrono::Duration::seconds(60 + n as i64);
            event["created_at"] = late.format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
        }
        out.push_str(&format!("{event}\n"));
        if n % 1000 == 500 {
            out.push_str("{\"id\": \"not an event\"\n");
        }
    }
    support::gzip(out.as_bytes())
}

fn event_ids(lines: &str) -> BTreeSet<String> {
    lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// `elt verify` on a local lake; its exit status and report.
fn verify_local(lake: &Lake, from: &str, to: &str) -> (bool, serde_json::Value) {
    lake.verify_json(from, to)
}

/// Writes a raw file where the local ingest keeps them (`LAKE/raw/`), so that `elt verify` finds it.
fn put_raw(lake: &Lake, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = lake.lake().join("raw").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn elt_command(lake: &Lake, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_elt"));
    command
        .args(args)
        .arg("--lake")
        .arg(lake.lake())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

// ---------------------------------------------------------------------------------------------
// events repeated across neighbouring hours

/// Hour 14, and hour 15 repeating 400 of hour 14's events at its start (as GHArchive's files
/// have since 2025), in `lake/raw/`.
fn shared_hours(lake: &Lake) -> (std::path::PathBuf, std::path::PathBuf, usize) {
    let a = gunzip(&support::gzip_lines("2025-03-05-14", 2000));
    let b = gunzip(&support::gzip_lines("2025-03-05-15", 2000));
    let repeated: String = a
        .lines()
        .skip(700)
        .take(400)
        .map(|l| format!("{l}\n"))
        .collect();
    let b = format!("{repeated}{b}");
    let pa = put_raw(lake, "2025-03-05-14.json.gz", &support::gzip(a.as_bytes()));
    let pb = put_raw(lake, "2025-03-05-15.json.gz", &support::gzip(b.as_bytes()));
    let distinct = event_ids(&a).union(&event_ids(&b)).count();
    (pa, pb, distinct)
}

fn assert_each_event_once(lake: &Lake, distinct: usize, summaries: &[TransformSummary]) {
    let counts =
        &lake.rows("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM ghactivity")[0];
    assert_eq!(counts["n"].as_u64(), Some(distinct as u64), "{counts:?}");
    assert_eq!(counts["d"].as_u64(), Some(distinct as u64), "{counts:?}");
    let across: u64 = summaries.iter().map(|s| s.duplicates_across_hours).sum();
    assert_eq!(across, 400, "the repeats are counted apart: {summaries:?}");
    let (clean, report) = verify_local(lake, "2025-03-05-14", "2025-03-05-15");
    assert!(clean, "{report}");
    lake.data_keys();
}

#[test]
fn events_repeated_across_neighbouring_hours_land_once_whatever_the_order() {
    for reversed in [false, true] {
        let lake = Lake::new();
        let (a, b, distinct) = shared_hours(&lake);
        let order: [&Path; 2] = if reversed { [&b, &a] } else { [&a, &b] };
        let mut summaries = Vec::new();
        for file in order {
            summaries.extend(lake.transform(&[file], &[]).unwrap());
        }
        // The hour transformed second drops the 400 the first has committed.
        assert_eq!(summaries[1].duplicates_across_hours, 400, "{summaries:?}");
        assert_each_event_once(&lake, distinct, &summaries);

        // Transforming the first hour again changes nothing: its neighbour holds no repeats.
        let before = lake.files();
        let again = lake.transform(&[order[0]], &[]).unwrap();
        assert_eq!(again[0].duplicates_across_hours, 0);
        assert!(lake.files() == before, "a re-run changed the lake");
    }
}

#[test]
fn events_repeated_across_neighbouring_hours_land_once_when_transformed_at_once() {
    for _ in 0..support::trials(2) {
        let lake = Lake::new();
        let (a, b, distinct) = shared_hours(&lake);
        let children: Vec<_> = [&a, &b]
            .iter()
            .map(|file| {
                elt_command(&lake, &["transform", file.to_str().unwrap()])
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut summaries = Vec::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            summaries.push(serde_json::from_slice::<TransformSummary>(&out.stdout).unwrap());
        }
        assert_each_event_once(&lake, distinct, &summaries);
    }
}

#[test]
fn verify_catches_a_planted_copy_a_missing_part_and_an_unfinished_hour() {
    let lake = Lake::new();
    let (a, b, _) = shared_hours(&lake);
    lake.transform(&[&a, &b], &[]).unwrap();
    assert!(verify_local(&lake, "2025-03-05-14", "2025-03-05-15").0);

    let part = lake
        .data_keys()
        .into_iter()
        .find(|k| k.contains("part-2025-03-05-14-"))
        .unwrap();
    let source = lake.lake().join(&part);
    // A copy under another part number, and one in another day's partition.
    let renamed = source.with_file_name("part-2025-03-05-14-0042.snappy.parquet");
    std::fs::copy(&source, &renamed).unwrap();
    let elsewhere = lake
        .lake()
        .join("ghactivity/year=2025/month=03/dayofmonth=06/part-2025-03-05-14-0000.snappy.parquet");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    std::fs::copy(&source, &elsewhere).unwrap();
    let (clean, report) = verify_local(&lake, "2025-03-05-14", "2025-03-05-15");
    assert!(!clean);
    let planted: Vec<_> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "orphan")
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(planted.len(), 2, "{report}");
    // The table never referenced them: readers never saw them, and a vacuum removes them.
    assert_eq!(lake.vacuum_now().len(), 2);
    assert!(!renamed.exists() && !elsewhere.exists());
    assert!(verify_local(&lake, "2025-03-05-14", "2025-03-05-15").0);

    // A part gone, and an hour never transformed, are findings too.
    std::fs::remove_file(&source).unwrap();
    put_raw(
        &lake,
        "2025-03-05-16.json.gz",
        &support::gzip_lines("2025-03-05-16", 10),
    );
    let (clean, report) = verify_local(&lake, "2025-03-05-14", "2025-03-05-17");
    assert!(!clean);
    let kinds: BTreeSet<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["not_committed", "part_missing", "raw_missing", "row_count"].into(),
        "{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// kill -9

/// The state of `hour`'s commit record in a local lake.
fn commit_state(lake: &Lake, hour: &str) -> Option<events::commits::CommitState> {
    use adapters::CommitStore;
    let store = adapters::SqliteJobStore::open(&lake.lake().join("state.sqlite")).unwrap();
    let key = events::commits::commit_key("ghactivity/", hour.parse().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(store.get_commit(&key))
        .unwrap()
        .map(|r| r.state)
}

/// The lake a clean run leaves.
fn clean_lake(raw: &[u8], name: &str) -> BTreeMap<String, Vec<u8>> {
    let lake = Lake::new();
    let file = put_raw(&lake, name, raw);
    lake.transform(&[&file], &["--max-part-mib", "1"]).unwrap();
    lake.files()
}

#[test]
fn after_kill_9_at_any_moment_a_rerun_leaves_the_lake_of_a_clean_run() {
    let name = "2025-03-06-0.json.gz";
    let raw = awkward_hour("2025-03-06-0", 3000);
    let clean = clean_lake(&raw, name);
    assert!(
        clean.keys().filter(|k| k.ends_with(".parquet")).count() >= 3,
        "{:?}",
        clean.keys()
    );
    assert!(
        clean.keys().any(|k| k.contains("dayofmonth=05")),
        "late events"
    );
    assert!(clean.keys().any(|k| k.starts_with("_rejects/")));

    // How long a run takes with its commit slowed (so that kills land in it often).
    let slowed = |lake: &Lake, file: &Path, part_mib: &str| {
        elt_command(
            lake,
            &[
                "transform",
                "--max-part-mib",
                part_mib,
                file.to_str().unwrap(),
            ],
        )
        .env("COMMIT_STEP_DELAY_MS", "150")
        .env("COMMIT_LEASE_SECONDS", "1")
        .spawn()
        .unwrap()
    };
    let calibration = Lake::new();
    let file = put_raw(&calibration, name, &raw);
    let started = Instant::now();
    assert!(slowed(&calibration, &file, "1").wait().unwrap().success());
    let whole = started.elapsed();

    let n = support::trials(6);
    let (mut killed, mut in_commit) = (0, 0);
    for trial in 0..n {
        let lake = Lake::new();
        let file = put_raw(&lake, name, &raw);
        // Half the trials kill a run that replaces an earlier result with another part split.
        let replacing = trial % 2 == 1;
        if replacing {
            lake.transform(&[&file], &[]).unwrap();
        }
        // Moments spread over the whole run, jittered, the last ones in the commit.
        let fraction = (trial as f64 + 0.5 + 0.4 * (trial as f64 * 2.399).sin()) / n as f64;
        let moment = whole.mul_f64(fraction.clamp(0.02, 1.0));
        let mut child = slowed(&lake, &file, "1");
        std::thread::sleep(moment);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        if commit_state(&lake, "2025-03-06-0") == Some(events::commits::CommitState::Committing) {
            in_commit += 1;
        }

        let rerun = elt_command(
            &lake,
            &["transform", "--max-part-mib", "1", file.to_str().unwrap()],
        )
        .env("COMMIT_LEASE_SECONDS", "1")
        .output()
        .unwrap();
        assert!(
            rerun.status.success(),
            "trial {trial} at {moment:?}: {}",
            String::from_utf8_lossy(&rerun.stderr)
        );
        let after = lake.files();
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            clean.keys().collect::<Vec<_>>(),
            "trial {trial}: killed at {moment:?} of {whole:?} (replacing: {replacing})"
        );
        assert!(
            after == clean,
            "trial {trial}: the lake differs from a clean run's byte for byte"
        );
        // The killed run's parts, which no version references, go with a vacuum.
        lake.vacuum_now();
        let (ok, report) = verify_local(&lake, "2025-03-06-0", "2025-03-06-0");
        assert!(ok, "trial {trial}: {report}");
        lake.data_keys();
    }
    eprintln!("{n} trials: {killed} runs killed, {in_commit} of them in the middle of a commit");
    assert!(killed > 0, "no trial killed a run");
    if n >= 4 {
        assert!(in_commit > 0, "no trial interrupted a commit");
    }
}

// ---------------------------------------------------------------------------------------------
// a run that starts while another commits

/// Waits until `hour`'s record is a claim not yet finished.
fn wait_for_claim(lake: &Lake, hour: &str) {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while commit_state(lake, hour) != Some(events::commits::CommitState::Committing) {
        assert!(Instant::now() < deadline, "no claim of {hour} seen");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_run_that_starts_while_another_commits_waits_then_gives_way_or_builds_on_it() {
    let name = "2025-03-06-0.json.gz";
    let raw = awkward_hour("2025-03-06-0", 3000);
    let (small, whole) = (clean_lake(&raw, name), {
        let lake = Lake::new();
        let file = put_raw(&lake, name, &raw);
        lake.transform(&[&file], &[]).unwrap();
        lake.files()
    });
    for newer_raw in [false, true] {
        let lake = Lake::new();
        let file = put_raw(&lake, name, &raw);
        let slow = elt_command(
            &lake,
            &["transform", "--max-part-mib", "1", file.to_str().unwrap()],
        )
        .env("COMMIT_STEP_DELAY_MS", "300")
        .spawn()
        .unwrap();
        wait_for_claim(&lake, "2025-03-06-0");
        if newer_raw {
            // A backfill rewrote the raw object meanwhile: the second run read a newer upload.
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::fs::write(&file, &raw).unwrap();
        }
        let second = elt_command(&lake, &["transform", file.to_str().unwrap()])
            .output()
            .unwrap();
        let first = slow.wait_with_output().unwrap();
        for out in [&first, &second] {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let second: TransformSummary = serde_json::from_slice(&second.stdout).unwrap();
        if newer_raw {
            // It waited for the first commit to finish, then committed over it.
            assert!(second.superseded.is_none(), "{second:?}");
            assert!(lake.files() == whole, "not the newer run's whole output");
        } else {
            // The same raw object: the first run's result stands.
            assert!(second.superseded.is_some(), "{second:?}");
            assert!(lake.files() == small, "not the first run's whole output");
        }
        assert!(verify_local(&lake, "2025-03-06-0", "2025-03-06-0").0);
    }
}

// ---------------------------------------------------------------------------------------------
// commit-store faults

/// A commit store whose replies go missing: every `lose_every`-th write goes through and its
/// reply is lost; with `refuse`, it does not go through either.
struct LossyCommits {
    inner: adapters::SqliteJobStore,
    calls: std::sync::atomic::AtomicUsize,
    lose_every: usize,
    refuse: bool,
}

#[async_trait::async_trait]
impl adapters::CommitStore for LossyCommits {
    async fn get_commit(&self, key: &str) -> anyhow::Result<Option<events::commits::HourCommit>> {
        self.inner.get_commit(key).await
    }

    async fn put_commit(
        &self,
        commit: &events::commits::HourCommit,
        expected: Option<u64>,
        unchanged: &[adapters::commits::Expected],
    ) -> anyhow::Result<bool> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let lose = n.is_multiple_of(self.lose_every);
        if lose && self.refuse {
            anyhow::bail!("injected: the write timed out");
        }
        let written = self.inner.put_commit(commit, expected, unchanged).await?;
        if lose {
            anyhow::bail!("injected: the reply was lost");
        }
        Ok(written)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_replies_of_the_commit_store_are_recognised_and_failed_writes_are_taken_over() {
    let name = "2025-03-06-0.json.gz";
    let raw = awkward_hour("2025-03-06-0", 3000);
    let clean = clean_lake(&raw, name);
    let options = transform::TransformOptions {
        max_part_bytes: 1024 * 1024,
        commit_lease: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    for (lose_every, refuse) in [(1, false), (2, false), (3, false), (1, true), (2, true)] {
        let lake = Lake::new();
        let file = put_raw(&lake, name, &raw);
        let lossy = |lose_every, refuse| transform::Lake {
            store: adapters::objects::folder(&lake.lake()).unwrap(),
            commits: std::sync::Arc::new(LossyCommits {
                inner: adapters::SqliteJobStore::open(&lake.lake().join("state.sqlite")).unwrap(),
                calls: Default::default(),
                lose_every,
                refuse,
            }),
            place: lake_table::Place::Folder(lake.lake()),
        };
        let open = || async { transform::RawFile::open(&file) };
        let first = transform::transform_hour(open, &lossy(lose_every, refuse), &options).await;
        if refuse {
            // A write that never went through fails the run; the next one takes over.
            assert!(
                first.is_err(),
                "every {lose_every}th write refused, yet {first:?}"
            );
            transform::transform_hour(open, &lossy(usize::MAX, false), &options)
                .await
                .unwrap();
        } else {
            let summary =
                first.unwrap_or_else(|e| panic!("every {lose_every}th reply lost: {e:#}"));
            assert!(summary.superseded.is_none());
        }
        let files = lake.files();
        assert!(
            files == clean,
            "lose every {lose_every} (refused: {refuse}): not a clean run's lake"
        );
        lake.vacuum_now();
        assert!(verify_local(&lake, "2025-03-06-0", "2025-03-06-0").0);
    }
}
