//! More than one archive of the same hours: two generated mirrors that each lack a different
//! fifth of every hour's events (and one that lacks a whole hour), ingested and transformed by
//! `elt run` into one lake that holds their union, each event once, with the accounting per
//! source; a mirror that delivers an hour late makes the hour commit again with the union; on
//! AWS the transform of a mirror's object reads the hour's other sources from the raw bucket.

mod lake;
mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;

use events::TransformSummary;
use support::{gzip, gzip_lines, AwsWorld, Mirror};

const EVENTS: usize = 200;

/// The hour's generated lines (ids unique within the hour); the same for every mirror.
fn lines_of(hour: &str) -> Vec<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gzip_lines(hour, EVENTS)[..])
        .read_to_string(&mut text)
        .unwrap();
    text.lines().map(str::to_string).collect()
}

/// The hour as a mirror that lacks every line `lacks` picks (by the line's place) serves it.
fn served(hour: &str, lacks: impl Fn(usize) -> bool) -> Vec<u8> {
    let kept: String = lines_of(hour)
        .into_iter()
        .enumerate()
        .filter(|(n, _)| !lacks(*n))
        .map(|(_, line)| line + "\n")
        .collect();
    gzip(kept.as_bytes())
}

/// GHArchive lacks the events at places 0, 5, 10, …; the mirror those at 1, 6, 11, …
fn gharchive_lacks(n: usize) -> bool {
    n.is_multiple_of(5)
}

fn mirror_lacks(n: usize) -> bool {
    n % 5 == 1
}

/// `elt run` over both sources; the transform summaries it printed, by hour.
fn elt_run(
    lake: &lake::Lake,
    gharchive: &Mirror,
    mirror: &Mirror,
    now: &str,
    until: &str,
) -> BTreeMap<String, Vec<TransformSummary>> {
    let output = Command::new(env!("CARGO_BIN_EXE_elt"))
        .args(["run", "--lake", lake.lake().to_str().unwrap()])
        .args(["--source", &gharchive.url])
        .args(["--source", &format!("od={}", mirror.url)])
        .env("INGEST_START_HOUR", "2024-03-05-0")
        .env("INGEST_UNTIL_HOUR", until)
        .env("ELT_NOW", now)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let mut by_hour: BTreeMap<String, Vec<TransformSummary>> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let summary: TransformSummary = serde_json::from_str(line).expect("a summary");
        assert_eq!(
            summary.records,
            summary.rows + summary.duplicates + summary.duplicates_across_hours + summary.rejected,
            "{summary:?}"
        );
        by_hour
            .entry(summary.hour.to_string())
            .or_default()
            .push(summary);
    }
    by_hour
}

/// (rows, distinct event ids) of the lake, or of one hour's `source_file`s.
fn counts(lake: &lake::Lake, filter: &str) -> (u64, u64) {
    let rows = lake.rows(&format!(
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM ghactivity {filter}"
    ));
    (
        rows[0]["n"].as_u64().unwrap(),
        rows[0]["d"].as_u64().unwrap(),
    )
}

/// (source_file, records, rows, shared) of a summary, per source.
fn accounting(summary: &TransformSummary) -> Vec<(String, u64, u64, u64)> {
    summary
        .sources
        .iter()
        .map(|s| (s.source_file.clone(), s.records, s.rows, s.shared))
        .collect()
}

