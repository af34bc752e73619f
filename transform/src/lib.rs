//! gh-elt's transform engine: a raw GHArchive hour (gzip, zstd or plain JSON lines; one file per
//! source of the hour present, their union) in, Snappy Parquet parts and a quarantine of bad
//! lines out.
//!
//! The file goes through the engine's stages on both cores (`engine/`: reader, parsers, SQL
//! and encoder, with the quarantine beside them), then through the hour's commit (`commit/`).
//!
//! Outputs are staged under the run's own folder and moved into place only when the whole file
//! has succeeded, by a commit on the hour's commit record: of two runs of one hour
//! the lake keeps exactly one whole result, and an event a neighbouring hour has committed is not
//! written again. A file that fails leaves nothing in the table.

pub mod batch;
mod commit;
pub mod compaction;
mod engine;
mod envelope;
mod fields;
mod functions;
pub mod handler;
mod input;
mod objects;
mod parse;
mod parts;
mod payload;
mod quarantine;
pub mod raw_hour;
mod records;
pub mod schema;
mod source_rows;
mod span;
pub mod sql;

// The allocator is jemalloc. The pipeline allocates many small strings and megabyte buffers on
// several threads at once, freed on others: glibc's allocator spent a tenth of the transform's
// CPU on that (perf). Against mimalloc v2, in interleaved runs of the two builds, jemalloc spent
// 6–11% less CPU on today's hour, and the peak of an hour four times as large stayed within 5%
// of the hour's, where mimalloc's grew by 30–45%: mimalloc purges a freed span only when its
// segment is next touched, so what it kept grew with the run. No transparent huge pages
// (`thp:never`): with them a fresh 2 MiB region is zeroed whole on first touch and counted
// whole in RSS. Declared here, so `elt` and the transform Lambda both get it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts; `_RJEM_MALLOC_CONF` in the environment adds to them.
#[export_name = "_rjem_malloc_conf"]
pub static JEMALLOC_OPTIONS: &[u8] = b"thp:never\0";

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adapters::CommitStore;
use anyhow::Context;
use events::commits::SourceVersion;
use events::{Hour, TransformSummary};
use object_store::ObjectStore;

pub use events::{DEFAULT_CURATED_PREFIX, DEFAULT_REJECTS_PREFIX};

pub use crate::commit::NeighbourCommitted;
use crate::commit::{Committed, Run, Start};

/// How to transform; `Default` gives the built-in SQL and the documented limits.
#[derive(Debug, Clone)]
pub struct TransformOptions {
    /// The transform SQL over `raw_events`, prepared (default: `transform/sql/ghactivity.sql`).
    pub sql: sql::TransformSql,
    /// Key prefix of the Parquet table in the lake.
    pub curated_prefix: String,
    /// Key prefix of the quarantine files.
    pub rejects_prefix: String,
    /// Longer lines are quarantined without being parsed.
    pub max_line_bytes: usize,
    /// A Parquet part is closed, and the next begun, once it reaches this size.
    pub max_part_bytes: u64,
    /// Decompressed bytes handed to a parser at a time.
    pub chunk_bytes: usize,
    /// Parser threads (default: the number of cores).
    pub parse_threads: usize,
    /// How long a run that has claimed an hour may take to move its parts into place before
    /// another run of the hour may take over.
    pub commit_lease: Duration,
    /// Staged objects and event-id lists of other runs older than this are left over by runs
    /// that died: the next commit of the hour removes them (and `elt verify` reports them).
    pub stale_after: Duration,
    /// A pause before each step of a commit: zero but in tests that interrupt commits.
    pub commit_step_delay: Duration,
}

pub const DEFAULT_MAX_LINE_BYTES: usize = 8 * 1024 * 1024;
pub const DEFAULT_MAX_PART_BYTES: u64 = 256 * 1024 * 1024;
/// Moving a few parts into place takes seconds; two minutes leaves a wide margin.
pub const DEFAULT_COMMIT_LEASE_SECONDS: u64 = 120;
/// The longest a transform Lambda can run.
pub const DEFAULT_STALE_AFTER_SECONDS: u64 = 900;
/// Times an hour is done again when a neighbouring hour commits one of its events meanwhile.
const REDO_ATTEMPTS: u32 = 4;

/// Where a transform writes: the object store holding the table (and its staging), and the job
/// store holding the hours' commit records.
#[derive(Clone)]
pub struct Lake {
    pub store: Arc<dyn ObjectStore>,
    pub commits: Arc<dyn CommitStore>,
    /// Where `store` is, for the table's readers (delta-rs opens it by URL).
    pub place: lake_table::Place,
}

impl Lake {
    /// The curated table at `curated_prefix` in this lake.
    pub fn table(&self, curated_prefix: &str) -> lake_table::Table {
        lake_table::Table::new(self.store.clone(), curated_prefix, self.place.clone())
    }
}

