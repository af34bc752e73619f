//! The local lake as the end-to-end tests use it: raw files in a temporary folder, `elt transform`
//! run on them, and the lake's files, quarantine and rows read back.

#![allow(dead_code)]

pub mod readers;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use adapters::CommitStore;
use events::commits::{commit_key, CommitState, HourCommit};
use events::{Hour, RejectRecord, TransformSummary};
use gh_elt::lake::{self, Format};
use serde_json::Value;

pub fn elt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_elt"))
        .args(args)
        .output()
        .expect("elt runs")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub struct Lake {
    dir: tempfile::TempDir,
}

impl Lake {
    pub fn new() -> Lake {
        Lake {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }
    pub fn write_raw(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join("raw").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }
    /// Runs `elt transform` on files; returns the summaries, or the error text.
    pub fn transform(
        &self,
        files: &[&Path],
        extra: &[&str],
    ) -> Result<Vec<TransformSummary>, String> {
        let lake = self.lake();
        let mut args = vec!["transform", "--lake", lake.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        let out = elt(&args);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let summaries: Vec<TransformSummary> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a summary line"))
            .collect();
        for s in &summaries {
            assert_eq!(
                s.records,
                s.rows + s.duplicates + s.duplicates_across_hours + s.rejected,
                "accounting identity: {s:?}"
            );
            // Every non-blank line holds a record or more; more only where one was split.
            assert!(s.records >= s.lines, "{s:?}");
            if s.repairs.lines_split == 0 {
                assert_eq!(s.records, s.lines, "{s:?}");
            }
        }
        Ok(summaries)
    }
    /// What readers see, relative path → bytes: the parts the table references (named without
    /// the run that wrote them, so that two runs of one file compare equal), the quarantine, and
    /// whatever else is in the lake but the table's log, the job state, the runs' staging and
    /// their event-id lists.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let (files, _) = self.readers_files();
        files
            .into_iter()
            .map(|(k, v)| (without_run(&k), v))
            .collect()
    }

    /// The lake's files as readers see them, by their real keys (the table's referenced parts, the
    /// quarantine, the rest but the log, job state, staging and id lists), and the keys the
    /// table references.
    fn readers_files(&self) -> (BTreeMap<String, Vec<u8>>, BTreeSet<String>) {
        let referenced = self.table_keys();
        let mut files = self.all_files();
        files.retain(|k, _| {
            !(k.starts_with("state.sqlite")
                || k.starts_with("_staging/")
                || k.starts_with("_commits/")
                || k.contains("/_delta_log/")
                || (k.starts_with("ghactivity/") && !referenced.contains(k)))
        });
        (files, referenced)
    }

    /// `elt verify --format json` on hours `from` .. `to`: its exit status and report.
    pub fn verify_json(&self, from: &str, to: &str) -> (bool, Value) {
        let lake = self.lake();
        let out = elt(&[
            "verify",
            "--lake",
            lake.to_str().unwrap(),
            "--from",
            from,
            "--to",
            to,
            "--format",
            "json",
        ]);
        let report = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("a JSON report: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.success(), report)
    }

    /// `elt verify`'s findings over `from..=to` but `raw_missing` (tests that keep their raw files
    /// outside the lake).
    pub fn findings(&self, from: &str, to: &str) -> Vec<Value> {
        let (_, report) = self.verify_json(from, to);
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] != "raw_missing")
            .cloned()
            .collect()
    }

    /// `elt compact` of the days `from..=to`: its report, one JSON value per day.
    pub fn compact(&self, from: &str, to: &str) -> Vec<Value> {
        let out = elt(&[
            "compact",
            "--lake",
            self.lake().to_str().unwrap(),
            "--from",
            from,
            "--to",
            to,
        ]);
        assert!(
            out.status.success(),
            "elt compact: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// `elt vacuum --apply` with no retention: what killed or failed runs left goes (nobody else
    /// reads a test's lake). Returns the keys removed.
    pub fn vacuum_now(&self) -> Vec<String> {
        let out = elt(&[
            "vacuum",
            "--lake",
            self.lake().to_str().unwrap(),
            "--retention-hours",
            "0",
            "--apply",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    }

    /// The keys of the parts the table's newest version references.
    pub fn table_keys(&self) -> BTreeSet<String> {
        let table = lake::table(&self.lake(), "ghactivity/").unwrap();
        // A thread of its own: the callers may be inside a runtime already.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    match runtime
                        .block_on(lake_table::snapshot::load(&table))
                        .unwrap()
                    {
                        Some(state) => state.files.into_iter().map(|f| f.key).collect(),
                        None => BTreeSet::new(),
                    }
                })
                .join()
                .unwrap()
        })
    }

