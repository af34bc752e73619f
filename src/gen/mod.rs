//! `elt gen`: GHArchive-shaped hour files built from the real events the repository ships
//! (`fixtures/real-events.jsonl`, and `fixtures/legacy-events.jsonl` for the archive's first
//! years), for demos, tests and benchmarks.
//!
//! Each event is a real event of a type drawn from a mix close to a GHArchive hour of its era, in
//! the era's wire format ([`Era`]), with a fresh unique id (none in the timeline), a time inside
//! the hour as the era's files were named, and an actor and repository drawn from skewed pools
//! (so "top repositories" means something). A small share of lines repeat an earlier event,
//! half of them byte for byte and half with other bytes (same id, later time), as GHArchive's
//! duplicates do; in the timeline, which has no ids, a repeat is the same bytes. Optionally a
//! share of events are late events of the hour before, as GHArchive's files carry since 2025.

mod era;

pub use era::Era;
use era::NewEvent;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{bail, Context};
use events::{Compression, Hour};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Real GitHub events, 2012–2026, from public GHArchive data (Events API format).
pub const REAL_EVENTS: &str = include_str!("../../fixtures/real-events.jsonl");
/// Real GitHub events of 2011–2016 in all three of GHArchive's formats (`fixtures/LEGACY-SOURCES.md`).
pub const LEGACY_EVENTS: &str = include_str!("../../fixtures/legacy-events.jsonl");

/// Share of each event type in a GHArchive hour of 2024 (roughly); types without a template
/// are left out and the rest renormalised.
const TYPE_MIX: &[(&str, f64)] = &[
    ("PushEvent", 0.46),
    ("CreateEvent", 0.12),
    ("PullRequestEvent", 0.07),
    ("WatchEvent", 0.07),
    ("IssueCommentEvent", 0.06),
    ("DeleteEvent", 0.04),
    ("PullRequestReviewEvent", 0.04),
    ("PullRequestReviewCommentEvent", 0.03),
    ("IssuesEvent", 0.03),
    ("ForkEvent", 0.025),
    ("ReleaseEvent", 0.01),
    ("CommitCommentEvent", 0.003),
    ("MemberEvent", 0.003),
    ("GollumEvent", 0.003),
];

/// The same for an hour of 2011–2014, with the event types of those years.
const LEGACY_TYPE_MIX: &[(&str, f64)] = &[
    ("PushEvent", 0.50),
    ("CreateEvent", 0.12),
    ("WatchEvent", 0.12),
    ("IssueCommentEvent", 0.06),
    ("IssuesEvent", 0.04),
    ("PullRequestEvent", 0.03),
    ("ForkEvent", 0.03),
    ("GollumEvent", 0.02),
    ("GistEvent", 0.02),
    ("FollowEvent", 0.02),
    ("DeleteEvent", 0.01),
    ("CommitCommentEvent", 0.01),
    ("PullRequestReviewCommentEvent", 0.005),
    ("MemberEvent", 0.005),
    ("DownloadEvent", 0.003),
    ("PublicEvent", 0.002),
    ("ReleaseEvent", 0.002),
    ("ForkApplyEvent", 0.001),
    ("TeamAddEvent", 0.001),
];

#[derive(Debug, Clone)]
pub struct GenOptions {
    /// The hour as GHArchive named its file (by a Pacific clock in the timeline era).
    pub hour: Hour,
    pub events: u64,
    pub seed: u64,
    /// Share of lines that repeat an earlier event.
    pub duplicate_share: f64,
    /// The wire format; by default the era of `hour`.
    pub era: Option<Era>,
    /// Share of events (Events API format) that are late events of the hour before.
    pub late_share: f64,
    /// Repositories and actors to draw from (Zipf: the k-th about 1/k as often as the first);
    /// past the real events' names, made-up ones. `None`: the real events' own, skewed.
    pub repos: Option<usize>,
    pub actors: Option<usize>,
}

