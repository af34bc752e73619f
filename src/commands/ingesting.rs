//! `elt ingest` and `elt backfill`: GHArchive hours into the raw store.

use anyhow::bail;
use events::jobs::{HourResult, IngestRun, RunStatus};
use events::Hour;
use ingest::{Ingest, IngestConfig};

use indicatif::ProgressBar;

use super::{bar, label, print_json_line, Target, TargetArgs};

#[derive(clap::Args)]
pub struct IngestArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    config: ingest::IngestConfig,
}

impl IngestArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        ingest(&self.target.target(), self.config, IngestWork::Run).await
    }
}

/// What `elt ingest` and `elt backfill` ask of the ingest.
pub(super) enum IngestWork {
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
pub(super) async fn ingest(
    target: &Target,
    config: IngestConfig,
    work: IngestWork,
) -> anyhow::Result<()> {
    let from = config.start_hour;
    // A backfill knows its length: a bar of hours done; a run prints its hours as they go.
    let bar = match (&work, from) {
        (IngestWork::Backfill { to, .. }, Some(from)) => {
            let hours = Hour::range(from, *to).count() as u64;
            Some(bar(
                hours,
                "{msg:14} [{bar:30}] {pos}/{len} hours, eta {eta}",
            ))
        }
        _ => None,
    };
    let mut ingest = build_ingest(target, config).await?;
    let printer = print_progress(&mut ingest, bar.clone());
    let run = match work {
        IngestWork::Run => ingest.run(None).await,
        IngestWork::Backfill {
            to,
            parallel,
            force,
        } => match from {
            Some(from) => ingest.backfill((from, to), parallel, force, None).await,
            None => Err(anyhow::anyhow!("backfill needs --from HOUR")),
        },
    };
    drop(ingest);
    printer.await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    report_run(&run?)
}

async fn build_ingest(target: &Target, config: IngestConfig) -> anyhow::Result<Ingest> {
    match target {
        Target::Aws => Ingest::aws(config).await,
        Target::Lake(dir) => Ingest::local(config, dir),
    }
}

/// Prints one line per hour on stderr as the ingest goes (above the bar, when there is one):
/// progress for long runs. The task ends once the ingest is dropped.
fn print_progress(ingest: &mut Ingest, bar: Option<ProgressBar>) -> tokio::task::JoinHandle<()> {
    let (notify, mut hours) = tokio::sync::mpsc::unbounded_channel();
    ingest.notify = Some(notify);
    tokio::spawn(async move {
        while let Some(result) = hours.recv().await {
            match &bar {
                Some(bar) => {
                    bar.set_message(result.hour.to_string());
                    bar.suspend(|| print_hour(&result));
                    bar.inc(1);
                }
                None => print_hour(&result),
            }
        }
    })
}

pub(super) fn print_hour(result: &HourResult) {
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
