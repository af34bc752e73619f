//! The top level of a GHArchive record, read into one shape from any of the archive's three wire
//! formats:
//!
//! * **Events API** (2015 – today, and the 2011 – early 2012 "backfill"): `id`, `type`,
//!   `created_at`, and `actor`, `repo`, `org` objects.
//! * **Timeline** (2012 – 2014): no `id`; `actor` is a login with an `actor_attributes` object
//!   beside it; a `repository` object (`id`, `name`, `owner`, `organization`, …) stands for
//!   `repo` and `org`; a top-level `url`; `created_at` with a Pacific offset.
//!
//! The columns take what carries their meaning in either shape; every top-level field that no
//! column takes whole (`actor_attributes`, `repository`, `url`, or anything unknown) is kept, as
//! it stood in the line, in [`Envelope::other`]. A record without an id gets [`made_up_id`].

use std::borrow::Cow;
use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::fields::{object_or_plain, EventId, Text, Timestamp};
use crate::payload::{Payload, User};
use crate::span;

/// The top-level fields of one record, with the payload as raw JSON text, or decoded with its
/// text located ([`read_once`]).
pub(crate) struct Envelope<'a> {
    /// `None` for timeline records, which have no id.
    pub id: Option<i64>,
    pub event_type: Cow<'a, str>,
    /// Milliseconds since the epoch, UTC.
    pub created_at: i64,
    pub actor: Option<Actor<'a>>,
    pub repo: Option<Repo<'a>>,
    pub org: Option<Org<'a>>,
    pub public: Option<bool>,
    pub payload: PayloadField<'a>,
    /// The top-level fields no column takes, as a JSON object in line order; `None` if none.
    pub other: Option<String>,
}

/// A payload's fields, and its text as it stood in the line (`None` where there is none).
pub(crate) type FieldsAndText<'a> = (Box<Payload<'a>>, Option<&'a str>);

/// A record's payload, as its reading left it.
pub(crate) enum PayloadField<'a> {
    /// No payload, or a JSON `null` one.
    Absent,
    /// Its text, its fields not yet decoded (the two-pass reading).
    Raw(&'a RawValue),
    /// Decoded in the envelope's own pass ([`read_once`]), with its text as it stood in the line.
    /// Boxed where it is decoded: the payload's fields take some 1.5 KB, which would otherwise
    /// be copied at every step from the parser to the row.
    Decoded {
        payload: Box<Payload<'a>>,
        text: &'a str,
    },
}

impl<'a> PayloadField<'a> {
    fn from_raw(raw: Option<&'a RawValue>) -> PayloadField<'a> {
        raw.map_or(PayloadField::Absent, PayloadField::Raw)
    }

    /// The payload's text as it stood in the line.
    #[cfg(test)]
    pub fn text(&self) -> Option<&'a str> {
        match self {
            PayloadField::Absent => None,
            PayloadField::Raw(raw) => Some(raw.get()),
            PayloadField::Decoded { text, .. } => Some(text),
        }
    }

    /// The payload's fields (decoding a raw one now) and its text; or its text and why its
    /// fields did not decode.
    pub fn decode(self) -> Result<FieldsAndText<'a>, (&'a str, serde_json::Error)> {
        match self {
            PayloadField::Absent => Ok((Box::default(), None)),
            PayloadField::Raw(raw) => {
                let text = raw.get();
                let payload = serde_json::from_str(text).map_err(|e| (text, e))?;
                Ok((payload, Some(text)))
            }
            PayloadField::Decoded { payload, text } => Ok((payload, Some(text))),
        }
    }
}

/// Reads `record` in one pass, the payload's fields with the rest; its text is found from where
/// its key and the next one lie ([`crate::span`]), not by reading it again. An error here may be
/// only that the text could not be located: read the record with `serde_json::from_str` then,
/// which also words any reason.
pub(crate) fn read_once(record: &str) -> serde_json::Result<Envelope<'_>> {
    let mut de = serde_json::Deserializer::from_str(record);
    let envelope = (&mut de).deserialize_map(EnvelopeVisitor {
        record: Some(record),
    })?;
    de.end()?;
    Ok(envelope)
}

#[derive(Deserialize, Serialize, Default)]
pub(crate) struct Actor<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(borrow, default)]
    pub login: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub display_login: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct Repo<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct Org<'a> {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(borrow, default)]
    pub login: Option<Cow<'a, str>>,
}

/// A timeline record's `actor_attributes`: the actor's profile. Only what a column takes is read.
#[derive(Deserialize)]
struct ActorAttributes<'a> {
    #[serde(default)]
    id: Option<i64>,
    #[serde(borrow, default)]
    login: Option<Cow<'a, str>>,
}