impl GenOptions {
    /// `events` events for `hour`, seed 1, half a percent of duplicates, the hour's era.
    pub fn new(hour: Hour, events: u64) -> GenOptions {
        GenOptions {
            hour,
            events,
            seed: 1,
            duplicate_share: 0.005,
            era: None,
            late_share: 0.0,
            repos: None,
            actors: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GenStats {
    /// Lines written.
    pub events: u64,
    /// Lines that repeat an earlier event.
    pub duplicates: u64,
    /// Events of the hour before.
    pub late: u64,
    /// Bytes of JSON written, before compression.
    pub json_bytes: u64,
}

struct Templates {
    by_type: Vec<(Vec<Value>, f64)>,
    repos: Vec<(i64, String)>,
    actors: Vec<(i64, String)>,
}

/// The era's templates, parsed once per process (a test or a benchmark writes thousands of
/// hours).
fn templates(era: Era) -> anyhow::Result<&'static Templates> {
    static PARSED: [OnceLock<Templates>; 3] = [const { OnceLock::new() }; 3];
    let cell = &PARSED[era as usize];
    if let Some(templates) = cell.get() {
        return Ok(templates);
    }
    let templates = parse_templates(era)?;
    Ok(cell.get_or_init(|| templates))
}

/// The era's templates by type, and the actor and repository pools (from the Events API
/// events, which carry both ids and names).
fn parse_templates(era: Era) -> anyhow::Result<Templates> {
    let (mut repos, mut actors) = (BTreeMap::new(), BTreeMap::new());
    for line in REAL_EVENTS.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).context("a shipped template is not JSON")?;
        if let (Some(id), Some(name)) =
            (event["repo"]["id"].as_i64(), event["repo"]["name"].as_str())
        {
            repos.insert(id, name.to_string());
        }
        if let (Some(id), Some(login)) = (
            event["actor"]["id"].as_i64(),
            event["actor"]["login"].as_str(),
        ) {
            actors.insert(id, login.to_string());
        }
    }
    let (source, mix) = match era {
        Era::Events => (REAL_EVENTS, TYPE_MIX),
        Era::Backfill | Era::Timeline => (LEGACY_EVENTS, LEGACY_TYPE_MIX),
    };
    let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in source.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).context("a shipped template is not JSON")?;
        if template_era(&event) == era {
            let kind = event["type"].as_str().unwrap_or_default().to_string();
            by_type.entry(kind).or_default().push(event);
        }
    }
    let by_type: Vec<_> = mix
        .iter()
        .filter_map(|(kind, weight)| by_type.remove(*kind).map(|events| (events, *weight)))
        .collect();
    if by_type.is_empty() {
        bail!("no event templates for the {era:?} era");
    }
    Ok(Templates {
        by_type,
        repos: repos.into_iter().collect(),
        actors: actors.into_iter().collect(),
    })
}

/// The format a shipped event is in: no `id` is the timeline; an id with `api.github.dev` URLs
/// is the backfill.
fn template_era(event: &Value) -> Era {
    if event.get("id").is_none() {
        Era::Timeline
    } else if event["actor"]["url"]
        .as_str()
        .is_some_and(|u| u.contains("api.github.dev"))
    {
        Era::Backfill
    } else {
        Era::Events
    }
}

impl Templates {
    /// A template of a type drawn from the mix.
    fn pick(&self, rng: &mut StdRng) -> Value {
        let total_weight: f64 = self.by_type.iter().map(|(_, w)| w).sum();
        let mut pick = rng.random::<f64>() * total_weight;
        let (events, _) = self
            .by_type
            .iter()
            .find(|(_, w)| {
                pick -= w;
                pick <= 0.0
            })
            .unwrap_or(&self.by_type[0]);
        events[rng.random_range(0..events.len())].clone()
    }

