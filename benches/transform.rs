//! `cargo bench`: transform one GHArchive-sized hour (150,000 events, about 0.5 GB of JSON) and
//! report wall time, events/s, MB/s of JSON and peak RSS, beside the floor (`gzip -dc` alone)
//! and DuckDB doing the same job on the same file with 2 threads (when `duckdb` is importable in
//! python3; `pip install duckdb`).
//!
//! Environment: BENCH_EVENTS (default 150000), BENCH_RUNS (default 3), BENCH_SKIP_DUCKDB=1.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{env_number, hour_file, measure, median};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here
    }
    let elt = env!("CARGO_BIN_EXE_elt");
    let events: u64 = env_number("BENCH_EVENTS", 150_000);
    let runs: usize = env_number("BENCH_RUNS", 3);
    let (dir, input) = hour_file(elt, events);
    let gz_mib = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0) as f64 / (1024.0 * 1024.0);

    let mut walls = Vec::new();
    let mut rss = Vec::new();
    let mut summary = serde_json::Value::Null;
    for run in 0..runs {
        let m = common::transform(
            elt,
            &dir.join(format!("lake-{run}")),
            &input,
            Stdio::piped(),
        );
        summary = serde_json::from_str(m.stdout.trim()).expect("a summary line");
        walls.push(m.wall.as_secs_f64());
        rss.push(m.peak_rss_mib);
    }
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
    let wall = median(walls.clone());
    let lines = summary["lines"].as_f64().unwrap_or(0.0);
    let json_mb = summary["json_bytes"].as_f64().unwrap_or(0.0) / 1e6;
    let peak = rss.iter().copied().fold(0.0, f64::max);

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
    println!(
        "{:<28} {:>8.2} {:>12.0} {:>10.0} {:>14.0}   (runs, s: {}; RSS, MiB: {})",
        "elt transform",
        wall,
        lines / wall,
        json_mb / wall,
        peak,
        walls
            .iter()
            .map(|w| format!("{w:.2}"))
            .collect::<Vec<_>>()
            .join(" "),
        rss.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );

    if std::env::var_os("BENCH_SKIP_DUCKDB").is_none() {
        duckdb_peer(&input, &dir, lines, json_mb);
    }
}

fn duckdb_peer(input: &Path, dir: &Path, lines: f64, json_mb: f64) {
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
        lines / wall,
        json_mb / wall,
        m.peak_rss_mib,
        m.stdout.trim()
    );
}
