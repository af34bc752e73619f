use super::*;

fn envelope(text: &str) -> Result<Envelope<'_>, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// The payload's text and fields as the two-pass reading gives them.
fn two_pass(record: &str) -> (Option<&str>, String) {
    let (payload, text) = envelope(record).unwrap().payload.decode().unwrap();
    (text, serde_json::to_string(&payload).unwrap())
}

fn one_pass(record: &str) -> Option<(Option<&str>, String)> {
    // A key spelled with escapes cannot be located: its payload is kept as raw text.
    let (payload, text) = read_once(record).ok()?.payload.decode().unwrap();
    Some((text, serde_json::to_string(&payload).unwrap()))
}

#[test]
fn reading_once_gives_what_reading_twice_does() {
    let real = include_str!("../../../fixtures/real-events.jsonl");
    let legacy = include_str!("../../../fixtures/legacy-events.jsonl");
    let mut read = 0;
    for record in real.lines().chain(legacy.lines()) {
        if envelope(record).is_ok() {
            assert_eq!(
                one_pass(record).as_ref(),
                Some(&two_pass(record)),
                "{record}"
            );
            let raw = matches!(read_once(record).unwrap().payload, PayloadField::Raw(_));
            assert!(!raw, "read once, not left as raw text: {record}");
            read += 1;
        }
    }
    assert!(read > 100, "{read} fixture records");
    let shapes = [
        r#"{"type":"X","created_at":"2024-03-05T14:00:01Z","payload" :	{"size": 1} }"#,
        r#"{"type":"X","payload" : {"ref":"a\"}"} ,"created_at":"2024-03-05T14:00:01Z"}"#,
        r#"{"type":"X","payload":null,"created_at":"2024-03-05T14:00:01Z"}"#,
        r#"{"type":"X","payload":{"size":1},"created_at":"2024-03-05T14:00:01Z","payload":{"size":2}}"#,
        r#"{"type":"X","payload":{"size":1},"payload":null,"created_at":"2024-03-05T14:00:01Z"}"#,
        r#"{"type":"X","payl\u006fad":{"size":3},"created_at":"2024-03-05T14:00:01Z"}"#,
    ];
    for record in shapes {
        assert_eq!(
            one_pass(record).as_ref(),
            Some(&two_pass(record)),
            "{record}"
        );
    }
}

