//! `cargo bench --bench ingest`: ingest one GHArchive-sized hour (150,000 events, about 80 MiB of
//! gzip) from a local HTTP server into the emulator's S3 (moto) with `elt ingest --aws`, beside
//! `curl -o` of the same URL; then the same with `RAW_COMPRESSION=zstd`, and what the zstd raw
//! file saves the transform.
//!
//! Needs python3 with `moto[server]`; the moto server, bucket and tables are the tests' own
//! (`tests/support`). Environment: BENCH_EVENTS (default 150000), BENCH_RUNS (default 3).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{env_number, hour_file, measure, median, Measured};

/// A server child that is stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A static file server over `dir` (Python's), the stand-in for GHArchive.
fn serve(dir: &Path, port: u16) -> Server {
    let child = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the HTTP server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Server(child)
}

fn row(name: &str, m: &[Measured], mib: f64) {
    let walls: Vec<f64> = m.iter().map(|m| m.wall.as_secs_f64()).collect();
    let wall = median(walls.clone());
    let peak = m.iter().map(|m| m.peak_rss_mib).fold(0.0, f64::max);
    println!(
        "{name:<40} {wall:>8.2} {:>10.0} {peak:>14.0}   (runs, s: {})",
        mib / wall,
        walls
            .iter()
            .map(|w| format!("{w:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// The benchmark's setting: the hour file, the HTTP server that serves it, and the emulator.
struct Bench {
    elt: &'static str,
    runs: usize,
    events: u64,
    dir: PathBuf,
    input: PathBuf,
    gz_bytes: u64,
    http_port: u16,
    _http: Server,
    world: support::AwsWorld,
    runtime: tokio::runtime::Runtime,
}

impl Bench {
    fn start() -> Bench {
        let elt = env!("CARGO_BIN_EXE_elt");
        let events: u64 = env_number("BENCH_EVENTS", 150_000);
        let (dir, input) = hour_file(elt, events);
        let gz_bytes = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
        let http_port = free_port();
        let http = serve(&dir, http_port);
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let world = runtime.block_on(support::AwsWorld::new(false));
        Bench {
            elt,
            runs: env_number("BENCH_RUNS", 3),
            events,
            dir,
            input,
            gz_bytes,
            http_port,
            _http: http,
            world,
            runtime,
        }
    }

    fn gz_mib(&self) -> f64 {
        self.gz_bytes as f64 / (1024.0 * 1024.0)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/2024-03-05-14.json.gz", self.http_port)
    }

    /// `elt ingest --aws` of the hour, run `run` with `RAW_COMPRESSION=compression`: its
    /// measure and the bytes it stored.
    fn ingest(&self, run: usize, compression: &str) -> (Measured, u64) {
        let m = measure(
            self.world
                .command(self.elt, &["ingest", "--aws"])
                // Timeouts and backoff as on AWS, not the tests' short ones.
                .env("READ_TIMEOUT_SECONDS", "30")
                .env("RETRY_BASE_MS", "500")
                .env("RAW_PREFIX", format!("{compression}-{run}/"))
                .env("INGEST_JOB_ID", format!("{compression}-{run}"))
                .env("RAW_COMPRESSION", compression)
                .env(
                    "GHARCHIVE_BASE_URL",
                    format!("http://127.0.0.1:{}/", self.http_port),
                )
                .env("INGEST_START_HOUR", "2024-03-05-14")
                .env("INGEST_UNTIL_HOUR", "2024-03-05-14")
                .env("ELT_NOW", "2024-03-06T00:00:00Z")
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        assert!(m.ok, "elt ingest failed");
        let record: serde_json::Value =
            serde_json::from_str(m.stdout.trim()).expect("a run record");
        assert_eq!(record["hours_ingested"], 1, "{record}");
        let stored = record["bytes"].as_u64().unwrap_or(0);
        (m, stored)
    }

    /// Every run's measure with `compression`, and the bytes the last one stored.
    fn ingest_runs(&self, compression: &str) -> (Vec<Measured>, u64) {
        let mut stored = 0;
        let measured = (0..self.runs)
            .map(|run| {
                let (m, bytes) = self.ingest(run, compression);
                stored = bytes;
                m
            })
            .collect();
        (measured, stored)
    }

    /// `curl -o` of the same URL, the floor of the download.
    fn curl_runs(&self) -> Vec<Measured> {
        let fetched = self.dir.join("curl.json.gz");
        let curl = (0..self.runs)
            .map(|_| {
                let m = measure(
                    Command::new("curl")
                        .args(["-sS", "-o"])
                        .arg(&fetched)
                        .arg(self.url())
                        .stdout(Stdio::null()),
                );
                assert!(m.ok, "curl failed");
                m
            })
            .collect();
        let _ = std::fs::remove_file(&fetched);
        curl
    }

    /// What the zstd raw file saves the transform: the same hour from each raw file.
    fn compare_transforms(&self) {
        let zst = self.dir.join("2024-03-05-14.json.zst");
        let stored = self
            .runtime
            .block_on(self.world.get("zstd-0/2024-03-05-14.json.zst"))
            .expect("the zstd object is stored");
        std::fs::write(&zst, stored).expect("the zstd object is written");
        let transform = |raw: &Path| -> Vec<Measured> {
            (0..self.runs)
                .map(|run| {
                    let lake = self.dir.join(format!("ingest-lake-{run}"));
                    common::transform(self.elt, &lake, raw, Stdio::null())
                })
                .collect()
        };
        let from_gzip = transform(&self.input);
        let from_zstd = transform(&zst);
        let _ = std::fs::remove_file(&zst);
        row("elt transform of the .json.gz", &from_gzip, self.gz_mib());
        row("elt transform of the .json.zst", &from_zstd, self.gz_mib());
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bench = Bench::start();
    let (plain, _) = bench.ingest_runs("none");
    let (zstd, zstd_bytes) = bench.ingest_runs("zstd");
    let curl = bench.curl_runs();

    let (events, gz_mib) = (bench.events, bench.gz_mib());
    let endpoint = &support::moto().endpoint;
    println!(
        "input: {} — {events} events, {gz_mib:.0} MiB gzip; S3 is moto at {endpoint}",
        bench.url()
    );
    println!(
        "{:<40} {:>8} {:>10} {:>14}",
        "", "wall s", "MiB/s", "peak RSS MiB"
    );
    row("curl -o (HTTP → local file)", &curl, gz_mib);
    row("elt ingest --aws (HTTP → S3)", &plain, gz_mib);
    row("elt ingest --aws, RAW_COMPRESSION=zstd", &zstd, gz_mib);
    println!(
        "zstd raw object: {:.1} MiB ({:.0}% of the gzip)",
        zstd_bytes as f64 / (1024.0 * 1024.0),
        100.0 * zstd_bytes as f64 / bench.gz_bytes as f64
    );
    bench.compare_transforms();
}
