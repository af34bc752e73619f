//! The engine: an hour's raw files (one per source present, read one after another) through the
//! stages, on both cores, with bounded queues between them
//! so memory stays flat however large the file:
//!
//! ```text
//! reader thread          parser threads (N)          tokio task              encoder thread
//! decompress, cut   ──▶  lines → raw_events batch ──▶ DataFusion SQL     ──▶  Parquet parts,
//! into line chunks       bad lines → quarantine       (in file order)         staged uploads
//! (reader.rs)            (parsers.rs)                 (encoder.rs)            (encoder.rs)
//! ```
//!
//! Everything is staged under the run's own folder; the commit (`crate::commit`) moves it into
//! place. On error nothing stays staged.

mod encoder;
mod parsers;
mod reader;

use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use events::commits::CommitCounts;
use events::{Repairs, SourceCount, TransformSummary};
use object_store::path::Path;
use object_store::ObjectStore;
use tokio::runtime::Handle;

use crate::commit::{discard, Begun, Outputs, Run};
use crate::input::{Chunk, ReadStats};
use crate::objects::ObjectWriter;
use crate::parts::{Encoded, Staged, Target};
use crate::quarantine::Quarantine;
use crate::{RawHour, TransformOptions};

/// What the engine made of a file, staged, before the commit.
pub(crate) struct Done {
    lines: u64,
    records: u64,
    duplicates: u64,
    rejected: u64,
    repairs: Repairs,
    json_bytes: u64,
    encoded: Encoded,
    quarantine: Option<Staged>,
    by_source: Vec<SourceCount>,
}

/// Runs the stages over the hour's files, staging the parts and the quarantine under the run's
/// folder.
pub(crate) async fn encode(
    file: RawHour,
    run: &Run<'_>,
    begun: &Begun,
    options: &TransformOptions,
) -> anyhow::Result<Done> {
    let rejects_key = file.hour.rejects_key(&options.rejects_prefix);
    let target = Target {
        store: run.lake.store.clone(),
        handle: Handle::current(),
        hour: file.hour,
        curated_prefix: options.curated_prefix.clone(),
        staging_dir: run.staging_dir(),
        run: run.part_token(),
        committed_nearby: begun.committed_nearby.clone(),
    };
    let rejects = Staged {
        staging: target.staging_for(&rejects_key),
        target: Path::from(rejects_key.as_str()),
        data: None,
    };
    let quarantine = open_quarantine(&target, rejects.staging.clone());
    let sources: Vec<String> = file.files.iter().map(|f| f.source.clone()).collect();
    let described = sources.join(" + ");
    let inputs = file
        .files
        .into_iter()
        .map(|f| reader::Input {
            name: f.source,
            body: f.body,
            progress: f.progress,
        })
        .collect();

    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<Chunk>(options.parse_threads);
    let (spent_tx, spent_rx) = crossbeam_channel::bounded::<Vec<u8>>(options.parse_threads + 1);
    let reader = reader::spawn(inputs, options, quarantine.clone(), chunk_tx, spent_rx)?;
    let parsers = parsers::spawn(
        &sources,
        options.max_line_bytes,
        options.parse_threads,
        chunk_rx,
        spent_tx,
        &quarantine,
        options.sql.dedupes_ahead(),
    )?;
    let store = target.store.clone();
    let result = encoder::run(
        &options.sql,
        parsers.raw_events,
        target,
        options.max_part_bytes,
        &sources,
    )
    .await;

    // Wait for every thread before deciding: their errors come first, as they are the cause.
    let read = join(reader).await?;
    for parser in parsers.threads {
        join(parser).await?;
    }
    let quarantine = Arc::try_unwrap(quarantine)
        .map_err(|_| anyhow!("quarantine still in use"))?
        .into_inner()
        .map_err(|_| anyhow!("quarantine lock poisoned"))?;
    let settled = result
        .map_err(|e| (e, Vec::new()))
        .and_then(|r| r.settle(read));
    let (read, encoded) = match settled {
        Ok(done) => done,
        Err((e, staged)) => {
            blocking(move || drop(quarantine)).await?;
            discard(&store, &staged).await;
            return Err(e.context(format!("transforming {described}: nothing was written")));
        }
    };
    let closing = Closing {
        store,
        source: described,
        sources,
        counts: parsers.counts,
    };
    closing.finish(read, encoded, quarantine, rejects).await
}

