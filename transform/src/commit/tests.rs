//! The commit's rules through the engine, on an in-memory object store and the SQLite commit
//! store: one whole result per hour, a run again of the same upload writes the same bytes (under
//! its own run's names), an older upload gives way, a newer one replaces the parts the table
//! held, and nothing stays staged.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use events::commits::{commit_key, CommitState, SourceVersion};
use events::{Hour, TransformSummary};
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::{transform, Lake, RawFile, TransformOptions};

const REAL_EVENTS: &str = include_str!("../../../fixtures/real-events.jsonl");

struct World {
    lake: Lake,
    options: TransformOptions,
    _state: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let state = tempfile::tempdir().unwrap();
        let commits = adapters::SqliteJobStore::open(&state.path().join("state.sqlite")).unwrap();
        World {
            lake: Lake {
                store: Arc::new(InMemory::new()),
                commits: Arc::new(commits),
                place: lake_table::Place::Memory,
            },
            options: TransformOptions::default(),
            _state: state,
        }
    }

    /// Transforms the first `events` real events as upload `e_tag` of the hour, made at `made`.
    async fn run(&self, events: usize, e_tag: &str, made: DateTime<Utc>) -> TransformSummary {
        let text: String = REAL_EVENTS
            .lines()
            .take(events)
            .map(|l| format!("{l}\n"))
            .collect();
        let size = text.len() as u64;
        let file = RawFile {
            source: "2024-03-05-14.json".into(),
            hour: hour(),
            body: Box::new(std::io::Cursor::new(text.into_bytes())),
            progress: Arc::default(),
            version: SourceVersion {
                location: "memory:///landing/ghactivity/2024-03-05-14.json".into(),
                e_tag: Some(e_tag.into()),
                version: None,
                last_modified: Some(made),
                size,
            },
        };
        transform(file.into(), &self.lake, &self.options)
            .await
            .unwrap()
    }

    async fn keys(&self) -> BTreeSet<String> {
        let listed: Vec<_> = self.lake.store.list(None).try_collect().await.unwrap();
        listed.into_iter().map(|m| m.location.to_string()).collect()
    }

    /// The table's parts by their slot (without the run in the name) and their bytes.
    async fn contents(&self) -> Vec<(String, Vec<u8>)> {
        let mut contents = Vec::new();
        for key in self.table().await {
            let path = object_store::path::Path::from(key.as_str());
            let result = self.lake.store.get(&path).await.unwrap();
            let bytes = result.bytes().await.unwrap().to_vec();
            let (folder, name) = key.rsplit_once('/').unwrap();
            contents.push((
                format!("{folder}/{}", events::part_slot(name).unwrap()),
                bytes,
            ));
        }
        contents
    }

    /// What a reader of the table sees: the parts its newest version references.
    async fn table(&self) -> BTreeSet<String> {
        let keys = self.keys().await;
        assert!(
            keys.iter().all(|k| !k.starts_with("_staging/")),
            "staged objects left: {keys:?}"
        );
        let table = self.lake.table(&self.options.curated_prefix);
        let state = lake_table::snapshot::load(&table).await.unwrap().unwrap();
        state.files.into_iter().map(|f| f.key).collect()
    }
}

fn hour() -> Hour {
    "2024-03-05-14".parse().unwrap()
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 5, hour, 0, 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_commits_the_whole_hour_and_records_it() {
    let world = World::new();
    let summary = world.run(40, "a", at(15)).await;
    assert_eq!((summary.generation, summary.superseded.clone()), (1, None));
    assert_eq!((summary.records, summary.rows), (40, 40));
    let table = world.table().await;
    assert_eq!(table, summary.outputs.iter().cloned().collect());

    let key = commit_key(&world.options.curated_prefix, hour());
    let record = world.lake.commits.get_commit(&key).await.unwrap().unwrap();
    assert_eq!(record.state, CommitState::Committed);
    assert_eq!(record.parts, summary.outputs);
    assert_eq!(record.source.e_tag.as_deref(), Some("a"));
    assert_eq!((record.counts.records, record.counts.rows), (40, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_again_of_the_same_upload_writes_the_same_bytes_under_the_same_keys() {
    let world = World::new();
    let first = world.run(40, "a", at(15)).await;
    let before = world.contents().await;
    let again = world.run(40, "a", at(15)).await;
    assert_eq!((again.generation, again.superseded.clone()), (2, None));
    assert_eq!(again.outputs.len(), first.outputs.len());
    assert_eq!(world.contents().await, before);
    // The first run's event-id list went with its record: one list stands.
    let lists = world.keys().await;
    assert_eq!(
        lists.iter().filter(|k| k.starts_with("_commits/")).count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_upload_replaces_the_parts_and_an_older_one_gives_up() {
    let world = World::new();
    let first = world.run(40, "a", at(15)).await;
    let newer = world.run(10, "b", at(16)).await;
    assert_eq!((newer.generation, newer.rows), (2, 10), "{newer:?}");
    // Only the newer upload's parts stand: parts of the first that it does not name are gone.
    let table = world.table().await;
    assert_eq!(table, newer.outputs.iter().cloned().collect());
    assert!(first.outputs.len() > newer.outputs.len());

    let before = world.keys().await;
    let older = world.run(40, "a", at(15)).await;
    assert!(older.superseded.is_some(), "{older:?}");
    assert_eq!(world.keys().await, before, "it wrote nothing");
}
