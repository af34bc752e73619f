//! Compaction and excision on a table in a temporary folder: the day's rows kept, sorted, told
//! by hour in the tags; an hour's commit taking its rows out of the compacted file; a compaction
//! that meets a newer commit of the day starting again.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use events::{Day, Hour};

use super::*;
use crate::commit::{commit_hour, DataFile, HourResult, Landed};
use crate::Place;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("repo_name", DataType::Utf8, true),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("source_file", DataType::Utf8, false),
    ]))
}

/// `rows` rows of `hour`, ids from `first_id`.
fn batch(hour: Hour, first_id: i64, rows: i64) -> RecordBatch {
    let start = hour.start().timestamp_millis();
    let types = ["WatchEvent", "PushEvent", "ForkEvent"];
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(first_id..first_id + rows)),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| types[(i % 3) as usize]),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("org/repo-{}", (i * 7) % 11)),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter_values((0..rows).map(|i| start + i * 1000))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|_| format!("{hour}.json.gz")),
            )),
        ],
    )
    .unwrap()
}

struct World {
    dir: tempfile::TempDir,
    table: Table,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let table = Table::new(
        store,
        "ghactivity/",
        Place::Folder(dir.path().to_path_buf()),
    );
    World { dir, table }
}

/// Writes `batch` as the hour's part of `run` and commits it at `generation`.
async fn commit(world: &World, hour: Hour, generation: u64, batch: RecordBatch) -> u64 {
    let run = format!("run{generation}");
    let key = hour.part_key("ghactivity/", hour.date(), 0, &run);
    let path = world.dir.path().join(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let mut writer =
        ArrowWriter::try_new(file, schema(), Some(crate::layout::writer_properties())).unwrap();
    writer.write(&batch).unwrap();
    let metadata = writer.close().unwrap();
    let adds = [DataFile {
        key: key.clone(),
        size: std::fs::metadata(&path).unwrap().len(),
        stats: crate::stats::stats_json(&metadata, &schema()),
        tags: None,
    }];
    let state = snapshot::load(&world.table).await.unwrap();
    let removes: Vec<String> = state
        .iter()
        .flat_map(|s| s.files.iter())
        .filter(|f| f.hour == Some(hour))
        .map(|f| f.key.clone())
        .collect();
    let result = HourResult {
        hour,
        generation,
        run_id: &run,
        adds: &adds,
        removes: &removes,
        parts_schema: &schema(),
        info: serde_json::json!({"run_id": run}),
        compacted_nearby: state
            .iter()
            .flat_map(|s| s.files.iter())
            .any(|f| f.compacted.is_some()),
    };
    let base = log::latest_version(&world.table).await.unwrap();
    match commit_hour(&world.table, base, &result).await.unwrap() {
        Landed::At(version) => version,
        other => panic!("{other:?}"),
    }
}

/// Every row's (event_type, repo_name, source_file), in the table's file order.
async fn rows(world: &World) -> Vec<(String, String, String)> {
    let state = snapshot::load(&world.table).await.unwrap().unwrap();
    let mut rows = Vec::new();
    for file in &state.files {
        let path = world.dir.path().join(&file.key);
        let reader = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            std::fs::File::open(path).unwrap(),
            1024,
        )
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let text = |name: &str| {
                let column = batch.column(batch.schema().index_of(name).unwrap()).clone();
                column
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone()
            };
            let (types, repos, sources) =
                (text("event_type"), text("repo_name"), text("source_file"));
            for i in 0..batch.num_rows() {
                rows.push((
                    types.value(i).to_string(),
                    repos.value(i).to_string(),
                    sources.value(i).to_string(),
                ));
            }
        }
    }
    rows
}

fn hours() -> [Hour; 3] {
    ["2024-03-05-1", "2024-03-05-2", "2024-03-05-3"].map(|h| h.parse().unwrap())
}

#[tokio::test]
async fn a_compacted_day_keeps_its_rows_sorted_and_told_by_hour() {
    let world = world();
    for (i, hour) in hours().into_iter().enumerate() {
        commit(&world, hour, 1, batch(hour, i as i64 * 1000, 300)).await;
    }
    let day: Day = "2024-03-05".parse().unwrap();
    let before = rows(&world).await;
    let outcome = compact_day(&world.table, day, &CompactOptions::default())
        .await
        .unwrap();
    let Outcome::Compacted(done) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        (done.inputs, done.outputs, done.rows, done.hours),
        (3, 1, 900, 3)
    );
    let state = snapshot::load(&world.table).await.unwrap().unwrap();
    assert_eq!(state.files.len(), 1);
    let file = &state.files[0];
    assert_eq!(file.compacted, Some(day));
    for hour in hours() {
        assert_eq!(
            file.hours[&hour],
            HourShare {
                generation: 1,
                rows: 300
            }
        );
    }
    let after = rows(&world).await;
    let mut sorted = before.clone();
    sorted.sort();
    assert_eq!(
        after, sorted,
        "the same rows, sorted by event type and repository"
    );
    let again = compact_day(&world.table, day, &CompactOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(again, Outcome::AlreadyCompact { files: 1 }),
        "{again:?}"
    );
}

