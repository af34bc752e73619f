//! `elt status`: the job's bookmark, lag, parked hours, the lake's last hours (their sources and
//! their rows against a day and a week before) and the last runs, for people.

use std::collections::BTreeMap;
use std::io::Write;

use events::backfill::{BackfillPlan, BACKFILL_JOB_ID};
use events::commits::HourCommit;
use events::jobs::RunRecord;
use events::Hour;
use ingest::IngestConfig;

use super::backfill::progress_sources;
use super::{job_store, label, utc, Target, TargetArgs};
use crate::fanout::Progress;
use crate::health::percent_cell;

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    config: ingest::IngestConfig,
    /// How many runs to show.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// How many hours of the lake, up to the bookmark, to show with their sources and their rows
    /// against the same hour a day and a week before (0: none).
    #[arg(long, default_value_t = 24)]
    hours: u32,
    /// Key prefix of the Parquet table (its hours' commit records are named by it).
    #[arg(long, env = "CURATED_PREFIX", default_value = events::DEFAULT_CURATED_PREFIX, hide_env_values = true)]
    curated_prefix: String,
}

impl StatusArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let shown = Shown {
            runs: self.runs,
            hours: self.hours.min(MAX_HOURS_SHOWN),
            curated_prefix: self.curated_prefix,
        };
        status(&self.target.target(), self.config, &shown).await
    }
}

/// At most four weeks of hours (each costs three commit-record reads).
const MAX_HOURS_SHOWN: u32 = 24 * 28;

/// What `elt status` shows besides the job.
struct Shown {
    runs: usize,
    hours: u32,
    curated_prefix: String,
}

/// `elt status`: the job's bookmark and its last runs, for people.
async fn status(target: &Target, config: IngestConfig, shown: &Shown) -> anyhow::Result<()> {
    let (jobs, place) = job_store(target, &config).await?;
    let job_id = &config.job_id;
    let mut out = std::io::stdout().lock();
    writeln!(out, "job {job_id} ({place})")?;
    let job = jobs.get_job(job_id).await?;
    match &job {
        None => writeln!(out, "  not set up yet: the first run creates it")?,
        Some(job) => write_job(&mut out, job, &config)?,
    }
    if let Some(last) = job.as_ref().and_then(|j| j.bookmark_hour()) {
        let hours = last_hours(last, shown.hours);
        let wanted = crate::health::with_baselines(&hours);
        let records =
            crate::health::commit_records(jobs.as_ref(), &shown.curated_prefix, wanted).await?;
        write_lake(&mut out, &hours, &records)?;
    }
    let records = jobs.recent_runs(job_id, shown.runs).await?;
    if !records.is_empty() {
        writeln!(out, "\nlast {} runs, newest first:", records.len())?;
        writeln!(
            out,
            "  {:<20} {:<9} {:<6} {:<13} {:>5} {:>10}  hours",
            "started (UTC)", "kind", "status", "stop", "new", "MiB"
        )?;
        for record in records {
            write_run(&mut out, record)?;
        }
    }
    let latest = jobs
        .recent_runs(BACKFILL_JOB_ID, 1)
        .await?
        .into_iter()
        .next();
    if let Some(Ok(RunRecord::Backfill(plan))) = latest {
        let sources = progress_sources(target, &config, &plan.queue_url).await?;
        let progress = sources.progress(&plan).await?;
        write_backfill(&mut out, &plan, &progress)?;
    }
    Ok(())
}

/// The `count` hours up to `last`, oldest first.
fn last_hours(last: Hour, count: u32) -> Vec<Hour> {
    let mut hours: Vec<Hour> = std::iter::successors(Some(last), |h| Some(h.previous()))
        .take(count as usize)
        .take_while(|h| *h >= events::FIRST_HOUR)
        .collect();
    hours.reverse();
    hours
}

