//! The `elt` commands, as functions the binary, the tests and the benchmark share.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context};
use events::Hour;
use indicatif::{ProgressBar, ProgressStyle};
use transform::{RawFile, TransformOptions};

use crate::gen::{self, GenOptions};
use crate::lake::{self, Format};

/// Logs go to stderr: plain text for people, JSON on Lambda. `RUST_LOG` sets the level.
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn transform_options(
    sql_file: Option<&Path>,
    curated_prefix: String,
    rejects_prefix: String,
    max_line_bytes: usize,
    max_part_mib: u64,
) -> anyhow::Result<TransformOptions> {
    let mut options = TransformOptions {
        curated_prefix,
        rejects_prefix,
        max_line_bytes,
        ..TransformOptions::default()
    };
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

/// `elt transform`: each file in turn; one JSON summary line per file on stdout.
pub async fn transform_files(
    lake_dir: &Path,
    files: &[PathBuf],
    options: &TransformOptions,
) -> anyhow::Result<()> {
    transform::sql::validate(&options.sql)
        .await
        .context("the transform SQL does not plan against raw_events")?;
    let store = lake::store(lake_dir)?;
    let mut failed = 0;
    for path in files {
        match transform_one(&store, path, options).await {
            Ok(summary) => {
                let mut out = std::io::stdout().lock();
                serde_json::to_writer(&mut out, &summary)?;
                writeln!(out)?;
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e:#}", path.display());
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} files failed", files.len());
    }
    Ok(())
}

async fn transform_one(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    path: &Path,
    options: &TransformOptions,
) -> anyhow::Result<events::TransformSummary> {
    let file = RawFile::open(path)?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let progress = bar(size, BYTES_BAR);
    progress.set_message(file.source.clone());
    let counter = file.progress.clone();
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                progress.set_position(counter.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let result = transform::transform(file, store.clone(), options).await;
    ticker.abort();
    progress.finish_and_clear();
    result
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

/// `elt demo`: generate `hours` hours ending at `last_hour`, transform them into the lake, and
/// report from the lake.
pub async fn demo(
    lake_dir: &Path,
    curated_prefix: &str,
    hours: u32,
    events: u64,
    last_hour: Hour,
) -> anyhow::Result<()> {
    let raw = tempfile::tempdir()?;
    let mut hour_list = vec![last_hour];
    for _ in 1..hours.max(1) {
        let earliest = hour_list[0];
        hour_list.insert(
            0,
            Hour::containing(earliest.start() - chrono::Duration::hours(1)),
        );
    }
    let mut files = Vec::new();
    for (i, hour) in hour_list.iter().enumerate() {
        let path = raw.path().join(format!("{hour}.json.gz"));
        eprintln!("generating {} ({events} events)", path.display());
        gen(
            &path,
            &GenOptions {
                hour: *hour,
                events,
                seed: i as u64 + 1,
                duplicate_share: 0.005,
            },
        )?;
        files.push(path);
    }
    let options = TransformOptions {
        curated_prefix: curated_prefix.to_string(),
        ..TransformOptions::default()
    };
    eprintln!("transforming into {}", lake_dir.display());
    transform_files(lake_dir, &files, &options).await?;

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
