//! `elt transform`: local raw files into the lake, or (`--aws`) raw objects into the curated
//! bucket as the Lambda does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use object_store::ObjectStore;
use transform::handler::{AwsTarget, Handler, TransformSettings};
use transform::{raw_hour, RawFile, RawHour, TransformOptions};

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

/// `elt transform`: each hour in turn (the files given for one hour, say a mirror's beside
/// GHArchive's, are read together and committed as their union, the first given first); one
/// JSON summary line per hour on stdout.
async fn transform_files(
    lake_dir: &Path,
    files: &[PathBuf],
    options: &TransformOptions,
) -> anyhow::Result<()> {
    let lake = local_lake(lake_dir)?;
    let mut failed = 0usize;
    let hours = by_hour(files);
    for paths in &hours {
        let outcome = transform_paths(&lake, paths, options).await;
        let named: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        print_outcome(outcome, named.join(" + "), &mut failed)?;
    }
    if failed > 0 {
        bail!("{failed} of {} hours failed", hours.len());
    }
    Ok(())
}

/// The files grouped by the hour their names give, in the order first given (a file whose name
/// is no hour's stays alone, to fail with its reason).
fn by_hour(files: &[PathBuf]) -> Vec<Vec<PathBuf>> {
    let mut groups: Vec<(Option<events::Hour>, Vec<PathBuf>)> = Vec::new();
    for path in files {
        let hour = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| events::Hour::from_file_name(n).ok())
            .map(|(hour, _)| hour);
        match groups
            .iter_mut()
            .find(|(h, _)| hour.is_some() && *h == hour)
        {
            Some((_, paths)) => paths.push(path.clone()),
            None => groups.push((hour, vec![path.clone()])),
        }
    }
    groups.into_iter().map(|(_, paths)| paths).collect()
}

/// The `source_file` of a local file: its name, or below a mirror's folder in a raw store
/// `sources/NAME/FILE`; `taken` are the names of the hour's files before it, which it must not
/// repeat (then its folder's name goes in front).
fn source_name(path: &Path, taken: &[String]) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let parent = path.parent();
    let mirror = parent.and_then(folder);
    let grandparent = parent.and_then(Path::parent).and_then(folder);
    if let (Some(mirror), Some("sources")) = (&mirror, grandparent.as_deref()) {
        return format!("sources/{mirror}/{name}");
    }
    match (taken.contains(&name), mirror) {
        (true, Some(folder)) => format!("{folder}/{name}"),
        _ => name,
    }
}

/// Transforms the local files of one hour as one, with a progress bar over their bytes.
async fn transform_paths(
    lake: &transform::Lake,
    paths: &[PathBuf],
    options: &TransformOptions,
) -> anyhow::Result<events::TransformSummary> {
    let open = || async {
        let mut files: Vec<RawFile> = Vec::new();
        for path in paths {
            let mut file = RawFile::open(path)?;
            let taken: Vec<String> = files.iter().map(|f| f.source.clone()).collect();
            file.source = source_name(path, &taken);
            files.push(file);
        }
        let hour = files
            .first()
            .map(|f| f.hour)
            .ok_or_else(|| anyhow::anyhow!("no file"))?;
        Ok(RawHour { hour, files })
    };
    let size = paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    with_progress(size, open, lake, options).await
}

/// Transforms the hour from the local raw store (every source's file of it there is), as the
/// transform on AWS does on a notification: `elt run`'s transform of each hour stored.
pub(super) async fn transform_stored_hour(
    lake: &transform::Lake,
    raw: Arc<dyn ObjectStore>,
    raw_prefix: &str,
    hour: events::Hour,
    options: &TransformOptions,
    raw_dir: &Path,
) -> anyhow::Result<events::TransformSummary> {
    let files = raw_hour::find(raw.as_ref(), raw_prefix, hour).await?;
    let size = files.iter().map(|f| f.meta.size).sum();
    let locate = |key: &str| raw_dir.join(key).display().to_string();
    let open = || raw_hour::open(raw.clone(), hour, &files, &locate);
    with_progress(size, open, lake, options).await
}

/// Runs the transform of the hour `open` gives under a progress bar of `size` raw bytes.
async fn with_progress<F, Fut>(
    size: u64,
    open: F,
    lake: &transform::Lake,
    options: &TransformOptions,
) -> anyhow::Result<events::TransformSummary>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<RawHour>>,
{
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
    let counted = || async {
        let mut hour = open().await?;
        progress.set_message(hour.hour.to_string());
        counter.store(0, Ordering::Relaxed);
        for file in &mut hour.files {
            file.progress = counter.clone();
        }
        Ok(hour)
    };
    let result = transform::transform_hour(counted, lake, options).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_one_hour_are_read_together_each_under_its_own_name() {
        let files: Vec<PathBuf> = [
            "a/2024-03-05-1.json.gz",
            "a/2024-03-05-2.json.gz",
            "b/2024-03-05-1.json.gz",
            "notes.txt",
            "raw/sources/od/2024-03-05-2.json.gz",
        ]
        .map(PathBuf::from)
        .into();
        let groups = by_hour(&files);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0], [files[0].clone(), files[2].clone()]);
        assert_eq!(groups[1], [files[1].clone(), files[4].clone()]);
        let first = source_name(&files[0], &[]);
        assert_eq!(first, "2024-03-05-1.json.gz");
        assert_eq!(source_name(&files[2], &[first]), "b/2024-03-05-1.json.gz");
        assert_eq!(
            source_name(&files[4], &[]),
            "sources/od/2024-03-05-2.json.gz"
        );
    }
}
