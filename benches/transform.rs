//! `cargo bench`: transform one GHArchive-sized hour (150,000 events, about 0.5 GB of JSON) and
//! report wall time, events/s, MB/s of JSON and peak RSS, beside the floor (`gzip -dc` alone)
//! and DuckDB doing the same job on the same file with 2 threads (when `duckdb` is importable in
//! python3; `pip install duckdb`); then hours of the archive's older formats, of as many
//! events: a 2013 timeline hour (no ids, Pacific times) and a 2011 backfill hour.
//!
//! Environment: BENCH_EVENTS (default 150000), BENCH_RUNS (default 3), BENCH_SKIP_DUCKDB=1,
//! BENCH_SKIP_ERAS=1.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{env_number, era_hour_file, hour_file, measure, median};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here
    }
    let elt = env!("CARGO_BIN_EXE_elt");
    let events: u64 = env_number("BENCH_EVENTS", 150_000);
    let runs: usize = env_number("BENCH_RUNS", 3);
    let (dir, input) = hour_file(elt, events);
    let gz_mib = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0) as f64 / (1024.0 * 1024.0);

    let elt_run = transform_runs(elt, &dir, &input, runs);
    let gunzip = || {
        measure(
            Command::new("gzip")
                .arg("-dc")
                .arg(&input)
                .stdout(Stdio::null()),
        )
    };
    let floor = median((0..runs).map(|_| gunzip().wall.as_secs_f64()).collect());
    // The floor is measured after elt: a child that ran earlier can leave its peak in the
    // next child's `ru_maxrss` here.
    let records = elt_run.summary["records"].as_f64().unwrap_or(0.0);
    let json_mb = elt_run.summary["json_bytes"].as_f64().unwrap_or(0.0) / 1e6;

    println!(
        "input: {} — {events} events, {json_mb:.0} MB of JSON, {gz_mib:.0} MiB gzip",
        input.display()
    );
    println!(
        "{:<28} {:>8} {:>12} {:>10} {:>14}",
        "", "wall s", "events/s", "MB/s JSON", "peak RSS MiB"
    );
    println!(
        "{:<28} {:>8.2} {:>12} {:>10.0} {:>14}",
        "gzip -dc (floor)",
        floor,
        "",
        json_mb / floor,
        ""
    );
    elt_run.print("elt transform");
    if std::env::var_os("BENCH_SKIP_DUCKDB").is_none() {
        duckdb_peer(&input, &dir, records, json_mb);
    }
    if std::env::var_os("BENCH_SKIP_ERAS").is_none() {
        for (label, hour) in [
            ("elt transform, 2013 hour", "2013-02-15-20"),
            ("elt transform, 2011 hour", "2011-02-15-14"),
        ] {
            let (_, input) = era_hour_file(elt, hour, events);
            transform_runs(elt, &dir, &input, runs).print(label);
        }
    }
}

/// `runs` transforms of one file: wall times, peak RSS, and the last summary.
struct Runs {
    walls: Vec<f64>,
    rss: Vec<f64>,
    summary: serde_json::Value,
}

fn transform_runs(elt: &str, dir: &Path, input: &Path, runs: usize) -> Runs {
    let mut measured = Runs {
        walls: Vec::new(),
        rss: Vec::new(),
        summary: serde_json::Value::Null,
    };
    for run in 0..runs {
        let m = common::transform(elt, &dir.join(format!("lake-{run}")), input, Stdio::piped());
        measured.summary = serde_json::from_str(m.stdout.trim()).expect("a summary line");
        measured.walls.push(m.wall.as_secs_f64());
        measured.rss.push(m.peak_rss_mib);
    }
    measured
}

impl Runs {
    fn print(&self, label: &str) {
        let wall = median(self.walls.clone());
        let records = self.summary["records"].as_f64().unwrap_or(0.0);
        let json_mb = self.summary["json_bytes"].as_f64().unwrap_or(0.0) / 1e6;
        let peak = self.rss.iter().copied().fold(0.0, f64::max);
        let list = |values: &[f64], digits: usize| {
            values
                .iter()
                .map(|v| format!("{v:.digits$}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{label:<28} {wall:>8.2} {:>12.0} {:>10.0} {peak:>14.0}   ({json_mb:.0} MB of JSON; runs, s: {}; RSS, MiB: {})",
            records / wall,
            json_mb / wall,
            list(&self.walls, 2),
            list(&self.rss, 0),
        );
    }
}

fn duckdb_peer(input: &Path, dir: &Path, records: f64, json_mb: f64) {
    let available = Command::new("python3")
        .args(["-c", "import duckdb"])
        .stderr(Stdio::null())
        .status();
    if !available.is_ok_and(|s| s.success()) {
        println!(
            "{:<28} skipped: `pip install duckdb` to compare",
            "duckdb (2 threads)"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_peer.py");
    let out = dir.join("duckdb.parquet");
    let m = measure(
        Command::new("python3")
            .arg(&script)
            .arg(input)
            .arg(&out)
            .stdout(Stdio::piped()),
    );
    let _ = std::fs::remove_file(&out);
    if !m.ok {
        println!("{:<28} failed", "duckdb (2 threads)");
        return;
    }
    let wall = m.wall.as_secs_f64();
    println!(
        "{:<28} {:>8.2} {:>12.0} {:>10.0} {:>14.0}   ({})",
        "duckdb (2 threads)",
        wall,
        records / wall,
        json_mb / wall,
        m.peak_rss_mib,
        m.stdout.trim()
    );
}
