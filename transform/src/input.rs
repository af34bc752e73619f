//! Reading one raw file: detect its compression by magic bytes, decompress, and cut the stream
//! into chunks of whole lines for the parsers (the files of an hour's sources one after another). A line too long to hold is streamed straight into
//! the quarantine, so memory stays bounded whatever the input holds.

use std::io::{self, Cursor, Read};
use std::sync::Mutex;

use crossbeam_channel::{Receiver, Sender};
use events::Compression;
use flate2::read::MultiGzDecoder;

use crate::quarantine::Quarantine;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Bytes read from the decoder at a time.
const READ_BYTES: u64 = 256 * 1024;

/// Appends up to `READ_BYTES` decompressed bytes to `buf`. An error here is the input's fault
/// (a truncated or corrupt stream), and says so.
fn read_more(reader: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<usize> {
    reader.take(READ_BYTES).read_to_end(buf).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("the raw file is truncated or corrupt: {e}"),
        )
    })
}

/// A run of whole lines; `first_line` is the 1-based number of its first line in the file, and
/// `source` the file's place among the hour's sources.
pub(crate) struct Chunk {
    pub seq: u64,
    pub source: usize,
    pub first_line: u64,
    pub data: Vec<u8>,
}

/// Wraps `input` in the decoder its first bytes call for.
pub(crate) fn decompress(mut input: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    let mut head = Vec::with_capacity(4);
    (&mut input).take(4).read_to_end(&mut head)?;
    let compression = if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    };
    tracing::debug!(?compression, "detected the raw file's compression");
    let whole = Cursor::new(head).chain(input);
    let reader: Box<dyn Read + Send> = match compression {
        // GHArchive files are single-member, but concatenated gzip is valid gzip too.
        Compression::Gzip => Box::new(MultiGzDecoder::new(io::BufReader::with_capacity(
            1 << 20,
            whole,
        ))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(whole)?),
        Compression::None => Box::new(whole),
    };
    Ok(reader)
}

/// What reading the whole file found, besides the chunks it sent.
#[derive(Default)]
pub(crate) struct ReadStats {
    pub json_bytes: u64,
    /// Lines streamed to the quarantine because they passed the limit.
    pub oversized_lines: u64,
    /// Chunks sent: the next file's first chunk follows on from this one's last.
    pub chunks: u64,
}

impl ReadStats {
    /// The stats of two files read one after the other.
    pub fn add(&mut self, other: &ReadStats) {
        self.json_bytes += other.json_bytes;
        self.oversized_lines += other.oversized_lines;
        self.chunks = other.chunks;
    }
}

pub(crate) struct LineSplitter<'a> {
    /// The file's name in the quarantine and its place among the hour's sources.
    pub source: &'a str,
    pub source_index: usize,
    /// The sequence number of the file's first chunk.
    pub first_seq: u64,
    pub chunk_bytes: usize,
    pub max_line_bytes: usize,
    pub quarantine: &'a Mutex<Quarantine>,
    pub chunks: Sender<Chunk>,
    /// Buffers of chunks the parsers are done with, to cut the next chunks into: the same few
    /// megabytes go round, instead of fresh memory (page faults and all) for every chunk.
    pub spent: Receiver<Vec<u8>>,
}