    /// A repository and an actor for a new event, with its payload varied in between (the
    /// order of the draws is part of what a seed's file is).
    fn draw(
        &self,
        event: &mut Value,
        (id, created_at): (i64, String),
        pools: (Option<usize>, Option<usize>),
        rng: &mut StdRng,
    ) -> NewEvent {
        let (repo_id, repo_name) = pooled(&self.repos, pools.0, rng, |name, k| {
            match name.split_once('/') {
                Some((owner, repo)) => format!("{owner}{k}/{repo}"),
                None => format!("{name}{k}"),
            }
        });
        if let Some(payload) = event.get_mut("payload") {
            vary_payload(payload, rng); // some timeline records have none: they keep none
        }
        let (actor_id, login) =
            pooled(&self.actors, pools.1, rng, |login, k| format!("{login}{k}"));
        NewEvent {
            id,
            created_at,
            repo_id,
            repo_name,
            actor_id,
            login,
        }
    }
}

/// A name drawn from `real` (skewed), or with a pool of `size`, drawn Zipf-like from that many:
/// the real names first, then `made_up(real name, k)` for the k-th round past them.
fn pooled(
    real: &[(i64, String)],
    size: Option<usize>,
    rng: &mut StdRng,
    made_up: impl Fn(&str, usize) -> String,
) -> (i64, String) {
    let Some(size) = size.filter(|&n| n > 0) else {
        let (id, name) = &real[skewed(rng, real.len())];
        return (*id, name.clone());
    };
    // P(rank <= k) = ln(k + 1) / ln(size + 1): Zipf with exponent 1.
    let u: f64 = rng.random();
    let index = ((u * (size as f64 + 1.0).ln()).exp() - 1.0).floor() as usize;
    let index = index.min(size - 1);
    let (id, name) = &real[index % real.len()];
    match index / real.len() {
        0 => (*id, name.clone()),
        k => (
            id.saturating_add(10_000_000_000 * k as i64),
            made_up(name, k),
        ),
    }
}

/// Picks an index in `0..len`, low indexes far more often (a few popular repositories, many
/// quiet ones).
fn skewed(rng: &mut StdRng, len: usize) -> usize {
    let u: f64 = rng.random();
    ((u.powi(3) * len as f64) as usize).min(len - 1)
}

/// Writes `options.events` lines to `out`, compressed as its extension says.
pub fn generate(
    out: &Path,
    options: &GenOptions,
    mut on_event: impl FnMut(u64),
) -> anyhow::Result<GenStats> {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let compression = [Compression::Gzip, Compression::Zstd]
        .into_iter()
        .find(|c| name.ends_with(c.extension().trim_start_matches(".json")))
        .unwrap_or(Compression::None);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut sink: Box<dyn Write> = match compression {
        Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        )),
        Compression::Zstd => Box::new(zstd::stream::write::Encoder::new(file, 3)?.auto_finish()),
        Compression::None => Box::new(file),
    };
    let mut writer = BufWriter::with_capacity(1 << 20, &mut sink);
    let stats = write_events(&mut writer, options, &mut on_event)?;
    writer.flush()?;
    drop(writer);
    sink.flush()?;
    drop(sink); // finishes the compressed stream
    Ok(stats)
}

fn write_events(
    out: &mut impl Write,
    options: &GenOptions,
    on_event: &mut impl FnMut(u64),
) -> anyhow::Result<GenStats> {
    for (flag, share) in [
        ("--duplicate-share", options.duplicate_share),
        ("--late-share", options.late_share),
    ] {
        if !(0.0..=1.0).contains(&share) {
            bail!("{flag} is a share of the events: between 0 and 1, not {share}");
        }
    }
    let era = options.era.unwrap_or_else(|| Era::of(options.hour));
    let templates = templates(era)?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let first_id = era.first_id(options.hour);
    let mut recent: Vec<Value> = Vec::with_capacity(1024);
    let mut stats = GenStats {
        events: 0,
        duplicates: 0,
        late: 0,
        json_bytes: 0,
    };
    let mut line = Vec::with_capacity(64 * 1024);
    for i in 0..options.events {
        let offset =
            chrono::Duration::milliseconds((i as i64 * 3_600_000) / options.events.max(1) as i64);
        let event = if !recent.is_empty() && rng.random_bool(options.duplicate_share) {
            stats.duplicates += 1;
            let mut again = recent[rng.random_range(0..recent.len())].clone();
            if era.has_ids() && rng.random_bool(0.5) {
                // The same event delivered again a little later: same id, other bytes.
                again["created_at"] = Value::from(era.created_at(options.hour, offset));
            }
            again
        } else {
            let mut event = templates.pick(&mut rng);
            let created_at = era.created_at(options.hour, offset);
            let mut new = templates.draw(
                &mut event,
                (first_id + i as i64, created_at),
                (options.repos, options.actors),
                &mut rng,
            );
            if options.late_share > 0.0 && rng.random_bool(options.late_share) {
                stats.late += 1;
                let early = chrono::Duration::seconds(rng.random_range(1..=600));
                new.created_at = era.created_at(options.hour, -early);
            }
            era.dress(&mut event, &new);
            if recent.len() < 1024 {
                recent.push(event.clone());
            } else {
                let slot = rng.random_range(0..recent.len());
                recent[slot] = event.clone();
            }
            event
        };
        line.clear();
        serde_json::to_writer(&mut line, &event)?;
        line.push(b'\n');
        out.write_all(&line)?;
        stats.json_bytes += line.len() as u64;
        stats.events += 1;
        if i % 4096 == 0 {
            on_event(i);
        }
    }
    on_event(options.events);
    Ok(stats)
}