#[test]
fn a_payload_whose_end_cannot_be_located_is_left_to_the_two_pass_reading() {
    let record = r#"{"type":"X","payload":{"size":1},"cre\u0061ted_at":"2024-03-05T14:00:01Z"}"#;
    assert!(read_once(record).is_err());
    assert_eq!(two_pass(record).0, Some(r#"{"size":1}"#));
}

fn refusal(text: &str) -> String {
    envelope(text).err().unwrap_or_default()
}

#[test]
fn events_api_records_read_as_before_with_nothing_left_over() {
    let e = envelope(r#"{"id":"26170139443","type":"PushEvent","actor":{"id":1,"login":"a","display_login":"a","gravatar_id":"","url":"u","avatar_url":"v"},"repo":{"id":2,"name":"o/r","url":"u"},"payload":{"size":1},"public":true,"created_at":"2024-03-05T14:00:01Z","org":{"id":3,"login":"o"}}"#).ok().unwrap();
    assert_eq!(e.id, Some(26170139443));
    assert_eq!(e.event_type, "PushEvent");
    assert_eq!(e.created_at, 1_709_647_201_000);
    let actor = e.actor.unwrap();
    assert_eq!((actor.id, actor.login.as_deref()), (Some(1), Some("a")));
    let repo = e.repo.unwrap();
    assert_eq!((repo.id, repo.name.as_deref()), (Some(2), Some("o/r")));
    assert_eq!(e.org.unwrap().login.as_deref(), Some("o"));
    assert_eq!(e.payload.text(), Some(r#"{"size":1}"#));
    assert_eq!(e.public, Some(true));
    assert_eq!(e.other, None);
}

#[test]
fn timeline_records_map_onto_the_same_fields() {
    let line = r#"{"payload":{"size":1},"public":true,"created_at":"2013-02-15T20:00:39-08:00","actor_attributes":{"login":"begoon","type":"User","name":"A"},"type":"PushEvent","actor":"begoon","url":"https://github.com/x/y/compare/a...b","repository":{"id":42,"name":"y","owner":"x","organization":"x-org","stargazers":3}}"#;
    let e = envelope(line).ok().unwrap();
    assert_eq!(e.id, None);
    assert_eq!(
        e.created_at,
        crate::fields::parse_timestamp_millis("2013-02-16T04:00:39Z").unwrap()
    );
    let actor = e.actor.unwrap();
    assert_eq!((actor.id, actor.login.as_deref()), (None, Some("begoon")));
    let repo = e.repo.unwrap();
    assert_eq!((repo.id, repo.name.as_deref()), (Some(42), Some("x/y")));
    let org = e.org.unwrap();
    assert_eq!((org.id, org.login.as_deref()), (None, Some("x-org")));
    assert_eq!(
        e.other.as_deref(),
        Some(
            r#"{"actor_attributes":{"login":"begoon","type":"User","name":"A"},"url":"https://github.com/x/y/compare/a...b","repository":{"id":42,"name":"y","owner":"x","organization":"x-org","stargazers":3}}"#
        )
    );
}

#[test]
fn what_a_timeline_record_lacks_stays_null() {
    let e = envelope(r#"{"actor":null,"created_at":"2014-02-15T00:06:20-08:00","public":true,"type":"GistEvent","url":"https://gist.github.com/9015962"}"#).ok().unwrap();
    assert!(e.actor.is_none() && e.repo.is_none() && e.org.is_none());
    assert!(e.payload.text().is_none());
    assert_eq!(
        e.other.as_deref(),
        Some(r#"{"url":"https://gist.github.com/9015962"}"#)
    );
    let e = envelope(r#"{"actor_attributes":{"login":"only-here"},"type":"X","created_at":"2014-02-15T00:06:20-08:00","payload":null}"#).ok().unwrap();
    assert_eq!(e.actor.unwrap().login.as_deref(), Some("only-here"));
    assert!(e.payload.text().is_none());
}

#[test]
fn reasons_name_the_field() {
    let err =
        refusal(r#"{"type":"X","created_at":"2014-02-15T00:06:20-08:00","repository":{"id":"x"}}"#);
    assert!(err.starts_with("repository.id: invalid type"), "{err}");
    let err = refusal(r#"{"created_at":"2014-02-15T00:06:20-08:00"}"#);
    assert!(err.contains("missing field `type`"), "{err}");
    let err = refusal(r#"{"type":"X","created_at":"yesterday"}"#);
    assert!(err.contains("not an RFC 3339 time"), "{err}");
    let err = refusal(r#"{"type":"X","created_at":"2014-02-15T00:06:20Z","actor":7}"#);
    assert!(err.contains("invalid type"), "{err}");
    assert!(refusal("[1,2]").contains("invalid type"));
}

#[test]
fn made_up_ids_are_stable_negative_and_tell_records_apart() {
    let a = br#"{"type":"WatchEvent","actor":"a","created_at":"2013-02-15T00:00:45-08:00"}"#;
    let b = br#"{"type":"WatchEvent","actor":"b","created_at":"2013-02-15T00:00:45-08:00"}"#;
    assert_eq!(made_up_id(a), made_up_id(a));
    assert_ne!(made_up_id(a), made_up_id(b));
    assert!(made_up_id(a) < 0 && made_up_id(b) < 0 && made_up_id(b"") < 0);
    // Pinned (computed independently, with Python's `xxhash.xxh3_64_intdigest`): the same
    // bytes give these ids on every machine, in every version.
    assert_eq!(made_up_id(b"{}"), -1_389_868_326_933_519_383);
    assert_eq!(made_up_id(a), -1_375_264_856_631_492_354);
}