#[tokio::test]
async fn an_hours_commit_takes_its_rows_out_of_the_compacted_file() {
    let world = world();
    for (i, hour) in hours().into_iter().enumerate() {
        commit(&world, hour, 1, batch(hour, i as i64 * 1000, 300)).await;
    }
    let day: Day = "2024-03-05".parse().unwrap();
    compact_day(&world.table, day, &CompactOptions::default())
        .await
        .unwrap();
    let second = hours()[1];
    commit(&world, second, 2, batch(second, 5000, 120)).await;
    let state = snapshot::load(&world.table).await.unwrap().unwrap();
    let of = |hour: Hour| -> u64 {
        state
            .files
            .iter()
            .filter_map(|f| f.hours.get(&hour))
            .map(|s| s.rows)
            .sum()
    };
    assert_eq!(
        [of(hours()[0]), of(second), of(hours()[2])],
        [300, 120, 300]
    );
    let compacted: Vec<_> = state
        .files
        .iter()
        .filter(|f| f.compacted.is_some())
        .collect();
    assert_eq!(compacted.len(), 1);
    assert!(!compacted[0].holds(second));
    assert_eq!(compacted[0].rows, Some(600));
    let all = rows(&world).await;
    assert_eq!(all.len(), 720);
    assert_eq!(
        all.iter()
            .filter(|r| r.2 == format!("{second}.json.gz"))
            .count(),
        120
    );
    // Compacted again: one file with the hour's new generation.
    compact_day(&world.table, day, &CompactOptions::default())
        .await
        .unwrap();
    let state = snapshot::load(&world.table).await.unwrap().unwrap();
    assert_eq!(state.files.len(), 1);
    assert_eq!(
        state.files[0].hours[&second],
        HourShare {
            generation: 2,
            rows: 120
        }
    );
}

#[tokio::test]
async fn a_compaction_that_meets_a_newer_commit_of_the_day_does_not_land() {
    let world = world();
    let [first, second, _] = hours();
    commit(&world, first, 1, batch(first, 0, 50)).await;
    let state = snapshot::load(&world.table).await.unwrap().unwrap();
    let day = first.date();
    let inputs = state.files.clone();
    let written = sort::rewrite_sorted(
        &world.table,
        day,
        "stale",
        &inputs,
        &CompactOptions::default(),
    )
    .await
    .unwrap();
    // A transform commits to the day after the compaction read it.
    commit(&world, second, 1, batch(second, 100, 50)).await;
    let landed = super::commit(&world.table, state.version, day, "stale", &inputs, &written)
        .await
        .unwrap();
    assert_eq!(landed, None, "the day changed: the compaction starts again");
    assert_eq!(rows(&world).await.len(), 100);
}

#[test]
fn hours_tags_round_trip_and_source_files_name_hours() {
    let hour: Hour = "2024-03-05-14".parse().unwrap();
    let hours = BTreeMap::from([(
        hour,
        HourShare {
            generation: 3,
            rows: 40_000,
        },
    )]);
    let tag = hours_tag(&hours);
    assert_eq!(tag, r#"{"2024-03-05-14":{"generation":3,"rows":40000}}"#);
    assert_eq!(parse_hours(&tag), hours);
    assert!(parse_hours("not json").is_empty());
    assert_eq!(source_hour("2024-03-05-14.json.gz"), Some(hour));
    assert_eq!(
        source_hour("sources/mirror/2024-03-05-14.json.gz"),
        Some(hour)
    );
    assert_eq!(source_hour("2024-03-05-14.json.zst"), Some(hour));
    assert_eq!(source_hour("part-2024-03-05-14.parquet"), None);
    assert!(is_compacted_name(
        "compact-2024-03-05-0000-ab.snappy.parquet"
    ));
    assert!(!is_compacted_name(
        "part-2024-03-05-14-0000-ab.snappy.parquet"
    ));
}

#[test]
fn a_commit_touches_a_day_by_its_files_paths() {
    let partition = "year=2024/month=03/dayofmonth=05/";
    let add = json!({"add": {"path": "year=2024/month=03/dayofmonth=05/part-x.parquet"}});
    let other = json!({"remove": {"path": "year=2024/month=03/dayofmonth=06/part-x.parquet"}});
    assert!(touches(&[add], partition));
    assert!(!touches(
        &[other, json!({"txn": {"appId": "x"}})],
        partition
    ));
}
