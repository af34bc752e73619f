//! `elt verify`: audits a range of hours against the promise that every event appears once.
//!
//! For each hour: its raw file is there (or GHArchive is known never to have had it), its commit
//! is complete, the Delta table holds exactly the parts the commit names at its generation
//! (`table.rs`), and they are there and hold the rows it counted; the events it dropped as
//! duplicates of a neighbour are still the neighbour's (`lost_across_hours`); across the range
//! no `event_id` appears twice; the table's partitions hold no file the table does not reference
//! (orphans, which `elt vacuum` removes); no run left staged objects older than the transform's
//! timeout. Per hour it also says
//! which sources' files are in the raw store and what the commit took from each (a file the
//! commit did not read is a finding: a late source not transformed yet), and warns of hours that
//! fell by more than half against the same hour a day and a week before ([`crate::health`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::CommitStore;
use anyhow::Context;
use chrono::Utc;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use events::commits::{staging_prefix, CommitState, HourCommit};
use events::completeness::Completeness;
use events::Hour;
use futures::{StreamExt, TryStreamExt};
use lake_table::snapshot::TableState;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use transform::raw_hour::{self, HourFile};

use crate::health;

mod compacted;
mod table;

/// Requests in flight at once.
const CONCURRENCY: usize = 16;

/// What is audited, and where.
pub struct Audit {
    pub raw: Arc<dyn ObjectStore>,
    pub raw_prefix: String,
    pub curated: Arc<dyn ObjectStore>,
    /// Where `curated` is, for opening the table.
    pub place: lake_table::Place,
    pub commits: Arc<dyn CommitStore>,
    pub curated_prefix: String,
    pub rejects_prefix: String,
    /// Staged objects older than this are a dead run's leftovers.
    pub stale_after: Duration,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub from: Hour,
    pub to: Hour,
    pub hours: Vec<HourReport>,
    pub findings: Vec<Finding>,
    /// What the operator should look at, but no defect of the lake (exit 0): hours that fell
    /// by more than half.
    pub warnings: Vec<Finding>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct HourReport {
    pub hour: Hour,
    pub raw: RawState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Rows the commit record counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_recorded: Option<u64>,
    /// Rows found in the parts it names.
    pub rows_found: u64,
    /// The table's version holding the hour's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_version: Option<u64>,
    pub parts: usize,
    /// Each source's file of the hour: in the raw store, read by the commit, or both.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceReport>,
    /// The hour's rows against the same hour a day and a week before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness: Option<Completeness>,
}

/// One source's file of an hour.
#[derive(Debug, Serialize)]
pub struct SourceReport {
    /// `first`, or the mirror's name.
    pub source: String,
    pub source_file: String,
    /// The file is in the raw store now.
    pub in_raw: bool,
    /// The hour's commit read it.
    pub read: bool,
    /// Of the hour's rows, those that came from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Of its events, those another source of the hour also had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawState {
    Present,
    Missing,
    /// Missing, and GHArchive is known never to have had it.
    KnownGap,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hour: Option<Hour>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    RawMissing,
    NotCommitted,
    CommitIncomplete,
    PartMissing,
    RowCount,
    DuplicateEvent,
    /// A data file in the table's folders that the table does not reference (a run that died
    /// before its commit, a planted copy): `elt vacuum` removes it once past the retention.
    Orphan,
    /// The table and the hour's commit record disagree: a part one names and the other not, a
    /// file the table holds that no hour's commit wrote, or another generation.
    TableDiffers,
    /// Events the hour's commit dropped as duplicates of a neighbouring hour that the neighbour
    /// no longer holds (it was transformed again since): transform the hour again.
    LostAcrossHours,
    Quarantine,
    StagedLeftover,
    /// A source's file of the hour is in the raw store, the hour's commit did not read it.
    SourceNotCommitted,
    /// A warning: the hour has fewer than half the rows of the same hour a day and a week before.
    FellByHalf,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One part's numbers.
struct PartScan {
    rows: u64,
    event_ids: Vec<i64>,
}

impl Audit {
    pub async fn run(&self, from: Hour, to: Hour) -> anyhow::Result<Report> {
        anyhow::ensure!(from <= to, "the range {from} .. {to} is empty");
        let started = Instant::now();
        let hours: Vec<Hour> = Hour::range(from, to).collect();
        let mut findings = Vec::new();
        let mut warnings = Vec::new();
        let raw_files = self.raw_files(&hours).await?;
        let wanted = health::with_baselines(&hours);
        let records =
            health::commit_records(self.commits.as_ref(), &self.curated_prefix, wanted).await?;
        let table = lake_table::Table::new(
            self.curated.clone(),
            &self.curated_prefix,
            self.place.clone(),
        );
        let state = lake_table::snapshot::load(&table).await?;
        let days = table::days_around(from, to);
        let mut compacted = self
            .compacted_rows((from, to), &days, state.as_ref(), &mut findings)
            .await?;
        let mut reports = Vec::new();
        let mut seen: HashMap<i64, Hour> = HashMap::new();
        let mut duplicates: BTreeMap<(Hour, Hour), (u64, i64)> = BTreeMap::new();
        for (hour, files) in hours.iter().zip(raw_files) {
            let record = records.get(hour);
            let raw = raw_state(*hour, &files);
            let in_compacted = compacted.remove(hour);
            let (mut report, scans) = self
                .audit_hour(
                    *hour,
                    raw,
                    record,
                    (state.as_ref(), in_compacted),
                    &mut findings,
                )
                .await?;
            table::hour_in_table(state.as_ref(), *hour, record, &mut findings).await?;
            self.lost_across_hours(*hour, record, &records, &mut findings)
                .await?;
            report.sources = source_reports(&files, record);
            sources_not_read(&report, record, &mut findings);
            report.completeness = health::completeness(*hour, &records);
            warnings.extend(report.completeness.as_ref().and_then(fell_by_half));
            for id in scans.into_iter().flat_map(|s| s.event_ids) {
                if let Some(first) = seen.insert(id, *hour) {
                    let entry = duplicates.entry((first, *hour)).or_insert((0, id));
                    entry.0 += 1;
                }
            }
            reports.push(report);
        }
        for ((first, again), (count, example)) in duplicates {
            findings.push(Finding {
                kind: FindingKind::DuplicateEvent,
                hour: Some(again),
                key: None,
                detail: format!(
                    "{count} event_id(s) of {first} appear again in {again} (e.g. {example})"
                ),
            });
        }
        table::files_no_hour_wrote(state.as_ref(), &hours, &mut findings);
        self.orphans(from, to, state.as_ref(), &mut findings)
            .await?;
        self.staged_leftovers(&hours, &mut findings).await?;
        Ok(Report {
            from,
            to,
            hours: reports,
            findings,
            warnings,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Each hour's files in the raw store, one per source that has it, as the transform finds
    /// them.
    async fn raw_files(&self, hours: &[Hour]) -> anyhow::Result<Vec<Vec<HourFile>>> {
        let folders = raw_hour::source_folders(self.raw.as_ref(), &self.raw_prefix).await?;
        let folders = &folders;
        futures::stream::iter(hours.iter().copied())
            .map(|hour| raw_hour::find_in(self.raw.as_ref(), &self.raw_prefix, folders, hour))
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }

    /// One hour: its commit against its raw file, its parts (and its rows in compacted files)
    /// and its quarantine.
    async fn audit_hour(
        &self,
        hour: Hour,
        raw: RawState,
        record: Option<&HourCommit>,
        (state, in_compacted): (Option<&TableState>, Option<PartScan>),
        findings: &mut Vec<Finding>,
    ) -> anyhow::Result<(HourReport, Vec<PartScan>)> {
        let mut note = |kind, key: Option<String>, detail: String| {
            findings.push(Finding {
                kind,
                hour: Some(hour),
                key,
                detail,
            })
        };
        let mut report = HourReport {
            hour,
            raw,
            commit: record.map(|r| r.state),
            generation: record.map(|r| r.generation),
            rows_recorded: record.map(|r| r.counts.rows),
            rows_found: 0,
            table_version: record.and_then(|r| r.table_version),
            parts: record.map_or(0, |r| r.parts.len()),
            sources: Vec::new(),
            completeness: None,
        };
        match (raw, record) {
            (RawState::Missing, _) => note(FindingKind::RawMissing, None, "no raw file".into()),
            (RawState::Present, None) => note(
                FindingKind::NotCommitted,
                None,
                "raw file never committed".into(),
            ),
            _ => {}
        }
        let Some(record) = record else {
            return Ok((report, Vec::new()));
        };
        if record.state != CommitState::Committed {
            note(
                FindingKind::CommitIncomplete,
                None,
                format!(
                    "run {} claimed the hour and has not finished",
                    record.run_id
                ),
            );
        }
        // Parts a compaction took in are read in the compacted files instead.
        let parts: Vec<String> = record
            .parts
            .iter()
            .filter(|key| !table::compacted_away(state, hour, key))
            .cloned()
            .collect();
        let mut scans = self.scan_parts(&parts).await?;
        for (key, scan) in parts.iter().zip(&scans) {
            match scan {
                Some(scan) => report.rows_found += scan.rows,
                None => note(
                    FindingKind::PartMissing,
                    Some(key.clone()),
                    "named by the commit, not there".into(),
                ),
            }
        }
        if let Some(in_compacted) = in_compacted {
            report.rows_found += in_compacted.rows;
            scans.push(Some(in_compacted));
        }
        if report.rows_found != record.counts.rows {
            note(
                FindingKind::RowCount,
                None,
                format!(
                    "the commit counted {} rows, the parts hold {}",
                    record.counts.rows, report.rows_found
                ),
            );
        }
        self.check_quarantine(hour, record, &mut note).await?;
        Ok((report, scans.into_iter().flatten().collect()))
    }

    async fn check_quarantine(
        &self,
        hour: Hour,
        record: &HourCommit,
        note: &mut impl FnMut(FindingKind, Option<String>, String),
    ) -> anyhow::Result<()> {
        let key = hour.rejects_key(&self.rejects_prefix);
        let present = match self.curated.head(&Path::from(key.as_str())).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(anyhow::Error::from(e).context(format!("reading {key}"))),
        };
        match (record.quarantine.is_some(), present) {
            (true, false) => note(
                FindingKind::Quarantine,
                Some(key),
                "named by the commit, not there".into(),
            ),
            (false, true) => note(
                FindingKind::Quarantine,
                Some(key),
                "there, but the commit rejected nothing".into(),
            ),
            _ => {}
        }
        Ok(())
    }

    /// Rows and `event_id`s of each part (`None` for a part that is not there).
    async fn scan_parts(&self, keys: &[String]) -> anyhow::Result<Vec<Option<PartScan>>> {
        futures::stream::iter(keys.iter())
            .map(|key| self.scan_part(key))
            .buffered(CONCURRENCY / 2)
            .try_collect()
            .await
    }

    async fn scan_part(&self, key: &str) -> anyhow::Result<Option<PartScan>> {
        let path = Path::from(key);
        let meta = match self.curated.head(&path).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(anyhow::Error::from(e).context(format!("reading {key}"))),
        };
        let reader = lake_table::reader::PartReader::new(self.curated.clone(), path, meta.size);
        let builder = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .with_context(|| format!("reading the Parquet footer of {key}"))?;
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let schema = builder.parquet_schema();
        let Some(column) =
            (0..schema.num_columns()).find(|&i| schema.column(i).name() == "event_id")
        else {
            return Ok(Some(PartScan {
                rows,
                event_ids: Vec::new(),
            }));
        };
        let mask = ProjectionMask::leaves(schema, [column]);
        let batches: Vec<_> = builder
            .with_projection(mask)
            .build()?
            .try_collect()
            .await
            .with_context(|| format!("reading event_id from {key}"))?;
        let mut event_ids = Vec::with_capacity(rows as usize);
        for batch in batches {
            if let Some(ids) = batch.column(0).as_primitive_opt::<Int64Type>() {
                event_ids.extend(ids.iter().flatten());
            }
        }
        Ok(Some(PartScan { rows, event_ids }))
    }

    /// Staged objects older than the stale age under the range's hours.
    async fn staged_leftovers(
        &self,
        hours: &[Hour],
        findings: &mut Vec<Finding>,
    ) -> anyhow::Result<()> {
        let stale_before =
            Utc::now() - chrono::Duration::from_std(self.stale_after).unwrap_or_default();
        for hour in hours {
            let prefix = staging_prefix(&self.curated_prefix, *hour);
            let listed: Vec<_> = self
                .curated
                .list(Some(&Path::from(prefix.as_str())))
                .try_collect()
                .await
                .with_context(|| format!("listing {prefix}"))?;
            for meta in listed
                .into_iter()
                .filter(|m| m.last_modified < stale_before)
            {
                findings.push(Finding {
                    kind: FindingKind::StagedLeftover,
                    hour: Some(*hour),
                    detail: format!(
                        "staged at {}, no run will move it",
                        meta.last_modified.format("%Y-%m-%d %H:%M:%S UTC")
                    ),
                    key: Some(meta.location.to_string()),
                });
            }
        }
        Ok(())
    }
}

/// Whether any source's file of `hour` is there, or GHArchive is known never to have had it.
fn raw_state(hour: Hour, files: &[HourFile]) -> RawState {
    match (files.is_empty(), events::known_gap(hour)) {
        (false, _) => RawState::Present,
        (true, Some(_)) => RawState::KnownGap,
        (true, None) => RawState::Missing,
    }
}

/// The sources of an hour: the raw store's files, then any file the commit read that is no
/// longer there, each with what the commit took from it.
fn source_reports(files: &[HourFile], record: Option<&HourCommit>) -> Vec<SourceReport> {
    let counted = record.map_or(&[][..], |r| r.by_source.as_slice());
    let in_raw: Vec<String> = files.iter().map(|f| f.key.source_file()).collect();
    let gone = counted
        .iter()
        .map(|c| &c.source_file)
        .filter(|f| !in_raw.contains(f));
    let names: Vec<String> = in_raw.iter().chain(gone).cloned().collect();
    names
        .into_iter()
        .map(|source_file| {
            let count = counted.iter().find(|c| c.source_file == source_file);
            SourceReport {
                source: events::sources::source_label(&source_file).to_string(),
                in_raw: in_raw.contains(&source_file),
                read: count.is_some(),
                rows: count.map(|c| c.rows),
                shared: count.map(|c| c.shared),
                source_file,
            }
        })
        .collect()
}

/// A committed hour whose commit did not read a source's file that is there: a late source
/// whose arrival was not transformed (transforming the hour again commits the union).
fn sources_not_read(report: &HourReport, record: Option<&HourCommit>, findings: &mut Vec<Finding>) {
    // Records of runs from before the accounting per source name no sources: nothing to judge.
    let Some(record) = record.filter(|r| !r.by_source.is_empty()) else {
        return;
    };
    if record.state != CommitState::Committed {
        return;
    }
    for source in report.sources.iter().filter(|s| s.in_raw && !s.read) {
        findings.push(Finding {
            kind: FindingKind::SourceNotCommitted,
            hour: Some(report.hour),
            key: Some(source.source_file.clone()),
            detail: format!(
                "source {} has the hour, its commit (generation {}) did not read it: transform the hour again",
                source.source, record.generation
            ),
        });
    }
}

/// The warning for an hour that fell by more than half.
fn fell_by_half(c: &Completeness) -> Option<Finding> {
    c.fell_by_half.then(|| Finding {
        kind: FindingKind::FellByHalf,
        hour: Some(c.hour),
        key: None,
        detail: {
            let against = [
                (c.percent_of_day_before(), "the day before's"),
                (c.percent_of_week_before(), "the week before's"),
            ];
            let said: Vec<String> = against
                .into_iter()
                .filter_map(|(p, what)| p.map(|p| format!("{p:.0}% of {what}")))
                .collect();
            format!("{} rows: {}", c.rows, said.join(", "))
        },
    })
}
