//! `cargo bench --bench transform`: `elt transform` on one GHArchive-sized hour (150,000 events,
//! about 0.5 GB of JSON) beside the floor, inflating the same file in Rust with zlib-rs and
//! nothing else, and beside the least work any transform of it must do (`floors.rs`), in one
//! run: CPU (user + system), wall and peak RSS, medians of several runs, and their ratios to the
//! floor. Then the same hour pinned to one core (the Lambda case), from a
//! zstd raw file (`RAW_COMPRESSION=zstd`), an hour four times as large, hours of the archive's
//! older formats (a 2013 timeline hour, a 2011 backfill hour) and DuckDB doing the same job.
//!
//! The figures go to `benches/figures/transform.json`, and a Markdown table for the README is
//! printed. `BENCH_PROFILE=1` also records a profile (`perf record`) of one transform and prints
//! where its CPU goes, by function, self time.
//!
//! Environment: BENCH_EVENTS (default 150000), BENCH_RUNS (default 5), BENCH_SKIP_DUCKDB=1,
//! BENCH_SKIP_ERAS=1, BENCH_SKIP_LARGE=1, BENCH_PROFILE=1.

mod common;
#[path = "transform/floors.rs"]
mod floors;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{env_number, era_hour_file, hour_file, measure, median, Measured};

/// The targets of issue 14, as ratios to the floor and a peak.
const CPU_RATIO_TARGET: f64 = 3.1;
const WALL_RATIO_TARGET: f64 = 2.0;
const PEAK_TARGET_MIB: f64 = 256.0;
const LARGE_PEAK_GROWTH_TARGET: f64 = 1.2;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here
    }
    if let [_, flag, file] = args.as_slice() {
        match flag.as_str() {
            "--inflate" => return floors::inflate(Path::new(file)),
            "--least-work" => return floors::least_work(Path::new(file)),
            _ => {}
        }
    }
    let elt = env!("CARGO_BIN_EXE_elt");
    let events: u64 = env_number("BENCH_EVENTS", 150_000);
    let runs: usize = env_number("BENCH_RUNS", 5);
    let (dir, input) = hour_file(elt, events);
    let mut report = Report::new(&input, runs);

    let floor = Series::of(runs, || floor_run(&input));
    let least_work = Series::of(runs, || child_run("--least-work", &input));
    let two_cores = Series::of(runs, || transform(elt, &dir, &input, None));
    report.describe(&two_cores, events);
    report.row("inflate, zlib-rs (the floor)", &floor, &floor);
    report.row(
        "least work: inflate, read the JSON, Snappy",
        &least_work,
        &floor,
    );
    report.row("**elt transform**, 2 cores", &two_cores, &floor);
    let one_core = Series::of(runs, || transform(elt, &dir, &input, Some("0")));
    report.row("elt transform, 1 core", &one_core, &floor);
    let zstd = zstd_copy(&input);
    let from_zstd = Series::of(runs, || transform(elt, &dir, &zstd, None));
    report.row("elt transform, zstd raw file", &from_zstd, &floor);
    let large = (std::env::var_os("BENCH_SKIP_LARGE").is_none()).then(|| {
        let (_, large_input) = hour_file(elt, events * 4);
        let large_floor = Series::of(runs.min(3), || floor_run(&large_input));
        let large = Series::of(runs.min(3), || transform(elt, &dir, &large_input, None));
        report.row("elt transform, 4× the hour", &large, &large_floor);
        large
    });
    if std::env::var_os("BENCH_SKIP_ERAS").is_none() {
        for (label, hour) in [
            ("elt transform, 2013 hour", "2013-02-15-20"),
            ("elt transform, 2011 hour", "2011-02-15-14"),
        ] {
            let (_, era_input) = era_hour_file(elt, hour, events);
            let era_floor = Series::of(runs, || floor_run(&era_input));
            let era = Series::of(runs, || transform(elt, &dir, &era_input, None));
            report.row(label, &era, &era_floor);
        }
    }
    if std::env::var_os("BENCH_SKIP_DUCKDB").is_none() {
        if let Some(duckdb) = duckdb_peer(&input, &dir) {
            report.row(
                "DuckDB, 2 threads, same job",
                &Series::from(vec![duckdb]),
                &floor,
            );
        }
    }
    report.targets(&floor, &least_work, &two_cores, &one_core, large.as_ref());
    report.print_and_save();
    if std::env::var_os("BENCH_PROFILE").is_some() {
        profile(elt, &dir, &input);
    }
}

fn floor_run(input: &Path) -> Measured {
    child_run("--inflate", input)
}