/// The lake's last hours: rows, against the same hour a day and a week before, and sources.
fn write_lake(
    out: &mut impl Write,
    hours: &[Hour],
    records: &BTreeMap<Hour, HourCommit>,
) -> std::io::Result<()> {
    // The lake may begin within the window: from its first committed hour on.
    let begun = hours.iter().position(|h| records.contains_key(h));
    let hours = &hours[begun.unwrap_or(hours.len())..];
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return writeln!(
            out,
            "\nthe lake: no hour up to the bookmark is committed yet"
        );
    };
    writeln!(
        out,
        "\nthe lake, {first} .. {last} (rows against the same hour a day and a week before):"
    )?;
    writeln!(
        out,
        "  {:<14} {:>10} {:>6} {:>6}  sources",
        "hour", "rows", "vs 1d", "vs 7d"
    )?;
    for hour in hours {
        let Some(record) = records.get(hour) else {
            writeln!(out, "  {:<14} {:>10}", hour.to_string(), "not committed")?;
            continue;
        };
        let c = crate::health::completeness(*hour, records);
        let flag = match c.as_ref().is_some_and(|c| c.fell_by_half) {
            true => "  FELL BY MORE THAN HALF",
            false => "",
        };
        writeln!(
            out,
            "  {:<14} {:>10} {:>6} {:>6}  {}{flag}",
            hour.to_string(),
            record.counts.rows,
            percent_cell(c.as_ref().and_then(|c| c.percent_of_day_before())),
            percent_cell(c.as_ref().and_then(|c| c.percent_of_week_before())),
            crate::health::source_labels(record).join(", ")
        )?;
    }
    Ok(())
}

/// The latest fanned-out backfill: how far it is, how fast it goes, and what is left.
fn write_backfill(
    out: &mut impl Write,
    plan: &BackfillPlan,
    progress: &Progress,
) -> std::io::Result<()> {
    writeln!(
        out,
        "\nbackfill {} of {} .. {} ({} messages on {}), enqueued {}:",
        plan.run_id,
        plan.from,
        plan.to,
        plan.messages,
        plan.queue_url,
        utc(plan.created_at)
    )?;
    writeln!(
        out,
        "  hours: {} planned, {} ingested, {} transformed, {} known missing (GHArchive's gaps)",
        progress.planned, progress.ingested, progress.transformed, progress.known_missing
    )?;
    writeln!(
        out,
        "  messages: {} waiting, {} in flight, {} failed (in the dead-letter queue)",
        progress.messages_waiting, progress.messages_in_flight, progress.messages_failed
    )?;
    let eta = match progress.eta_seconds {
        Some(s) if s > 0.0 => format!("about {:.0} minutes to go", (s / 60.0).ceil()),
        Some(_) => "every hour ingested".to_string(),
        None => "no hour ingested yet".to_string(),
    };
    writeln!(
        out,
        "  {:.1} hours a minute; {eta}",
        progress.hours_per_minute
    )
}

/// One line of `elt status` per run record; a record that could not be read says so, and why.
fn write_run(out: &mut impl Write, record: adapters::StoredRun) -> std::io::Result<()> {
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let run = match record {
        Ok(RunRecord::Ingest(run)) => run,
        Ok(RunRecord::Transform(run)) => {
            let error = run.error.map(|e| format!("  error: {e}"));
            return writeln!(
                out,
                "  {:<20} {:<9} {:<6} {}{}",
                time(run.started_at),
                "transform",
                label(&run.status),
                run.source,
                error.unwrap_or_default()
            );
        }
        Ok(RunRecord::Backfill(plan)) => {
            return writeln!(
                out,
                "  {:<20} {:<9} {} .. {}, {} hours",
                time(plan.created_at),
                "fan-out",
                plan.from,
                plan.to,
                plan.hours
            );
        }
        Err(unreadable) => {
            let started = unreadable
                .job_run_time
                .and_then(chrono::DateTime::from_timestamp_millis);
            return writeln!(
                out,
                "  {:<20} {unreadable}",
                started.map(time).unwrap_or_default()
            );
        }
    };
    let span = match (run.hours.first(), run.hours.last()) {
        (Some(a), Some(b)) if a.hour != b.hour => format!("{} .. {}", a.hour, b.hour),
        (Some(a), _) => a.hour.to_string(),
        _ => String::new(),
    };
    writeln!(
        out,
        "  {:<20} {:<9} {:<6} {:<13} {:>5} {:>10.1}  {span}{}",
        time(run.started_at),
        label(&run.kind),
        label(&run.status),
        label(&run.stop),
        run.hours_ingested,
        run.bytes as f64 / (1024.0 * 1024.0),
        run.error
            .map(|e| format!("  error: {e}"))
            .unwrap_or_default()
    )
}

