//! S3 event notifications as they arrive in SQS message bodies, read tolerantly: only the fields
//! used (bucket, key, event name), whatever else the sender adds or leaves out (the local
//! emulator omits the time zone in `eventTime`, for one).

use serde::Deserialize;

/// What an SQS message body from the raw bucket's notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `s3:TestEvent`, sent when the notification is configured: nothing to do.
    Test,
    /// Objects created (or other events), keys decoded.
    Objects(Vec<ObjectEvent>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    pub event_name: String,
    pub bucket: String,
    /// The object key, URL-decoded (`+` is a space, then percent-decoding).
    pub key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("the message body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("the message body is not an S3 notification (no Records and no s3:TestEvent)")]
    NotS3,
    #[error("record {index} has no {field}")]
    MissingField { index: usize, field: &'static str },
    #[error("record {index}: the key `{key}` is not valid percent-encoded UTF-8")]
    BadKey { index: usize, key: String },
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "Event")]
    event: Option<String>,
    #[serde(rename = "Records")]
    records: Option<Vec<Record>>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName")]
    event_name: Option<String>,
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Option<Named>,
    object: Option<Keyed>,
}

#[derive(Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Keyed {
    key: Option<String>,
}

/// Reads an SQS message body holding an S3 notification.
pub fn parse_s3_notification(body: &str) -> Result<Notification, NotificationError> {
    let body: Body = serde_json::from_str(body).map_err(NotificationError::NotJson)?;
    if body.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Notification::Test);
    }
    let records = body.records.ok_or(NotificationError::NotS3)?;
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| {
            let missing = |field| NotificationError::MissingField { index, field };
            let s3 = record.s3.ok_or(missing("s3"))?;
            let bucket = s3
                .bucket
                .and_then(|b| b.name)
                .ok_or(missing("s3.bucket.name"))?;
            let raw_key = s3
                .object
                .and_then(|o| o.key)
                .ok_or(missing("s3.object.key"))?;
            let key = decode_key(&raw_key).ok_or(NotificationError::BadKey {
                index,
                key: raw_key.clone(),
            })?;
            Ok(ObjectEvent {
                event_name: record.event_name.unwrap_or_default(),
                bucket,
                key,
            })
        })
        .collect::<Result<_, _>>()
        .map(Notification::Objects)
}

/// S3 encodes keys in notifications like a form: `+` for a space, then percent-escapes.
pub fn decode_key(key: &str) -> Option<String> {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_test_events_and_encoded_keys() {
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventTime":"2024-03-05T15:00:01.123",
            "eventName":"ObjectCreated:CompleteMultipartUpload",
            "s3":{"bucket":{"name":"raw"},"object":{"key":"landing/ghactivity/a+b%2Bc%3Dd/2024-03-05-14.json.gz","size":5}}}]}"#;
        let Notification::Objects(objects) = parse_s3_notification(body).unwrap() else {
            panic!("records expected");
        };
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].bucket, "raw");
        assert_eq!(
            objects[0].key,
            "landing/ghactivity/a b+c=d/2024-03-05-14.json.gz"
        );
        assert_eq!(
            objects[0].event_name,
            "ObjectCreated:CompleteMultipartUpload"
        );

        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-03-05T15:00:00","Bucket":"raw"}"#;
        assert_eq!(parse_s3_notification(test).unwrap(), Notification::Test);

        assert!(matches!(
            parse_s3_notification("not json"),
            Err(NotificationError::NotJson(_))
        ));
        assert!(matches!(
            parse_s3_notification("{}"),
            Err(NotificationError::NotS3)
        ));
        let no_key = r#"{"Records":[{"s3":{"bucket":{"name":"raw"},"object":{}}}]}"#;
        assert!(parse_s3_notification(no_key)
            .unwrap_err()
            .to_string()
            .contains("s3.object.key"));
        assert!(matches!(
            parse_s3_notification(
                r#"{"Records":[{"s3":{"bucket":{"name":"r"},"object":{"key":"%FF"}}}]}"#
            ),
            Err(NotificationError::BadKey { .. })
        ));
    }
}