/// One of [`floors`]' programs on `input`, in a child process of this bench.
fn child_run(program: &str, input: &Path) -> Measured {
    let me = std::env::current_exe().expect("the bench knows its path");
    let m = measure(
        Command::new(me)
            .arg(program)
            .arg(input)
            .stdout(Stdio::piped()),
    );
    assert!(m.ok, "the bench's {program} failed");
    m
}

/// `elt transform` of `input` into a fresh lake, pinned to the cores in `cpus` if given.
fn transform(elt: &str, dir: &Path, input: &Path, cpus: Option<&str>) -> Measured {
    let elt_command = match cpus {
        None => Command::new(elt),
        Some(cpus) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", cpus, elt]);
            taskset
        }
    };
    common::transform_by(elt_command, &dir.join("lake"), input, Stdio::piped())
}

/// The hour recompressed as the ingest's `RAW_COMPRESSION=zstd` stores it, made once.
fn zstd_copy(input: &Path) -> PathBuf {
    let name = input
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let zstd = input.with_file_name(name.replace(".json.gz", ".json.zst"));
    if !zstd.exists() {
        let raw = std::fs::File::open(input).expect("the hour file opens");
        let mut json = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(raw));
        let out = std::fs::File::create(&zstd).expect("the zstd copy is created");
        let mut encoder = zstd::Encoder::new(out, 3).expect("a zstd encoder");
        std::io::copy(&mut json, &mut encoder).expect("recompressed");
        encoder.finish().expect("the zstd frame ends");
    }
    zstd
}

/// Several runs of one command: medians of CPU, wall and peak RSS, and the last summary line.
struct Series {
    cpu: f64,
    wall: f64,
    peak: f64,
    walls: Vec<f64>,
    stdout: String,
}

impl Series {
    fn of(runs: usize, mut run: impl FnMut() -> Measured) -> Series {
        Series::from((0..runs.max(1)).map(|_| run()).collect::<Vec<_>>())
    }

    fn from(measured: Vec<Measured>) -> Series {
        let pick = |f: fn(&Measured) -> f64| median(measured.iter().map(f).collect());
        Series {
            cpu: pick(|m| m.cpu_seconds),
            wall: pick(|m| m.wall.as_secs_f64()),
            peak: pick(|m| m.peak_rss_mib),
            walls: measured.iter().map(|m| m.wall.as_secs_f64()).collect(),
            stdout: measured
                .last()
                .map(|m| m.stdout.clone())
                .unwrap_or_default(),
        }
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or(serde_json::Value::Null)
    }
}

/// What one benchmark run found: printed as a Markdown table and kept as JSON.
struct Report {
    lines: Vec<String>,
    figures: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    fn new(input: &Path, runs: usize) -> Report {
        let mut figures = serde_json::Map::new();
        figures.insert("input".into(), input.display().to_string().into());
        figures.insert("runs".into(), runs.into());
        figures.insert(
            "cpus".into(),
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .into(),
        );
        Report {
            lines: vec![
                "| | CPU s | × floor | wall s | × floor | peak RSS MiB | events/s |".into(),
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |".into(),
            ],
            figures,
        }
    }

    fn describe(&mut self, run: &Series, events: u64) {
        let summary = run.summary();
        let json_mb = summary["json_bytes"].as_f64().unwrap_or(0.0) / 1e6;
        println!("the hour: {events} events, {json_mb:.0} MB of JSON");
        self.figures.insert("events".into(), events.into());
        self.figures.insert("json_mb".into(), json_mb.into());
    }

