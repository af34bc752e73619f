//! One hour from the source into the raw store: streamed into a multipart upload, checked, and
//! completed only when whole; retried with backoff on transient faults.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use events::Hour;
use flate2::read::MultiGzDecoder;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use rand::Rng;
use tokio::sync::mpsc;

use crate::config::{IngestConfig, RawCompression};
use crate::source::Source;
use crate::FetchError;

/// Chunks of the received stream handed to the check, and of the recompressed stream handed to
/// the uploader.
const INPUT_CHUNK: usize = 256 * 1024;
const OUTPUT_CHUNK: usize = 1024 * 1024;
/// Uploads still running when the next part is handed over. With none, one part uploads while
/// the next fills: memory is about twice the part size, and receiving never waits on S3 for
/// long.
const PARTS_IN_FLIGHT: usize = 0;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What fetching one hour came to.
pub enum Fetched {
    Stored(Stored),
    /// The source has no file for the hour (404).
    NotFound,
    Failed(FetchError),
}

pub struct Stored {
    pub key: String,
    /// Bytes stored, and bytes received from the source.
    pub bytes: u64,
    pub source_bytes: u64,
    /// Bytes of JSON inside (the gzip stream was read to its end to check it is whole).
    pub json_bytes: u64,
}

/// Fetches hours from a source into the raw store.
pub struct Fetcher {
    pub source: Source,
    pub raw: Arc<dyn ObjectStore>,
    pub raw_prefix: String,
    compression: RawCompression,
    part_bytes: usize,
    attempts: u32,
    retry_base: Duration,
}

impl Fetcher {
    pub fn new(
        config: &IngestConfig,
        raw: Arc<dyn ObjectStore>,
        raw_prefix: String,
    ) -> anyhow::Result<Fetcher> {
        Ok(Fetcher {
            source: Source::new(&config.base_url, config.read_timeout())?,
            raw,
            raw_prefix,
            compression: config.raw_compression,
            part_bytes: config.part_bytes(),
            attempts: config.download_attempts.max(1),
            retry_base: Duration::from_millis(config.retry_base_ms),
        })
    }

    /// The raw key of `hour` as this fetcher stores it.
    pub fn key(&self, hour: Hour) -> String {
        hour.raw_key(&self.raw_prefix, self.compression.stored_as())
    }

