//! Helpers the benchmarks share: a generated hour file, and measuring a child process.
// Each benchmark uses a part of these helpers.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Measured {
    pub wall: Duration,
    /// User and system CPU time of the child.
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
    pub stdout: String,
    pub ok: bool,
}

/// Runs a command to completion; wall time and the child's peak RSS from `wait4`. The caller
/// sets stdout: only pipe small outputs, as a large one read here would grow this process.
// The child is reaped by `wait4`, which also gives its resource usage.
#[allow(clippy::zombie_processes)]
pub fn measure(command: &mut Command) -> Measured {
    let started = Instant::now();
    let mut child = command.spawn().expect("the command starts");
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value, and wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    let ok = pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Measured {
        wall,
        cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        stdout,
        ok,
    }
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A number from the environment, or `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The benchmark hour (`elt gen`, seed 1) of `events` events, made once and kept in the target
/// folder: returns its folder and path.
pub fn hour_file(elt: &str, events: u64) -> (PathBuf, PathBuf) {
    era_hour_file(elt, "2024-03-05-14", events)
}

/// An hour file of `events` events for `hour`, in the format of the hour's era (`elt gen`,
/// seed 1), made once and kept in the target folder: returns its folder and path.
pub fn era_hour_file(elt: &str, hour: &str, events: u64) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{events}"));
    let input = dir.join(format!("{hour}.json.gz"));
    if !input.exists() {
        eprintln!("generating {} ({events} events)…", input.display());
        let status = Command::new(elt)
            .args([
                "gen",
                "--hour",
                hour,
                "--events",
                &events.to_string(),
                "--seed",
                "1",
            ])
            .arg(&input)
            .stdout(Stdio::null())
            .status()
            .expect("elt gen runs");
        assert!(status.success(), "elt gen failed");
    }
    (dir, input)
}

/// `elt transform` of `raw` into a fresh lake at `lake` (removed afterwards), measured.
pub fn transform(elt: &str, lake: &Path, raw: &Path, stdout: Stdio) -> Measured {
    transform_by(Command::new(elt), lake, raw, stdout)
}

/// As [`transform`], with `elt` started by `elt_command` (e.g. `taskset -c 0 elt`).
pub fn transform_by(mut elt_command: Command, lake: &Path, raw: &Path, stdout: Stdio) -> Measured {
    let _ = std::fs::remove_dir_all(lake);
    let m = measure(
        elt_command
            .arg("transform")
            .arg("--lake")
            .arg(lake)
            .arg(raw)
            .stdout(stdout),
    );
    assert!(m.ok, "elt transform failed");
    let _ = std::fs::remove_dir_all(lake);
    m
}