    fn row(&mut self, label: &str, run: &Series, floor: &Series) {
        let records = run.summary()["records"].as_f64();
        let per_second = records.map_or(String::new(), |r| format!("{:.0}", r / run.wall));
        let line = format!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {per_second} |",
            run.cpu,
            run.cpu / floor.cpu,
            run.wall,
            run.wall / floor.wall,
            run.peak
        );
        println!(
            "{line}   (walls: {:?})",
            run.walls
                .iter()
                .map(|w| (w * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        );
        self.lines.push(line);
        self.figures.insert(
            label.replace("**", ""),
            serde_json::json!({
                "cpu_seconds": run.cpu, "wall_seconds": run.wall, "peak_rss_mib": run.peak,
                "cpu_ratio": run.cpu / floor.cpu, "wall_ratio": run.wall / floor.wall,
                "floor_cpu_seconds": floor.cpu, "floor_wall_seconds": floor.wall,
            }),
        );
    }

    /// Issue 14's targets, each with the figure that meets it or not.
    fn targets(
        &mut self,
        floor: &Series,
        least_work: &Series,
        two: &Series,
        one: &Series,
        large: Option<&Series>,
    ) {
        let mut checks = vec![
            (
                "CPU ≤ 3.1× the floor",
                two.cpu / floor.cpu <= CPU_RATIO_TARGET,
                format!("{:.2}×", two.cpu / floor.cpu),
            ),
            (
                "2-core wall ≤ 2.0× the floor",
                two.wall / floor.wall <= WALL_RATIO_TARGET,
                format!("{:.2}×", two.wall / floor.wall),
            ),
            (
                "peak ≤ 256 MiB",
                two.peak <= PEAK_TARGET_MIB,
                format!("{:.0} MiB", two.peak),
            ),
            (
                "1-core wall within 10% of its CPU",
                (one.wall - one.cpu).abs() <= one.cpu * 0.1,
                format!("{:.2} s wall, {:.2} s CPU", one.wall, one.cpu),
            ),
        ];
        if let Some(large) = large {
            let growth = large.peak / two.peak;
            checks.push((
                "4× hour peak within +20%",
                growth <= LARGE_PEAK_GROWTH_TARGET,
                format!("{:.0} MiB, {:+.0}%", large.peak, (growth - 1.0) * 100.0),
            ));
        }
        println!();
        for (target, met, figure) in &checks {
            println!(
                "{} {target}: {figure}",
                if *met { "met    " } else { "NOT MET" }
            );
        }
        // The CPU target against the work no transform can skip: below it, no design meets it.
        let least_ratio = least_work.cpu / floor.cpu;
        println!(
            "the least work alone (inflate, read the JSON, Snappy) is {least_ratio:.2}× the floor's \
             CPU: {}",
            if least_ratio > CPU_RATIO_TARGET {
                "above the CPU target before any column is built"
            } else {
                "below the CPU target"
            }
        );
        let targets: serde_json::Map<_, _> = checks
            .into_iter()
            .map(|(t, met, figure)| {
                (
                    t.to_string(),
                    serde_json::json!({"met": met, "figure": figure}),
                )
            })
            .collect();
        self.figures.insert("targets".into(), targets.into());
    }

    fn print_and_save(&self) {
        println!("\nFor the README:\n");
        for line in &self.lines {
            println!("{line}");
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/figures/transform.json");
        let json = serde_json::to_string_pretty(&self.figures).expect("figures serialise");
        std::fs::write(&path, json + "\n").expect("the figures are written");
        println!("\nfigures: {}", path.display());
    }
}

/// DuckDB on the same file with 2 threads, when `duckdb` is importable in python3.
fn duckdb_peer(input: &Path, dir: &Path) -> Option<Measured> {
    let available = Command::new("python3")
        .args(["-c", "import duckdb"])
        .stderr(Stdio::null())
        .status();
    if !available.is_ok_and(|s| s.success()) {
        println!("DuckDB skipped: `pip install duckdb` to compare");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_peer.py");
    let out = dir.join("duckdb.parquet");
    let m = measure(
        Command::new("python3")
            .arg(&script)
            .arg(input)
            .arg(&out)
            .stdout(Stdio::null()),
    );
    let _ = std::fs::remove_file(&out);
    m.ok.then_some(m)
}

/// One transform under `perf record`; the functions with the most CPU, self time.
fn profile(elt: &str, dir: &Path, input: &Path) {
    let data = dir.join("perf.data");
    let lake = dir.join("lake-profile");
    let _ = std::fs::remove_dir_all(&lake);
    let recorded = Command::new("perf")
        .args(["record", "-F", "999", "-o"])
        .arg(&data)
        .args(["--", elt, "transform", "--lake"])
        .arg(&lake)
        .arg(input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(&lake);
    if !recorded.is_ok_and(|s| s.success()) {
        println!("profile skipped: `perf record` did not run");
        return;
    }
    for (title, sort) in [
        ("by stage (thread), self time", "comm"),
        ("by function, self time, ≥1%", "comm,symbol"),
    ] {
        let report = Command::new("perf")
            .args([
                "report",
                "--no-children",
                "--stdio",
                "--percent-limit",
                "1",
                "--sort",
                sort,
                "-i",
            ])
            .arg(&data)
            .output();
        let Ok(report) = report else { return };
        println!("\nwhere the CPU goes, {title} (perf):");
        for line in String::from_utf8_lossy(&report.stdout).lines() {
            if !line.starts_with('#') && !line.trim().is_empty() {
                println!("{}", line.trim_end());
            }
        }
    }
}
