//! `elt verify`: the audit of a range of hours (`crate::verify`), as a command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use events::Hour;
use transform::handler::{AwsTarget, TransformSettings};

use super::{local_lake, print_json_line};
use crate::lake;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Audit AWS: RAW_BUCKET, CURATED_BUCKET, and the commit records in JOBS_TABLE.
    #[arg(long, conflicts_with = "lake")]
    aws: bool,
    /// The local lake (raw files under LAKE/raw/, commit records in LAKE/state.sqlite).
    #[arg(long, env = "ELT_LAKE", default_value = "lake")]
    lake: PathBuf,
    #[arg(long)]
    from: events::Hour,
    #[arg(long)]
    to: events::Hour,
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    format: ReportFormat,
    /// The raw bucket (with --aws).
    #[arg(long, env = "RAW_BUCKET")]
    raw_bucket: Option<String>,
    #[command(flatten)]
    on_aws: AwsTarget,
    #[command(flatten)]
    settings: TransformSettings,
}

impl VerifyArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let VerifyArgs {
            aws,
            lake,
            from,
            to,
            format,
            raw_bucket,
            on_aws,
            settings,
        } = self;
        let audit = if aws {
            aws_audit(raw_bucket, on_aws, &settings).await?
        } else {
            local_audit(&lake, &settings)?
        };
        verify(&audit, from, to, format).await
    }
}

/// How `elt verify` prints its report.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
}

/// `elt verify` on a local lake.
fn local_audit(
    lake_dir: &Path,
    settings: &TransformSettings,
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
async fn aws_audit(
    raw_bucket: Option<String>,
    target: AwsTarget,
    settings: &TransformSettings,
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
async fn verify(
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
