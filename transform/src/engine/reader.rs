//! Stage 1, the reader thread: decompress the raw file and cut it into chunks of whole lines.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Context;

use crate::input::{self, Chunk, LineSplitter, ReadStats};
use crate::quarantine::Quarantine;
use crate::TransformOptions;

/// One file of the hour for the reader: its `source_file`, its bytes as stored, and the counter
/// of raw (compressed) bytes read from it.
pub(super) struct Input {
    pub name: String,
    pub body: Box<dyn Read + Send>,
    pub progress: Arc<AtomicU64>,
}

/// Starts the reader on the hour's files, one after another in their order (so that the first
/// source's events come first, and win the dedupe); chunks go to `chunks`, lines over the limit
/// to the quarantine. `spent` hands back chunks' buffers to reuse.
pub(super) fn spawn(
    inputs: Vec<Input>,
    options: &TransformOptions,
    quarantine: Arc<Mutex<Quarantine>>,
    chunks: crossbeam_channel::Sender<Chunk>,
    spent: crossbeam_channel::Receiver<Vec<u8>>,
) -> anyhow::Result<JoinHandle<anyhow::Result<ReadStats>>> {
    let (chunk_bytes, max_line_bytes) = (options.chunk_bytes, options.max_line_bytes);
    let thread = std::thread::Builder::new()
        .name("gh-elt-reader".into())
        .spawn(move || -> anyhow::Result<ReadStats> {
            let mut stats = ReadStats::default();
            let several = inputs.len() > 1;
            for (source_index, input) in inputs.into_iter().enumerate() {
                let context = || match several {
                    true => format!("reading the raw file {}", input.name),
                    false => "reading the raw file".to_string(),
                };
                let counted = Counting {
                    inner: input.body,
                    count: input.progress.clone(),
                };
                let decoded = input::decompress(Box::new(counted)).with_context(context)?;
                let splitter = LineSplitter {
                    source: &input.name,
                    source_index,
                    first_seq: stats.chunks,
                    chunk_bytes,
                    max_line_bytes,
                    quarantine: &quarantine,
                    chunks: chunks.clone(),
                    spent: spent.clone(),
                };
                let read = splitter.run(decoded).with_context(context)?;
                stats.add(&read);
            }
            Ok(stats)
        })?;
    Ok(thread)
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
