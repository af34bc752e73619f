//! `elt backfill --plan`: what a backfill of a range will take on AWS, before anything runs.
//!
//! Three inputs, each in one place:
//! * the size of the archive's hours, by year ([`GZIP_MIB_PER_HOUR`]), and since the Events API
//!   trimmed its payloads ([`TRIMMED_SINCE`], [`TRIMMED_GZIP_MIB_PER_HOUR`]): estimates of a
//!   typical hour's gzip file, from GHArchive's published files;
//! * what an hour costs the ingest and the transform per MiB of gzip, by era
//!   (`benches/figures/backfill.json`, written by `cargo bench --bench backfill`);
//! * AWS list prices ([`PRICES`]).

use std::collections::BTreeMap;

use chrono::Datelike;
use events::Hour;
use serde::{Deserialize, Serialize};

/// Typical gzip MiB of one GHArchive hour file, by year (2011 starts on 2011-02-12), until
/// [`TRIMMED_SINCE`]. Events per hour grew from about 2,000 (2011) to 200,000 (2024), and their
/// payloads with them.
pub const GZIP_MIB_PER_HOUR: [(i32, f64); 15] = [
    (2011, 0.35),
    (2012, 1.2),
    (2013, 2.4),
    (2014, 4.0),
    (2015, 11.0),
    (2016, 17.0),
    (2017, 23.0),
    (2018, 28.0),
    (2019, 38.0),
    (2020, 55.0),
    (2021, 70.0),
    (2022, 85.0),
    (2023, 95.0),
    (2024, 110.0),
    (2025, 115.0),
];

/// The day (year, month, day, UTC) GitHub's Events API trimmed its payloads (no `commits` on
/// pushes, pull requests down to `url`, `id`, `number`, `head` and `base`): hours shrank to a
/// quarter or less.
pub const TRIMMED_SINCE: (i32, u32, u32) = (2025, 10, 7);

/// Typical gzip MiB of an hour since [`TRIMMED_SINCE`]: GHArchive's hours of 2025-10 on are
/// about 20–36 MB. The real events of those days in `fixtures/real-events.jsonl` are 680 bytes
/// of JSON each, against 4.4–9.8 KB for 2017–2023's.
pub const TRIMMED_GZIP_MIB_PER_HOUR: f64 = 28.0;

/// AWS list prices used by the plan: us-east-1, arm64 Lambda, on-demand DynamoDB, S3 Standard,
/// SQS standard. As published when this was written; check the pricing pages of your region.
pub struct Prices {
    pub as_of: &'static str,
    pub lambda_gb_second: f64,
    pub lambda_request: f64,
    pub s3_put: f64,
    pub s3_get: f64,
    pub sqs_request: f64,
    pub dynamodb_write: f64,
    pub dynamodb_read: f64,
}

pub const PRICES: Prices = Prices {
    as_of: "us-east-1 list prices, 2024-2026 (unchanged in that time)",
    lambda_gb_second: 0.000_013_333_4,
    lambda_request: 0.20 / 1e6,
    s3_put: 0.005 / 1e3,
    s3_get: 0.0004 / 1e3,
    sqs_request: 0.40 / 1e6,
    dynamodb_write: 1.25 / 1e6,
    dynamodb_read: 0.25 / 1e6,
};

/// One era's measured cost per MiB of gzip (`benches/figures/backfill.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EraFigures {
    /// The measured hour: its events and gzip MiB.
    pub events: u64,
    pub gzip_mib: f64,
    pub ingest_cpu_seconds: f64,
    pub ingest_peak_mib: f64,
    pub transform_cpu_seconds: f64,
    pub transform_wall_seconds: f64,
    pub transform_peak_mib: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    /// When, where and how they were measured.
    pub measured: String,
    /// By era: `backfill` (2011 – early 2012), `timeline` (2012–2014), `events` (2015 on).
    pub eras: BTreeMap<String, EraFigures>,
}

impl Figures {
    /// The figures `cargo bench --bench backfill` last wrote into the source tree.
    pub fn measured() -> anyhow::Result<Figures> {
        let text = include_str!("../benches/figures/backfill.json");
        Ok(serde_json::from_str(text)?)
    }

