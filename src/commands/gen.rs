//! `elt gen`: a GHArchive-shaped hour file made from real events.

use std::path::{Path, PathBuf};

use super::bar;
use crate::gen::{self, GenOptions};

#[derive(clap::Args)]
pub struct GenArgs {
    /// The hour the events belong to, e.g. 2024-03-05-14.
    #[arg(long)]
    hour: events::Hour,
    /// Number of lines to write.
    #[arg(long)]
    events: u64,
    /// Seed of the random choices: the same seed gives the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of lines that repeat an earlier event id.
    #[arg(long, default_value_t = 0.005)]
    duplicate_share: f64,
    /// Wire format: `backfill` (2011 – early 2012), `timeline` (2012–2014: no ids, Pacific
    /// times, the hour named by a Pacific clock) or `events` (2015 on). Default: the hour's era.
    #[arg(long, value_enum)]
    era: Option<gen::Era>,
    /// Share of events that are late events of the hour before (as in GHArchive since 2025).
    #[arg(long, default_value_t = 0.0)]
    late_share: f64,
    /// Draw repositories from a Zipf pool of this many (the real events' names first, then
    /// made-up ones); default: the real events' few hundred.
    #[arg(long)]
    repos: Option<usize>,
    /// Draw actors from a Zipf pool of this many, likewise.
    #[arg(long)]
    actors: Option<usize>,
    /// Output file, e.g. 2024-03-05-14.json.gz.
    out: PathBuf,
}

impl GenArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let GenArgs {
            hour,
            events,
            seed,
            duplicate_share,
            era,
            late_share,
            repos,
            actors,
            out,
        } = self;
        gen(
            &out,
            &GenOptions {
                hour,
                events,
                seed,
                duplicate_share,
                era,
                late_share,
                repos,
                actors,
            },
        )
    }
}

/// `elt gen`
pub(super) fn gen(out: &Path, options: &GenOptions) -> anyhow::Result<()> {
    let progress = bar(
        options.events,
        "{msg:24} [{bar:30}] {pos}/{len} events, eta {eta}",
    );
    progress.set_message(
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let stats = gen::generate(out, options, |n| progress.set_position(n))?;
    progress.finish_and_clear();
    println!("{}", serde_json::to_string(&stats)?);
    Ok(())
}
