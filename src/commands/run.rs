//! `elt run`: the whole pipeline on one machine.

use std::path::{Path, PathBuf};

use anyhow::bail;
use events::jobs::{HourOutcome, RunStatus, StopReason};
use ingest::{Ingest, IngestConfig};
use transform::handler::TransformSettings;
use transform::TransformOptions;

use super::ingesting::print_hour;
use super::transforming::transform_stored_hour;
use super::{label, local_lake, print_outcome};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The lake folder: raw files under LAKE/raw/, Parquet under CURATED_PREFIX, job state in
    /// LAKE/state.sqlite.
    #[arg(long, env = "ELT_LAKE", default_value = "lake")]
    lake: PathBuf,
    #[command(flatten)]
    config: IngestConfig,
    #[command(flatten)]
    settings: TransformSettings,
}

impl RunArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let options = self.settings.options().await?;
        run_local(&self.lake, self.config, options).await
    }
}

/// `elt run`: the local pipeline. Ingest runs follow the bookmark until caught up; every hour
/// stored is handed to the transform at once (the local stand-in for the S3 notification), so
/// downloads and transforms overlap. Transform summaries go to stdout as JSON lines.
pub(super) async fn run_local(
    lake_dir: &Path,
    config: IngestConfig,
    options: TransformOptions,
) -> anyhow::Result<()> {
    let raw_prefix = config.raw_prefix.clone().unwrap_or_default();
    let mut ingest = Ingest::local(config, lake_dir)?;
    let (notify, mut hours) = tokio::sync::mpsc::unbounded_channel();
    ingest.notify = Some(notify);
    let lake = local_lake(lake_dir)?;
    let raw_dir = lake_dir.join(ingest::LOCAL_RAW_DIR);
    let raw = adapters::objects::folder(&raw_dir)?;
    let transformer = tokio::spawn(async move {
        let mut failed = 0usize;
        while let Some(result) = hours.recv().await {
            print_hour(&result);
            let stored = matches!(
                result.outcome,
                HourOutcome::Ingested | HourOutcome::AlreadyPresent
            );
            if !stored {
                continue;
            }
            let hour = result.hour;
            let outcome =
                transform_stored_hour(&lake, raw.clone(), &raw_prefix, hour, &options, &raw_dir)
                    .await;
            print_outcome(outcome, format_args!("transforming {hour}"), &mut failed)?;
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
