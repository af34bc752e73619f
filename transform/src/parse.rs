//! Parsing a chunk of lines into one `raw_events` batch, against the declared schema.
//!
//! A line is first read as one record (the fast path, nearly always taken). Only when that fails
//! is it split into its records ([`crate::records`]), each landed or quarantined on its own.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use events::Repairs;
use serde_arrow::ArrayBuilder;

use crate::envelope::{made_up_id, read_once, Envelope};
use crate::input::Chunk;
use crate::payload::Payload;
use crate::records::{split_line, Piece};
use crate::schema::{raw_events_schema, serialised_fields, RawEventRow, PAYLOAD_JSON};

/// A record the parser refused: its line, why, and its bytes in the chunk.
pub(crate) struct Reject {
    pub line: u64,
    pub error: String,
    pub bytes: Range<usize>,
}

pub(crate) struct Parsed {
    pub seq: u64,
    /// The chunk's source (its place among the hour's files).
    pub source: usize,
    pub batch: RecordBatch,
    /// Non-blank lines in the chunk.
    pub lines: u64,
    pub repairs: Repairs,
    pub rejects: Vec<Reject>,
}

#[cfg(test)]
impl Parsed {
    /// Records in the chunk: each becomes a row of the batch or a reject.
    pub fn records(&self) -> u64 {
        (self.batch.num_rows() + self.rejects.len()) as u64
    }
}

pub(crate) struct ChunkParser {
    columns: Columns,
    /// The `source_file` of each of the hour's files, by its place; the chunk names its own.
    sources: Vec<String>,
    /// The source of the chunk being parsed.
    source: usize,
    max_line_bytes: usize,
}

/// The builders of a batch's columns.
struct Columns {
    /// Every column but `payload_json`.
    rows: ArrayBuilder,
    /// `payload_json`, sized once per chunk: its text is a part of the chunk's.
    payload_json: StringBuilder,
    /// Where `payload_json` goes among the other columns.
    payload_json_at: usize,
}

impl Columns {
    /// Room for a chunk of `bytes`, with offsets for a row per 256 bytes; pages of the text
    /// never written are never touched.
    fn reserve(&mut self, bytes: usize) {
        self.payload_json = StringBuilder::with_capacity(bytes / 256, bytes);
    }

    fn push(&mut self, row: &RawEventRow) -> anyhow::Result<()> {
        self.rows.push(row)?;
        self.payload_json.append_option(row.payload_json);
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<RecordBatch> {
        let mut columns = self.rows.to_record_batch()?.columns().to_vec();
        columns.insert(
            self.payload_json_at,
            Arc::new(self.payload_json.finish()) as ArrayRef,
        );
        Ok(RecordBatch::try_new(raw_events_schema(), columns)?)
    }
}

/// What a chunk's lines gave besides rows.
#[derive(Default)]
struct LineTally {
    lines: u64,
    repairs: Repairs,
    rejects: Vec<Reject>,
}

impl LineTally {
    fn reject(&mut self, line: u64, error: String, bytes: Range<usize>) {
        self.rejects.push(Reject { line, error, bytes });
    }
}

impl ChunkParser {
    #[cfg(test)]
    pub fn new(source_file: String, max_line_bytes: usize) -> anyhow::Result<ChunkParser> {
        ChunkParser::for_sources(vec![source_file], max_line_bytes)
    }

    /// A parser of chunks from any of `sources` (the hour's files, by place).
    pub fn for_sources(sources: Vec<String>, max_line_bytes: usize) -> anyhow::Result<ChunkParser> {
        let payload_json_at = raw_events_schema().index_of(PAYLOAD_JSON)?;
        Ok(ChunkParser {
            columns: Columns {
                rows: ArrayBuilder::from_arrow(&serialised_fields())?,
                payload_json: StringBuilder::new(),
                payload_json_at,
            },
            sources,
            source: 0,
            max_line_bytes,
        })
    }

    /// The `source_file` of the chunk being parsed.
    fn source_file(sources: &[String], source: usize) -> &str {
        sources.get(source).map_or("", String::as_str)
    }