impl LineSplitter<'_> {
    /// Reads `reader` to the end. Stops early, without error, if the receiving side has gone.
    pub fn run(&self, mut reader: impl Read) -> io::Result<ReadStats> {
        let mut stats = ReadStats::default();
        let mut buf: Vec<u8> = Vec::with_capacity(self.chunk_bytes + READ_BYTES as usize);
        let mut next_line = 1u64;
        let mut seq = self.first_seq;
        // Offset in `buf` where the last, possibly incomplete, line starts.
        let mut line_start = 0usize;
        loop {
            let scanned = buf.len();
            let n = read_more(&mut reader, &mut buf)?;
            stats.json_bytes += n as u64;
            if n == 0 {
                if !buf.is_empty() {
                    self.send(&mut seq, &mut next_line, std::mem::take(&mut buf));
                }
                stats.chunks = seq;
                return Ok(stats);
            }
            if let Some(p) = memchr::memrchr(b'\n', &buf[scanned..]) {
                line_start = scanned + p + 1;
            }
            let open_line = buf.len() - line_start;
            if open_line > self.max_line_bytes || (buf.len() >= self.chunk_bytes && line_start > 0)
            {
                // Send the whole lines; keep the open line (its start) as the new buffer.
                // A buffer a long line grew is dropped, not kept for the rest of the file.
                let room = self.chunk_bytes + READ_BYTES as usize;
                let spent = self.spent.try_recv().ok();
                let mut open = spent
                    .filter(|b| b.capacity() <= 2 * room)
                    .unwrap_or_default();
                open.clear();
                open.reserve(room);
                open.extend_from_slice(&buf[line_start..]);
                buf.truncate(line_start);
                let lines = std::mem::replace(&mut buf, open);
                line_start = 0;
                if !lines.is_empty() && !self.send(&mut seq, &mut next_line, lines) {
                    stats.chunks = seq;
                    return Ok(stats);
                }
                if open_line > self.max_line_bytes {
                    stats.json_bytes += self.stream_oversized(&mut reader, &mut buf, next_line)?;
                    stats.oversized_lines += 1;
                    next_line += 1;
                    line_start = memchr::memrchr(b'\n', &buf).map_or(0, |p| p + 1);
                }
            }
        }
    }

    /// Sends a chunk and advances the line count; false when the receiver has gone.
    fn send(&self, seq: &mut u64, next_line: &mut u64, data: Vec<u8>) -> bool {
        let newlines = memchr::memchr_iter(b'\n', &data).count() as u64;
        let lines = newlines + u64::from(data.last() != Some(&b'\n'));
        let chunk = Chunk {
            seq: *seq,
            source: self.source_index,
            first_line: *next_line,
            data,
        };
        *seq += 1;
        *next_line += lines;
        self.chunks.send(chunk).is_ok()
    }

    /// `buf` holds the start of an over-long line: stream it, and the rest of the line still to
    /// be read, into the quarantine. Leaves in `buf` whatever followed the line. Returns the bytes
    /// read from `reader`.
    fn stream_oversized(
        &self,
        reader: &mut impl Read,
        buf: &mut Vec<u8>,
        line: u64,
    ) -> io::Result<u64> {
        let error = format!(
            "line is longer than the maximum of {} bytes",
            self.max_line_bytes
        );
        let mut quarantine = self
            .quarantine
            .lock()
            .map_err(|_| io::Error::other("quarantine lock poisoned"))?;
        let mut reject = quarantine.begin_streamed(self.source, line, &error)?;
        let mut read = 0u64;
        loop {
            if let Some(p) = memchr::memchr(b'\n', buf) {
                let end = if p > 0 && buf[p - 1] == b'\r' {
                    p - 1
                } else {
                    p
                };
                reject.write(&buf[..end])?;
                buf.drain(..=p);
                break;
            }
            reject.write(buf)?;
            buf.clear();
            let n = read_more(reader, buf)?;
            read += n as u64;
            if n == 0 {
                break;
            }
        }
        reject.finish()?;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt};

    use super::*;
    use crate::objects::ObjectWriter;

    type Numbered = Vec<(u64, Vec<u8>)>;

    /// Splits `data` with tiny limits; returns (line number, line) for every line sent to the
    /// parsers, and the quarantined records.
    fn split(
        data: &[u8],
        chunk_bytes: usize,
        max_line_bytes: usize,
    ) -> (Numbered, Vec<serde_json::Value>, ReadStats) {
        let (lines, rejects, stats, _) = split_into(
            data,
            chunk_bytes,
            max_line_bytes,
            crossbeam_channel::never(),
        );
        (lines, rejects, stats)
    }

    /// As [`split`], cutting the chunks into the buffers `spent` hands back; also the largest
    /// capacity of a chunk's buffer.
    fn split_into(
        data: &[u8],
        chunk_bytes: usize,
        max_line_bytes: usize,
        spent: Receiver<Vec<u8>>,
    ) -> (Numbered, Vec<serde_json::Value>, ReadStats, usize) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let handle = runtime.handle().clone();
        let opener = {
            let (store, handle) = (store.clone(), handle.clone());
            Box::new(move || ObjectWriter::create(&store, Path::from("q.jsonl.gz"), handle.clone()))
        };
        let quarantine = Mutex::new(Quarantine::new(opener));
        let (tx, rx) = crossbeam_channel::unbounded();
        let splitter = LineSplitter {
            source: "f",
            source_index: 0,
            first_seq: 0,
            chunk_bytes,
            max_line_bytes,
            quarantine: &quarantine,
            chunks: tx,
            spent,
        };
        let stats = splitter.run(data).unwrap();
        drop(splitter);
        let mut lines = Vec::new();
        let mut largest = 0;
        for chunk in rx {
            largest = largest.max(chunk.data.capacity());
            for (i, line) in chunk.data.split(|&b| b == b'\n').enumerate() {
                lines.push((chunk.first_line + i as u64, line.to_vec()));
            }
            if chunk.data.last() == Some(&b'\n') {
                lines.pop(); // the empty piece after the final newline
            }
        }
        let mut rejects = Vec::new();
        if let Some(mut object) = quarantine.into_inner().unwrap().finish().unwrap() {
            object.finish().unwrap();
            let bytes = runtime.block_on(async {
                store
                    .get(&Path::from("q.jsonl.gz"))
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
            });
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap();
            rejects = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        (lines, rejects, stats, largest)
    }

    #[test]
    fn every_line_arrives_once_with_its_number_across_chunk_boundaries() {
        let data: Vec<u8> = (1..=500)
            .flat_map(|i| format!("line {i} {}\n", "x".repeat(i % 37)).into_bytes())
            .collect();
        for chunk_bytes in [1, 7, 64, 1000, 1 << 20] {
            let (lines, rejects, stats) = split(&data, chunk_bytes, 1 << 20);
            assert!(rejects.is_empty());
            assert_eq!(stats.json_bytes, data.len() as u64);
            assert_eq!(lines.len(), 500, "chunk_bytes {chunk_bytes}");
            for (n, line) in &lines {
                assert!(
                    line.starts_with(format!("line {n} ").as_bytes()),
                    "{n}: {}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }

    #[test]
    fn chunks_cut_into_spent_buffers_hold_only_their_own_lines() {
        let data: Vec<u8> = (1..=200)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let (spent_tx, spent_rx) = crossbeam_channel::unbounded();
        for size in [0, 3, 64, 4096] {
            spent_tx.send(vec![b'#'; size]).unwrap();
        }
        let (lines, rejects, _, _) = split_into(&data, 64, 1 << 20, spent_rx);
        assert!(rejects.is_empty());
        let expected: Numbered = (1..=200u64)
            .map(|i| (i, format!("line {i}").into_bytes()))
            .collect();
        assert_eq!(
            lines, expected,
            "no byte of a spent buffer's last use is left"
        );
    }

    #[test]
    fn a_spent_buffer_far_larger_than_a_chunk_is_not_reused() {
        // Several reads' worth, so a chunk is cut into the next buffer and then sent.
        let data: Vec<u8> = (1..=100_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let room = 64 + READ_BYTES as usize;
        let (spent_tx, spent_rx) = crossbeam_channel::unbounded();
        spent_tx.send(Vec::with_capacity(4 * room)).unwrap();
        let (lines, _, _, largest) = split_into(&data, 64, 1 << 20, spent_rx);
        assert_eq!(lines.len(), 100_000);
        assert!(largest < 4 * room, "a chunk was cut into the large buffer");
    }

    #[test]
    fn over_long_lines_are_streamed_whole_to_the_quarantine() {
        let long = "L".repeat(READ_BYTES as usize * 3 + 5);
        let data = format!("short 1\n{long}\r\nshort 3\n{long}\nshort 5");
        let (lines, rejects, stats) = split(data.as_bytes(), 16, 1000);
        let numbers: Vec<u64> = lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, vec![1, 3, 5]);
        assert_eq!(lines[2].1, b"short 5");
        assert_eq!(
            (stats.oversized_lines, stats.json_bytes),
            (2, data.len() as u64)
        );
        assert_eq!(rejects.len(), 2);
        for (reject, line) in rejects.iter().zip([2, 4]) {
            assert_eq!(reject["line"], line);
            assert_eq!(reject["bytes"], long.len());
            let raw = base64::engine::general_purpose::STANDARD
                .decode(reject["raw_base64"].as_str().unwrap())
                .unwrap();
            assert_eq!(raw, long.as_bytes());
        }
    }

    use base64::Engine;
}