    /// The stored size of `hour`'s raw object, if it is already in the store.
    pub async fn existing(&self, hour: Hour) -> anyhow::Result<Option<u64>> {
        match self.raw.head(&Path::from(self.key(hour))).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("checking {}", self.key(hour)))),
        }
    }

    /// Downloads `hour` into the store, retrying transient faults. Returns the outcome and the
    /// number of attempts made.
    pub async fn fetch(&self, hour: Hour) -> (Fetched, u32) {
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let result = self.attempt(hour).await;
            match result {
                Ok(Some(stored)) => {
                    tracing::info!(
                        %hour, key = %stored.key, bytes = stored.bytes, source_bytes = stored.source_bytes, json_bytes = stored.json_bytes,
                        seconds = started.elapsed().as_secs_f64(), attempt, "stored"
                    );
                    return (Fetched::Stored(stored), attempt);
                }
                Ok(None) => return (Fetched::NotFound, attempt),
                Err(e) if e.retry && attempt < self.attempts => {
                    let delay = backoff(self.retry_base, attempt);
                    tracing::warn!(
                        %hour, source = %self.source.location(hour), error = %e.message, attempt,
                        retry_in_ms = delay.as_millis() as u64, "download failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(%hour, source = %self.source.location(hour), error = %e.message, attempt, "download failed");
                    return (Fetched::Failed(e), attempt);
                }
            }
        }
    }

    /// One attempt: source → check (and recompress) → multipart upload, completed only if all of
    /// it went well, aborted otherwise.
    async fn attempt(&self, hour: Hour) -> Result<Option<Stored>, FetchError> {
        let Some(body) = self.source.open(hour).await? else {
            return Ok(None);
        };
        let key = self.key(hour);
        let upload = self
            .raw
            .put_multipart(&Path::from(key.as_str()))
            .await
            .map_err(FetchError::storage)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_bytes);

        // Three stages at once: receive, check (gzip to its end) or recompress, upload. Stored
        // as received, each chunk goes to the upload as well as to the check; recompressed, the
        // check's output is what is uploaded.
        let (input, input_rx) = mpsc::channel::<io::Result<Bytes>>(8);
        let (output, output_rx) = mpsc::channel::<Bytes>(4);
        let (tee, recompressed) = match self.compression {
            RawCompression::None => (Some(output), None),
            RawCompression::Zstd => (None, Some(output)),
        };
        let check = tokio::task::spawn_blocking(move || transcode(input_rx, recompressed));
        let receive = async move {
            let mut chunks = body.chunks;
            let mut received = 0u64;
            let mut chunker = Chunker::new(INPUT_CHUNK);
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| FetchError {
                    message: format!("the body broke off after {received} bytes: {}", e.message),
                    ..e
                })?;
                received += chunk.len() as u64;
                if let Some(expected) = body.expected_len.filter(|&n| received > n) {
                    return Err(FetchError::unreachable(format!(
                        "received more than the announced {expected} bytes"
                    )));
                }
                for full in chunker.split(&chunk) {
                    if !forward(full, &input, tee.as_ref()).await {
                        // The check or the upload stopped; its error says why.
                        return Ok((received, body.expected_len));
                    }
                }
            }
            if let Some(last) = chunker.finish() {
                forward(last, &input, tee.as_ref()).await;
            }
            Ok((received, body.expected_len))
        };
        let upload = async {
            let mut output_rx = output_rx;
            let mut stored = 0u64;
            let mut parts = Chunker::new(self.part_bytes);
            while let Some(chunk) = output_rx.recv().await {
                stored += chunk.len() as u64;
                for part in parts.split(&chunk) {
                    writer
                        .wait_for_capacity(PARTS_IN_FLIGHT)
                        .await
                        .map_err(FetchError::storage)?;
                    writer.put(part);
                }
            }
            if let Some(last) = parts.finish() {
                writer.put(last);
            }
            Ok::<_, FetchError>(stored)
        };
        let (received, stored) = tokio::join!(receive, upload);
        let checked = check
            .await
            .map_err(|e| FetchError::ours(format!("the check task failed: {e}")));

        // In this order, so that each failure is put down to its cause: a body cut off in
        // transit also fails the gzip check, and a check that failed stops the receiving early.
        let outcome = (|| {
            let (received, expected) = received?;
            let stored = stored?;
            let json_bytes = checked?.map_err(|e| {
                FetchError::broken(format!("the body is not a whole gzip stream: {e}"))
            })?;
            if let Some(expected) = expected.filter(|&n| n != received) {
                return Err(FetchError::unreachable(format!(
                    "the body broke off after {received} of {expected} bytes"
                )));
            }
            Ok((received, stored, json_bytes))
        })();
        // Every part must be in before the upload is completed: a part that failed still leaves
        // the upload abortable here, whereas `finish` would consume it.
        let outcome = match outcome {
            Ok(sizes) => writer
                .wait_for_capacity(0)
                .await
                .map(|()| sizes)
                .map_err(FetchError::storage),
            Err(e) => Err(e),
        };
        match outcome {
            Ok((source_bytes, bytes, json_bytes)) => {
                writer.finish().await.map_err(FetchError::storage)?;
                Ok(Some(Stored {
                    key,
                    bytes,
                    source_bytes,
                    json_bytes,
                }))
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(%key, error = %abort, "aborting the multipart upload failed");
                }
                Err(e)
            }
        }
    }
}

/// Cuts a byte stream into chunks of a fixed size, held in buffers that are reused: a chunk's
/// buffer returns to the pool when the last `Bytes` of it is dropped, on whichever thread.
///
/// Every stage hands the next one such chunks, never slices of another's buffers: received
/// chunks are slices of the HTTP client's read buffer (holding them pins it), and buffers
/// allocated on one thread and freed on another would leave the allocator holding many.
/// With the pool, memory stays at what the bounded channels and the upload hold.
struct Chunker {
    size: usize,
    free: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    current: Vec<u8>,
}

/// A full chunk on its way; its buffer goes back to the pool when dropped.
struct LentBuffer {
    buffer: Vec<u8>,
    free: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Chunker {
    fn new(size: usize) -> Chunker {
        Chunker {
            size,
            free: Arc::default(),
            current: Vec::new(),
        }
    }

    /// Copies all of `bytes` in; returns the chunks that became full.
    fn split(&mut self, mut bytes: &[u8]) -> Vec<Bytes> {
        let mut full = Vec::new();
        while !bytes.is_empty() {
            let (taken, chunk) = self.fill(bytes);
            bytes = &bytes[taken..];
            full.extend(chunk);
        }
        full
    }

    /// Copies from `bytes` until the current chunk is full. Returns how many bytes it took, and
    /// the chunk if it is now full.
    fn fill(&mut self, bytes: &[u8]) -> (usize, Option<Bytes>) {
        if self.current.capacity() == 0 {
            let reused = self.free.lock().ok().and_then(|mut free| free.pop());
            self.current = reused.unwrap_or_else(|| Vec::with_capacity(self.size));
        }
        let taken = bytes.len().min(self.size - self.current.len());
        self.current.extend_from_slice(&bytes[..taken]);
        let full = (self.current.len() == self.size).then(|| self.lend());
        (taken, full)
    }

    /// The last, partly filled chunk, if any.
    fn finish(&mut self) -> Option<Bytes> {
        (!self.current.is_empty()).then(|| self.lend())
    }

    fn lend(&mut self) -> Bytes {
        Bytes::from_owner(LentBuffer {
            buffer: std::mem::take(&mut self.current),
            free: self.free.clone(),
        })
    }
}

impl AsRef<[u8]> for LentBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for LentBuffer {
    fn drop(&mut self) {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        if let Ok(mut free) = self.free.lock() {
            free.push(buffer);
        }
    }
}

/// Exponential backoff with jitter: between half and all of `base × 2^(attempt-1)`, at most 30 s.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let full = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let half = full / 2;
    half + full
        .saturating_sub(half)
        .mul_f64(rand::rng().random::<f64>())
}

