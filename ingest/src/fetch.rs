//! One hour from the source into the raw store: streamed into a multipart upload, checked, and
//! completed only when whole; retried with backoff on transient faults.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use events::Hour;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::sync::mpsc;

use crate::check::transcode;
use crate::chunks::Chunker;
use crate::config::{IngestConfig, RawCompression};
use crate::source::{Body, Source};
use crate::{Failure, FetchError};

/// Chunks of the received stream handed to the check.
const INPUT_CHUNK: usize = 256 * 1024;
/// Uploads still running when the next part is handed over. With none, one part uploads while
/// the next fills: memory is about twice the part size, and receiving never waits on S3 for
/// long.
const PARTS_IN_FLIGHT: usize = 0;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Where uploads that must not replace an hour wait to be copied into place: outside the raw
/// prefix, so that they make no notification (when the prefix is not empty).
pub const STAGING: &str = "_staging/";

/// A staged upload's key: unique per upload, so that two uploads of one hour never share one.
fn staging_key(key: &str) -> String {
    format!("{STAGING}{key}.{:016x}", rand::random::<u64>())
}

/// How an hour goes into the raw store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placing {
    /// Over whatever is there (a retry an operator queued).
    Replace,
    /// Not fetched if stored; written in place otherwise. For the bookmark's next hour: the
    /// job's lease lets no one else store it meanwhile.
    IfAbsent,
    /// Not fetched if stored; staged, then copied into place only if still absent. For a
    /// backfill: nothing claims its hours, and SQS may hand one message to two consumers at once.
    Once,
}

/// What fetching one hour came to.
pub enum Fetched {
    Stored(Stored),
    /// The source has no file for the hour (404).
    NotFound,
    Failed(FetchError),
}

pub struct Stored {
    pub key: String,
    /// Stored only if absent, and another upload of the hour got there first (a message
    /// delivered twice at once): nothing was replaced.
    pub already_present: bool,
    /// Bytes stored, and bytes received from the source.
    pub bytes: u64,
    pub source_bytes: u64,
    /// Bytes of JSON inside (the gzip stream was read to its end to check it is whole).
    pub json_bytes: u64,
}

/// One place hour files come from, and where its files go in the raw store.
pub struct Origin {
    /// The source's name: a mirror's folder, and how records and logs name it.
    pub name: String,
    pub source: Source,
    /// The raw store's folder of its files: the raw prefix for the first source,
    /// `RAW_PREFIX/sources/NAME/` for a mirror.
    pub prefix: String,
}

/// When a transfer must end, and what it means when it does.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: tokio::time::Instant,
    /// The run's own deadline (the Lambda's, less the time to write the run record): the
    /// transfer is interrupted, which says nothing about the hour. Otherwise the hour's
    /// `FETCH_TIMEOUT_SECONDS`.
    pub run: bool,
    pub seconds: u64,
}

impl Deadline {
    /// The error of a transfer cut off at this deadline after `received` bytes.
    pub fn passed(&self, received: u64) -> FetchError {
        match self.run {
            true => FetchError {
                message: format!(
                    "stopped after {received} bytes: the run's deadline came (it ends early enough to write its record)"
                ),
                retry: false,
                kind: Failure::Interrupted,
            },
            false => FetchError {
                message: format!(
                    "gave up after {} s (FETCH_TIMEOUT_SECONDS) with {received} bytes received",
                    self.seconds
                ),
                retry: false,
                kind: Failure::Unreachable,
            },
        }
    }
}

/// Fetches hours from the sources into the raw store.
pub struct Fetcher {
    /// In order: the first one's files keep the raw prefix's own keys.
    pub origins: Vec<Origin>,
    pub raw: Arc<dyn ObjectStore>,
    pub raw_prefix: String,
    compression: RawCompression,
    part_bytes: usize,
    attempts: u32,
    retry_base: Duration,
    fetch_timeout: Duration,
}

impl Fetcher {
    pub fn new(
        config: &IngestConfig,
        raw: Arc<dyn ObjectStore>,
        raw_prefix: String,
    ) -> anyhow::Result<Fetcher> {
        let mut origins = Vec::new();
        for (i, spec) in config.source_specs()?.into_iter().enumerate() {
            let mirror = (i > 0).then_some(spec.name.as_str());
            origins.push(Origin {
                prefix: events::sources::source_prefix(&raw_prefix, mirror),
                source: Source::new(&spec.url, config.read_timeout())?,
                name: spec.name,
            });
        }
        Ok(Fetcher {
            origins,
            raw,
            raw_prefix,
            compression: config.raw_compression,
            part_bytes: config.part_bytes(),
            attempts: config.download_attempts.max(1),
            retry_base: Duration::from_millis(config.retry_base_ms),
            fetch_timeout: config.fetch_timeout(),
        })
    }