    pub fn parse(&mut self, chunk: &Chunk) -> anyhow::Result<Parsed> {
        let mut tally = LineTally::default();
        let mut start = 0;
        let mut line_no = chunk.first_line;
        let data = &chunk.data;
        self.source = chunk.source;
        self.columns.reserve(data.len());
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p);
            let mut line = &data[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                self.parse_line(line, start, line_no, &mut tally)?;
            }
            start = end + 1;
            line_no += 1;
        }
        let batch = self.columns.finish()?;
        Ok(Parsed {
            seq: chunk.seq,
            source: chunk.source,
            batch,
            lines: tally.lines,
            repairs: tally.repairs,
            rejects: tally.rejects,
        })
    }

    /// One non-blank line at `offset` in the chunk → rows and rejects.
    fn parse_line(
        &mut self,
        line: &[u8],
        offset: usize,
        line_no: u64,
        tally: &mut LineTally,
    ) -> anyhow::Result<()> {
        let whole = offset..offset + line.len();
        let text = match check_line(line, self.max_line_bytes) {
            Ok(text) => text,
            Err(error) => {
                tally.lines += 1;
                tally.reject(line_no, error, whole);
                return Ok(());
            }
        };
        let source_file = ChunkParser::source_file(&self.sources, self.source);
        let first_error = match decode_record(text, source_file, line_no) {
            Ok(row) => {
                tally.lines += 1;
                return self.columns.push(&row);
            }
            Err(e) => e,
        };
        let split = split_line(text);
        tally.repairs.nul_runs += split.nul_runs;
        match split.pieces.as_slice() {
            [] => {} // NUL bytes and whitespace only: a blank line
            [_] if split.nul_runs == 0 => {
                // The line is one value, or one broken piece: the first reading's reason stands.
                tally.lines += 1;
                tally.reject(line_no, first_error.reason(text), whole);
            }
            pieces => {
                tally.lines += 1;
                tally.repairs.lines_split += u64::from(pieces.len() > 1);
                for piece in pieces {
                    self.parse_piece(text, piece, offset, line_no, tally)?;
                }
            }
        }
        Ok(())
    }

    fn parse_piece(
        &mut self,
        text: &str,
        piece: &Piece,
        offset: usize,
        line_no: u64,
        tally: &mut LineTally,
    ) -> anyhow::Result<()> {
        match piece {
            Piece::Value(range) => {
                let record = &text[range.clone()];
                let source_file = ChunkParser::source_file(&self.sources, self.source);
                match decode_record(record, source_file, line_no) {
                    Ok(row) => self.columns.push(&row)?,
                    Err(e) => tally.reject(
                        line_no,
                        e.reason(record),
                        offset + range.start..offset + range.end,
                    ),
                }
            }
            Piece::Broken { bytes, error } => tally.reject(
                line_no,
                error.clone(),
                offset + bytes.start..offset + bytes.end,
            ),
        }
        Ok(())
    }
}

/// The line as text, or why it cannot be read at all.
fn check_line(line: &[u8], max_line_bytes: usize) -> Result<&str, String> {
    if line.len() > max_line_bytes {
        return Err(format!(
            "line is {} bytes, longer than the maximum of {max_line_bytes} bytes",
            line.len()
        ));
    }
    std::str::from_utf8(line).map_err(|e| {
        format!(
            "line is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )
    })
}

/// Why a record did not decode; the reason is worded only when it is needed.
pub(crate) enum DecodeError<'a> {
    Envelope(serde_json::Error),
    Payload(&'a str, serde_json::Error),
}

impl DecodeError<'_> {
    pub fn reason(&self, record: &str) -> String {
        match self {
            DecodeError::Envelope(e) => explain::<Envelope>(record, e, ""),
            DecodeError::Payload(payload, e) => explain::<Payload>(payload, e, "payload."),
        }
    }
}

