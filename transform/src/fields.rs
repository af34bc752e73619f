//! How single values of a GHArchive record are read: borrowed text, event ids, timestamps, and
//! the fields whose JSON type changed over the archive's eras (a plain id or login where today
//! there is an object).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// A string that borrows from the line when it holds no escapes. (`Cow<str>` itself always
/// allocates unless a derived field says `#[serde(borrow)]`.)
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

/// An event `id`: a string of digits in GHArchive, a number in some old files; `null` counts as
/// absent (the record then gets a made-up id).
pub(crate) struct EventId(pub Option<i64>);

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EventId, D::Error> {
        struct IdVisitor;
        impl<'de> Visitor<'de> for IdVisitor {
            type Value = EventId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event id: a string of digits or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EventId, E> {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom(format_args!("id {v:?} is not a number")));
                }
                v.parse()
                    .map(|id| EventId(Some(id)))
                    .map_err(|_| E::custom(format_args!("id {v:?} does not fit in 64 bits")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EventId, E> {
                Ok(EventId(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EventId, E> {
                i64::try_from(v)
                    .map(|id| EventId(Some(id)))
                    .map_err(|_| E::custom(format_args!("id {v} does not fit in 64 bits")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<EventId, E> {
                Ok(EventId(None))
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

/// A required time, as milliseconds since the epoch in UTC.
pub(crate) struct Timestamp(pub i64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        timestamp_millis(d).map(Timestamp)
    }
}

pub(crate) fn timestamp_millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let Text(text) = Text::deserialize(d)?;
    parse_timestamp_millis(&text)
        .ok_or_else(|| de::Error::custom(format_args!("{text:?} is not an RFC 3339 time")))
}

pub(crate) fn optional_timestamp_millis<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<i64>, D::Error> {
    match <Option<Text<'de>>>::deserialize(d)? {
        None => Ok(None),
        Some(Text(text)) => parse_timestamp_millis(&text)
            .map(Some)
            .ok_or_else(|| de::Error::custom(format_args!("{text:?} is not an RFC 3339 time"))),
    }
}

/// Milliseconds since the epoch, in UTC whatever offset the text carries. Today's GHArchive
/// writes `2024-03-05T14:00:01Z`, parsed by hand here because it is on the hot path; the
/// 2012–2014 timeline writes Pacific offsets (`2013-02-15T00:00:39-08:00`), and GitHub's v2
/// API wrote `2012/03/10 22:11:54 -0800`: those go through chrono.
pub(crate) fn parse_timestamp_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
    {
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            b[r].iter().try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
        let time = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
        return Some(time.and_utc().timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y/%m/%d %H:%M:%S %z"))
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A field that today holds an object but in the archive's first years held the object's key
/// alone: `payload.issue` an issue id, `payload.forkee` a repository id, `payload.member` a login.
/// The plain value is read into the object's key field, so the same columns fill for every era.
pub(crate) trait FromPlain<'a>: Sized {
    /// The object of which `id` is the id, if this field has ever held a plain id.
    fn from_id(_id: i64) -> Option<Self> {
        None
    }
    /// The object of which `text` is the login (or name), if this field has ever held one.
    fn from_text(_text: Cow<'a, str>) -> Option<Self> {
        None
    }
}

/// `deserialize_with` for a [`FromPlain`] field: an object, its plain key, or null.
pub(crate) fn object_or_plain<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + FromPlain<'de>,
{
    struct PlainVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de> + FromPlain<'de>> Visitor<'de> for PlainVisitor<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object, or (in old events) its id or login")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<T>, E> {
            T::from_id(v)
                .map(Some)
                .ok_or_else(|| E::invalid_type(de::Unexpected::Signed(v), &self))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<T>, E> {
            let id = i64::try_from(v)
                .map_err(|_| E::invalid_type(de::Unexpected::Unsigned(v), &self))?;
            self.visit_i64(id)
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Option<T>, E> {
            T::from_text(Cow::Borrowed(v))
                .map(Some)
                .ok_or_else(|| E::invalid_type(de::Unexpected::Str(v), &self))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<T>, E> {
            T::from_text(Cow::Owned(v.to_owned()))
                .map(Some)
                .ok_or_else(|| E::invalid_type(de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(PlainVisitor(PhantomData))
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WithLogin<'a> {
    #[serde(borrow, default)]
    login: Option<Cow<'a, str>>,
}

/// `[{"name": "bug", …}, …]` → `["bug", …]`
pub(crate) fn names<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Cow<'de, str>>>, D::Error> {
    let items = <Option<Vec<Named<'de>>>>::deserialize(d)?;
    Ok(items.map(|items| items.into_iter().filter_map(|n| n.name).collect()))
}

/// `[{"login": "octocat", …}, …]` → `["octocat", …]`; entries without a login (teams) are left out.
pub(crate) fn logins<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Cow<'de, str>>>, D::Error> {
    let items = <Option<Vec<WithLogin<'de>>>>::deserialize(d)?;
    Ok(items.map(|items| items.into_iter().filter_map(|u| u.login).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_whatever_the_offset() {
        assert_eq!(parse_timestamp_millis("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_timestamp_millis("2012-03-11T07:17:32-07:00"),
            parse_timestamp_millis("2012-03-11T14:17:32Z")
        );
        // A Pacific evening is the next UTC day.
        assert_eq!(
            parse_timestamp_millis("2013-02-15T20:00:39-08:00"),
            parse_timestamp_millis("2013-02-16T04:00:39Z")
        );
        assert_eq!(
            parse_timestamp_millis("2012/03/10 22:11:54 -0800"),
            parse_timestamp_millis("2012-03-11T06:11:54Z")
        );
        assert_eq!(
            parse_timestamp_millis("2024-03-05T14:00:01.250Z"),
            Some(1_709_647_201_250)
        );
        for bad in [
            "2024-13-05T14:00:01Z",
            "2024-03-05 14:00:01",
            "",
            "2024-03-05T14:0a:01Z",
        ] {
            assert_eq!(parse_timestamp_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_are_digits_integers_or_absent() {
        let parse = |text: &str| {
            serde_json::from_str::<EventId>(text)
                .map(|e| e.0)
                .map_err(|e| e.to_string())
        };
        assert_eq!(parse(r#""26170139443""#), Ok(Some(26170139443)));
        assert_eq!(parse("42"), Ok(Some(42)));
        assert_eq!(parse("null"), Ok(None));
        assert!(parse(r#""abc""#).unwrap_err().contains("is not a number"));
        assert!(parse(r#""""#).is_err());
        assert!(parse(r#""99999999999999999999""#)
            .unwrap_err()
            .contains("64 bits"));
        assert!(parse("[1]").is_err());
    }
}
