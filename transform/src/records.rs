//! One physical line that did not read as one record → the records in it.
//!
//! GHArchive's files are JSON lines, mostly. Its own issues report the exceptions, and each is
//! repaired here without losing a byte:
//!
//! * two events glued on one line (#17, #18, #53: 2011–2012 files without a newline between);
//! * an event cut short and the next one glued to it (#169, #271): the cut-off piece is
//!   quarantined, the next event lands;
//! * runs of NUL bytes, alone on a line or between events (#190): dropped, the events around
//!   them kept. A raw NUL can never be part of a JSON value, so nothing of a record is lost.
//!
//! A truncated last line (#241) is simply a broken piece: quarantined, the rest of the file lands.
//! This is the slow path: a line that parses as one record never comes here.

use std::ops::Range;

use serde::de::IgnoredAny;
use serde::Deserialize;

/// A piece of a line: a whole JSON value (to be decoded as a record), or bytes that are not one.
#[derive(Debug, PartialEq)]
pub(crate) enum Piece {
    Value(Range<usize>),
    Broken { bytes: Range<usize>, error: String },
}

/// The pieces of a line, in order, and the NUL runs removed between them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Split {
    pub pieces: Vec<Piece>,
    pub nul_runs: u64,
}

/// Bytes that the search for the next event may parse, per byte of the line (plus a floor):
/// a line full of `{"` cannot make recovery quadratic.
const RESTART_BUDGET_PER_BYTE: usize = 8;
const RESTART_BUDGET_FLOOR: usize = 1 << 20;

/// Splits `line` at runs of NUL bytes, then each segment into JSON values. Ranges are byte
/// offsets in `line`; whitespace before a piece and after a value is not part of it.
pub(crate) fn split_line(line: &str) -> Split {
    let mut split = Split::default();
    let bytes = line.as_bytes();
    let mut start = 0;
    while start <= bytes.len() {
        let end = memchr::memchr(0, &bytes[start..]).map_or(bytes.len(), |p| start + p);
        split_segment(line, start..end, &mut split.pieces);
        if end == bytes.len() {
            break;
        }
        split.nul_runs += 1;
        start = end + bytes[end..].iter().take_while(|&&b| b == 0).count();
    }
    split
}

/// The JSON values of one NUL-free segment; a piece that is not one runs to the next place where
/// an event starts again, or to the segment's end.
fn split_segment(line: &str, segment: Range<usize>, pieces: &mut Vec<Piece>) {
    let mut pos = segment.start;
    loop {
        pos += leading_whitespace(&line[pos..segment.end]);
        if pos >= segment.end {
            return;
        }
        let text = &line[pos..segment.end];
        let mut values = serde_json::Deserializer::from_str(text).into_iter::<IgnoredAny>();
        match values.next() {
            Some(Ok(_)) => {
                let end = pos + values.byte_offset();
                pieces.push(Piece::Value(pos..end));
                pos = end;
            }
            Some(Err(e)) => {
                // The broken bytes run to where an event starts again: kept whole, as the cut
                // may well end inside a string, where whitespace is content.
                let restart = next_event_start(text, 1).map(|q| pos + q);
                let end = restart.unwrap_or(segment.end);
                let error = match restart {
                    Some(_) => {
                        format!("not valid JSON, cut short where the next event starts: {e}")
                    }
                    None => format!("not valid JSON: {e}"),
                };
                pieces.push(Piece::Broken {
                    bytes: pos..end,
                    error,
                });
                pos = end;
            }
            None => return,
        }
    }
}

/// The offset in `text`, from `from` on, where a GitHub event starts again: an object with the
/// keys every era's events have (`type`, `created_at`, `actor`) that ends the segment or is
/// followed by another object. An object nested in a record is followed by `,`, `}` or `]`, and
/// none of GitHub's nested objects has those three keys.
fn next_event_start(text: &str, from: usize) -> Option<usize> {
    #[derive(Deserialize)]
    struct LooksLikeEvent {
        #[serde(rename = "type")]
        _type: IgnoredAny,
        #[serde(rename = "created_at")]
        _created_at: IgnoredAny,
        #[serde(rename = "actor")]
        _actor: IgnoredAny,
    }
    let mut budget = text.len() * RESTART_BUDGET_PER_BYTE + RESTART_BUDGET_FLOOR;
    let candidates = memchr::memchr_iter(b'{', text.as_bytes().get(from..)?).map(|p| from + p);
    for q in candidates {
        if !text[q + 1..].trim_start().starts_with('"') {
            continue;
        }
        let mut values =
            serde_json::Deserializer::from_str(&text[q..]).into_iter::<LooksLikeEvent>();
        let parsed = match values.next() {
            Some(Ok(_)) => {
                let after = text[q + values.byte_offset()..].trim_start_matches(is_json_whitespace);
                if after.is_empty() || after.starts_with('{') {
                    return Some(q);
                }
                values.byte_offset()
            }
            Some(Err(e)) => e.column(),
            None => return None,
        };
        budget = budget.checked_sub(parsed.max(1))?;
    }
    None
}

