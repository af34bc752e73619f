//! The local lake as the end-to-end tests use it: raw files in a temporary folder, `elt transform`
//! run on them, and the lake's files, quarantine and rows read back.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use events::{HourOutputs, RejectRecord, TransformSummary};
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
                s.rows + s.duplicates + s.rejected,
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
    /// Every file in the lake, relative path → bytes.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
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
    /// The keys in the lake other than the hours' records of their parts (`ghactivity/_outputs/`),
    /// each of which is checked against the parts that are there.
    pub fn data_keys(&self) -> Vec<String> {
        let files = self.files();
        let mut recorded = BTreeSet::new();
        for (key, bytes) in &files {
            if key.starts_with("ghactivity/_outputs/") {
                let record: HourOutputs = serde_json::from_slice(bytes).unwrap();
                recorded.extend(record.parts);
            }
        }
        let parts: BTreeSet<String> = files
            .keys()
            .filter(|k| k.ends_with(".parquet"))
            .cloned()
            .collect();
        assert_eq!(
            recorded, parts,
            "the hours' records name every part there is, and no other"
        );
        files
            .into_keys()
            .filter(|k| !k.starts_with("ghactivity/_outputs/"))
            .collect()
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
