//! The `elt` commands, as functions the binary, the tests and the benchmark share.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context};
use events::jobs::{HourOutcome, HourResult, IngestRun, RunRecord, RunStatus, StopReason};
use events::Hour;
use indicatif::{ProgressBar, ProgressStyle};
use ingest::{Ingest, IngestConfig};
use transform::{RawFile, TransformOptions};

use crate::gen::{self, GenOptions};
use crate::lake::{self, Format};

pub fn transform_options(
    sql_file: Option<&Path>,
    curated_prefix: String,
    rejects_prefix: String,
    max_line_bytes: usize,
    max_part_mib: u64,
    commit: &transform::handler::CommitSettings,
) -> anyhow::Result<TransformOptions> {
    let mut options = TransformOptions {
        curated_prefix,
        rejects_prefix,
        max_line_bytes,
        ..TransformOptions::default()
    };
    commit.apply(&mut options);
    if let Some(file) = sql_file {
        options.sql = std::fs::read_to_string(file)
            .with_context(|| format!("reading the SQL file {}", file.display()))?;
    }
    options.max_part_bytes = max_part_mib.max(1) * 1024 * 1024;
    Ok(options)
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

const BYTES_BAR: &str =
    "{msg:24} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}";

/// The machine-readable output of the commands: one JSON document per line on stdout.
fn print_json_line<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A file's transform: its summary as a JSON line on stdout, or the error on stderr, counted.
fn print_outcome(
    outcome: anyhow::Result<events::TransformSummary>,
    what: impl std::fmt::Display,
    failed: &mut usize,
) -> anyhow::Result<()> {
    match outcome {
        Ok(summary) => print_json_line(&summary),
        Err(e) => {
            *failed += 1;
            eprintln!("error: {what}: {e:#}");
            Ok(())
        }
    }
}

/// `elt transform`: each file in turn; one JSON summary line per file on stdout.
pub async fn transform_files(
    lake_dir: &Path,
    files: &[PathBuf],
    options: &TransformOptions,
) -> anyhow::Result<()> {
    transform::sql::validate(&options.sql).await?;
    let lake = local_lake(lake_dir)?;
    let mut failed = 0usize;
    for path in files {
        let outcome = transform_one(&lake, path, options).await;
        print_outcome(outcome, path.display(), &mut failed)?;
    }
    if failed > 0 {
        bail!("{failed} of {} files failed", files.len());
    }
    Ok(())
}

/// The local lake as the transform writes it: the folder, and the hours' commit records in
/// `LAKE/state.sqlite`.
pub fn local_lake(lake_dir: &Path) -> anyhow::Result<transform::Lake> {
    Ok(transform::Lake {
        store: lake::store(lake_dir)?,
        commits: std::sync::Arc::new(ingest::local_job_store(lake_dir)?),
    })
}

async fn transform_one(
    lake: &transform::Lake,
    path: &Path,
    options: &TransformOptions,
) -> anyhow::Result<events::TransformSummary> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let progress = bar(size, BYTES_BAR);
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker = {
        let (progress, counter) = (progress.clone(), counter.clone());
        tokio::spawn(async move {
            loop {
                progress.set_position(counter.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let open = || async {
        let mut file = RawFile::open(path)?;
        progress.set_message(file.source.clone());
        counter.store(0, Ordering::Relaxed);
        file.progress = counter.clone();
        Ok(file)
    };
    let result = transform::transform_hour(open, lake, options).await;
    ticker.abort();
    progress.finish_and_clear();
    result
}

/// How `elt verify` prints its report.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
}

/// `elt verify` on a local lake.
pub fn local_audit(
    lake_dir: &Path,
    settings: &transform::handler::TransformSettings,
) -> anyhow::Result<crate::verify::Audit> {
    let local = local_lake(lake_dir)?;
    Ok(crate::verify::Audit {
        raw: lake::store(&lake_dir.join(ingest::LOCAL_RAW_DIR))?,
        raw_prefix: String::new(),
        curated: local.store,
        commits: local.commits,
        curated_prefix: settings.curated_prefix.clone(),
        rejects_prefix: settings.rejects_prefix.clone(),
        stale_after: Duration::from_secs(settings.commit.stale_after_seconds),
    })
}

/// `elt verify --aws`.
pub async fn aws_audit(
    raw_bucket: Option<String>,
    target: transform::handler::AwsTarget,
    settings: &transform::handler::TransformSettings,
) -> anyhow::Result<crate::verify::Audit> {
    let raw_bucket = raw_bucket.ok_or_else(|| anyhow::anyhow!("RAW_BUCKET is not set"))?;
    let curated_bucket = target
        .curated_bucket
        .ok_or_else(|| anyhow::anyhow!("CURATED_BUCKET is not set"))?;
    let sdk = adapters::aws::sdk_config().await;
    Ok(crate::verify::Audit {
        raw: adapters::objects::s3(&sdk, &raw_bucket)?,
        raw_prefix: target.raw_prefix,
        curated: adapters::objects::s3(&sdk, &curated_bucket)?,
        commits: std::sync::Arc::new(adapters::DynamoJobStore::new(
            &sdk,
            &target.jobs_table,
            &target.job_runs_table,
        )),
        curated_prefix: settings.curated_prefix.clone(),
        rejects_prefix: settings.rejects_prefix.clone(),
        stale_after: Duration::from_secs(settings.commit.stale_after_seconds),
    })
}

/// `elt verify`: the report on stdout; an error (exit 1) when it has findings.
pub async fn verify(
    audit: &crate::verify::Audit,
    from: Hour,
    to: Hour,
    format: ReportFormat,
) -> anyhow::Result<()> {
    let report = audit.run(from, to).await?;
    match format {
        ReportFormat::Json => print_json_line(&report)?,
        ReportFormat::Table => crate::verify::print_table(&report, &mut std::io::stdout().lock())?,
    }
    if !report.clean() {
        bail!("{} finding(s) in {from} .. {to}", report.findings.len());
    }
    Ok(())
}

/// `elt query`
pub async fn query(
    lake_dir: &Path,
    curated_prefix: &str,
    sql: &str,
    format: Format,
) -> anyhow::Result<()> {
    let batches = lake::query(lake_dir, curated_prefix, sql).await?;
    lake::print(&batches, format, &mut std::io::stdout().lock())
}

/// `elt gen`
pub fn gen(out: &Path, options: &GenOptions) -> anyhow::Result<()> {
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

/// `elt demo`: generate `hours` hours ending at `last_hour` into a folder laid out like
/// GHArchive, run the local pipeline on it (`elt run --source file://…`), and report from the lake.
pub async fn demo(
    lake_dir: &Path,
    curated_prefix: &str,
    hours: u32,
    events: u64,
    last_hour: Hour,
) -> anyhow::Result<()> {
    let mirror = tempfile::tempdir()?;
    let first_hour =
        Hour::containing(last_hour.start() - chrono::Duration::hours(i64::from(hours.max(1)) - 1));
    let hour_list: Vec<Hour> = Hour::range(first_hour, last_hour).collect();
    for (i, hour) in hour_list.iter().enumerate() {
        let path = mirror.path().join(format!("{hour}.json.gz"));
        eprintln!("generating {} ({events} events)", path.display());
        gen(
            &path,
            &GenOptions {
                seed: i as u64 + 1,
                ..GenOptions::new(*hour, events)
            },
        )?;
    }
    let mut config = IngestConfig::from_env()?;
    config.base_url = format!("file://{}/", mirror.path().display());
    config.job_id = "demo".into();
    config.start_hour = Some(first_hour);
    config.until = Some(last_hour);
    let options = TransformOptions {
        curated_prefix: curated_prefix.to_string(),
        ..TransformOptions::default()
    };
    eprintln!(
        "ingesting {} into {} and transforming it into the lake",
        config.base_url,
        lake_dir.join(ingest::LOCAL_RAW_DIR).display()
    );
    run_local(lake_dir, config, options).await?;

    let hour_filter = hour_list
        .iter()
        .map(|h| format!("'{h}.json.gz'"))
        .collect::<Vec<_>>()
        .join(", ");
    println!("\nRows per hour and event type:");
    let per_type = format!(
        "SELECT source_file, event_type, count(*) AS events FROM ghactivity \
         WHERE source_file IN ({hour_filter}) GROUP BY source_file, event_type \
         ORDER BY source_file, events DESC"
    );
    query(lake_dir, curated_prefix, &per_type, Format::Table).await?;
    println!("Top repositories:");
    let top = format!(
        "SELECT repo_name, count(*) AS events, count(DISTINCT actor_login) AS actors FROM ghactivity \
         WHERE source_file IN ({hour_filter}) GROUP BY repo_name ORDER BY events DESC, repo_name LIMIT 10"
    );
    query(lake_dir, curated_prefix, &top, Format::Table).await?;
    println!(
        "Query the lake yourself: elt query --lake {} \"SELECT …  FROM ghactivity\"",
        lake_dir.display()
    );
    Ok(())
}

/// Where `elt ingest`, `backfill` and `status` work: AWS (S3 + DynamoDB) or a local lake.
pub enum Target {
    Aws,
    Lake(PathBuf),
}

async fn build_ingest(target: &Target, config: IngestConfig) -> anyhow::Result<Ingest> {
    match target {
        Target::Aws => Ingest::aws(config).await,
        Target::Lake(dir) => Ingest::local(config, dir),
    }
}

/// Prints one line per hour on stderr as the ingest goes: progress for long runs. The task ends
/// once the ingest is dropped.
fn print_progress(ingest: &mut Ingest) -> tokio::task::JoinHandle<()> {
    let (notify, mut hours) = tokio::sync::mpsc::unbounded_channel();
    ingest.notify = Some(notify);
    tokio::spawn(async move {
        while let Some(result) = hours.recv().await {
            print_hour(&result);
        }
    })
}

/// The name a unit-like enum has in the JSON records (`ingested`, `caught_up`, …).
pub(crate) fn label<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn print_hour(result: &HourResult) {
    let outcome = label(&result.outcome);
    let mut line = format!(
        "{:<14} {:<15} {:>10.1} MiB {:>6.1} s",
        result.hour.to_string(),
        outcome,
        result.bytes as f64 / (1024.0 * 1024.0),
        result.seconds
    );
    if result.attempts > 1 {
        line.push_str(&format!("  ({} attempts)", result.attempts));
    }
    if let Some(error) = &result.error {
        line.push_str(&format!("  {error}"));
    }
    eprintln!("{line}");
}

/// Prints the run record as one JSON line on stdout; an error if the run failed.
fn report_run(run: &IngestRun) -> anyhow::Result<()> {
    print_json_line(run)?;
    if run.status == RunStatus::Error {
        bail!(
            "the {} run failed: {}",
            label(&run.kind),
            run.error.as_deref().unwrap_or("see the hours above")
        );
    }
    Ok(())
}

/// What `elt ingest` and `elt backfill` ask of the ingest.
pub enum IngestWork {
    /// One run, as the scheduled Lambda does it.
    Run,
    /// The hours from `config.start_hour` to `to`, the bookmark untouched.
    Backfill {
        to: Hour,
        parallel: usize,
        force: bool,
    },
}

/// `elt ingest` and `elt backfill`: the work with a line per hour on stderr, then the run record
/// on stdout.
pub async fn ingest(target: &Target, config: IngestConfig, work: IngestWork) -> anyhow::Result<()> {
    let from = config.start_hour;
    let mut ingest = build_ingest(target, config).await?;
    let printer = print_progress(&mut ingest);
    let run = match work {
        IngestWork::Run => ingest.run(None).await,
        IngestWork::Backfill {
            to,
            parallel,
            force,
        } => match from {
            Some(from) => ingest.backfill(from, to, parallel, force).await,
            None => Err(anyhow::anyhow!("backfill needs --from HOUR")),
        },
    };
    drop(ingest);
    printer.await?;
    report_run(&run?)
}

/// `elt run`: the local pipeline. Ingest runs follow the bookmark until caught up; every hour
/// stored is handed to the transform at once (the local stand-in for the S3 notification), so
/// downloads and transforms overlap. Transform summaries go to stdout as JSON lines.
pub async fn run_local(
    lake_dir: &Path,
    config: IngestConfig,
    options: TransformOptions,
) -> anyhow::Result<()> {
    transform::sql::validate(&options.sql).await?;
    let mut ingest = Ingest::local(config, lake_dir)?;
    let (notify, mut hours) = tokio::sync::mpsc::unbounded_channel();
    ingest.notify = Some(notify);
    let lake = local_lake(lake_dir)?;
    let raw_dir = lake_dir.join(ingest::LOCAL_RAW_DIR);
    let transformer = tokio::spawn(async move {
        let mut failed = 0usize;
        while let Some(result) = hours.recv().await {
            print_hour(&result);
            let stored = matches!(
                result.outcome,
                HourOutcome::Ingested | HourOutcome::AlreadyPresent
            );
            let Some(key) = result.key.filter(|_| stored) else {
                continue;
            };
            let path = raw_dir.join(&key);
            let outcome = transform_one(&lake, &path, &options).await;
            print_outcome(
                outcome,
                format_args!("transforming {}", path.display()),
                &mut failed,
            )?;
        }
        anyhow::Ok(failed)
    });
    let mut outcome = Ok(());
    loop {
        match ingest.run(None).await {
            Ok(run) if run.status == RunStatus::Error => {
                outcome = Err(anyhow::anyhow!(
                    "ingest failed: {}",
                    run.error.unwrap_or_default()
                ));
                break;
            }
            Ok(run) if run.stop == StopReason::MaxHours => continue,
            Ok(run) if run.status == RunStatus::Busy => {
                outcome = Err(anyhow::anyhow!(
                    "another run holds the job in {}; try again once it is done",
                    lake_dir.display()
                ));
                break;
            }
            Ok(run) => {
                eprintln!(
                    "ingest stopped: {}; bookmark at {}",
                    label(&run.stop),
                    run.bookmark_after
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "none".into())
                );
                break;
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    drop(ingest);
    let failed = transformer.await??;
    outcome?;
    if failed > 0 {
        bail!("{failed} raw files failed to transform");
    }
    Ok(())
}

/// The job state of `target`, and where it is, for people. Only the job state: no bucket needs
/// to be named.
async fn job_store(
    target: &Target,
    config: &IngestConfig,
) -> anyhow::Result<(Box<dyn adapters::JobTables>, String)> {
    Ok(match target {
        Target::Aws => (
            Box::new(ingest::aws_job_store(config).await),
            format!(
                "DynamoDB tables {} and {}",
                config.jobs_table, config.job_runs_table
            ),
        ),
        Target::Lake(dir) => (
            Box::new(ingest::local_job_store(dir)?),
            dir.join(ingest::LOCAL_STATE_FILE).display().to_string(),
        ),
    })
}

fn utc(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `elt skip HOUR`: parks an hour by hand; prints what changed as a JSON line.
pub async fn skip(
    target: &Target,
    config: IngestConfig,
    hour: Hour,
    reason: &str,
) -> anyhow::Result<()> {
    let (jobs, _) = job_store(target, &config).await?;
    print_json_line(&ingest::operate::skip_hour(&*jobs, &config, hour, reason).await?)
}

/// `elt retry HOUR`: takes a parked hour back; prints what changed as a JSON line.
pub async fn retry(target: &Target, config: IngestConfig, hour: Hour) -> anyhow::Result<()> {
    let (jobs, _) = job_store(target, &config).await?;
    print_json_line(&ingest::operate::retry_hour(&*jobs, &config, hour).await?)
}

/// `elt status`: the job's bookmark and its last runs, for people.
pub async fn status(target: &Target, config: IngestConfig, runs: usize) -> anyhow::Result<()> {
    let (jobs, place) = job_store(target, &config).await?;
    let job_id = &config.job_id;
    let mut out = std::io::stdout().lock();
    writeln!(out, "job {job_id} ({place})")?;
    match jobs.get_job(job_id).await? {
        None => writeln!(out, "  not set up yet: the first run creates it")?,
        Some(job) => write_job(&mut out, &job, &config)?,
    }
    let records = jobs.recent_runs(job_id, runs).await?;
    if records.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nlast {} runs, newest first:", records.len())?;
    writeln!(
        out,
        "  {:<20} {:<9} {:<6} {:<13} {:>5} {:>10}  hours",
        "started (UTC)", "kind", "status", "stop", "new", "MiB"
    )?;
    for record in records {
        write_run(&mut out, record)?;
    }
    Ok(())
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
        writeln!(
            out,
            "  parked: {} ({}, {}): {}",
            parked.hour,
            parked.by,
            utc(parked.parked_at),
            parked.reason
        )?;
    }
    for queued in &job.retry_hours {
        let last = queued
            .reason
            .as_deref()
            .map(|r| format!("; last: {r}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  queued for retry: {} (since {}, {} failed runs{last})",
            queued.hour,
            utc(queued.queued_at),
            queued.attempts
        )?;
    }
    Ok(())
}

/// `elt transform --aws s3://BUCKET/KEY…`: the transform Lambda's work on named objects.
pub async fn transform_objects(
    handler: &transform::handler::Handler,
    urls: &[String],
) -> anyhow::Result<()> {
    transform::sql::validate(&handler.options.sql).await?;
    let mut failed = 0usize;
    for url in urls {
        let Some((bucket, key)) = url
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
        else {
            bail!("`{url}` is not s3://BUCKET/KEY");
        };
        let outcome = handler.transform_object(bucket, key).await;
        print_outcome(outcome, url, &mut failed)?;
    }
    if failed > 0 {
        bail!("{failed} of {} objects failed", urls.len());
    }
    Ok(())
}

/// How `elt worker` polls its queue.
pub struct Poll {
    pub batch: i32,
    pub visibility: Option<i32>,
    pub wait: i32,
    pub until_idle: bool,
}

/// `elt worker`: receive batches and hand each to the batch policy the transform Lambda uses
/// (`transform::batch`), then delete what succeeded in one request and leave failures to come
/// back, as Lambda's event source mapping does.
pub async fn worker(
    handler: &transform::handler::Handler,
    queue_url: &str,
    poll: Poll,
) -> anyhow::Result<()> {
    use transform::batch::Outcome;
    transform::sql::validate(&handler.options.sql).await?;
    let sdk = adapters::aws::sdk_config().await;
    let queue = adapters::queue::SqsQueue::new(&sdk, queue_url);
    let (mut done, mut ignored, mut failed) = (0usize, 0usize, 0usize);
    loop {
        let messages = queue
            .receive(poll.batch, poll.wait, poll.visibility)
            .await?;
        if messages.is_empty() {
            if poll.until_idle {
                break;
            }
            continue;
        }
        let (_, outcomes) = transform::batch::handle_batch(handler, sqs_event(&messages)).await;
        let mut settled = Vec::new();
        for (message, (_, outcome)) in messages.iter().zip(outcomes) {
            match outcome {
                Outcome::Transformed(summaries) => {
                    for summary in &summaries {
                        print_json_line(summary)?;
                    }
                    done += 1;
                }
                Outcome::Ignored(reason) => {
                    eprintln!("message {}: ignored: {reason}", message.id);
                    ignored += 1;
                }
                Outcome::Failed(error) => {
                    eprintln!(
                        "error: message {} (received {} times) failed, left for redelivery: {error}",
                        message.id, message.receive_count
                    );
                    failed += 1;
                    continue;
                }
            }
            settled.push(message.receipt_handle.clone());
        }
        for failure in queue.delete_batch(&settled).await? {
            eprintln!("warning: a done message was not deleted ({failure}); it will come back and be done again");
        }
    }
    eprintln!("worker idle: {done} messages done, {ignored} ignored, {failed} failures left for redelivery");
    Ok(())
}

/// Received messages as the event Lambda's event source mapping would deliver.
fn sqs_event(messages: &[adapters::queue::Message]) -> transform::batch::SqsEvent {
    let mut event = transform::batch::SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = transform::batch::SqsMessage::default();
            record.message_id = Some(m.id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record
        })
        .collect();
    event
}

/// `elt redrive`: move parked messages from a dead-letter queue back to their queue.
pub async fn redrive(from: &str, to: &str, max: Option<usize>) -> anyhow::Result<()> {
    let sdk = adapters::aws::sdk_config().await;
    let (dlq, queue) = (
        adapters::queue::SqsQueue::new(&sdk, from),
        adapters::queue::SqsQueue::new(&sdk, to),
    );
    let limit = max.unwrap_or(usize::MAX);
    let mut moved = 0usize;
    while moved < limit {
        let want = i32::try_from((limit - moved).min(10)).unwrap_or(10);
        let messages = dlq.receive(want, 1, Some(30)).await?;
        if messages.is_empty() {
            break;
        }
        for message in messages {
            // Sent before it is deleted: a failure in between leaves a copy, never a loss.
            queue.send(&message.body).await?;
            dlq.delete(&message.receipt_handle).await?;
            moved += 1;
        }
    }
    print_json_line(&serde_json::json!({"moved": moved, "from": from, "to": to}))
}