/// The job item, for people: bookmark, lag, lease, the failing hour, parked and queued hours.
fn write_job(
    out: &mut impl Write,
    job: &events::jobs::Job,
    config: &IngestConfig,
) -> anyhow::Result<()> {
    let now = config.now();
    match &job.job_run_bookmark_details {
        None => match job.baseline_day {
            Some(day) => writeln!(out, "  bookmark: none yet (starts at {day} 00:00 UTC)")?,
            None => writeln!(
                out,
                "  bookmark: none yet (starts {} days before the first run's day)",
                job.baseline_days.unwrap_or(config.baseline_days)
            )?,
        },
        Some(b) => {
            let by = match (&b.updated_at, &b.run_id) {
                (Some(at), Some(run)) => format!(", {} by run {run}", utc(*at)),
                (Some(at), None) => format!(", {}", utc(*at)),
                _ => ", written by hand".to_string(),
            };
            writeln!(
                out,
                "  bookmark: {} ({}{by}); next hour {}",
                b.last_run_file_name,
                label(&b.status),
                b.last_run_file_name.next()
            )?
        }
    }
    let next = job.next_hour(config.start_hour, now, config.baseline_days);
    let lag = events::jobs::lag_hours(next, now);
    writeln!(
        out,
        "  lag: {lag} hours ended and not done (as of {})",
        utc(now)
    )?;
    writeln!(out, "  version: {}", job.version)?;
    if let Some(lease) = &job.lease {
        let until = chrono::DateTime::from_timestamp_millis(lease.expires_at)
            .map(utc)
            .unwrap_or_default();
        writeln!(out, "  held by run {} until {until}", lease.run_id)?;
    }
    if let Some(failing) = &job.failing_hour {
        writeln!(
            out,
            "  FAILING: {} failed on {} of {} runs before it is parked: {}",
            failing.hour, failing.attempts, config.missing_hour_attempts, failing.reason
        )?;
    }
    for parked in &job.parked_hours {
        write_parked(out, parked)?;
    }
    for queued in &job.retry_hours {
        let last = queued
            .reason
            .as_deref()
            .map(|r| format!("; last: {r}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  queued: {} (by {}, since {}; tried by {} runs, {} counted against it{last})",
            queued.hour,
            queued.by,
            utc(queued.queued_at),
            queued.tries,
            queued.attempts
        )?;
    }
    for late in &job.late_sources {
        writeln!(
            out,
            "  source {} has not delivered {} yet (since {}, {} tries): {}",
            late.source,
            late.hour,
            utc(late.since),
            late.tries,
            late.reason
        )?;
    }
    Ok(())
}

/// A parked hour: why, its next try (or that it is parked for good) and its last tries.
fn write_parked(out: &mut impl Write, parked: &events::jobs::ParkedHour) -> std::io::Result<()> {
    let next = match parked.next_try() {
        Some(at) => format!("next try {}", utc(at)),
        None => "parked for good, never tried again".to_string(),
    };
    writeln!(
        out,
        "  parked: {} ({}, {}; {next}; tried again {} times): {}",
        parked.hour,
        parked.by,
        utc(parked.parked_at),
        parked.tries,
        parked.reason
    )?;
    for tried in &parked.history {
        writeln!(
            out,
            "    tried {} by {}: {}",
            utc(tried.at),
            tried.by,
            tried.reason
        )?;
    }
    Ok(())
}