/// A timeline record's `repository`. Its `owner` (and `organization`) is a login; an object
/// with a login is read too.
#[derive(Deserialize)]
struct Repository<'a> {
    #[serde(default)]
    id: Option<i64>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "object_or_plain")]
    owner: Option<User<'a>>,
    #[serde(borrow, default, deserialize_with = "object_or_plain")]
    organization: Option<User<'a>>,
}

impl<'a> Repository<'a> {
    /// `owner/name`, as `repo.name` spells it; the bare name when the owner is missing.
    fn full_name(&self) -> Option<Cow<'a, str>> {
        let name = self.name.clone()?;
        match self.owner.as_ref().and_then(|o| o.login.as_deref()) {
            Some(owner) => Some(Cow::Owned(format!("{owner}/{name}"))),
            None => Some(name),
        }
    }
}

/// The id of a record that carries none (the 2012–2014 timeline): `-1 - (h & (2^63 - 1))`,
/// where `h` is the XXH3-64 hash of the record's bytes as they stand in the line. The same record
/// gives the same id on any machine and in any run, byte-identical records are one event to the
/// dedupe, and the id is negative, so it never equals a real GitHub event id.
pub(crate) fn made_up_id(record: &[u8]) -> i64 {
    let hash = twox_hash::XxHash3_64::oneshot(record) & (i64::MAX as u64);
    -1 - hash as i64
}

enum Key<'a> {
    Id,
    Type,
    CreatedAt,
    Actor,
    Repo,
    Org,
    Public,
    Payload,
    ActorAttributes,
    Repository,
    Other(Cow<'a, str>),
}

impl Key<'_> {
    fn known(name: &str) -> Option<Key<'static>> {
        Some(match name {
            "id" => Key::Id,
            "type" => Key::Type,
            "created_at" => Key::CreatedAt,
            "actor" => Key::Actor,
            "repo" => Key::Repo,
            "org" => Key::Org,
            "public" => Key::Public,
            "payload" => Key::Payload,
            "actor_attributes" => Key::ActorAttributes,
            "repository" => Key::Repository,
            _ => return None,
        })
    }
}

/// A key, and its text in the record where the deserializer lent it (it holds no escapes).
struct KeyIn<'a> {
    key: Key<'a>,
    lent: Option<&'a str>,
}

impl<'de> Deserialize<'de> for KeyIn<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeyIn<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyIn<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<KeyIn<'de>, E> {
                let key = Key::known(v).unwrap_or(Key::Other(Cow::Borrowed(v)));
                Ok(KeyIn { key, lent: Some(v) })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyIn<'de>, E> {
                let key = Key::known(v).unwrap_or_else(|| Key::Other(Cow::Owned(v.to_owned())));
                Ok(KeyIn { key, lent: None })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// `actor`: an object (Events API), a login (timeline) or null.
struct ActorField<'a>(Option<Actor<'a>>);

impl<'de> Deserialize<'de> for ActorField<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ActorField<'de>, D::Error> {
        struct ActorVisitor;
        impl<'de> Visitor<'de> for ActorVisitor {
            type Value = ActorField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an actor object or login")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ActorField<'de>, A::Error> {
                Actor::deserialize(MapAccessDeserializer::new(map)).map(|a| ActorField(Some(a)))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<ActorField<'de>, E> {
                Ok(ActorField::login(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ActorField<'de>, E> {
                Ok(ActorField::login(Cow::Owned(v.to_owned())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ActorField<'de>, E> {
                Ok(ActorField(None))
            }
        }
        d.deserialize_any(ActorVisitor)
    }
}

impl<'a> ActorField<'a> {
    fn login(login: Cow<'a, str>) -> ActorField<'a> {
        ActorField(Some(Actor {
            login: Some(login),
            ..Actor::default()
        }))
    }
}

/// Collects the top-level fields no column takes into a JSON object, byte for byte per value.
#[derive(Default)]
struct OtherFields(Option<String>);

impl OtherFields {
    fn push(&mut self, name: &str, value: &RawValue) {
        let text = self.0.get_or_insert_with(|| String::from("{"));
        if text.len() > 1 {
            text.push(',');
        }
        // A key is a plain JSON string; serialising one cannot fail.
        text.push_str(&serde_json::to_string(name).unwrap_or_default());
        text.push(':');
        text.push_str(value.get());
    }

    fn finish(self) -> Option<String> {
        self.0.map(|mut text| {
            text.push('}');
            text
        })
    }
}

/// Reads a field that is kept whole in `other` and also feeds columns. Only when it fails is it
/// read again with the field path tracked, to name the field in the reason.
fn parse_kept<'de, T: Deserialize<'de>, E: de::Error>(
    name: &str,
    raw: &'de RawValue,
) -> Result<T, E> {
    serde_json::from_str(raw.get()).map_err(|first| {
        let mut de = serde_json::Deserializer::from_str(raw.get());
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) if e.path().iter().next().is_some() => {
                E::custom(format_args!("{name}.{}: {}", e.path(), e.inner()))
            }
            _ => E::custom(format_args!("{name}: {first}")),
        }
    })
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Envelope<'de>, D::Error> {
        d.deserialize_map(EnvelopeVisitor { record: None })
    }
}