/// Makes a template's payload a new one of the same shape: fresh ids, commit SHAs and numbers,
/// so no two generated payloads are the same text (as in a real hour).
fn vary_payload(value: &mut Value, rng: &mut StdRng) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                let is_id = key == "id" || key.ends_with("_id");
                match field {
                    Value::Number(n) if is_id && n.as_i64().is_some_and(|v| v > 0) => {
                        let digits =
                            n.as_i64().map_or(9, |v| v.to_string().len()).clamp(6, 12) as u32;
                        *field =
                            Value::from(rng.random_range(10i64.pow(digits - 1)..10i64.pow(digits)));
                    }
                    Value::Number(n) if key == "number" && n.as_i64().is_some() => {
                        *field = Value::from(rng.random_range(1..20_000));
                    }
                    Value::String(text)
                        if text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        *field = Value::from(random_sha(rng));
                    }
                    _ => vary_payload(field, rng),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| vary_payload(item, rng)),
        _ => {}
    }
}

fn random_sha(rng: &mut StdRng) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    (0..40)
        .map(|_| HEX[rng.random_range(0..16)] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_hours_are_deterministic_and_mostly_unique() {
        let options = GenOptions {
            seed: 7,
            duplicate_share: 0.01,
            ..GenOptions::new("2024-03-05-14".parse().unwrap(), 2000)
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let stats = write_events(&mut a, &options, &mut |_| {}).unwrap();
        write_events(&mut b, &options, &mut |_| {}).unwrap();
        assert_eq!(a, b, "same seed, same bytes");
        let text = String::from_utf8(a).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ids.len(), 2000);
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!((ids.len() - unique.len()) as u64, stats.duplicates);
        assert!(
            stats.duplicates > 5 && stats.duplicates < 60,
            "{}",
            stats.duplicates
        );
        assert!(text
            .lines()
            .all(|l| l.contains(r#""created_at":"2024-03-05T14:"#)));
        let pushes = text
            .lines()
            .filter(|l| l.contains(r#""type":"PushEvent""#))
            .count();
        assert!((700..1200).contains(&pushes), "{pushes}");
    }

    fn generate_text(options: &GenOptions) -> (String, GenStats) {
        let mut out = Vec::new();
        let stats = write_events(&mut out, options, &mut |_| {}).unwrap();
        (String::from_utf8(out).unwrap(), stats)
    }

    #[test]
    fn timeline_hours_have_no_ids_pacific_times_and_repositories() {
        let options = GenOptions::new("2013-02-15-20".parse().unwrap(), 2000);
        let (text, stats) = generate_text(&options);
        let mut seen = std::collections::HashSet::new();
        let mut repeats = 0;
        for line in text.lines() {
            let event: Value = serde_json::from_str(line).unwrap();
            assert!(event.get("id").is_none(), "{line}");
            let at = event["created_at"].as_str().unwrap();
            assert!(
                at.starts_with("2013-02-15T20:") && at.ends_with("-08:00"),
                "{at}"
            );
            assert!(event["actor"].is_string() || event["actor"].is_null());
            if let Some(repository) = event.get("repository") {
                assert!(repository["owner"].is_string() && repository["name"].is_string());
                assert!(event.get("repo").is_none());
            }
            repeats += u64::from(!seen.insert(line.to_string()));
        }
        assert_eq!(
            repeats, stats.duplicates,
            "a timeline repeat is the same bytes"
        );
        assert!(text.contains(r#""type":"GistEvent""#) && text.contains(r#""type":"FollowEvent""#));
    }

    #[test]
    fn backfill_hours_have_ids_old_urls_and_plain_payload_values() {
        let options = GenOptions::new("2011-02-15-14".parse().unwrap(), 2000);
        let (text, _) = generate_text(&options);
        for line in text.lines() {
            let event: Value = serde_json::from_str(line).unwrap();
            assert!(
                event["id"].as_str().is_some_and(|id| id.starts_with("11")),
                "{line}"
            );
            assert!(event["created_at"]
                .as_str()
                .unwrap()
                .starts_with("2011-02-15T14:"));
            assert!(event["actor"]["url"]
                .as_str()
                .unwrap()
                .contains("api.github.dev"));
        }
        assert!(
            text.contains(r#""issue":5"#)
                || text.contains(r#""forkee":1"#)
                || text.contains(r#""shas":"#)
        );
    }

    #[test]
    fn late_events_belong_to_the_hour_before() {
        let options = GenOptions {
            late_share: 0.1,
            ..GenOptions::new("2025-06-02-0".parse().unwrap(), 2000)
        };
        let (text, stats) = generate_text(&options);
        let late = text
            .lines()
            .filter(|l| l.contains(r#""created_at":"2025-06-01T23:5"#))
            .count() as u64;
        assert!(
            stats.late > 100 && late >= stats.late - stats.duplicates,
            "{stats:?} {late}"
        );
        // Without a late share, the events-era hour is what it always was.
        let plain = GenOptions::new("2024-03-05-14".parse().unwrap(), 300);
        assert_eq!(generate_text(&plain).1.late, 0);
    }

    #[test]
    fn pools_spread_names_zipf_like_past_the_real_ones() {
        let options = GenOptions {
            repos: Some(90_000),
            actors: Some(60_000),
            ..GenOptions::new("2024-03-05-14".parse().unwrap(), 20_000)
        };
        let (text, _) = generate_text(&options);
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for line in text.lines() {
            let event: Value = serde_json::from_str(line).unwrap();
            *counts
                .entry(event["repo"]["name"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        // Many names, most seen once or twice, a few very often.
        assert!(counts.len() > 5_000, "{}", counts.len());
        let top = counts.values().max().copied().unwrap_or(0);
        assert!(top > 500, "{top}");
        assert!(counts.values().filter(|&&n| n <= 2).count() > counts.len() / 2);
        // The same seed, the same names.
        assert_eq!(generate_text(&options).0, text);
    }

    #[test]
    fn any_era_can_be_asked_for_and_shares_are_checked() {
        let options = GenOptions {
            era: Some(Era::Timeline),
            ..GenOptions::new("2024-03-05-14".parse().unwrap(), 5000)
        };
        let (text, _) = generate_text(&options);
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert!(first.get("id").is_none());
        assert_eq!(first["created_at"], "2024-03-05T14:00:00-08:00");
        assert!(
            text.lines().any(|l| !l.contains(r#""payload""#)),
            "templates without a payload keep none"
        );
        assert!(!text.contains(r#""payload":null"#));
        for (duplicate_share, late_share) in [(1.5, 0.0), (0.0, -0.1), (f64::NAN, 0.0)] {
            let options = GenOptions {
                duplicate_share,
                late_share,
                ..GenOptions::new("2024-03-05-14".parse().unwrap(), 10)
            };
            let error = write_events(&mut Vec::new(), &options, &mut |_| {})
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains("between 0 and 1"), "{error}");
        }
    }
}