    /// Every file under the lake folder.
    pub fn all_files(&self) -> BTreeMap<String, Vec<u8>> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    let rel = path
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    out.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.lake(), &self.lake(), &mut out);
        out
    }
    /// The hours' commit records, for the hours whose parts are in the lake.
    pub fn commits(&self) -> BTreeMap<String, HourCommit> {
        let hours: BTreeSet<String> = self
            .all_files()
            .keys()
            .filter_map(|k| events::part_hour(k.rsplit('/').next()?))
            .map(|hour| hour.to_string())
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = adapters::SqliteJobStore::open(&self.lake().join("state.sqlite")).unwrap();
        hours
            .into_iter()
            .filter_map(|hour| {
                let key = commit_key("ghactivity/", hour.parse::<Hour>().unwrap());
                let record = runtime.block_on(store.get_commit(&key)).unwrap()?;
                Some((hour, record))
            })
            .collect()
    }

    /// The keys of the table and quarantine, checked against the hours' commit records: every
    /// part the table references was written by a commit that is complete, and every part a
    /// commit names is in the table and there.
    pub fn data_keys(&self) -> Vec<String> {
        let (files, referenced) = self.readers_files();
        assert!(
            referenced.iter().all(|k| files.contains_key(k)),
            "every part the table references is there"
        );
        let mut recorded = BTreeSet::new();
        for (hour, record) in self.commits() {
            assert_eq!(record.state, CommitState::Committed, "{hour}: {record:?}");
            assert!(
                record.staging.starts_with("_staging/"),
                "{hour} staged outside _staging/"
            );
            recorded.extend(record.parts);
        }
        let parts: BTreeSet<String> = files
            .keys()
            .filter(|k| k.ends_with(".parquet"))
            .cloned()
            .collect();
        assert_eq!(
            recorded, parts,
            "the hours' commit records name every part there is, and no other"
        );
        files.into_keys().collect()
    }

    pub fn rejects(&self, hour: &str) -> Vec<RejectRecord> {
        let bytes = std::fs::read(
            self.lake()
                .join(format!("_rejects/ghactivity/{hour}.jsonl.gz")),
        )
        .unwrap();
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    /// Query results as JSON objects, one per row.
    pub fn rows(&self, sql: &str) -> Vec<serde_json::Map<String, Value>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let batches = runtime
            .block_on(lake::query(&self.lake(), "ghactivity/", sql))
            .unwrap();
        let mut out = Vec::new();
        lake::print(&batches, Format::Json, &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Rows of one UTC day (`YYYY-MM-DD`): found by the partition columns, and by `created_at`.
    pub fn rows_of_day(&self, date: &str) -> (u64, u64) {
        let (y, m, d) = (&date[..4], &date[5..7], &date[8..10]);
        let count = |sql: String| self.rows(&sql)[0]["n"].as_u64().unwrap();
        let pruned = count(format!(
            "SELECT count(*) AS n FROM ghactivity WHERE year = {y} AND month = {m} AND dayofmonth = {d}"
        ));
        let by_time = count(format!(
            "SELECT count(*) AS n FROM ghactivity WHERE created_at >= TIMESTAMP '{date}T00:00:00Z' \
             AND created_at < TIMESTAMP '{date}T00:00:00Z' + INTERVAL '1' DAY"
        ));
        (pruned, by_time)
    }

    /// Rows per UTC day of `created_at`, checking on the way that for every day a query pruned by
    /// the partition columns finds the rows a filter on `created_at` alone finds.
    pub fn rows_per_day(&self) -> BTreeMap<String, u64> {
        let days = self.rows(
            "SELECT CAST(date_trunc('day', created_at) AS DATE) AS day, count(*) AS n FROM ghactivity GROUP BY 1 ORDER BY 1",
        );
        let mut found = BTreeMap::new();
        for day in days {
            let date = day["day"].as_str().unwrap().to_string();
            let n = day["n"].as_u64().unwrap();
            assert_eq!(self.rows_of_day(&date), (n, n), "{date}");
            found.insert(date, n);
        }
        found
    }
}

/// A part's key without the run in its name (`…/part-HOUR-NNNN-RUN.snappy.parquet` →
/// `…/part-HOUR-NNNN.snappy.parquet`); other keys as they are.
pub fn without_run(key: &str) -> String {
    let (folder, name) = key.rsplit_once('/').unwrap_or(("", key));
    match (events::part_slot(name), folder) {
        (Some(slot), "") => slot,
        (Some(slot), folder) => format!("{folder}/{slot}"),
        (None, _) => key.to_string(),
    }
}

/// The `payload` text exactly as it stands in a line, found by a JSON parser (not a string search).
pub fn raw_payload(line: &str) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        id: String,
        #[serde(borrow)]
        payload: &'a serde_json::value::RawValue,
    }
    let raw: Raw = serde_json::from_str(line).unwrap();
    (raw.id, raw.payload.get().to_string())
}