fn leading_whitespace(text: &str) -> usize {
    text.len() - text.trim_start_matches(is_json_whitespace).len()
}

fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"id":"1","type":"PushEvent","actor":{"id":1,"login":"a"},"created_at":"2017-11-08T01:00:00Z","payload":{"n":1}}"#;
    const B: &str = r#"{"id":"2","type":"IssueCommentEvent","actor":{"id":2,"login":"b"},"created_at":"2017-11-08T01:00:01Z","payload":{}}"#;

    fn texts(line: &str) -> (Vec<String>, u64) {
        let split = split_line(line);
        let texts = split
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Value(r) => line[r.clone()].to_string(),
                Piece::Broken { bytes, .. } => format!("BROKEN {}", &line[bytes.clone()]),
            })
            .collect();
        (texts, split.nul_runs)
    }

    #[test]
    fn glued_events_come_apart() {
        assert_eq!(texts(&format!("{A}{B}")), (vec![A.into(), B.into()], 0));
        assert_eq!(texts(&format!(" {A}  {B} ")), (vec![A.into(), B.into()], 0));
    }

    #[test]
    fn an_event_cut_short_is_broken_and_the_next_one_kept() {
        // GHArchive #169: `"url":"https://api.` and the next event right after.
        let cut = &A[..A.find(r#""login":"a""#).unwrap() + 10];
        let line = format!("{cut}{B}");
        let split = split_line(&line);
        assert_eq!(split.pieces.len(), 2, "{split:?}");
        match &split.pieces[0] {
            Piece::Broken { bytes, error } => {
                assert_eq!(&line[bytes.clone()], cut);
                assert!(error.contains("cut short"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(split.pieces[1], Piece::Value(cut.len()..line.len()));
        // Cut right after a nested object closed: the nested object is not mistaken for an event.
        let cut = &A[..A.find(r#","created_at""#).unwrap()];
        assert_eq!(
            texts(&format!("{cut}{B}")).0,
            vec![format!("BROKEN {cut}"), B.to_string()]
        );
        // Cut where a nested object could start (after `:`, `,` or `[`).
        for end in [":", ",", "["] {
            let cut = format!("{}{end}", &A[..30]);
            assert_eq!(
                texts(&format!("{cut}{B}")).0,
                vec![format!("BROKEN {cut}"), B.to_string()]
            );
        }
    }

    #[test]
    fn nul_runs_are_dropped_and_the_events_around_them_kept() {
        let nuls = "\0".repeat(300);
        assert_eq!(texts(&nuls), (vec![], 1));
        assert_eq!(texts(&format!("{nuls}{A}")), (vec![A.into()], 1));
        // GHArchive #190: an event, NULs, then the next event, on one line.
        assert_eq!(
            texts(&format!("{A}{nuls}{B}\0")),
            (vec![A.into(), B.into()], 2)
        );
    }

    #[test]
    fn a_truncated_line_is_one_broken_piece() {
        let cut = &A[..A.len() - 20];
        let (pieces, _) = texts(cut);
        assert_eq!(pieces, vec![format!("BROKEN {cut}")]);
        let split = split_line(cut);
        assert!(
            matches!(&split.pieces[0], Piece::Broken { error, .. } if error.starts_with("not valid JSON: EOF"))
        );
        // An event quoted inside a string is not where an event starts.
        let quoting =
            r#"{"type":"X","created_at":"t","payload":{"body":"x {\"type\":1,\"created_at\":2} y"#;
        assert_eq!(texts(quoting).0, vec![format!("BROKEN {quoting}")]);
    }

    #[test]
    fn trailing_garbage_is_its_own_piece() {
        let (pieces, _) = texts(&format!("{A} trailing"));
        assert_eq!(pieces, vec![A.to_string(), "BROKEN trailing".to_string()]);
    }
}
