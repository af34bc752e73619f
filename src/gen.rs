//! `elt gen`: GHArchive-shaped hour files built from the real events the repository ships
//! (`fixtures/real-events.jsonl`), for demos, tests and benchmarks.
//!
//! Each event is a real event of a type drawn from a mix close to a 2024 GHArchive hour, with a
//! fresh unique id, a time inside the hour, and an actor and repository drawn from skewed pools
//! (so "top repositories" means something). A small share of lines repeat an earlier event's id,
//! half of them byte for byte and half with other bytes, as GHArchive's duplicates do.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context};
use events::{Compression, Hour};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Real GitHub events, 2012–2026, from public GHArchive data.
pub const REAL_EVENTS: &str = include_str!("../fixtures/real-events.jsonl");

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

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub hour: Hour,
    pub events: u64,
    pub seed: u64,
    /// Share of lines that repeat an earlier id.
    pub duplicate_share: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GenStats {
    /// Lines written.
    pub events: u64,
    /// Lines that repeat an earlier id.
    pub duplicates: u64,
    /// Bytes of JSON written, before compression.
    pub json_bytes: u64,
}

struct Templates {
    by_type: Vec<(Vec<Value>, f64)>,
    repos: Vec<(i64, String)>,
    actors: Vec<(i64, String)>,
}

fn templates() -> anyhow::Result<Templates> {
    let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
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
        let kind = event["type"].as_str().unwrap_or_default().to_string();
        by_type.entry(kind).or_default().push(event);
    }
    let by_type: Vec<_> = TYPE_MIX
        .iter()
        .filter_map(|(kind, weight)| by_type.remove(*kind).map(|events| (events, *weight)))
        .collect();
    if by_type.is_empty() {
        bail!("no event templates");
    }
    Ok(Templates {
        by_type,
        repos: repos.into_iter().collect(),
        actors: actors.into_iter().collect(),
    })
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
    let templates = templates()?;
    let total_weight: f64 = templates.by_type.iter().map(|(_, w)| w).sum();
    let mut rng = StdRng::seed_from_u64(options.seed);
    // Ids as GHArchive has them in 2024: eleven digits, rising.
    let first_id = 36_000_000_000i64 + (options.hour.start().timestamp() % 1_000_000) * 1_000;
    let start = options.hour.start();
    let mut recent: Vec<Value> = Vec::with_capacity(1024);
    let mut stats = GenStats {
        events: 0,
        duplicates: 0,
        json_bytes: 0,
    };
    let mut line = Vec::with_capacity(64 * 1024);
    for i in 0..options.events {
        let at = start
            + chrono::Duration::milliseconds((i as i64 * 3_600_000) / options.events.max(1) as i64);
        let event = if !recent.is_empty() && rng.random_bool(options.duplicate_share) {
            stats.duplicates += 1;
            let mut again = recent[rng.random_range(0..recent.len())].clone();
            if rng.random_bool(0.5) {
                // The same event delivered again a little later: same id, other bytes.
                again["created_at"] = Value::from(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            }
            again
        } else {
            let mut pick = rng.random::<f64>() * total_weight;
            let (events, _) = templates
                .by_type
                .iter()
                .find(|(_, w)| {
                    pick -= w;
                    pick <= 0.0
                })
                .unwrap_or(&templates.by_type[0]);
            let mut event = events[rng.random_range(0..events.len())].clone();
            event["id"] = Value::from((first_id + i as i64).to_string());
            event["created_at"] = Value::from(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            let (repo_id, repo_name) = &templates.repos[skewed(&mut rng, templates.repos.len())];
            event["repo"]["id"] = Value::from(*repo_id);
            event["repo"]["name"] = Value::from(repo_name.as_str());
            event["repo"]["url"] = Value::from(format!("https://api.github.com/repos/{repo_name}"));
            vary_payload(&mut event["payload"], &mut rng);
            let (actor_id, login) = &templates.actors[skewed(&mut rng, templates.actors.len())];
            event["actor"]["id"] = Value::from(*actor_id);
            event["actor"]["login"] = Value::from(login.as_str());
            if event["actor"].get("display_login").is_some() {
                event["actor"]["display_login"] = Value::from(login.as_str());
            }
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
            hour: "2024-03-05-14".parse().unwrap(),
            events: 2000,
            seed: 7,
            duplicate_share: 0.01,
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
}
