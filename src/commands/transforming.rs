//! `elt transform`: local raw files into the lake, or (`--aws`) raw objects into the curated
//! bucket as the Lambda does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use transform::handler::{AwsTarget, Handler, TransformSettings};
use transform::{RawFile, TransformOptions};

use super::{bar, local_lake, print_outcome, BYTES_BAR};

#[derive(clap::Args)]
pub struct TransformArgs {
    /// The lake folder: Parquet under CURATED_PREFIX, quarantined lines under REJECTS_PREFIX.
    #[arg(long, env = "ELT_LAKE", default_value = "lake")]
    lake: PathBuf,
    #[command(flatten)]
    settings: TransformSettings,
    /// Lines longer than this many bytes are quarantined unparsed.
    #[arg(long, default_value_t = transform::DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,
    /// Start a new Parquet part once the current one reaches this many MiB.
    #[arg(long, default_value_t = transform::DEFAULT_MAX_PART_BYTES / (1024 * 1024))]
    max_part_mib: u64,
    #[command(flatten)]
    on_aws: AwsTarget,
    /// Transform raw objects on AWS (s3://BUCKET/KEY) into CURATED_BUCKET, as the Lambda
    /// does, instead of local files into the lake.
    #[arg(long)]
    aws: bool,
    /// Raw hour files to transform (with --aws: s3://BUCKET/KEY).
    #[arg(required = true)]
    files: Vec<String>,
}

impl TransformArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let mut options = self.settings.options().await?;
        options.max_line_bytes = self.max_line_bytes;
        options.max_part_bytes = self.max_part_mib.max(1) * 1024 * 1024;
        if self.aws {
            let handler = self.on_aws.handler(options).await?;
            transform_objects(&handler, &self.files).await
        } else {
            let files: Vec<PathBuf> = self.files.iter().map(PathBuf::from).collect();
            transform_files(&self.lake, &files, &options).await
        }
    }
}

/// `elt transform`: each file in turn; one JSON summary line per file on stdout.
async fn transform_files(
    lake_dir: &Path,
    files: &[PathBuf],
    options: &TransformOptions,
) -> anyhow::Result<()> {
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

pub(super) async fn transform_one(
    lake: &transform::Lake,
    path: &Path,
    options: &TransformOptions,
) -> anyhow::Result<events::TransformSummary> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let progress = bar(size, BYTES_BAR);
    let counter = Arc::new(AtomicU64::new(0));
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

/// `elt transform --aws s3://BUCKET/KEY…`: the transform Lambda's work on named objects.
async fn transform_objects(handler: &Handler, urls: &[String]) -> anyhow::Result<()> {
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
