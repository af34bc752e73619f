//! `elt demo`: a few generated hours through the local pipeline, and a report from the lake.

use std::path::Path;

use events::Hour;
use ingest::IngestConfig;
use transform::TransformOptions;

use super::gen::gen;
use super::query::query;
use super::run::run_local;
use super::LakeArgs;
use crate::gen::GenOptions;
use crate::lake::Format;

#[derive(clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Hours to generate, ending with --last-hour.
    #[arg(long, default_value_t = 3)]
    hours: u32,
    /// Events per hour.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    #[arg(long, default_value = "2024-03-05-14")]
    last_hour: events::Hour,
}

impl DemoArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let lake = &self.lake;
        demo(
            &lake.lake,
            &lake.curated_prefix,
            self.hours,
            self.events,
            self.last_hour,
        )
        .await
    }
}

/// `elt demo`: generate `hours` hours ending at `last_hour` into a folder laid out like
/// GHArchive, run the local pipeline on it (`elt run --source file://…`), and report from the lake.
async fn demo(
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
    let source = format!("file://{}/", mirror.path().display());
    config.sources = vec![source.clone()];
    config.job_id = "demo".into();
    config.start_hour = Some(first_hour);
    config.until = Some(last_hour);
    let options = TransformOptions {
        curated_prefix: curated_prefix.to_string(),
        ..TransformOptions::default()
    };
    eprintln!(
        "ingesting {} into {} and transforming it into the lake",
        source,
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