#[test]
fn two_mirrors_each_lacking_a_different_share_make_a_lake_of_their_union() {
    let (gharchive, mirror) = (Mirror::start(), Mirror::start());
    let hours = [
        "2024-03-05-0",
        "2024-03-05-1",
        "2024-03-05-2",
        "2024-03-05-3",
    ];
    for hour in hours {
        let name = format!("{hour}.json.gz");
        gharchive.put(&name, served(hour, gharchive_lacks));
        // The mirror lacks a whole hour.
        if hour != "2024-03-05-2" {
            mirror.put(&name, served(hour, mirror_lacks));
        }
    }
    let lake = lake::Lake::new();
    // Long after the hours: the hour the mirror lacks is given up for it, not waited for.
    let summaries = elt_run(
        &lake,
        &gharchive,
        &mirror,
        "2024-03-07T00:00:00Z",
        "2024-03-05-3",
    );
    assert_eq!(summaries.len(), 4, "{summaries:?}");

    // Each hour both mirrors hold: every event, each once. The one hour the mirror lacks:
    // GHArchive's four fifths, and the hour is not held up.
    let whole = EVENTS as u64;
    let share = whole * 4 / 5;
    assert_eq!(counts(&lake, ""), (3 * whole + share, 3 * whole + share));
    for hour in hours {
        let day_hour = &hour[11..];
        let filter = format!("WHERE date_part('hour', created_at) = {day_hour}");
        let expected = if hour == "2024-03-05-2" { share } else { whole };
        assert_eq!(counts(&lake, &filter), (expected, expected), "{hour}");
    }

    // The accounting per source: GHArchive first (it wins every event both hold), then the
    // mirror, with the events each had that the other also had (three fifths of the hour).
    let first = summaries["2024-03-05-0"].last().unwrap();
    assert_eq!(
        accounting(first),
        [
            (
                "2024-03-05-0.json.gz".to_string(),
                share,
                share,
                whole * 3 / 5
            ),
            (
                "sources/od/2024-03-05-0.json.gz".to_string(),
                share,
                whole / 5,
                whole * 3 / 5
            ),
        ]
    );
    assert_eq!((first.rows, first.duplicates), (whole, whole * 3 / 5));
    let lacking = summaries["2024-03-05-2"].last().unwrap();
    assert_eq!(
        accounting(lacking),
        [("2024-03-05-2.json.gz".to_string(), share, share, 0)]
    );
    let by_source = lake.rows(
        "SELECT source_file, count(*) AS n FROM ghactivity \
         WHERE date_part('hour', created_at) = 0 GROUP BY source_file ORDER BY source_file",
    );
    let by_source: Vec<(String, u64)> = by_source
        .iter()
        .map(|r| {
            (
                r["source_file"].as_str().unwrap().to_string(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_source,
        [
            ("2024-03-05-0.json.gz".to_string(), share),
            ("sources/od/2024-03-05-0.json.gz".to_string(), whole / 5)
        ]
    );

    // The commit records name every raw file read.
    let commits = lake.commits();
    let record = commits
        .values()
        .find(|c| c.hour.to_string() == "2024-03-05-0")
        .unwrap();
    assert_eq!(record.more_sources.len(), 1, "{record:?}");
    assert!(
        record.more_sources[0].location.contains("sources/od/"),
        "{record:?}"
    );
    assert_eq!(record.by_source.len(), 2);

    // `elt verify` and `elt status` say, per hour, which sources the lake holds it from.
    let report = verify(&lake, "2024-03-05-0", "2024-03-05-3", true);
    let sources = |hour: usize| -> Vec<(String, bool, bool, u64)> {
        report["hours"][hour]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["source"].as_str().unwrap().to_string(),
                    s["in_raw"].as_bool().unwrap(),
                    s["read"].as_bool().unwrap(),
                    s["rows"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        sources(0),
        [
            ("first".to_string(), true, true, share),
            ("od".to_string(), true, true, whole / 5)
        ]
    );
    assert_eq!(sources(2), [("first".to_string(), true, true, share)]);
    let status = elt_status(&lake);
    assert!(
        status.contains("the lake, 2024-03-05-0 .. 2024-03-05-3"),
        "{status}"
    );
    let line = |hour: &str| {
        status
            .lines()
            .find(|l| l.trim_start().starts_with(hour))
            .unwrap_or_else(|| panic!("no line for {hour}: {status}"))
            .to_string()
    };
    assert!(line("2024-03-05-0 ").ends_with("first, od"), "{status}");
    assert!(line("2024-03-05-2 ").ends_with("first"), "{status}");

    // A mirror's file that arrives and is not transformed is a finding, until the hour is
    // transformed again.
    let late = lake.lake().join("raw/sources/od/2024-03-05-2.json.gz");
    std::fs::create_dir_all(late.parent().unwrap()).unwrap();
    std::fs::write(&late, served("2024-03-05-2", mirror_lacks)).unwrap();
    let report = verify(&lake, "2024-03-05-2", "2024-03-05-2", false);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["kind"], "source_not_committed");
    assert_eq!(findings[0]["key"], "sources/od/2024-03-05-2.json.gz");
}

/// `elt verify --format json` of `from .. to`: its report, and whether it exited 0.
fn verify(lake: &lake::Lake, from: &str, to: &str, clean: bool) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_elt"))
        .args(["verify", "--lake", lake.lake().to_str().unwrap()])
        .args(["--from", from, "--to", to, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.success(),
        clean,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a report")
}

fn elt_status(lake: &lake::Lake) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_elt"))
        .args(["status", "--lake", lake.lake().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn an_hour_that_fell_by_more_than_half_is_a_warning_of_verify_not_a_finding() {
    // The same hour on three days: a whole one, then one with four in ten of its events.
    let lake = lake::Lake::new();
    let raw = lake.lake().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let hours = [
        ("2024-02-27-9", EVENTS),
        ("2024-03-04-9", EVENTS),
        ("2024-03-05-9", EVENTS * 2 / 5),
    ];
    let mut files = Vec::new();
    for (hour, events) in hours {
        let file = raw.join(format!("{hour}.json.gz"));
        std::fs::write(&file, support::gzip_lines(hour, events)).unwrap();
        files.push(file);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_elt"))
        .args(["transform", "--lake", lake.lake().to_str().unwrap()])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A warning, not a finding: verify exits 0.
    let report = verify(&lake, "2024-03-05-9", "2024-03-05-9", true);
    let c = &report["hours"][0]["completeness"];
    assert_eq!(
        (
            &c["rows"],
            &c["day_before"],
            &c["week_before"],
            &c["fell_by_half"]
        ),
        (
            &serde_json::json!(80),
            &serde_json::json!(200),
            &serde_json::json!(200),
            &serde_json::json!(true)
        ),
        "{report}"
    );
    assert_eq!(report["warnings"][0]["kind"], "fell_by_half", "{report}");
    let report = verify(&lake, "2024-03-04-9", "2024-03-04-9", true);
    assert_eq!(report["hours"][0]["completeness"]["fell_by_half"], false);
    assert_eq!(report["warnings"].as_array().map(Vec::len), Some(0));

    let output = Command::new(env!("CARGO_BIN_EXE_elt"))
        .args(["verify", "--lake", lake.lake().to_str().unwrap()])
        .args(["--from", "2024-03-05-9", "--to", "2024-03-05-9"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("fell by more than half"), "{table}");
    assert!(
        table.contains("80 rows: 40% of the day before's, 40% of the week before's"),
        "{table}"
    );
}

#[test]
fn a_mirror_that_delivers_an_hour_late_makes_the_hour_commit_again_with_the_union() {
    let (gharchive, mirror) = (Mirror::start(), Mirror::start());
    for hour in ["2024-03-05-0", "2024-03-05-1"] {
        gharchive.put(&format!("{hour}.json.gz"), served(hour, gharchive_lacks));
    }
    mirror.put("2024-03-05-0.json.gz", served("2024-03-05-0", mirror_lacks));
    let lake = lake::Lake::new();
    let now = "2024-03-05T03:30:00Z";
    let first = elt_run(&lake, &gharchive, &mirror, now, "2024-03-05-1");
    let share = EVENTS as u64 * 4 / 5;
    assert_eq!(first["2024-03-05-1"].last().unwrap().rows, share);
    let status = Command::new(env!("CARGO_BIN_EXE_elt"))
        .args(["status", "--lake", lake.lake().to_str().unwrap()])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.contains("source od has not delivered 2024-03-05-1 yet"),
        "the mirror's hour is waited for: {status}"
    );

    // The mirror publishes the hour: the next run fetches it, and the hour commits again.
    mirror.put("2024-03-05-1.json.gz", served("2024-03-05-1", mirror_lacks));
    let second = elt_run(&lake, &gharchive, &mirror, now, "2024-03-05-1");
    let again = second["2024-03-05-1"].last().expect("the hour again");
    assert_eq!(
        (again.rows, again.generation),
        (EVENTS as u64, 2),
        "{again:?}"
    );
    assert_eq!(again.sources.len(), 2);
    assert_eq!(
        counts(&lake, "WHERE date_part('hour', created_at) = 1"),
        (EVENTS as u64, EVENTS as u64)
    );
    assert!(
        !second.contains_key("2024-03-05-0"),
        "an hour already whole is left alone"
    );
}

#[tokio::test]
async fn on_aws_the_transform_of_a_mirrors_object_reads_every_source_of_the_hour() {
    let world = AwsWorld::new(true).await;
    let curated = support::unique("curated");
    world.s3_in(&curated, reqwest::Method::PUT, "", None).await;
    let hour = "2024-03-05-7";
    let primary = format!("/landing/ghactivity/{hour}.json.gz");
    let secondary = format!("/landing/ghactivity/sources/od/{hour}.json.gz");
    world
        .s3_in(
            &world.bucket,
            reqwest::Method::PUT,
            &primary,
            Some(served(hour, gharchive_lacks)),
        )
        .await;
    // The transform of the first source's file alone: four fifths.
    let transform = |key: &str| {
        let url = format!("s3://{}{key}", world.bucket);
        let output = world
            .command(env!("CARGO_BIN_EXE_elt"), &["transform", "--aws", &url])
            .env("CURATED_BUCKET", &curated)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<TransformSummary>(&output.stdout).unwrap()
    };
    let alone = transform(&primary);
    assert_eq!((alone.rows, alone.generation), (EVENTS as u64 * 4 / 5, 1));

    // The mirror's file arrives: its notification's transform commits the union.
    world
        .s3_in(
            &world.bucket,
            reqwest::Method::PUT,
            &secondary,
            Some(served(hour, mirror_lacks)),
        )
        .await;
    let union = transform(&secondary);
    assert_eq!(
        (union.rows, union.generation),
        (EVENTS as u64, 2),
        "{union:?}"
    );
    let names: Vec<&str> = union
        .sources
        .iter()
        .map(|s| s.source_file.as_str())
        .collect();
    assert_eq!(names, [&primary[20..], &secondary[20..]]);
    // The first source's notification again (say, redelivered): the hour is read whole again.
    let again = transform(&primary);
    assert_eq!(
        (again.rows, again.sources.len()),
        (EVENTS as u64, 2),
        "{again:?}"
    );
}
