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

/// Bytes that the search for the next event may parse on one line, per byte of the line (plus a
/// floor): a line full of `{"` cannot make recovery quadratic.
const RESTART_BUDGET_PER_BYTE: usize = 8;
const RESTART_BUDGET_FLOOR: usize = 1 << 20;

/// Splits `line` at runs of NUL bytes, then each segment into JSON values. Ranges are byte
/// offsets in `line`; whitespace before a piece and after a value is not part of it.
pub(crate) fn split_line(line: &str) -> Split {
    let mut splitter = Splitter {
        line,
        budget: line.len() * RESTART_BUDGET_PER_BYTE + RESTART_BUDGET_FLOOR,
        split: Split::default(),
    };
    let bytes = line.as_bytes();
    let mut start = 0;
    while start <= bytes.len() {
        let end = memchr::memchr(0, &bytes[start..]).map_or(bytes.len(), |p| start + p);
        splitter.segment(start..end);
        if end == bytes.len() {
            break;
        }
        splitter.split.nul_runs += 1;
        start = end + bytes[end..].iter().take_while(|&&b| b == 0).count();
    }
    splitter.split
}

/// Where the search for the next event after a broken piece ended.
enum Restart {
    At(usize),
    NotFound,
    /// The line's search budget ran out first.
    GaveUp,
}

struct Splitter<'a> {
    line: &'a str,
    /// Bytes the restart search may still parse on this line.
    budget: usize,
    split: Split,
}

impl Splitter<'_> {
    /// The JSON values of one NUL-free segment; a piece that is not one runs to the next place
    /// where an event starts again, or to the segment's end.
    fn segment(&mut self, segment: Range<usize>) {
        let mut pos = segment.start;
        loop {
            pos += leading_whitespace(&self.line[pos..segment.end]);
            if pos >= segment.end {
                return;
            }
            let text = &self.line[pos..segment.end];
            let mut values = serde_json::Deserializer::from_str(text).into_iter::<IgnoredAny>();
            let (end, piece) = match values.next() {
                Some(Ok(_)) => {
                    let end = pos + values.byte_offset();
                    (end, Piece::Value(pos..end))
                }
                Some(Err(e)) => {
                    // The broken bytes run to where an event starts again: kept whole, as the
                    // cut may well end inside a string, where whitespace is content.
                    let (end, error) = match self.next_event_start(text, 1) {
                        Restart::At(q) => (
                            pos + q,
                            format!("not valid JSON, cut short where the next event starts: {e}"),
                        ),
                        Restart::NotFound => (segment.end, format!("not valid JSON: {e}")),
                        Restart::GaveUp => (
                            segment.end,
                            format!(
                                "not valid JSON: {e}; the rest of the line was not searched for \
                                 further events (over {} bytes parsed in the search)",
                                self.line.len() * RESTART_BUDGET_PER_BYTE + RESTART_BUDGET_FLOOR
                            ),
                        ),
                    };
                    let piece = Piece::Broken {
                        bytes: pos..end,
                        error,
                    };
                    (end, piece)
                }
                None => return,
            };
            self.split.pieces.push(piece);
            pos = end;
        }
    }

    /// The offset in `text`, from `from` on, where a GitHub event starts again: an object with
    /// the keys every era's events have (`type`, `created_at`, and `actor`, which the envelope
    /// itself does not demand, but which no nested GitHub object has beside the other two) that
    /// ends the segment or is followed by another object. An object nested in a record is
    /// followed by `,`, `}` or `]`.
    fn next_event_start(&mut self, text: &str, from: usize) -> Restart {
        #[derive(Deserialize)]
        struct LooksLikeEvent {
            #[serde(rename = "type")]
            _type: IgnoredAny,
            #[serde(rename = "created_at")]
            _created_at: IgnoredAny,
            #[serde(rename = "actor")]
            _actor: IgnoredAny,
        }
        let Some(rest) = text.as_bytes().get(from..) else {
            return Restart::NotFound;
        };
        for q in memchr::memchr_iter(b'{', rest).map(|p| from + p) {
            if !text[q + 1..].trim_start().starts_with('"') {
                continue;
            }
            let mut values =
                serde_json::Deserializer::from_str(&text[q..]).into_iter::<LooksLikeEvent>();
            let parsed = match values.next() {
                Some(Ok(_)) => {
                    let after =
                        text[q + values.byte_offset()..].trim_start_matches(is_json_whitespace);
                    if after.is_empty() || after.starts_with('{') {
                        return Restart::At(q);
                    }
                    values.byte_offset()
                }
                Some(Err(e)) => e.column(),
                None => return Restart::NotFound,
            };
            match self.budget.checked_sub(parsed.max(1)) {
                Some(left) => self.budget = left,
                None => return Restart::GaveUp,
            }
        }
        Restart::NotFound
    }
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
    }

    #[test]
    fn an_event_shaped_object_inside_a_record_is_not_where_an_event_starts() {
        // Cut after a nested object with the event keys: it is followed by `,`, so it is part of
        // the broken record, and the search goes on to the real next event.
        let cut = r#"{"type":"X","payload":{"type":"Y","created_at":"t","actor":"b"},"url":"#;
        assert_eq!(
            texts(&format!("{cut}{B}")).0,
            vec![format!("BROKEN {cut}"), B.to_string()]
        );
    }

    #[test]
    fn the_search_for_the_next_event_is_bounded_per_line() {
        // A broken line of 20,000 nested objects: every `{"` is a candidate that parses far.
        let nested = r#"{"a":"#.repeat(20_000);
        let line = format!("{{{nested}1");
        let split = split_line(&line);
        assert_eq!(split.pieces.len(), 1);
        match &split.pieces[0] {
            Piece::Broken { bytes, error } => {
                assert_eq!(bytes.clone(), 0..line.len(), "nothing is lost");
                assert!(error.contains("was not searched"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trailing_garbage_is_its_own_piece() {
        let (pieces, _) = texts(&format!("{A} trailing"));
        assert_eq!(pieces, vec![A.to_string(), "BROKEN trailing".to_string()]);
    }
}