/// With the record's text, the payload is decoded in this pass ([`read_once`]); without it, it
/// is kept as raw text.
struct EnvelopeVisitor<'a> {
    record: Option<&'a str>,
}

/// A payload decoded from `start`, whose end is known at the next key or the object's close.
struct Unended<'a> {
    start: usize,
    payload: Box<Payload<'a>>,
}

impl<'a> Unended<'a> {
    fn end<E: de::Error>(self, record: &'a str, end: Option<usize>) -> Result<PayloadField<'a>, E> {
        let text = end
            .filter(|&end| end >= self.start)
            .and_then(|end| record.get(self.start..end))
            .ok_or_else(|| E::custom("the payload's text could not be located"))?;
        Ok(PayloadField::Decoded {
            payload: self.payload,
            text,
        })
    }
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'de> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a GitHub event (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
        let (mut id, mut event_type, mut created_at) = (None, None, None);
        let (mut actor, mut repo, mut org, mut public) = (None, None, None, None);
        let mut payload = PayloadField::Absent;
        let (mut attributes, mut repository): (Option<ActorAttributes>, Option<Repository>) =
            (None, None);
        let mut other = OtherFields::default();
        let mut unended = None::<Unended<'de>>;
        while let Some(KeyIn { key, lent }) = map.next_key::<KeyIn<'de>>()? {
            if let (Some(record), Some(value)) = (self.record, unended.take()) {
                let end = lent.and_then(|key| span::value_end_before(record, key));
                payload = value.end(record, end)?;
            }
            match key {
                Key::Id => id = map.next_value::<EventId>()?.0,
                Key::Type => event_type = Some(map.next_value::<Text<'de>>()?.0),
                Key::CreatedAt => created_at = Some(map.next_value::<Timestamp>()?.0),
                Key::Actor => actor = map.next_value::<ActorField<'de>>()?.0,
                Key::Repo => repo = map.next_value()?,
                Key::Org => org = map.next_value()?,
                Key::Public => public = map.next_value()?,
                Key::Payload => {
                    payload = PayloadField::Absent;
                    let start = self.record.zip(lent);
                    match start.and_then(|(record, key)| span::value_start(record, key)) {
                        Some(start) => {
                            unended = map
                                .next_value::<Option<Box<Payload<'de>>>>()?
                                .map(|payload| Unended { start, payload });
                        }
                        None => payload = PayloadField::from_raw(map.next_value()?),
                    }
                }
                Key::ActorAttributes => {
                    let raw: &'de RawValue = map.next_value()?;
                    attributes = parse_kept("actor_attributes", raw)?;
                    other.push("actor_attributes", raw);
                }
                Key::Repository => {
                    let raw: &'de RawValue = map.next_value()?;
                    repository = parse_kept("repository", raw)?;
                    other.push("repository", raw);
                }
                Key::Other(name) => other.push(&name, map.next_value::<&'de RawValue>()?),
            }
        }
        if let (Some(record), Some(value)) = (self.record, unended) {
            payload = value.end(record, span::value_end_at_close(record))?;
        }
        let mut envelope = Envelope {
            id,
            event_type: event_type.ok_or_else(|| de::Error::missing_field("type"))?,
            created_at: created_at.ok_or_else(|| de::Error::missing_field("created_at"))?,
            actor,
            repo,
            org,
            public,
            payload,
            other: other.finish(),
        };
        envelope.fill_from_timeline(attributes, repository);
        Ok(envelope)
    }
}

impl<'a> Envelope<'a> {
    /// A timeline record's columns come from `actor_attributes` and `repository` where the
    /// Events API fields are missing.
    fn fill_from_timeline(
        &mut self,
        attributes: Option<ActorAttributes<'a>>,
        repository: Option<Repository<'a>>,
    ) {
        if let Some(attributes) = attributes {
            let actor = self.actor.get_or_insert_with(Actor::default);
            if actor.login.is_none() {
                actor.login = attributes.login;
            }
            if actor.id.is_none() {
                actor.id = attributes.id;
            }
        }
        let Some(repository) = repository else {
            return;
        };
        if self.repo.is_none() {
            self.repo = Some(Repo {
                id: repository.id,
                name: repository.full_name(),
            });
        }
        if self.org.is_none() {
            if let Some(login) = repository.organization.and_then(|o| o.login) {
                self.org = Some(Org {
                    id: None,
                    login: Some(login),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
