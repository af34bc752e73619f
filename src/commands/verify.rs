//! `elt verify`: the audit of a range of hours (`crate::verify`), as a command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use events::Hour;
use transform::handler::{AwsTarget, TransformSettings};

use super::{label, local_lake, print_json_line};
use crate::health::percent_cell;
use crate::lake;
use crate::verify::{Finding, Report};

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
        place: local.place,
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
        place: lake_table::Place::Bucket(curated_bucket.clone()),
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
        ReportFormat::Table => print_table(&report, &mut std::io::stdout().lock())?,
    }
    if !report.clean() {
        bail!("{} finding(s) in {from} .. {to}", report.findings.len());
    }
    Ok(())
}

/// The report for people: one line per hour (with its sources and its rows against the day and
/// the week before), then the findings and the warnings.
fn print_table(report: &Report, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<14} {:<9} {:<11} {:>4} {:>10} {:>10} {:>5} {:>6} {:>6}  sources",
        "hour", "raw", "commit", "gen", "rows", "found", "parts", "vs 1d", "vs 7d"
    )?;
    for h in &report.hours {
        let c = h.completeness.as_ref();
        writeln!(
            out,
            "{:<14} {:<9} {:<11} {:>4} {:>10} {:>10} {:>5} {:>6} {:>6}  {}",
            h.hour.to_string(),
            label(&h.raw),
            h.commit.map_or("-".to_string(), |c| label(&c)),
            h.generation.map_or("-".into(), |g| g.to_string()),
            h.rows_recorded.map_or("-".into(), |r| r.to_string()),
            h.rows_found,
            h.parts,
            percent_cell(c.and_then(|c| c.percent_of_day_before())),
            percent_cell(c.and_then(|c| c.percent_of_week_before())),
            sources_cell(h)
        )?;
    }
    if report.findings.is_empty() {
        writeln!(
            out,
            "\nclean: {} hours in {:.1} s",
            report.hours.len(),
            report.seconds
        )?;
    } else {
        writeln!(out, "\n{} finding(s):", report.findings.len())?;
        write_findings(out, &report.findings)?;
    }
    if !report.warnings.is_empty() {
        writeln!(
            out,
            "\n{} warning(s), hours that fell by more than half (no defect of the lake; a mirror may have them):",
            report.warnings.len()
        )?;
        write_findings(out, &report.warnings)?;
    }
    Ok(())
}

/// `first 740 (185 shared), opendigger 185` — what the commit took from each source; a file
/// the commit did not read is marked `not read`, one it read that is gone `gone`.
fn sources_cell(h: &crate::verify::HourReport) -> String {
    let cells: Vec<String> = h
        .sources
        .iter()
        .map(|s| {
            let taken = match (s.rows, s.shared) {
                (Some(rows), Some(shared)) if shared > 0 => format!(" {rows} ({shared} shared)"),
                (Some(rows), _) => format!(" {rows}"),
                _ => String::new(),
            };
            let state = match (s.in_raw, s.read) {
                (true, false) => " not read",
                (false, true) => " gone",
                _ => "",
            };
            format!("{}{taken}{state}", s.source)
        })
        .collect();
    if cells.is_empty() {
        "-".into()
    } else {
        cells.join(", ")
    }
}

fn write_findings(out: &mut impl std::io::Write, findings: &[Finding]) -> std::io::Result<()> {
    for f in findings {
        writeln!(
            out,
            "  {:<20} {:<14} {}{}",
            label(&f.kind),
            f.hour.map(|h| h.to_string()).unwrap_or_default(),
            f.key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default(),
            f.detail
        )?;
    }
    Ok(())
}
