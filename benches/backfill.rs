//! `cargo bench --bench backfill`: what one hour of each era of the archive costs the ingest
//! (fetch and gzip check, `elt backfill` from a folder mirror) and the transform, in CPU, wall
//! time and peak memory, and hours per minute on this machine. Writes the figures the plan uses
//! (`benches/figures/backfill.json`, read by `elt backfill --plan`) and prints the whole
//! archive's estimate from them, for the README's cost table.
//!
//! Environment: BENCH_EVENTS (events per hour, default 150000), BENCH_RUNS (default 3).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{env_number, era_hour_file, measure, median, Measured};
use gh_elt::plan::{self, EraFigures, Figures, Stack};

/// An hour of each era: the 2011 backfill, the 2012–2014 timeline, today's Events API.
const ERAS: [(&str, &str); 3] = [
    ("backfill", "2011-02-15-14"),
    ("timeline", "2013-02-15-20"),
    ("events", "2024-03-05-14"),
];

fn elt() -> String {
    env!("CARGO_BIN_EXE_elt").to_string()
}

/// `elt backfill` of the one hour in `mirror` into a fresh local lake, measured.
fn ingest(mirror: &Path, hour: &str, lake: &Path) -> Measured {
    let _ = std::fs::remove_dir_all(lake);
    let source = format!("file://{}/", mirror.display());
    let m = measure(
        Command::new(elt())
            .args(["backfill", "--lake"])
            .arg(lake)
            .args(["--source", &source, "--from", hour, "--to", hour])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(m.ok, "elt backfill of {hour} failed");
    m
}

fn summary(m: &[Measured]) -> (f64, f64, f64) {
    let cpu = median(m.iter().map(|m| m.cpu_seconds).collect());
    let wall = median(m.iter().map(|m| m.wall.as_secs_f64()).collect());
    let peak = m.iter().map(|m| m.peak_rss_mib).fold(0.0, f64::max);
    (cpu, wall, peak)
}

/// Measures one era's hour: `(figures, hours a minute through both stages)`.
fn measure_era(hour: &str, events: u64, runs: usize) -> (EraFigures, f64) {
    let (dir, raw) = era_hour_file(&elt(), hour, events);
    let lake = dir.join(format!("lake-{hour}"));
    let ingests: Vec<Measured> = (0..runs).map(|_| ingest(&dir, hour, &lake)).collect();
    let stored = lake.join("raw").join(raw.file_name().unwrap_or_default());
    let transforms: Vec<Measured> = (0..runs)
        .map(|_| common::transform(&elt(), &dir.join("lake-t"), &stored, Stdio::null()))
        .collect();
    let _ = std::fs::remove_dir_all(&lake);
    let (ingest_cpu, ingest_wall, ingest_peak) = summary(&ingests);
    let (transform_cpu, transform_wall, transform_peak) = summary(&transforms);
    let gzip_mib = std::fs::metadata(&raw).map_or(0, |m| m.len()) as f64 / (1024.0 * 1024.0);
    let figures = EraFigures {
        events,
        gzip_mib,
        ingest_cpu_seconds: ingest_cpu,
        ingest_peak_mib: ingest_peak,
        transform_cpu_seconds: transform_cpu,
        transform_wall_seconds: transform_wall,
        transform_peak_mib: transform_peak,
    };
    (figures, 60.0 / (ingest_wall + transform_wall))
}

fn main() {
    let events: u64 = env_number("BENCH_EVENTS", 150_000);
    let runs: usize = env_number("BENCH_RUNS", 3);
    let mut eras = BTreeMap::new();
    println!("\n{events} events an hour, {runs} runs (median CPU and wall, highest peak):\n");
    println!(
        "{:<9} {:>9} {:>11} {:>11} {:>13} {:>14} {:>14} {:>12}",
        "era",
        "gzip MiB",
        "ingest CPU",
        "ingest MiB",
        "transform CPU",
        "transform wall",
        "transform MiB",
        "hours/min"
    );
    for (era, hour) in ERAS {
        let (f, per_minute) = measure_era(hour, events, runs);
        println!(
            "{era:<9} {:>9.1} {:>10.2}s {:>11.0} {:>12.2}s {:>13.2}s {:>14.0} {per_minute:>12.1}",
            f.gzip_mib,
            f.ingest_cpu_seconds,
            f.ingest_peak_mib,
            f.transform_cpu_seconds,
            f.transform_wall_seconds,
            f.transform_peak_mib
        );
        eras.insert(era.to_string(), f);
    }
    let figures = Figures {
        measured: format!(
            "cargo bench --bench backfill, {} UTC, {events} events an hour, {runs} runs, on a 2-core machine",
            chrono::Utc::now().format("%Y-%m-%d")
        ),
        eras,
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/figures/backfill.json");
    let text = serde_json::to_string_pretty(&figures).expect("figures as JSON");
    std::fs::write(&path, text + "\n").expect("the figures file is written");
    println!("\nwrote {}", path.display());
    print_archive(&figures);
}

/// The whole archive at the stack's defaults and at a concurrency of 1,000.
fn print_archive(figures: &Figures) {
    let from = "2011-02-12-0".parse().expect("an hour");
    let to = events::Hour::containing(chrono::Utc::now() - chrono::Duration::hours(1));
    println!("\nthe whole archive, {from} .. {to}:");
    for concurrency in [100, 1000] {
        let stack = Stack {
            concurrency,
            transform_concurrency: concurrency,
            ingest_memory_mb: 512,
            transform_memory_mb: 2048,
            hours_per_message: events::backfill::DEFAULT_HOURS_PER_MESSAGE,
        };
        let e = plan::estimate(figures, stack, from, to).expect("an estimate");
        println!(
            "  concurrency {concurrency}: {} hours, {:.2} TB of gzip, {:.0} GB-s, {} S3 requests, \
             {} SQS requests, {} DynamoDB writes, ${:.2}, {:.0} minutes",
            e.hours,
            e.gzip_bytes as f64 / 1e12,
            e.lambda_gb_seconds,
            e.s3_requests,
            e.sqs_requests,
            e.dynamodb_writes,
            e.usd,
            e.wall_seconds / 60.0
        );
    }
}
