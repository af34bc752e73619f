//! Stage 2, the parser threads: chunks of lines into `raw_events` batches, bad records to the
//! quarantine; then the batches back in file order, counted, as the stream the SQL reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::anyhow;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use events::Repairs;
use tokio::sync::mpsc;

use crate::input::Chunk;
use crate::parse::{ChunkParser, Parsed};
use crate::quarantine::Quarantine;
use crate::schema;

/// The running parsers and the ordered stream of what they parse.
pub(super) struct Parsers {
    pub threads: Vec<JoinHandle<()>>,
    pub raw_events: SendableRecordBatchStream,
    pub counts: Arc<Counts>,
}

/// Starts `threads` parsers on the chunks of `source`.
pub(super) fn spawn(
    source: &str,
    max_line_bytes: usize,
    threads: usize,
    chunks: crossbeam_channel::Receiver<Chunk>,
    quarantine: &Arc<Mutex<Quarantine>>,
) -> anyhow::Result<Parsers> {
    let (parsed_tx, parsed_rx) = mpsc::channel::<anyhow::Result<Parsed>>(threads * 2);
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let (chunks, parsed_tx, quarantine) =
            (chunks.clone(), parsed_tx.clone(), quarantine.clone());
        let mut parser = ChunkParser::new(source.to_string(), max_line_bytes)?;
        handles.push(
            std::thread::Builder::new()
                .name(format!("gh-elt-parser-{i}"))
                .spawn(move || {
                    for chunk in chunks {
                        let parsed = parser
                            .parse(&chunk)
                            .and_then(|parsed| quarantine_rejects(&quarantine, &chunk, parsed));
                        let failed = parsed.is_err();
                        if parsed_tx.blocking_send(parsed).is_err() || failed {
                            return;
                        }
                    }
                })?,
        );
    }
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
    Ok(Parsers {
        threads: handles,
        raw_events: Box::pin(RecordBatchStreamAdapter::new(
            schema::raw_events_schema(),
            ordered,
        )),
        counts,
    })
}

/// Writes the chunk's rejected records to the quarantine, with their line numbers and bytes.
fn quarantine_rejects(
    quarantine: &Mutex<Quarantine>,
    chunk: &Chunk,
    parsed: Parsed,
) -> anyhow::Result<Parsed> {
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
}

/// What the parsed chunks held, summed as they pass to the SQL.
#[derive(Default)]
pub(super) struct Counts {
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

    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    pub fn rows_in(&self) -> u64 {
        self.rows_in.load(Ordering::Relaxed)
    }

    pub fn rejects(&self) -> u64 {
        self.rejects.load(Ordering::Relaxed)
    }

    pub fn repairs(&self) -> Repairs {
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
