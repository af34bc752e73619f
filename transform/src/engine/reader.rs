//! Stage 1, the reader thread: decompress the raw file and cut it into chunks of whole lines.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Context;

use crate::input::{self, Chunk, LineSplitter, ReadStats};
use crate::quarantine::Quarantine;
use crate::TransformOptions;

/// Starts the reader on `body`; chunks go to `chunks`, lines over the limit to the quarantine.
/// `progress` counts the raw (compressed) bytes read; `spent` hands back chunks' buffers to reuse.
pub(super) fn spawn(
    body: Box<dyn Read + Send>,
    progress: Arc<AtomicU64>,
    options: &TransformOptions,
    quarantine: Arc<Mutex<Quarantine>>,
    chunks: crossbeam_channel::Sender<Chunk>,
    spent: crossbeam_channel::Receiver<Vec<u8>>,
) -> anyhow::Result<JoinHandle<anyhow::Result<ReadStats>>> {
    let (chunk_bytes, max_line_bytes) = (options.chunk_bytes, options.max_line_bytes);
    let thread = std::thread::Builder::new()
        .name("gh-elt-reader".into())
        .spawn(move || -> anyhow::Result<ReadStats> {
            let counted = Counting {
                inner: body,
                count: progress,
            };
            let decoded = input::decompress(Box::new(counted)).context("reading the raw file")?;
            let splitter = LineSplitter {
                chunk_bytes,
                max_line_bytes,
                quarantine: &quarantine,
                chunks,
                spent,
            };
            splitter.run(decoded).context("reading the raw file")
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
