//! Where a value lies in the text of its record, found from the keys around it.
//!
//! serde_json hands a key that holds no escapes to the visitor as a slice of the record itself,
//! so its offset is known. A top-level value runs from after its key's `":` to before the next
//! key's `,"`, or to the object's closing brace: with the payload's key and the next one, the
//! payload's text is found without reading it a second time (see [`crate::envelope::read_once`]).
//! Every step checks the byte it expects; where one is not there, the caller reads the record the
//! two-pass way instead.

/// JSON's whitespace.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The offset of `part` in `whole`, when it is a slice of it.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start + part.len() <= whole.len()).then_some(start)
}

/// Where the value of `key` (a slice of `record`) starts: past the key's closing quote, the
/// colon and any whitespace.
pub(crate) fn value_start(record: &str, key: &str) -> Option<usize> {
    let bytes = record.as_bytes();
    let mut at = offset_in(record, key)? + key.len();
    (bytes.get(at) == Some(&b'"')).then_some(())?;
    at += 1;
    at += bytes[at..].iter().take_while(|&&b| is_space(b)).count();
    (bytes.get(at) == Some(&b':')).then_some(())?;
    at += 1;
    at += bytes[at..].iter().take_while(|&&b| is_space(b)).count();
    Some(at)
}

/// Where the value before `key` (a slice of `record`) ends: before the key's opening quote, the
/// comma and any whitespace.
pub(crate) fn value_end_before(record: &str, key: &str) -> Option<usize> {
    let bytes = record.as_bytes();
    let mut at = offset_in(record, key)?;
    (at > 0 && bytes[at - 1] == b'"').then_some(())?;
    at -= 1;
    at = trim_space_back(bytes, at);
    (at > 0 && bytes[at - 1] == b',').then_some(())?;
    Some(trim_space_back(bytes, at - 1))
}

/// Where the last value of the record's top-level object ends: before its closing brace.
pub(crate) fn value_end_at_close(record: &str) -> Option<usize> {
    let bytes = record.as_bytes();
    let at = trim_space_back(bytes, bytes.len());
    (at > 0 && bytes[at - 1] == b'}').then_some(())?;
    Some(trim_space_back(bytes, at - 1))
}

fn trim_space_back(bytes: &[u8], mut at: usize) -> usize {
    while at > 0 && is_space(bytes[at - 1]) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_found_between_its_key_and_the_next() {
        let record = r#" { "a" : {"x": [1, "}"]} ,	"b":2 }  "#;
        let key_a = &record[4..5];
        let key_b = &record[28..29];
        assert_eq!((key_a, key_b), ("a", "b"));
        let start = value_start(record, key_a).unwrap();
        let end = value_end_before(record, key_b).unwrap();
        assert_eq!(&record[start..end], r#"{"x": [1, "}"]}"#);
        let start = value_start(record, key_b).unwrap();
        assert_eq!(&record[start..value_end_at_close(record).unwrap()], "2");
    }

    #[test]
    fn a_key_that_is_not_a_slice_of_the_record_or_not_where_expected_gives_none() {
        let record = r#"{"a":1,"b":2}"#;
        let elsewhere = String::from("a");
        assert_eq!(value_start(record, &elsewhere), None);
        assert_eq!(value_end_before(record, &elsewhere), None);
        // "1" is in the record, but no key: no quote around it.
        assert_eq!(value_start(record, &record[5..6]), None);
        assert_eq!(value_end_before(record, &record[5..6]), None);
        assert_eq!(value_end_at_close(r#"{"a":1"#), None);
    }
}
