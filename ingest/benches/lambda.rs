//! `cargo bench -p ingest --bench lambda`: the `ingest` Lambda binary itself, through its runtime
//! loop, ingesting the benchmark hour (150,000 events, about 80 MiB of gzip) from a local HTTP
//! server into moto's S3: time to the answer and peak RSS. Uses the hour that the root package's
//! `cargo bench --bench ingest` generates (run that first). Environment: BENCH_RUNS (default 3),
//! RAW_COMPRESSION (none or zstd).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{runtime_api, AwsWorld, Mirror};

const SCHEDULE: &str = include_str!("../../events/samples/eventbridge-schedule.json");

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let compression = std::env::var("RAW_COMPRESSION").unwrap_or_else(|_| "none".into());
    let hour = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("bench-150000")
        .join("2024-03-05-14.json.gz");
    let Ok(bytes) = std::fs::read(&hour) else {
        eprintln!(
            "{} is missing: run `cargo bench --bench ingest` first",
            hour.display()
        );
        std::process::exit(1);
    };
    let mib = bytes.len() as f64 / (1024.0 * 1024.0);
    let mirror = Mirror::start();
    mirror.put("2024-03-05-14.json.gz", bytes);

    println!(
        "the ingest Lambda binary, RAW_COMPRESSION={compression}, {mib:.0} MiB gzip into moto's S3"
    );
    println!(
        "{:>4} {:>8} {:>8} {:>14}",
        "run", "wall s", "MiB/s", "peak RSS MiB"
    );
    for run in 0..runs {
        let world = AwsWorld::new(false).await;
        let (address, answers) = runtime_api(vec![SCHEDULE.to_string()]);
        let mut command = world.lambda(env!("CARGO_BIN_EXE_ingest"), &address);
        command
            .env("GHARCHIVE_BASE_URL", &mirror.url)
            .env("INGEST_START_HOUR", "2024-03-05-14")
            .env("INGEST_UNTIL_HOUR", "2024-03-05-14")
            .env("RAW_COMPRESSION", &compression)
            .env("READ_TIMEOUT_SECONDS", "30")
            .env("ELT_NOW", "2024-03-06T00:00:00Z")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let started = Instant::now();
        let child = command.spawn().expect("the ingest binary starts");
        let answer = answers
            .recv_timeout(Duration::from_secs(300))
            .expect("the function answers");
        let wall = started.elapsed().as_secs_f64();
        assert_eq!(answer.kind, "response", "{}", answer.body);
        // The function now waits for its next event: read its peak RSS, then stop it. VmHWM
        // belongs to the running program only; `wait4`'s maxrss would also count the bench
        // process it was forked from.
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        let peak_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        println!(
            "{run:>4} {wall:>8.2} {:>8.0} {:>14.0}",
            mib / wall,
            peak_kib / 1024.0
        );
    }
}
