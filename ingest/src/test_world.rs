//! A lake and a `file://` source folder in a temporary folder, for the ingest's unit tests: the
//! real local adapters (SQLite job store and run log, a folder as the raw store).

use std::io::Write;
use std::path::{Path, PathBuf};

use events::Hour;

use crate::config::{IngestConfig, RawCompression};
use crate::Ingest;

/// A source folder and a lake, side by side in a temporary folder.
pub(crate) struct World {
    _dir: tempfile::TempDir,
    pub source: PathBuf,
    pub lake: PathBuf,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (source, lake) = (dir.path().join("source"), dir.path().join("lake"));
        std::fs::create_dir_all(&source).expect("the source folder");
        World {
            _dir: dir,
            source,
            lake,
        }
    }

    /// Publishes `hour` on the source: a whole gzip stream of a few lines.
    pub fn publish(&self, hour: &str) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for n in 0..20 {
            writeln!(
                encoder,
                r#"{{"id":"{n}","type":"PushEvent","hour":"{hour}"}}"#
            )
            .expect("written");
        }
        let bytes = encoder.finish().expect("compressed");
        self.put(hour, &bytes);
        bytes
    }

    /// Puts `bytes` on the source as `hour`'s file.
    pub fn put(&self, hour: &str, bytes: &[u8]) {
        std::fs::write(self.source.join(format!("{hour}.json.gz")), bytes).expect("published");
    }

    /// An ingest of this lake from this source at `now`, starting at `2024-03-05-0`.
    pub fn ingest(&self, now: &str, max_hours: u32) -> Ingest {
        let config = config(&self.source, now, max_hours);
        Ingest::local(config, &self.lake).expect("the local ingest")
    }

    pub fn raw(&self, hour: &str) -> Option<Vec<u8>> {
        std::fs::read(self.lake.join("raw").join(format!("{hour}.json.gz"))).ok()
    }
}

/// The settings of a quick test run: two download attempts 1 ms apart, parking after two runs.
pub(crate) fn config(source: &Path, now: &str, max_hours_per_run: u32) -> IngestConfig {
    IngestConfig {
        raw_bucket: None,
        raw_prefix: None,
        jobs_table: "jobs".into(),
        job_runs_table: "job_run_details".into(),
        sources: vec![format!("file://{}/", source.display())],
        base_url: None,
        job_id: "ingest".into(),
        max_hours_per_run,
        raw_compression: RawCompression::None,
        baseline_days: 3,
        start_hour: Some(hour("2024-03-05-0")),
        until: None,
        missing_after_hours: 24,
        missing_hour_attempts: 2,
        download_attempts: 2,
        retry_base_ms: 1,
        read_timeout_seconds: 5,
        fetch_timeout_seconds: 60,
        upload_part_mib: 5,
        deadline_margin_seconds: 0,
        lease_seconds: 900,
        now: Some(now.parse().expect("a time")),
    }
}

pub(crate) fn hour(text: &str) -> Hour {
    text.parse().expect("an hour")
}
