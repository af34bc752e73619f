//! The check of a received hour file: its gzip stream read to its end (which checks its CRC
//! and length), and with `RAW_COMPRESSION=zstd` the JSON passed on recompressed.

use std::io::{self, Write};

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use tokio::sync::mpsc;

use crate::chunks::Chunker;

/// Chunks of the recompressed stream handed to the uploader.
const OUTPUT_CHUNK: usize = 1024 * 1024;

/// Reads the received gzip stream to its end (which checks its CRC and length); with
/// `recompressed`, passes the JSON on recompressed with zstd. Returns the bytes of JSON inside.
/// Runs on a blocking thread; `handle` is the runtime the chunks come from.
pub(crate) fn transcode(
    input: mpsc::Receiver<io::Result<Bytes>>,
    recompressed: Option<mpsc::Sender<Bytes>>,
    handle: tokio::runtime::Handle,
) -> io::Result<u64> {
    let mut decoder = MultiGzDecoder::new(adapters::objects::blocking_reader(input, handle));
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
    use crate::config::RawCompression;

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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        let worker = std::thread::spawn(move || transcode(input_rx, recompressed, handle));
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
}
