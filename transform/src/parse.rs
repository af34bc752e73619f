//! Parsing a chunk of lines into one `raw_events` batch, against the declared schema.

use std::ops::Range;

use datafusion::arrow::record_batch::RecordBatch;
use serde_arrow::ArrayBuilder;

use crate::input::Chunk;
use crate::schema::{raw_events_fields, Envelope, Payload, RawEventRow};

/// A line the parser refused: where it is in the chunk and why.
pub(crate) struct Reject {
    pub line: u64,
    pub error: String,
    pub bytes: Range<usize>,
}

pub(crate) struct Parsed {
    pub seq: u64,
    pub batch: RecordBatch,
    /// Non-blank lines in the chunk.
    pub lines: u64,
    pub rejects: Vec<Reject>,
}

pub(crate) struct ChunkParser {
    builder: ArrayBuilder,
    source_file: String,
    max_line_bytes: usize,
}

impl ChunkParser {
    pub fn new(source_file: String, max_line_bytes: usize) -> anyhow::Result<ChunkParser> {
        Ok(ChunkParser {
            builder: ArrayBuilder::from_arrow(&raw_events_fields())?,
            source_file,
            max_line_bytes,
        })
    }

    pub fn parse(&mut self, chunk: &Chunk) -> anyhow::Result<Parsed> {
        let mut lines = 0;
        let mut rejects = Vec::new();
        let mut start = 0;
        let mut line_no = chunk.first_line;
        let data = &chunk.data;
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p);
            let mut line = &data[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines += 1;
                match decode_line(line, self.max_line_bytes, &self.source_file, line_no) {
                    Ok(row) => self.builder.push(&row)?,
                    Err(error) => rejects.push(Reject {
                        line: line_no,
                        error,
                        bytes: start..start + line.len(),
                    }),
                }
            }
            start = end + 1;
            line_no += 1;
        }
        let batch = self.builder.to_record_batch()?;
        Ok(Parsed {
            seq: chunk.seq,
            batch,
            lines,
            rejects,
        })
    }
}

/// One line → one row, or the reason it cannot be one.
pub(crate) fn decode_line<'a>(
    line: &'a [u8],
    max_line_bytes: usize,
    source_file: &'a str,
    line_no: u64,
) -> Result<RawEventRow<'a>, String> {
    if line.len() > max_line_bytes {
        return Err(format!(
            "line is {} bytes, longer than the maximum of {max_line_bytes} bytes",
            line.len()
        ));
    }
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "line is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )
    })?;
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|e| explain::<Envelope>(text, e, ""))?;
    let payload_json = envelope.payload.get();
    let payload: Payload = serde_json::from_str(payload_json)
        .map_err(|e| explain::<Payload>(payload_json, e, "payload."))?;
    Ok(RawEventRow {
        id: envelope.id,
        event_type: envelope.event_type,
        created_at: envelope.created_at,
        actor: envelope.actor,
        repo: envelope.repo,
        org: envelope.org,
        public: envelope.public,
        payload,
        payload_json,
        source_file,
        line: line_no,
    })
}

/// Builds the reject reason. Only on this cold path is the text parsed again, with the field
/// path tracked, so the reason can name the field (`payload.issue.number: invalid type…`).
fn explain<'a, T: serde::Deserialize<'a>>(
    text: &'a str,
    error: serde_json::Error,
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
    use super::*;

    fn reason(line: &str) -> String {
        decode_line(line.as_bytes(), 1 << 20, "f", 1)
            .err()
            .unwrap_or_default()
    }

    const GOOD: &str = r#"{"id":"1","type":"PushEvent","created_at":"2024-03-05T14:00:01Z","actor":{"id":1,"login":"a"},"repo":{"id":2,"name":"o/r"},"payload":{"push_id":5,"size":1,"ref":null}}"#;

    #[test]
    fn a_good_line_decodes_and_keeps_the_payload_text() {
        let row = decode_line(GOOD.as_bytes(), 1 << 20, "f", 7).unwrap();
        assert_eq!(row.id, 1);
        assert_eq!(row.payload_json, r#"{"push_id":5,"size":1,"ref":null}"#);
        assert_eq!(row.payload.push_id, Some(5));
        assert_eq!(row.line, 7);
    }

    #[test]
    fn reasons_name_the_problem() {
        assert!(
            reason("{not json").starts_with("not valid JSON"),
            "{}",
            reason("{not json")
        );
        assert!(
            reason(r#"{"type":"X","created_at":"2024-03-05T14:00:01Z","payload":{}}"#)
                .contains("missing field `id`")
        );
        let wrong = GOOD.replace(r#""push_id":5"#, r#""push_id":"five""#);
        assert!(
            reason(&wrong).starts_with("payload.push_id: invalid type"),
            "{}",
            reason(&wrong)
        );
        let wrong = GOOD.replace(r#""payload":{"#, r#""payload":{"issue":{"number":"x"},"#);
        assert!(
            reason(&wrong).starts_with("payload.issue.number: invalid type"),
            "{}",
            reason(&wrong)
        );
        let wrong = GOOD.replace(r#""id":1,"login""#, r#""id":"x","login""#);
        assert!(
            reason(&wrong).starts_with("actor.id: invalid type"),
            "{}",
            reason(&wrong)
        );
        assert!(reason(&GOOD.replace(r#""1""#, r#""x1""#)).contains("is not a number"));
        assert!(
            reason(&GOOD.replace("2024-03-05T14", "yesterday")).contains("not an RFC 3339 time")
        );
        assert!(reason(r#"[1,2]"#).contains("invalid type"));
        assert!(decode_line(GOOD.as_bytes(), 10, "f", 1)
            .err()
            .unwrap()
            .contains("longer than the maximum"));
        let mut bad = GOOD.as_bytes().to_vec();
        bad[40] = 0xff;
        assert!(decode_line(&bad, 1 << 20, "f", 1)
            .err()
            .unwrap()
            .contains("not valid UTF-8"));
    }

    #[test]
    fn blank_lines_are_not_lines_and_numbers_are_physical() {
        let data = format!("{GOOD}\r\n\n   \n{{bad\n{GOOD}");
        let mut parser = ChunkParser::new("f".into(), 1 << 20).unwrap();
        let parsed = parser
            .parse(&Chunk {
                seq: 0,
                first_line: 10,
                data: data.into_bytes(),
            })
            .unwrap();
        assert_eq!(parsed.lines, 3);
        assert_eq!(parsed.batch.num_rows(), 2);
        assert_eq!(parsed.rejects.len(), 1);
        assert_eq!(parsed.rejects[0].line, 13);
    }
}
