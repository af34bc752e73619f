//! Independent readers of the local table: Python `deltalake` counting its rows once, or polling
//! them while writers run (and are killed), for the tests that hold the table to "whole results
//! only".

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{elt, Lake};

/// Polls a Delta table's row count with Python `deltalake` until told to stop.
pub const POLLER: &str = r#"
import json, os, sys
from deltalake import DeltaTable
uri, out, stop = sys.argv[1], sys.argv[2], sys.argv[3]
options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
with open(out, "w") as f:
    while not os.path.exists(stop):
        try:
            table = DeltaTable(uri, storage_options=options)
            rows = table.to_pyarrow_dataset().count_rows()
            f.write(f"{table.version()} {rows}\n")
        except Exception as e:
            f.write("error " + f"{type(e).__name__}: {e}".replace("\n", " ") + "\n")
        f.flush()
# deltalake's threads may abort a normal interpreter exit
os._exit(0)
"#;

/// Python `deltalake`'s row count of the table at `uri`.
pub fn python_rows(uri: &str, options: Option<&Value>) -> u64 {
    let script = "import json, os, sys\nfrom deltalake import DeltaTable\n\
        o = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None\n\
        t = DeltaTable(sys.argv[1], storage_options=o)\n\
        print(t.to_pyarrow_dataset().count_rows(), flush=True)\nos._exit(0)\n";
    let mut command = Command::new("python3");
    command.args(["-c", script, uri]);
    if let Some(options) = options {
        command.arg(options.to_string());
    }
    let out = command.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "python deltalake: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

pub fn generated_hour(lake: &Lake, hour: &str, events: u64) -> PathBuf {
    let path = lake.path().join(format!("raw/{hour}.json.gz"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let out = elt(&[
        "gen",
        "--hour",
        hour,
        "--events",
        &events.to_string(),
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Starts the poller on `uri`; `stop` ends it.
pub fn start_poller(uri: &str, work: &Path, options: Option<&Value>) -> (Child, PathBuf, PathBuf) {
    let (out, stop) = (work.join("polled.txt"), work.join("stop"));
    let mut command = Command::new("python3");
    command
        .args([
            "-c",
            POLLER,
            uri,
            out.to_str().unwrap(),
            stop.to_str().unwrap(),
        ])
        .stdout(Stdio::null());
    if let Some(options) = options {
        command.arg(options.to_string());
    }
    (command.spawn().expect("python3 runs"), out, stop)
}

/// Stops the poller; what it saw: (table version, rows) per poll.
pub fn stop_poller(mut child: Child, out: &Path, stop: &Path) -> Vec<(u64, u64)> {
    std::fs::write(stop, b"").unwrap();
    child.wait().unwrap();
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|line| {
            let (version, rows) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("a poll: {line}"));
            let version = version
                .parse()
                .unwrap_or_else(|_| panic!("the reader failed: {line}"));
            (version, rows.parse().unwrap())
        })
        .collect()
}

/// Runs `command` to its end, or kills it (SIGKILL) after `kill_after`.
pub fn run_or_kill(mut command: Command, kill_after: Option<Duration>) {
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    match kill_after {
        Some(after) => {
            std::thread::sleep(after);
            let _ = child.kill();
            let _ = child.wait();
        }
        None => assert!(child.wait().unwrap().success(), "a transform failed"),
    }
}

/// The bytes of a gzip file.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}