/// Hands a received chunk to the check, and to the upload when the file is stored as received.
/// False when either has stopped.
async fn forward(
    chunk: Bytes,
    check: &mpsc::Sender<io::Result<Bytes>>,
    upload: Option<&mpsc::Sender<Bytes>>,
) -> bool {
    if let Some(upload) = upload {
        if upload.send(chunk.clone()).await.is_err() {
            return false;
        }
    }
    check.send(Ok(chunk)).await.is_ok()
}

/// Reads the received gzip stream to its end (which checks its CRC and length); with
/// `recompressed`, passes the JSON on recompressed with zstd. Returns the bytes of JSON inside.
fn transcode(
    input: mpsc::Receiver<io::Result<Bytes>>,
    recompressed: Option<mpsc::Sender<Bytes>>,
) -> io::Result<u64> {
    let mut decoder = MultiGzDecoder::new(adapters::objects::ChannelReader::new(input));
    let Some(output) = recompressed else {
        return io::copy(&mut decoder, &mut io::sink());
    };
    let mut encoder = zstd::Encoder::new(
        ChannelWriter {
            output,
            chunker: Chunker::new(OUTPUT_CHUNK),
        },
        3,
    )?;
    let json_bytes = io::copy(&mut decoder, &mut encoder)?;
    encoder.finish()?.flush()?;
    Ok(json_bytes)
}

/// A `Write` that hands 1 MiB chunks to the uploader.
struct ChannelWriter {
    output: mpsc::Sender<Bytes>,
    chunker: Chunker,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (taken, full) = self.chunker.fill(buf);
        if let Some(full) = full {
            self.output.blocking_send(full).map_err(|_| closed())?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(last) = self.chunker.finish() {
            self.output.blocking_send(last).map_err(|_| closed())?;
        }
        Ok(())
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// Runs `transcode` on `body` cut into small chunks; returns its result and what it passed on
    /// (the recompressed file; nothing when the file is stored as received, which the receiving
    /// stage passes on itself: tests/ingest.rs compares stored objects byte for byte).
    fn run_transcode(body: &[u8], compression: RawCompression) -> (io::Result<u64>, Vec<u8>) {
        let (input, input_rx) = mpsc::channel(4);
        let (output, mut output_rx) = mpsc::channel(4);
        let recompressed = (compression == RawCompression::Zstd).then_some(output);
        let worker = std::thread::spawn(move || transcode(input_rx, recompressed));
        let chunks: Vec<Bytes> = body.chunks(1000).map(Bytes::copy_from_slice).collect();
        let feeder = std::thread::spawn(move || {
            for chunk in chunks {
                if input.blocking_send(Ok(chunk)).is_err() {
                    break;
                }
            }
        });
        let mut passed = Vec::new();
        while let Some(chunk) = output_rx.blocking_recv() {
            passed.extend_from_slice(&chunk);
        }
        feeder.join().unwrap();
        (worker.join().unwrap(), passed)
    }

    #[test]
    fn only_whole_gzip_streams_pass_the_check() {
        let json: Vec<u8> = (0..5000)
            .flat_map(|i| format!("{{\"id\":\"{i}\"}}\n").into_bytes())
            .collect();
        let whole = gzip(&json);

        let (result, passed) = run_transcode(&whole, RawCompression::None);
        assert_eq!(result.unwrap(), json.len() as u64);
        assert!(passed.is_empty(), "nothing to pass on: stored as received");

        let (result, passed) = run_transcode(&whole, RawCompression::Zstd);
        assert_eq!(result.unwrap(), json.len() as u64);
        assert_eq!(zstd::decode_all(&passed[..]).unwrap(), json);

        let cut = &whole[..whole.len() - 10];
        assert!(
            run_transcode(cut, RawCompression::None).0.is_err(),
            "truncated"
        );
        let mut trailing = whole.clone();
        trailing.extend_from_slice(b"<html>oops</html>");
        assert!(
            run_transcode(&trailing, RawCompression::None).0.is_err(),
            "trailing bytes"
        );
        let mut flipped = whole.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0xff;
        assert!(
            run_transcode(&flipped, RawCompression::None).0.is_err(),
            "corrupt"
        );
        assert!(run_transcode(b"not gzip", RawCompression::Zstd).0.is_err());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let base = Duration::from_millis(100);
        for attempt in 1..=4 {
            let full = base * (1 << (attempt - 1));
            let delay = backoff(base, attempt);
            assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
        }
        assert!(backoff(base, 30) <= MAX_BACKOFF);
    }
}