impl Default for TransformOptions {
    fn default() -> TransformOptions {
        TransformOptions {
            sql: sql::TransformSql::builtin(),
            curated_prefix: DEFAULT_CURATED_PREFIX.to_string(),
            rejects_prefix: DEFAULT_REJECTS_PREFIX.to_string(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_part_bytes: DEFAULT_MAX_PART_BYTES,
            chunk_bytes: 1024 * 1024,
            parse_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            commit_lease: Duration::from_secs(DEFAULT_COMMIT_LEASE_SECONDS),
            stale_after: Duration::from_secs(DEFAULT_STALE_AFTER_SECONDS),
            commit_step_delay: Duration::ZERO,
        }
    }
}

/// One raw file to transform: its bytes, as stored, and the name its hour is read from.
pub struct RawFile {
    pub source: String,
    pub hour: Hour,
    pub body: Box<dyn Read + Send>,
    /// Counts the raw (compressed) bytes read so far, for progress reporting.
    pub progress: Arc<AtomicU64>,
    /// The version of the raw object being read, recorded with the commit.
    pub version: SourceVersion,
}

impl RawFile {
    /// Opens a local raw file; its name must be an hour file name (`2024-03-05-14.json.gz`).
    pub fn open(path: &std::path::Path) -> anyhow::Result<RawFile> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let (hour, _) = Hour::from_file_name(name)?;
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        let modified = meta
            .modified()
            .ok()
            .map(chrono::DateTime::<chrono::Utc>::from);
        let nanos = modified.and_then(|t| t.timestamp_nanos_opt()).unwrap_or(0);
        let version = SourceVersion {
            location: path.display().to_string(),
            e_tag: Some(format!("{nanos:x}-{:x}", meta.len())),
            version: None,
            last_modified: modified,
            size: meta.len(),
        };
        Ok(RawFile {
            source: name.to_string(),
            hour,
            body: Box::new(file),
            progress: Arc::default(),
            version,
        })
    }
}

/// An hour's raw files, one per source present, the first source's first: their union is the
/// hour's result, each event once (the first file holding an `event_id` wins).
pub struct RawHour {
    pub hour: Hour,
    /// Never empty; each file's `source` (its `source_file`) differs from the others'.
    pub files: Vec<RawFile>,
}

impl From<RawFile> for RawHour {
    fn from(file: RawFile) -> RawHour {
        RawHour {
            hour: file.hour,
            files: vec![file],
        }
    }
}

impl RawHour {
    /// What the summary names the hour's input by: the first file's `source`.
    fn source(&self) -> String {
        self.files
            .first()
            .map(|f| f.source.clone())
            .unwrap_or_default()
    }
}

/// Transforms one hour, done again (up to a few times) when a neighbouring hour commits one of its
/// events while it runs; `open` gives the raw files afresh for each attempt (one [`RawFile`],
/// or a [`RawHour`] of several sources).
pub async fn transform_hour<F, Fut, R>(
    open: F,
    lake: &Lake,
    options: &TransformOptions,
) -> anyhow::Result<TransformSummary>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<R>>,
    R: Into<RawHour>,
{
    let mut attempt = 1;
    loop {
        match transform(open().await?.into(), lake, options).await {
            Err(e)
                if attempt < REDO_ATTEMPTS && e.downcast_ref::<NeighbourCommitted>().is_some() =>
            {
                tracing::info!(error = %e, attempt, "doing the hour again");
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Transforms one hour's raw files into the lake. Must run inside a multi-threaded tokio runtime.
///
/// On success the hour's parts, its quarantine (if any line was rejected) and nothing else of the
/// hour are in the table, or, when another run's result for the hour stands, nothing of this run
/// is (`superseded` says why). On error the table holds what it held before (or, if the commit
/// was interrupted, a claim the next run of the hour completes); the caller may retry. A
/// [`NeighbourCommitted`] error asks for the hour to be done again.
pub async fn transform(
    file: RawHour,
    lake: &Lake,
    options: &TransformOptions,
) -> anyhow::Result<TransformSummary> {
    if file.files.is_empty() {
        anyhow::bail!("no raw file of {} to transform", file.hour);
    }
    let started = Instant::now();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let run_id = format!("{}-{nanos}", std::process::id());
    let versions: Vec<SourceVersion> = file.files.iter().map(|f| f.version.clone()).collect();
    let run = Run {
        lake,
        hour: file.hour,
        options,
        run_id: &run_id,
        sources: &versions,
    };
    let source = file.source();
    let begun = match run.begin().await? {
        Start::Go(begun) => begun,
        Start::Superseded { reason, generation } => {
            tracing::info!(source, reason, "superseded; nothing to do");
            let mut summary = TransformSummary::empty(source, file.hour);
            summary.generation = generation;
            summary.superseded = Some(reason);
            return Ok(summary);
        }
    };
    let hour = file.hour;
    let raw_bytes: Vec<Arc<AtomicU64>> = file.files.iter().map(|f| f.progress.clone()).collect();
    let done = engine::encode(file, &run, &begun, options).await?;
    let mut summary = TransformSummary::empty(source, hour);
    summary.raw_bytes = raw_bytes.iter().map(|b| b.load(Ordering::Relaxed)).sum();
    let outputs = done.account(&mut summary);
    match run.commit(begun, outputs).await? {
        Committed::Done { generation, parts } => {
            summary.generation = generation;
            summary.outputs = parts;
        }
        Committed::Superseded { reason, generation } => {
            tracing::info!(
                source = summary.source,
                reason,
                "superseded; this run's output was dropped"
            );
            summary.generation = generation;
            summary.superseded = Some(reason);
            summary.quarantine = None;
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    debug_assert_eq!(
        summary.records,
        summary.rows + summary.duplicates + summary.duplicates_across_hours + summary.rejected
    );
    Ok(summary)
}
