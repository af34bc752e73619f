//! gh-elt's transform engine: one raw GHArchive hour file (gzip, zstd or plain JSON lines) in,
//! Snappy Parquet parts and a quarantine of bad lines out.
//!
//! The work is a pipeline over both cores, with bounded queues between the stages so memory stays
//! flat however large the file:
//!
//! ```text
//! reader thread          parser threads (N)          tokio task              encoder thread
//! decompress, cut   ──▶  lines → raw_events batch ──▶ DataFusion SQL     ──▶  Parquet parts,
//! into line chunks       bad lines → quarantine       (in file order)         staged uploads
//! ```
//!
//! Outputs are staged under the run's own folder and moved into place only when the whole file
//! has succeeded, by a commit on the hour's commit record (`commit.rs`): of two runs of one hour
//! the lake keeps exactly one whole result, and an event a neighbouring hour has committed is not
//! written again. A file that fails leaves nothing in the table.

pub mod batch;
mod commit;
mod envelope;
mod fields;
pub mod handler;
mod input;
mod objects;
mod parse;
mod parts;
mod payload;
mod quarantine;
mod records;
pub mod schema;
pub mod sql;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use adapters::CommitStore;
use anyhow::{anyhow, bail, Context};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use events::commits::{CommitCounts, SourceVersion};
use events::{Hour, Repairs, TransformSummary};
use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectStore;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

pub use events::{DEFAULT_CURATED_PREFIX, DEFAULT_REJECTS_PREFIX};

pub use crate::commit::NeighbourCommitted;
use crate::commit::{discard, Begun, Committed, Outputs, Run, Start};
use crate::input::{Chunk, LineSplitter, ReadStats};
use crate::objects::ObjectWriter;
use crate::parse::{ChunkParser, Parsed};
use crate::parts::{Encoded, PartWriter, Staged, Target};
use crate::quarantine::Quarantine;

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
}