/// One record (a JSON value) → one row.
pub(crate) fn decode_record<'a>(
    record: &'a str,
    source_file: &'a str,
    line_no: u64,
) -> Result<RawEventRow<'a>, DecodeError<'a>> {
    // One pass nearly always; a record it cannot read is read the two-pass way, which gives
    // the same result where the record is good, and words the reason where it is not.
    let envelope = match read_once(record) {
        Ok(envelope) => envelope,
        Err(_) => serde_json::from_str(record).map_err(DecodeError::Envelope)?,
    };
    let (mut payload, payload_json) = envelope
        .payload
        .decode()
        .map_err(|(text, e)| DecodeError::Payload(text, e))?;
    payload.fold_legacy();
    let id = envelope
        .id
        .unwrap_or_else(|| made_up_id(record.trim_matches([' ', '\t', '\n', '\r']).as_bytes()));
    Ok(RawEventRow {
        id,
        event_type: envelope.event_type,
        created_at: envelope.created_at,
        actor: envelope.actor,
        repo: envelope.repo,
        org: envelope.org,
        public: envelope.public,
        payload,
        payload_json,
        other: envelope.other,
        source_file,
        line: line_no,
    })
}

/// Builds the reject reason. Only on this cold path is the text parsed again, with the field
/// path tracked, so the reason can name the field (`payload.issue.number: invalid type…`).
fn explain<'a, T: serde::Deserialize<'a>>(
    text: &'a str,
    error: &serde_json::Error,
    prefix: &str,
) -> String {
    if error.is_syntax() || error.is_eof() {
        return format!("not valid JSON: {error}");
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) if e.path().iter().next().is_some() => {
            format!("{prefix}{}: {}", e.path(), e.inner())
        }
        _ => format!(
            "{}{error}",
            if prefix.is_empty() { "" } else { "payload: " }
        ),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;

    use super::*;

    const GOOD: &str = r#"{"id":"1","type":"PushEvent","created_at":"2024-03-05T14:00:01Z","actor":{"id":1,"login":"a"},"repo":{"id":2,"name":"o/r"},"payload":{"push_id":5,"size":1,"ref":null}}"#;
    const TIMELINE: &str = r#"{"payload":{"size":1},"created_at":"2013-02-15T00:00:39-08:00","type":"PushEvent","actor":"x","url":"u"}"#;

    fn parse(data: &str) -> Parsed {
        let mut parser = ChunkParser::new("f".into(), 1 << 20).unwrap();
        parser
            .parse(&Chunk {
                seq: 0,
                source: 0,
                first_line: 10,
                data: data.as_bytes().to_vec(),
            })
            .unwrap()
    }

    fn reason(line: &str) -> String {
        let parsed = parse(line);
        assert_eq!(parsed.records(), 1, "{line}");
        parsed
            .rejects
            .first()
            .map(|r| r.error.clone())
            .unwrap_or_default()
    }

    #[test]
    fn a_good_line_decodes_and_keeps_the_payload_text() {
        let row = decode_record(GOOD, "f", 7).ok().unwrap();
        assert_eq!(row.id, 1);
        assert_eq!(
            row.payload_json,
            Some(r#"{"push_id":5,"size":1,"ref":null}"#)
        );
        assert_eq!(row.payload.push_id, Some(5));
        assert_eq!(row.line, 7);
        assert_eq!(row.other, None);
    }

    #[test]
    fn each_row_gets_its_own_payload_text_in_the_declared_column() {
        let bare = r#"{"id":"3","type":"WatchEvent","created_at":"2024-03-05T14:00:02Z"}"#;
        let parsed = parse(&format!("{GOOD}\n{{bad\n{bare}\n{TIMELINE}"));
        assert_eq!(parsed.batch.schema(), raw_events_schema());
        let column = parsed
            .batch
            .column_by_name(PAYLOAD_JSON)
            .unwrap()
            .as_string::<i32>();
        let texts: Vec<Option<&str>> = column.iter().collect();
        assert_eq!(
            texts,
            [
                Some(r#"{"push_id":5,"size":1,"ref":null}"#),
                None,
                Some(r#"{"size":1}"#)
            ]
        );
    }

    #[test]
    fn a_record_without_an_id_gets_the_made_up_id_of_its_bytes() {
        let row = decode_record(TIMELINE, "f", 1).ok().unwrap();
        assert_eq!(row.id, made_up_id(TIMELINE.as_bytes()));
        let padded = format!("  {TIMELINE}\t");
        assert_eq!(
            decode_record(&padded, "f", 1).ok().unwrap().id,
            row.id,
            "whitespace around a record is not part of it"
        );
        assert_eq!(row.other.as_deref(), Some(r#"{"url":"u"}"#));
    }

    #[test]
    fn reasons_name_the_problem() {
        assert!(reason("{not json").starts_with("not valid JSON"));
        assert!(
            reason(r#"{"id":"1","created_at":"2024-03-05T14:00:01Z","payload":{}}"#)
                .contains("missing field `type`")
        );
        let wrong = GOOD.replace(r#""push_id":5"#, r#""push_id":"five""#);
        assert!(reason(&wrong).starts_with("payload.push_id: invalid type"));
        let wrong = GOOD.replace(r#""payload":{"#, r#""payload":{"issue":{"number":"x"},"#);
        assert!(reason(&wrong).starts_with("payload.issue.number: invalid type"));
        let wrong = GOOD.replace(r#""id":1,"login""#, r#""id":"x","login""#);
        assert!(reason(&wrong).starts_with("actor.id: invalid type"));
        assert!(reason(&GOOD.replace(r#""1""#, r#""x1""#)).contains("is not a number"));
        assert!(
            reason(&GOOD.replace("2024-03-05T14", "yesterday")).contains("not an RFC 3339 time")
        );
        assert!(reason("[1,2]").contains("invalid type"));
        assert!(check_line(GOOD.as_bytes(), 10)
            .unwrap_err()
            .contains("longer than the maximum"));
        let mut bad = GOOD.as_bytes().to_vec();
        bad[40] = 0xff;
        assert!(check_line(&bad, 1 << 20)
            .unwrap_err()
            .contains("not valid UTF-8"));
    }

    #[test]
    fn blank_lines_are_not_lines_and_numbers_are_physical() {
        let parsed = parse(&format!("{GOOD}\r\n\n   \n{{bad\n{GOOD}"));
        assert_eq!(parsed.lines, 3);
        assert_eq!(parsed.batch.num_rows(), 2);
        assert_eq!(parsed.rejects.len(), 1);
        assert_eq!(parsed.rejects[0].line, 13);
    }

    #[test]
    fn damaged_lines_are_repaired_and_every_record_counted() {
        let cut = &GOOD[..60];
        let nuls = "\0".repeat(40);
        let data = format!("{GOOD}{TIMELINE}\n{nuls}\n{nuls}{GOOD}\n{cut}{TIMELINE}\n{cut}");
        let parsed = parse(&data);
        // Lines: glued (2 records), NULs only (blank), NULs + record, cut + record, cut.
        assert_eq!(parsed.lines, 4);
        assert_eq!(parsed.batch.num_rows(), 4);
        assert_eq!(parsed.records(), 6);
        assert_eq!(
            parsed.repairs,
            Repairs {
                lines_split: 2,
                nul_runs: 2
            }
        );
        let rejected: Vec<(u64, &str)> = parsed
            .rejects
            .iter()
            .map(|r| (r.line, &data[r.bytes.clone()]))
            .collect();
        assert_eq!(rejected, vec![(13, cut), (14, cut)]);
        assert!(parsed.rejects[0].error.contains("cut short"));
        assert!(parsed.rejects[1].error.starts_with("not valid JSON: EOF"));
    }

    #[test]
    fn a_glued_record_of_the_wrong_shape_does_not_take_its_neighbour_down() {
        let wrong = GOOD.replace(r#""push_id":5"#, r#""push_id":"five""#);
        let parsed = parse(&format!("{wrong}{TIMELINE}"));
        assert_eq!((parsed.batch.num_rows(), parsed.rejects.len()), (1, 1));
        assert!(parsed.rejects[0].error.starts_with("payload.push_id"));
    }
}