    /// The first source: the one whose files keep the raw prefix's keys.
    pub fn first(&self) -> &Origin {
        &self.origins[0]
    }

    /// The raw key of `hour` from `origin` as this fetcher stores it.
    pub fn key(&self, hour: Hour, origin: &Origin) -> String {
        hour.raw_key(&origin.prefix, self.compression.stored_as())
    }

    /// The stored size of `hour`'s raw object from `origin`, if it is already in the store.
    pub async fn existing(&self, hour: Hour, origin: &Origin) -> anyhow::Result<Option<u64>> {
        let key = self.key(hour, origin);
        match self.raw.head(&Path::from(key.as_str())).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("checking {key}"))),
        }
    }

    /// The deadline of a fetch of one hour starting now: `FETCH_TIMEOUT_SECONDS` from now, or
    /// `run_until` (the run's) when that comes first.
    pub fn deadline(&self, run_until: Option<tokio::time::Instant>) -> Deadline {
        let own = Deadline {
            at: tokio::time::Instant::now() + self.fetch_timeout,
            run: false,
            seconds: self.fetch_timeout.as_secs(),
        };
        match run_until {
            Some(at) if at < own.at => Deadline {
                at,
                run: true,
                seconds: 0,
            },
            _ => own,
        }
    }

    /// Downloads `hour` from `origin` into the store, retrying transient faults until
    /// `deadline`. Returns the outcome and the number of attempts made. With
    /// [`Placing::Once`], an hour another upload stores meanwhile is left as that one stored it.
    pub async fn fetch(
        &self,
        hour: Hour,
        origin: &Origin,
        placing: Placing,
        deadline: Deadline,
    ) -> (Fetched, u32) {
        let attempts = AtomicU32::new(0);
        let source = origin.source.location(hour);
        let outcome = (|| {
            let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            self.logged_attempt(hour, origin, attempt, placing, deadline)
        })
        .retry(backoff(self.retry_base, self.attempts))
        // No pause past the deadline: the attempt after it fails at once, saying so.
        .sleep(move |pause: Duration| {
            let left = deadline.at.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(pause.min(left))
        })
        .when(|e: &FetchError| e.retry && tokio::time::Instant::now() < deadline.at)
        .notify(|e, delay| {
            let (attempt, retry_in_ms) = (attempts.load(Ordering::Relaxed), delay.as_millis());
            tracing::warn!(%hour, source, error = %e.message, attempt, retry_in_ms, "download failed; retrying");
        })
        .await;
        let attempts = attempts.into_inner();
        match outcome {
            Ok(Some(stored)) => (Fetched::Stored(stored), attempts),
            Ok(None) => (Fetched::NotFound, attempts),
            Err(e) => {
                tracing::error!(%hour, source, error = %e.message, attempt = attempts, "download failed");
                (Fetched::Failed(e), attempts)
            }
        }
    }

    /// [`Fetcher::attempt`], and what it stored in the log.
    async fn logged_attempt(
        &self,
        hour: Hour,
        origin: &Origin,
        attempt: u32,
        placing: Placing,
        deadline: Deadline,
    ) -> Result<Option<Stored>, FetchError> {
        let started = Instant::now();
        let stored = self.attempt(hour, origin, placing, deadline).await?;
        if let Some(stored) = &stored {
            tracing::info!(
                %hour, key = %stored.key, bytes = stored.bytes, source_bytes = stored.source_bytes, json_bytes = stored.json_bytes,
                seconds = started.elapsed().as_secs_f64(), attempt, "stored"
            );
        }
        Ok(stored)
    }

    /// One attempt: source → check (and recompress) → multipart upload, completed only if all of
    /// it went well, aborted otherwise. [`Placing::Once`] uploads beside the key (under
    /// [`STAGING`]) and then copies into place only if the key is still free, so that two
    /// uploads of one hour at once store it once.
    async fn attempt(
        &self,
        hour: Hour,
        origin: &Origin,
        placing: Placing,
        deadline: Deadline,
    ) -> Result<Option<Stored>, FetchError> {
        if tokio::time::Instant::now() >= deadline.at {
            return Err(deadline.passed(0));
        }
        let only_once = placing == Placing::Once;
        let Some(body) = origin.source.open(hour, deadline).await? else {
            return Ok(None);
        };
        let key = self.key(hour, origin);
        let target = match only_once {
            true => staging_key(&key),
            false => key.clone(),
        };
        let upload = self
            .raw
            .put_multipart(&Path::from(target.as_str()))
            .await
            .map_err(FetchError::storage)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_bytes);
        let sizes = self.transfer(body, &mut writer, deadline).await;
        let Sizes {
            received,
            stored,
            json,
        } = complete_or_abort(writer, &target, sizes).await?;
        let already_present = match only_once {
            true => !self.place(&target, &key).await?,
            false => false,
        };
        Ok(Some(Stored {
            key,
            already_present,
            bytes: stored,
            source_bytes: received,
            json_bytes: json,
        }))
    }

    /// Copies the staged upload to `key` if nothing is there yet; whether it did. The staged copy
    /// is deleted either way (the bucket's lifecycle rule removes one a crash leaves behind).
    async fn place(&self, staged: &str, key: &str) -> Result<bool, FetchError> {
        let staged = Path::from(staged);
        let placed = match self.raw.copy_if_not_exists(&staged, &Path::from(key)).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(FetchError::storage(e)),
        };
        if let Err(e) = self.raw.delete(&staged).await {
            tracing::warn!(key = %staged, error = %e, "deleting a staged upload failed");
        }
        placed
    }

    /// Three stages at once: receive, check (gzip to its end) or recompress, upload. Stored as
    /// received, each chunk goes to the upload as well as to the check; recompressed, the
    /// check's output is what is uploaded.
    async fn transfer(
        &self,
        body: Body,
        writer: &mut WriteMultipart,
        deadline: Deadline,
    ) -> Result<Sizes, FetchError> {
        let (input, input_rx) = mpsc::channel::<io::Result<Bytes>>(8);
        let (output, output_rx) = mpsc::channel::<Bytes>(4);
        let (tee, recompressed) = match self.compression {
            RawCompression::None => (Some(output), None),
            RawCompression::Zstd => (None, Some(output)),
        };
        let handle = tokio::runtime::Handle::current();
        let check = tokio::task::spawn_blocking(move || transcode(input_rx, recompressed, handle));
        let (received, stored) = tokio::join!(
            receive(body, input, tee, deadline),
            upload(output_rx, writer, self.part_bytes)
        );
        let checked = check
            .await
            .map_err(|e| FetchError::ours(format!("the check task failed: {e}")));
        judge(received, stored, checked)
    }
}