impl Default for TransformOptions {
    fn default() -> TransformOptions {
        TransformOptions {
            sql: sql::TransformSql::builtin(),
            curated_prefix: DEFAULT_CURATED_PREFIX.to_string(),
            rejects_prefix: DEFAULT_REJECTS_PREFIX.to_string(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_part_bytes: DEFAULT_MAX_PART_BYTES,
            chunk_bytes: 2 * 1024 * 1024,
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

/// Counts bytes as they are read.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Transforms one hour, done again (up to a few times) when a neighbouring hour commits one of its
/// events while it runs; `open` gives the raw file afresh for each attempt.
pub async fn transform_hour<F, Fut>(
    open: F,
    lake: &Lake,
    options: &TransformOptions,
) -> anyhow::Result<TransformSummary>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<RawFile>>,
{
    let mut attempt = 1;
    loop {
        match transform(open().await?, lake, options).await {
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

/// Transforms one raw file into the lake. Must run inside a multi-threaded tokio runtime.
///
/// On success the hour's parts, its quarantine (if any line was rejected) and nothing else of the
/// hour are in the table, or, when another run's result for the hour stands, nothing of this run
/// is (`superseded` says why). On error the table holds what it held before (or, if the commit
/// was interrupted, a claim the next run of the hour completes); the caller may retry. A
/// [`NeighbourCommitted`] error asks for the hour to be done again.
pub async fn transform(
    file: RawFile,
    lake: &Lake,
    options: &TransformOptions,
) -> anyhow::Result<TransformSummary> {
    let started = Instant::now();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let run_id = format!("{}-{nanos}", std::process::id());
    let version = file.version.clone();
    let run = Run {
        lake,
        hour: file.hour,
        options,
        run_id: &run_id,
        source: &version,
    };
    let begun = match run.begin().await? {
        Start::Go(begun) => begun,
        Start::Superseded { reason, generation } => {
            tracing::info!(source = file.source, reason, "superseded; nothing to do");
            let mut summary = TransformSummary::empty(file.source, file.hour);
            summary.generation = generation;
            summary.superseded = Some(reason);
            return Ok(summary);
        }
    };
    let (source, hour, raw_bytes) = (file.source.clone(), file.hour, file.progress.clone());
    let done = encode(file, &run, &begun, options).await?;
    let mut summary = TransformSummary::empty(source, hour);
    summary.raw_bytes = raw_bytes.load(Ordering::Relaxed);
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

impl Done {
    /// Writes the accounting into `summary`; what the commit takes.
    fn account(self, summary: &mut TransformSummary) -> Outputs {
        let counts = CommitCounts {
            records: self.records,
            rows: self.encoded.rows,
            duplicates: self.duplicates,
            duplicates_across_hours: self.encoded.dropped_ids.len() as u64,
            rejected: self.rejected,
        };
        summary.lines = self.lines;
        summary.records = counts.records;
        summary.rows = counts.rows;
        summary.duplicates = counts.duplicates;
        summary.duplicates_across_hours = counts.duplicates_across_hours;
        summary.rejected = counts.rejected;
        summary.repairs = self.repairs;
        summary.json_bytes = self.json_bytes;
        summary.quarantine = self.quarantine.as_ref().map(|q| q.target.to_string());
        Outputs {
            parts: self.encoded.parts,
            quarantine: self.quarantine,
            event_ids: self.encoded.event_ids,
            dropped_ids: self.encoded.dropped_ids,
            counts,
        }
    }
}

/// What the engine made of a file, staged, before the commit.
struct Done {
    lines: u64,
    records: u64,
    duplicates: u64,
    rejected: u64,
    repairs: Repairs,
    json_bytes: u64,
    encoded: Encoded,
    quarantine: Option<Staged>,
}

/// Runs the pipeline over the file, staging the parts and the quarantine under the run's folder.
/// On error nothing stays staged.
async fn encode(
    file: RawFile,
    run: &Run<'_>,
    begun: &Begun,
    options: &TransformOptions,
) -> anyhow::Result<Done> {
    let handle = Handle::current();
    let store = run.lake.store.clone();
    let RawFile {
        source,
        hour,
        body,
        progress,
        ..
    } = file;
    let target = Target {
        store: store.clone(),
        handle: handle.clone(),
        hour,
        curated_prefix: options.curated_prefix.clone(),
        staging_dir: run.staging_dir(),
        committed_nearby: begun.committed_nearby.clone(),
    };

    let rejects_key = hour.rejects_key(&options.rejects_prefix);
    let rejects_staging = target.staging_for(&rejects_key);
    let quarantine = {
        let (store, handle, path) = (store.clone(), handle.clone(), rejects_staging.clone());
        Arc::new(Mutex::new(Quarantine::new(
            source.clone(),
            Box::new(move || ObjectWriter::create(&store, path.clone(), handle.clone())),
        )))
    };

    // Stage 1: decompress and cut into chunks of lines.
    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<Chunk>(options.parse_threads * 2);
    let reader = {
        let quarantine = quarantine.clone();
        let (chunk_bytes, max_line_bytes) = (options.chunk_bytes, options.max_line_bytes);
        std::thread::Builder::new()
            .name("gh-elt-reader".into())
            .spawn(move || -> anyhow::Result<ReadStats> {
                let counted = Counting {
                    inner: body,
                    count: progress,
                };
                let decoded =
                    input::decompress(Box::new(counted)).context("reading the raw file")?;
                let splitter = LineSplitter {
                    chunk_bytes,
                    max_line_bytes,
                    quarantine: &quarantine,
                    chunks: chunk_tx,
                };
                splitter.run(decoded).context("reading the raw file")
            })?
    };

    // Stage 2: parse chunks in parallel; the stream below puts them back in order.
    let (parsed_tx, parsed_rx) = mpsc::channel::<anyhow::Result<Parsed>>(options.parse_threads * 2);
    let mut parsers = Vec::new();
    for i in 0..options.parse_threads.max(1) {
        let (chunk_rx, parsed_tx, quarantine) =
            (chunk_rx.clone(), parsed_tx.clone(), quarantine.clone());
        let mut parser = ChunkParser::new(source.clone(), options.max_line_bytes)?;
        parsers.push(
            std::thread::Builder::new()
                .name(format!("gh-elt-parser-{i}"))
                .spawn(move || {
                    for chunk in chunk_rx {
                        let parsed = parser.parse(&chunk).and_then(|parsed| {
                            let mut quarantine = quarantine
                                .lock()
                                .map_err(|_| anyhow!("quarantine lock poisoned"))?;
                            for reject in &parsed.rejects {
                                quarantine.reject(
                                    reject.line,
                                    &reject.error,
                                    &chunk.data[reject.bytes.clone()],
                                )?;
                            }
                            Ok(parsed)
                        });
                        let failed = parsed.is_err();
                        if parsed_tx.blocking_send(parsed).is_err() || failed {
                            return;
                        }
                    }
                })?,
        );
    }
    drop((chunk_rx, parsed_tx));

    let counts = Arc::new(Counts::default());
    let ordered = futures::stream::unfold(
        Reorder {
            pending: BTreeMap::new(),
            next: 0,
            rx: parsed_rx,
            counts: counts.clone(),
        },
        |mut state| async move { state.next_batch().await.map(|batch| (batch, state)) },
    );
    let raw_events = Box::pin(RecordBatchStreamAdapter::new(
        schema::raw_events_schema(),
        ordered,
    ));

    // Stage 3: the SQL; stage 4: Parquet encoding on its own thread.
    let result = async {
        let mut output = sql::execute(options.sql.text(), raw_events)
            .await
            .context("running the transform SQL")?;
        let (batch_tx, mut batch_rx) = mpsc::channel::<RecordBatch>(2);
        let mut writer = PartWriter::new(target, output.schema(), options.max_part_bytes);
        let encoder = std::thread::Builder::new()
            .name("gh-elt-encoder".into())
            .spawn(move || {
                while let Some(batch) = batch_rx.blocking_recv() {
                    if let Err(e) = writer.write(&batch) {
                        return (Err(e), writer.staged().to_vec());
                    }
                }
                let staged = writer.staged().to_vec();
                (writer.finish(), staged)
            })?;
        let mut sql_result = Ok(());
        while let Some(batch) = output.next().await {
            match batch {
                Ok(batch) => {
                    if batch_tx.send(batch).await.is_err() {
                        break; // the encoder failed: its error is reported below
                    }
                }
                Err(e) => {
                    sql_result = Err(anyhow::Error::from(e));
                    break;
                }
            }
        }
        drop((batch_tx, output));
        let (encoded, staged) = join(encoder).await?;
        Ok::<_, anyhow::Error>((sql_result, encoded, staged))
    }
    .await;

    // Wait for every thread before deciding: their errors come first, as they are the cause.
    let read = join(reader).await?;
    for parser in parsers {
        join(parser).await?;
    }
    let quarantine = Arc::try_unwrap(quarantine).map_err(|_| anyhow!("quarantine still in use"))?;
    let quarantine = quarantine
        .into_inner()
        .map_err(|_| anyhow!("quarantine lock poisoned"))?;

    let (sql_result, encoded, staged_so_far) = match result {
        Ok(r) => r,
        Err(e) => {
            blocking(move || drop(quarantine)).await?;
            return Err(e);
        }
    };
    // Everything staged, for clean-up: when encoding finished, its list includes the last part.
    let staged = match &encoded {
        Ok(done) => done.parts.clone(),
        Err(_) => staged_so_far,
    };
    let checked = (|| {
        let read = read?;
        sql_result?;
        Ok::<_, anyhow::Error>((read, encoded?))
    })();
    let (read, encoded) = match checked {
        Ok(done) => done,
        Err(e) => {
            blocking(move || drop(quarantine)).await?;
            discard(&store, &staged).await;
            return Err(e.context(format!("transforming {source}: nothing was written")));
        }
    };

    let rejected = quarantine.rejected();
    let quarantine_staging = blocking(move || -> std::io::Result<Option<Path>> {
        let Some(object) = quarantine.finish()? else {
            return Ok(None);
        };
        let path = object.path().clone();
        object.finish()?;
        Ok(Some(path))
    })
    .await?;
    let quarantine_staged = match quarantine_staging {
        Ok(path) => path.map(|staging| Staged {
            staging,
            target: Path::from(rejects_key.as_str()),
        }),
        Err(e) => {
            discard(&store, &staged).await;
            return Err(anyhow::Error::from(e).context(format!(
                "writing the quarantine of {source}: nothing was written"
            )));
        }
    };

    let lines = counts.lines.load(Ordering::Relaxed) + read.oversized_lines;
    let rows_in = counts.rows_in.load(Ordering::Relaxed);
    // Counted as the parsers found them; `rejected` is what the quarantine wrote.
    let records = rows_in + counts.rejects.load(Ordering::Relaxed) + read.oversized_lines;
    let sql_rows = encoded.rows + encoded.dropped_ids.len() as u64;
    let Some(duplicates) = rows_in.checked_sub(sql_rows) else {
        discard(&store, &encoded.parts).await;
        discard(&store, quarantine_staged.as_slice()).await;
        bail!("the transform SQL returned {sql_rows} rows from {rows_in} events: it must return at most one row per event");
    };
    Ok(Done {
        lines,
        records,
        duplicates,
        rejected,
        repairs: counts.repairs(),
        json_bytes: read.json_bytes,
        encoded,
        quarantine: quarantine_staged,
    })
}

/// Runs blocking work (uploads finishing, writers dropping) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("worker thread failed: {e}"))
}

async fn join<T: Send + 'static>(thread: std::thread::JoinHandle<T>) -> anyhow::Result<T> {
    blocking(move || thread.join())
        .await?
        .map_err(|_| anyhow!("a worker thread panicked"))
}

/// What the parsed chunks held, summed as they pass to the SQL.
#[derive(Default)]
struct Counts {
    lines: AtomicU64,
    /// Records handed to the SQL.
    rows_in: AtomicU64,
    /// Records the parsers rejected.
    rejects: AtomicU64,
    lines_split: AtomicU64,
    nul_runs: AtomicU64,
}

impl Counts {
    fn add(&self, parsed: &Parsed) {
        self.lines.fetch_add(parsed.lines, Ordering::Relaxed);
        self.rows_in
            .fetch_add(parsed.batch.num_rows() as u64, Ordering::Relaxed);
        self.rejects
            .fetch_add(parsed.rejects.len() as u64, Ordering::Relaxed);
        self.lines_split
            .fetch_add(parsed.repairs.lines_split, Ordering::Relaxed);
        self.nul_runs
            .fetch_add(parsed.repairs.nul_runs, Ordering::Relaxed);
    }

    fn repairs(&self) -> Repairs {
        Repairs {
            lines_split: self.lines_split.load(Ordering::Relaxed),
            nul_runs: self.nul_runs.load(Ordering::Relaxed),
        }
    }
}

/// Puts parsed chunks back in file order (first occurrence must win the dedupe) and counts them.
struct Reorder {
    pending: BTreeMap<u64, Parsed>,
    next: u64,
    rx: mpsc::Receiver<anyhow::Result<Parsed>>,
    counts: Arc<Counts>,
}

impl Reorder {
    async fn next_batch(&mut self) -> Option<Result<RecordBatch, DataFusionError>> {
        loop {
            if let Some(parsed) = self.pending.remove(&self.next) {
                self.next += 1;
                self.counts.add(&parsed);
                return Some(Ok(parsed.batch));
            }
            match self.rx.recv().await {
                Some(Ok(parsed)) => {
                    self.pending.insert(parsed.seq, parsed);
                }
                Some(Err(e)) => return Some(Err(DataFusionError::External(e.into()))),
                None if self.pending.is_empty() => return None,
                None => {
                    return Some(Err(DataFusionError::Execution(
                        "a parser stopped early".into(),
                    )))
                }
            }
        }
    }
}
