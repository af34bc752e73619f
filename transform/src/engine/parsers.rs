//! Stage 2, the parser threads: chunks of lines into `raw_events` batches, bad records to the
//! quarantine; then the batches back in file order, counted, as the stream the SQL reads.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::anyhow;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use events::Repairs;
use hashbrown::{HashMap, HashSet};
use tokio::sync::mpsc;

use crate::functions::first_occurrence;
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

/// Starts `threads` parsers on the chunks of `sources` (the hour's files, by place). With `dedupe_ahead`, the later
/// occurrences of an id are dropped from the stream (see [`crate::sql::TransformSql::dedupes_ahead`]).
pub(super) fn spawn(
    sources: &[String],
    max_line_bytes: usize,
    threads: usize,
    chunks: crossbeam_channel::Receiver<Chunk>,
    spent: crossbeam_channel::Sender<Vec<u8>>,
    quarantine: &Arc<Mutex<Quarantine>>,
    dedupe_ahead: bool,
) -> anyhow::Result<Parsers> {
    let (parsed_tx, parsed_rx) = mpsc::channel::<anyhow::Result<Parsed>>(threads);
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let (chunks, spent, parsed_tx, quarantine) = (
            chunks.clone(),
            spent.clone(),
            parsed_tx.clone(),
            quarantine.clone(),
        );
        let mut parser = ChunkParser::for_sources(sources.to_vec(), max_line_bytes)?;
        let names = sources.to_vec();
        handles.push(
            std::thread::Builder::new()
                .name(format!("gh-elt-parser-{i}"))
                .spawn(move || {
                    for chunk in chunks {
                        let parsed = parser.parse(&chunk).and_then(|parsed| {
                            let name = names.get(chunk.source).map_or("", String::as_str);
                            quarantine_rejects(&quarantine, name, &chunk, parsed)
                        });
                        let failed = parsed.is_err();
                        if parsed_tx.blocking_send(parsed).is_err() || failed {
                            return;
                        }
                        // The batch holds copies: the buffer goes back to the reader, or is
                        // dropped when enough are waiting.
                        let _ = spent.try_send(chunk.data);
                    }
                })?,
        );
    }
    let counts = Arc::new(Counts::for_sources(sources.len()));
    let ordered = futures::stream::unfold(
        Reorder {
            pending: BTreeMap::new(),
            next: 0,
            rx: parsed_rx,
            counts: counts.clone(),
            later_occurrences: dedupe_ahead.then(LaterOccurrences::new),
            ready: VecDeque::new(),
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
    source: &str,
    chunk: &Chunk,
    parsed: Parsed,
) -> anyhow::Result<Parsed> {
    let mut quarantine = quarantine
        .lock()
        .map_err(|_| anyhow!("quarantine lock poisoned"))?;
    for reject in &parsed.rejects {
        quarantine.reject(
            source,
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
    by_source: Mutex<BySource>,
    lines: AtomicU64,
    /// Records handed to the SQL.
    rows_in: AtomicU64,
    /// Records the parsers rejected.
    rejects: AtomicU64,
    lines_split: AtomicU64,
    nul_runs: AtomicU64,
}

/// Records per source, and (with more than one source) which sources held each `event_id`.
#[derive(Default)]
struct BySource {
    records: Vec<u64>,
    /// A bit per source (the first 64) for each id, kept only when there are several sources.
    holders: Option<HashMap<i64, u64>>,
}

impl Counts {
    fn for_sources(sources: usize) -> Counts {
        let by_source = BySource {
            records: vec![0; sources.max(1)],
            holders: (sources > 1).then(|| HashMap::with_capacity(1 << 18)),
        };
        Counts {
            by_source: Mutex::new(by_source),
            ..Counts::default()
        }
    }

    /// Per source, in order: the records read from it, and how many of its `event_id`s another
    /// source also had.
    pub fn by_source(&self) -> Vec<(u64, u64)> {
        let Ok(by_source) = self.by_source.lock() else {
            return Vec::new();
        };
        let mut shared = vec![0u64; by_source.records.len()];
        for &holders in by_source.holders.iter().flat_map(|h| h.values()) {
            if holders.count_ones() > 1 {
                for (source, count) in shared.iter_mut().enumerate().take(64) {
                    *count += (holders >> source) & 1;
                }
            }
        }
        by_source.records.iter().copied().zip(shared).collect()
    }

    fn add_by_source(&self, parsed: &Parsed) {
        let Ok(mut by_source) = self.by_source.lock() else {
            return;
        };
        if let Some(records) = by_source.records.get_mut(parsed.source) {
            *records += (parsed.batch.num_rows() + parsed.rejects.len()) as u64;
        }
        let Some(holders) = by_source.holders.as_mut() else {
            return;
        };
        let bit = 1u64.checked_shl(parsed.source as u32).unwrap_or(0);
        let batch = &parsed.batch;
        if let Ok(column) = batch.schema().index_of("id") {
            let ids = batch.column(column).as_primitive::<Int64Type>();
            for id in ids.iter().flatten() {
                *holders.entry(id).or_default() |= bit;
            }
        }
    }

    fn add(&self, parsed: &Parsed) {
        self.add_by_source(parsed);
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

/// Puts parsed chunks back in file order (first occurrence must win the dedupe) and counts them;
/// drops the later occurrences of an id when told to.
struct Reorder {
    pending: BTreeMap<u64, Parsed>,
    next: u64,
    rx: mpsc::Receiver<anyhow::Result<Parsed>>,
    counts: Arc<Counts>,
    later_occurrences: Option<LaterOccurrences>,
    /// Slices of the last batch, waiting to be handed on.
    ready: VecDeque<RecordBatch>,
}

impl Reorder {
    async fn next_batch(&mut self) -> Option<Result<RecordBatch, DataFusionError>> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Some(Ok(batch));
            }
            if let Some(parsed) = self.pending.remove(&self.next) {
                self.next += 1;
                self.counts.add(&parsed);
                match &mut self.later_occurrences {
                    Some(later) => self.ready.extend(later.keep(&parsed.batch)),
                    None => return Some(Ok(parsed.batch)),
                }
                continue;
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

/// Drops the later occurrences of an id: the ids seen so far in the file, in file order, and
/// what `first_seen(id)` would answer for each row ([`first_occurrence`]).
struct LaterOccurrences {
    seen: HashSet<i64>,
    id_column: Option<usize>,
}

impl LaterOccurrences {
    fn new() -> LaterOccurrences {
        LaterOccurrences {
            seen: HashSet::with_capacity(1 << 18),
            id_column: schema::raw_events_schema().index_of("id").ok(),
        }
    }

    /// The runs of `batch`'s rows whose id is seen for the first time, as zero-copy slices. A
    /// row without an id is dropped, as `first_seen(NULL)` is false.
    fn keep(&mut self, batch: &RecordBatch) -> Vec<RecordBatch> {
        let Some(ids) = self
            .id_column
            .map(|c| batch.column(c).as_primitive::<Int64Type>())
        else {
            return vec![batch.clone()];
        };
        let mut runs = Vec::new();
        let mut start = None;
        for row in 0..batch.num_rows() {
            let first = first_occurrence(&mut self.seen, ids, row);
            match (first, start) {
                (true, None) => start = Some(row),
                (false, Some(from)) => {
                    runs.push(batch.slice(from, row - from));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(from) = start {
            runs.push(batch.slice(from, batch.num_rows() - from));
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn later_occurrences_are_dropped_and_first_ones_kept_as_slices_across_batches() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("line", DataType::Utf8, false),
        ]));
        let batch = |ids: Vec<Option<i64>>| {
            let lines: Vec<String> = (0..ids.len()).map(|i| format!("line {i}")).collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(lines)),
                ],
            )
            .unwrap()
        };
        let mut later = LaterOccurrences {
            seen: HashSet::new(),
            id_column: Some(0),
        };
        let ids_of = |runs: &[RecordBatch]| -> Vec<Vec<i64>> {
            runs.iter()
                .map(|r| r.column(0).as_primitive::<Int64Type>().values().to_vec())
                .collect()
        };
        let runs = later.keep(&batch(vec![
            Some(1),
            Some(2),
            Some(1),
            None,
            Some(3),
            Some(3),
        ]));
        assert_eq!(ids_of(&runs), vec![vec![1, 2], vec![3]]);
        assert_eq!(runs[1].column(1).as_string::<i32>().value(0), "line 4");
        let runs = later.keep(&batch(vec![Some(4), Some(5)]));
        assert_eq!(ids_of(&runs), vec![vec![4, 5]]);
        assert!(later.keep(&batch(vec![Some(2), Some(5)])).is_empty());
    }
}