/// Bytes of one hour's file: received from the source, stored, and of JSON inside (the gzip
/// stream was read to its end to check it is whole).
struct Sizes {
    received: u64,
    stored: u64,
    json: u64,
}

/// Bytes received, and the length the source announced.
type Received = Result<(u64, Option<u64>), FetchError>;

/// Receives the body, handing its chunks to the check (and to the upload through `tee`); cut
/// off at `deadline`, however the body trickles in.
async fn receive(
    body: Body,
    input: mpsc::Sender<io::Result<Bytes>>,
    tee: Option<mpsc::Sender<Bytes>>,
    deadline: Deadline,
) -> Received {
    let mut chunks = body.chunks;
    let mut received = 0u64;
    let mut chunker = Chunker::new(INPUT_CHUNK);
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline.at, chunks.next()).await else {
            return Err(deadline.passed(received));
        };
        let Some(chunk) = next else {
            break;
        };
        let chunk = chunk.map_err(|e| FetchError {
            message: format!("the body broke off after {received} bytes: {}", e.message),
            ..e
        })?;
        received = received.saturating_add(chunk.len() as u64);
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
}

/// Puts what arrives on `output` into the upload in parts of `part_bytes`; the bytes stored.
async fn upload(
    mut output: mpsc::Receiver<Bytes>,
    writer: &mut WriteMultipart,
    part_bytes: usize,
) -> Result<u64, FetchError> {
    let mut stored = 0u64;
    let mut parts = Chunker::new(part_bytes);
    while let Some(chunk) = output.recv().await {
        stored = stored.saturating_add(chunk.len() as u64);
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
    Ok(stored)
}

/// What the three stages came to, in this order, so that each failure is put down to its
/// cause: a body cut off in transit also fails the gzip check, and a check that failed stops
/// the receiving early.
fn judge(
    received: Received,
    stored: Result<u64, FetchError>,
    checked: Result<io::Result<u64>, FetchError>,
) -> Result<Sizes, FetchError> {
    let (received, expected) = received?;
    let stored = stored?;
    let json = checked?
        .map_err(|e| FetchError::broken(format!("the body is not a whole gzip stream: {e}")))?;
    if let Some(expected) = expected.filter(|&n| n != received) {
        return Err(FetchError::unreachable(format!(
            "the body broke off after {received} of {expected} bytes"
        )));
    }
    Ok(Sizes {
        received,
        stored,
        json,
    })
}

/// Completes the upload when the transfer went well, aborts it (no object, no parts left)
/// otherwise.
async fn complete_or_abort(
    mut writer: WriteMultipart,
    key: &str,
    sizes: Result<Sizes, FetchError>,
) -> Result<Sizes, FetchError> {
    // Every part must be in before the upload is completed: a part that failed still leaves
    // the upload abortable here, whereas `finish` would consume it.
    let sizes = match sizes {
        Ok(sizes) => writer
            .wait_for_capacity(0)
            .await
            .map(|()| sizes)
            .map_err(FetchError::storage),
        Err(e) => Err(e),
    };
    match sizes {
        Ok(sizes) => {
            writer.finish().await.map_err(FetchError::storage)?;
            Ok(sizes)
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(%key, error = %abort, "aborting the multipart upload failed");
            }
            Err(e)
        }
    }
}