    fn era(&self, hour: Hour) -> anyhow::Result<&EraFigures> {
        let name = crate::gen::Era::of(hour).name();
        self.eras
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("no measured figures for the {name} era"))
    }
}

/// The stack's sizes the plan assumes (the template's defaults).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stack {
    /// Backfill messages worked at once (`BackfillConcurrency`).
    pub concurrency: u32,
    /// Transforms at once (`TransformMaxConcurrency`).
    pub transform_concurrency: u32,
    pub ingest_memory_mb: u32,
    pub transform_memory_mb: u32,
    pub hours_per_message: u32,
}

/// What a backfill of a range is expected to take.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub from: Hour,
    pub to: Hour,
    pub hours: u64,
    pub messages: u64,
    pub gzip_bytes: u64,
    pub lambda_gb_seconds: f64,
    pub ingest_gb_seconds: f64,
    pub transform_gb_seconds: f64,
    pub s3_requests: u64,
    pub sqs_requests: u64,
    pub dynamodb_writes: u64,
    pub lambda_requests: u64,
    pub usd: f64,
    pub wall_seconds: f64,
    pub stack: Stack,
    pub figures: String,
    pub prices: &'static str,
}

/// Typical gzip MiB of an hour of `hour`'s year (or of the trimmed era).
pub fn gzip_mib(hour: Hour) -> f64 {
    if (hour.year(), hour.month(), hour.day()) >= TRIMMED_SINCE {
        return TRIMMED_GZIP_MIB_PER_HOUR;
    }
    let year = hour.start().year();
    GZIP_MIB_PER_HOUR
        .iter()
        .rev()
        .find(|(y, _)| *y <= year)
        .map_or(GZIP_MIB_PER_HOUR[0].1, |(_, mib)| *mib)
}

/// Lambda's CPU share at `memory_mb`: one vCPU at 1,769 MB, in proportion.
fn vcpus(memory_mb: u32) -> f64 {
    f64::from(memory_mb) / 1769.0
}

/// The GHArchive download rate a Lambda gets (MiB/s), for the ingest's wall time.
const DOWNLOAD_MIB_PER_SECOND: f64 = 60.0;
/// Multipart part size of both stages' uploads.
const PART_MIB: f64 = 8.0;

/// Estimates `from..=to` on `stack` from `figures`.
pub fn estimate(figures: &Figures, stack: Stack, from: Hour, to: Hour) -> anyhow::Result<Estimate> {
    anyhow::ensure!(from <= to, "the range {from} .. {to} is empty");
    let mut tally = Tally::default();
    for hour in Hour::range(from, to) {
        tally.add(figures.era(hour)?, gzip_mib(hour), &stack);
    }
    let hours = Hour::range(from, to).count() as u64;
    let messages = hours.div_ceil(u64::from(stack.hours_per_message.max(1)));
    Ok(tally.finish(figures, stack, (from, to), hours, messages))
}

/// Sums of the per-hour figures.
#[derive(Default)]
struct Tally {
    gzip_mib: f64,
    ingest_seconds: f64,
    transform_seconds: f64,
    s3_put: f64,
    s3_get: f64,
    dynamodb_writes: f64,
}

impl Tally {
    fn add(&mut self, era: &EraFigures, mib: f64, stack: &Stack) {
        let per_mib = |seconds: f64| seconds / era.gzip_mib.max(0.001) * mib;
        let ingest_cpu = per_mib(era.ingest_cpu_seconds) / vcpus(stack.ingest_memory_mb);
        self.ingest_seconds += ingest_cpu.max(mib / DOWNLOAD_MIB_PER_SECOND) + 0.2;
        let transform_cpu = per_mib(era.transform_cpu_seconds);
        self.transform_seconds += transform_cpu / vcpus(stack.transform_memory_mb).min(2.0) + 0.5;
        self.gzip_mib += mib;
        // Ingest: a multipart upload. Transform: the staged parts (Parquet is about 1.7 times
        // the gzip), the event-id list, each part's copy into place and its staging deleted.
        let parts = (mib / PART_MIB).ceil();
        let parquet_parts = (mib * 1.7 / PART_MIB).ceil();
        self.s3_put += 2.0 + parts + 4.0 + parquet_parts + 4.0;
        self.s3_get += 2.0 + 1.0 + 2.0;
        // The commit's claim, a lease renewal per step, completion; the transform's run record.
        self.dynamodb_writes += 6.0 + 2.0;
    }

