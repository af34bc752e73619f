//! The programs the transform bench runs beside `elt transform`, in a child process of its own
//! so that they are measured the same way: the floor (inflating the hour, nothing else), and the
//! least work any transform of the hour must do.

use std::io::Read;
use std::path::Path;

/// The reads' size, and the Snappy pages': 1 MiB, a Parquet data page's size.
const PAGE: usize = 1 << 20;

/// The floor: this file inflated with zlib-rs (flate2's backend in gh-elt) into a reused
/// buffer, nothing else.
pub fn inflate(file: &Path) {
    let mut decoder = open(file);
    let mut buffer = vec![0u8; PAGE];
    let mut total = 0u64;
    while let n @ 1.. = read_page(&mut decoder, &mut buffer, file) {
        total += n as u64;
    }
    println!("{total}");
}

/// The least any transform of the hour must do, each part with the fastest crate measured for
/// it here: inflate the file (the floor), read every line as JSON keeping nothing (serde_json
/// into `IgnoredAny`; sonic-rs building a whole DOM was about as fast on these lines, simd-json's
/// tape slower), and Snappy-compress as many bytes, in 1 MiB pages. The Parquet output's pages hold about 95% as many bytes as the
/// JSON (its raw `payload` column alone is 91% of them). Building the columns, the SQL and the
/// Parquet encoding come on top of this.
pub fn least_work(file: &Path) {
    let mut decoder = open(file);
    let mut page = vec![0u8; PAGE];
    let mut compressed = vec![0u8; snap::raw::max_compress_len(PAGE)];
    let mut snappy = snap::raw::Encoder::new();
    let (mut snappy_bytes, mut records, mut bad) = (0usize, 0u64, 0u64);
    let mut open_line: Vec<u8> = Vec::new();
    let mut read_line = |line: &[u8]| {
        if !line.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
                Ok(_) => records += 1,
                Err(_) => bad += 1,
            }
        }
    };
    while let n @ 1.. = read_page(&mut decoder, &mut page, file) {
        let data = &page[..n];
        snappy_bytes += snappy
            .compress(data, &mut compressed)
            .expect("Snappy compresses a page");
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', data) {
            if open_line.is_empty() {
                read_line(&data[start..end]);
            } else {
                open_line.extend_from_slice(&data[start..end]);
                read_line(&open_line);
                open_line.clear();
            }
            start = end + 1;
        }
        open_line.extend_from_slice(&data[start..]);
    }
    read_line(&open_line);
    println!(r#"{{"records":{records},"not_json":{bad},"snappy_bytes":{snappy_bytes}}}"#);
}

fn open(file: &Path) -> flate2::read::MultiGzDecoder<std::io::BufReader<std::fs::File>> {
    let raw = std::fs::File::open(file).expect("the hour file opens");
    flate2::read::MultiGzDecoder::new(std::io::BufReader::new(raw))
}

/// Fills `page` as far as the file goes; 0 at its end.
fn read_page(decoder: &mut impl Read, page: &mut [u8], file: &Path) -> usize {
    let mut filled = 0;
    while filled < page.len() {
        match decoder.read(&mut page[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => panic!("inflating {}: {e}", file.display()),
        }
    }
    filled
}