/// The pauses between `attempts` attempts: exponential backoff with jitter, before retry `n`
/// between half and all of `base × 2^(n-1)`, at most 30 s. (backon's delays start at half,
/// and its jitter adds up to as much again.)
fn backoff(base: Duration, attempts: u32) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(base / 2)
        .with_factor(2.0)
        .with_max_delay(MAX_BACKOFF / 2)
        .with_jitter()
        .with_max_times(attempts.max(1) as usize - 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        use backon::BackoffBuilder;

        let base = Duration::from_millis(100);
        let delays: Vec<Duration> = backoff(base, 5).build().collect();
        assert_eq!(delays.len(), 4, "between 5 attempts");
        for (attempt, delay) in (1..).zip(delays) {
            let full = base * (1 << (attempt - 1));
            assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
        }
        let capped = backoff(base, 30).build().last().unwrap();
        assert!(
            capped >= MAX_BACKOFF / 2 && capped <= MAX_BACKOFF,
            "{capped:?}"
        );
        assert_eq!(backoff(base, 1).build().count(), 0, "one attempt, no retry");
    }

    /// Two consumers of one backfill message at once: the one that copies second finds the hour
    /// in place and leaves it as it is, with no staged upload left behind. An operator's retry
    /// replaces it.
    #[tokio::test]
    async fn placing_once_leaves_an_hour_another_upload_stored() {
        let world = crate::test_world::World::new();
        let ingest = world.ingest("2024-03-06T00:00:00Z", 10);
        let hour = crate::test_world::hour("2024-03-05-0");
        let published = world.publish("2024-03-05-0");
        let first = b"stored first".to_vec();
        std::fs::create_dir_all(world.lake.join("raw")).expect("the raw folder");
        std::fs::write(world.lake.join("raw/2024-03-05-0.json.gz"), &first).expect("stored");

        let (fetcher, deadline) = (&ingest.fetcher, ingest.fetcher.deadline(None));
        let (fetched, attempts) = fetcher
            .fetch(hour, fetcher.first(), Placing::Once, deadline)
            .await;
        assert!(matches!(
            fetched,
            Fetched::Stored(Stored {
                already_present: true,
                ..
            })
        ));
        assert_eq!(attempts, 1);
        assert_eq!(world.raw("2024-03-05-0"), Some(first));
        let staged = world.lake.join("raw").join(STAGING);
        let left = std::fs::read_dir(&staged).map_or(0, |dir| dir.flatten().count());
        assert_eq!(left, 0, "staged uploads left in {}", staged.display());

        let (fetched, _) = fetcher
            .fetch(hour, fetcher.first(), Placing::Replace, deadline)
            .await;
        assert!(matches!(
            fetched,
            Fetched::Stored(Stored {
                already_present: false,
                ..
            })
        ));
        assert_eq!(world.raw("2024-03-05-0"), Some(published));
    }
}