/// The last step of a file whose stages all succeeded.
struct Closing {
    store: Arc<dyn ObjectStore>,
    source: String,
    /// The hour's files, by place.
    sources: Vec<String>,
    counts: Arc<parsers::Counts>,
}

impl Closing {
    /// Finishes the quarantine and counts the file; on error discards what it staged.
    async fn finish(
        self,
        read: ReadStats,
        encoded: Encoded,
        quarantine: Quarantine,
        rejects: Staged,
    ) -> anyhow::Result<Done> {
        let rejected = quarantine.rejected();
        let quarantine = match finish_quarantine(quarantine, rejects).await {
            Ok(staged) => staged,
            Err(e) => {
                discard(&self.store, &encoded.parts).await;
                let source = &self.source;
                return Err(e.context(format!(
                    "writing the quarantine of {source}: nothing was written"
                )));
            }
        };
        match tally(&self.counts, read, encoded, rejected, quarantine) {
            Ok(mut done) => {
                done.by_source = by_source(&self.sources, &self.counts, &done.encoded);
                Ok(done)
            }
            Err((e, staged)) => {
                discard(&self.store, &staged).await;
                Err(e)
            }
        }
    }
}

/// The quarantine of the file, shared by the reader (lines over the limit) and the parsers; its
/// object is created at the first reject.
fn open_quarantine(target: &Target, staging: Path) -> Arc<Mutex<Quarantine>> {
    let (store, handle) = (target.store.clone(), target.handle.clone());
    Arc::new(Mutex::new(Quarantine::new(Box::new(move || {
        ObjectWriter::create(&store, staging.clone(), handle.clone())
    }))))
}

/// Finishes the quarantine's upload; `None` when no line was rejected.
async fn finish_quarantine(
    quarantine: Quarantine,
    rejects: Staged,
) -> anyhow::Result<Option<Staged>> {
    let finished = blocking(move || -> std::io::Result<bool> {
        let Some(mut object) = quarantine.finish()? else {
            return Ok(false);
        };
        object.finish()?;
        Ok(true)
    })
    .await?;
    Ok(finished?.then_some(rejects))
}

/// The accounting per source: records read, rows of the result and events another source had.
fn by_source(sources: &[String], counts: &parsers::Counts, encoded: &Encoded) -> Vec<SourceCount> {
    let read = counts.by_source();
    sources
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (records, shared) = read.get(i).copied().unwrap_or_default();
            SourceCount {
                source_file: name.clone(),
                records,
                rows: encoded.rows_by_source.get(i).copied().unwrap_or_default(),
                shared,
            }
        })
        .collect()
}

/// The accounting of the file. Every record is a row, a duplicate, a row a neighbouring hour
/// holds, or a reject; an SQL that returned more rows than it read breaks that and is refused
/// (with what it staged, to discard).
fn tally(
    counts: &parsers::Counts,
    read: ReadStats,
    encoded: Encoded,
    rejected: u64,
    quarantine: Option<Staged>,
) -> Result<Done, (anyhow::Error, Vec<Staged>)> {
    let rows_in = counts.rows_in();
    // Counted as the parsers found them; `rejected` is what the quarantine wrote.
    let records = rows_in + counts.rejects() + read.oversized_lines;
    let sql_rows = encoded.rows + encoded.dropped_ids.len() as u64;
    let Some(duplicates) = rows_in.checked_sub(sql_rows) else {
        let mut staged = encoded.parts;
        staged.extend(quarantine);
        let error = anyhow!("the transform SQL returned {sql_rows} rows from {rows_in} events: it must return at most one row per event");
        return Err((error, staged));
    };
    Ok(Done {
        lines: counts.lines() + read.oversized_lines,
        records,
        duplicates,
        rejected,
        repairs: counts.repairs(),
        json_bytes: read.json_bytes,
        encoded,
        quarantine,
        by_source: Vec::new(),
    })
}

impl Done {
    /// Writes the accounting into `summary`; what the commit takes.
    pub(crate) fn account(self, summary: &mut TransformSummary) -> Outputs {
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
        summary.sources = self.by_source.clone();
        Outputs {
            schema: self.encoded.schema.clone(),
            by_source: self.by_source,
            parts: self.encoded.parts,
            quarantine: self.quarantine,
            event_ids: self.encoded.event_ids,
            dropped_ids: self.encoded.dropped_ids,
            counts,
        }
    }
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