    fn finish(
        self,
        figures: &Figures,
        stack: Stack,
        (from, to): (Hour, Hour),
        hours: u64,
        messages: u64,
    ) -> Estimate {
        let gb = |mb: u32| f64::from(mb) / 1024.0;
        let ingest_gb_seconds = self.ingest_seconds * gb(stack.ingest_memory_mb);
        let transform_gb_seconds = self.transform_seconds * gb(stack.transform_memory_mb);
        // Backfill messages: sent, received, deleted (ten to a request); notifications: sent by
        // S3, received and deleted by the mapping.
        let sqs_requests = (messages as f64 * 3.0 / 10.0).ceil() as u64 + hours * 3;
        let dynamodb_writes = self.dynamodb_writes as u64 + messages * 3;
        let lambda_requests = messages + hours;
        let s3_requests = (self.s3_put + self.s3_get) as u64;
        let usd = (ingest_gb_seconds + transform_gb_seconds) * PRICES.lambda_gb_second
            + lambda_requests as f64 * PRICES.lambda_request
            + self.s3_put * PRICES.s3_put
            + self.s3_get * PRICES.s3_get
            + sqs_requests as f64 * PRICES.sqs_request
            + dynamodb_writes as f64 * PRICES.dynamodb_write
            + hours as f64 * 3.0 * PRICES.dynamodb_read;
        // Two stages, each as wide as its concurrency; the slower one sets the pace.
        let wall_seconds = (self.ingest_seconds / f64::from(stack.concurrency.max(1)))
            .max(self.transform_seconds / f64::from(stack.transform_concurrency.max(1)));
        Estimate {
            from,
            to,
            hours,
            messages,
            gzip_bytes: (self.gzip_mib * 1024.0 * 1024.0) as u64,
            lambda_gb_seconds: ingest_gb_seconds + transform_gb_seconds,
            ingest_gb_seconds,
            transform_gb_seconds,
            s3_requests,
            sqs_requests,
            dynamodb_writes,
            lambda_requests,
            usd,
            wall_seconds,
            stack,
            figures: figures.measured.clone(),
            prices: PRICES.as_of,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(text: &str) -> Hour {
        text.parse().unwrap()
    }

    fn stack(concurrency: u32) -> Stack {
        Stack {
            concurrency,
            transform_concurrency: concurrency,
            ingest_memory_mb: 512,
            transform_memory_mb: 2048,
            hours_per_message: 4,
        }
    }

    #[test]
    fn an_hour_is_as_large_as_its_year_says() {
        assert_eq!(gzip_mib(hour("2011-02-12-0")), 0.35);
        assert_eq!(gzip_mib(hour("2024-12-31-23")), 110.0);
        // Until the Events API trimmed its payloads, and after.
        assert_eq!(gzip_mib(hour("2025-10-06-23")), 115.0);
        assert_eq!(gzip_mib(hour("2025-10-07-0")), TRIMMED_GZIP_MIB_PER_HOUR);
        assert_eq!(gzip_mib(hour("2030-01-01-0")), TRIMMED_GZIP_MIB_PER_HOUR);
    }

    #[test]
    fn concurrency_buys_time_not_money_and_each_era_is_costed_by_its_own_figures() {
        let figures = Figures::measured().unwrap();
        let (from, to) = (hour("2024-01-01-0"), hour("2024-01-20-23"));
        let narrow = estimate(&figures, stack(10), from, to).unwrap();
        let wide = estimate(&figures, stack(100), from, to).unwrap();
        assert_eq!((narrow.hours, narrow.messages), (480, 120));
        assert!((narrow.usd - wide.usd).abs() < 1e-9);
        assert!(wide.wall_seconds * 9.0 < narrow.wall_seconds);
        // The same span in 2011: a hundredth of the bytes, and a fraction of the cost.
        let early = estimate(
            &figures,
            stack(10),
            hour("2011-03-01-0"),
            hour("2011-03-20-23"),
        );
        let early = early.unwrap();
        assert!(early.gzip_bytes * 100 < narrow.gzip_bytes);
        assert!(early.usd * 3.0 < narrow.usd);
        assert!(estimate(&figures, stack(10), to, from).is_err());
    }
}
