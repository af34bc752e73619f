//! The curated lake as a Delta Lake table (`LAKE/ghactivity/` locally, `s3://CURATED/ghactivity/`
//! on AWS): the Parquet parts in their `year=/month=/dayofmonth=` folders, and `_delta_log/`
//! beside them saying which parts make the table at each version.
//!
//! Each hour's result is one commit ([`commit::commit_hour`]): it adds the run's parts and
//! removes the hour's earlier ones, and names the hour as an application transaction (`txn`,
//! `appId` = the hour, `version` = the commit's generation), so a reader sees the table before
//! or after, never a mix, and a run that lost its claim can never land over a newer one. The
//! commit's own info names the raw objects and the accounting. The log is written here with
//! conditional puts (`If-None-Match`, a hard link locally); reading it back, checkpoints,
//! vacuum and queries use delta-rs (`deltalake-core`).

pub mod commit;
pub mod compact;
pub mod layout;
pub mod log;
pub mod migrate;
pub mod reader;
pub mod schema;
pub mod snapshot;
pub mod stats;
pub mod upkeep;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use deltalake_core::logstore::{default_logstore, LogStoreRef, StorageConfig};
use deltalake_core::DeltaTable;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use url::Url;

/// The log's folder, under the table's prefix.
pub const LOG_FOLDER: &str = "_delta_log/";

/// The curated table: where it is, and the store its keys are read from.
#[derive(Clone, Debug)]
pub struct Table {
    /// The store the pipeline uses for the lake (a bucket, or the lake's folder).
    pub store: Arc<dyn ObjectStore>,
    /// The table's folder in `store`: `ghactivity/`.
    pub prefix: String,
    pub place: Place,
}

/// Where the store is, for readers that open the table by URL.
#[derive(Clone, Debug)]
pub enum Place {
    /// A local lake: `store` is rooted at this folder.
    Folder(PathBuf),
    /// An S3 bucket: `store` is the bucket.
    Bucket(String),
    /// A store of the process's own (tests): `memory:///`.
    Memory,
}

impl Table {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, place: Place) -> Table {
        let mut prefix = prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Table {
            store,
            prefix,
            place,
        }
    }

    /// The table's URL: `file:///…/lake/ghactivity/` or `s3://bucket/ghactivity/`.
    pub fn url(&self) -> anyhow::Result<Url> {
        let url = match &self.place {
            Place::Folder(dir) => {
                let dir = dir
                    .canonicalize()
                    .with_context(|| format!("finding the lake {}", dir.display()))?;
                Url::from_directory_path(dir.join(self.prefix.trim_end_matches('/')))
                    .map_err(|()| anyhow::anyhow!("{} is no absolute path", dir.display()))?
            }
            Place::Bucket(bucket) => Url::parse(&format!("s3://{bucket}/{}", self.prefix))
                .with_context(|| format!("the bucket name {bucket}"))?,
            Place::Memory => Url::parse(&format!("memory:///{}", self.prefix))?,
        };
        Ok(url)
    }

    /// The key of `relative` (a path inside the table) in `store`.
    pub fn key(&self, relative: &str) -> String {
        format!("{}{relative}", self.prefix)
    }

    /// The path inside the table of `key`, a key in `store` (`None` outside the table).
    pub fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())
    }

    /// delta-rs's view of the table's storage: the same store (for S3) or the file system.
    pub fn log_store(&self) -> anyhow::Result<LogStoreRef> {
        let url = self.url()?;
        let root: Arc<dyn ObjectStore> = match &self.place {
            Place::Folder(_) => Arc::new(object_store::local::LocalFileSystem::new()),
            Place::Bucket(_) | Place::Memory => self.store.clone(),
        };
        let inside = url.path().trim_matches('/').to_string();
        let prefixed: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(root.clone(), inside));
        Ok(default_logstore(
            prefixed,
            root,
            &url,
            &StorageConfig::default(),
        ))
    }

    /// The table as delta-rs loads it (its newest version), or `None` when it has no log yet.
    pub async fn open(&self) -> anyhow::Result<Option<DeltaTable>> {
        if log::latest_version(self).await?.is_none() {
            return Ok(None);
        }
        let url = self.url()?;
        let mut table = DeltaTable::new(self.log_store()?);
        table
            .load()
            .await
            .with_context(|| format!("loading the Delta table {url}"))?;
        Ok(Some(table))
    }

    /// Like [`Table::open`], but a table without a log is an error that says what to do.
    pub async fn open_existing(&self) -> anyhow::Result<DeltaTable> {
        match self.open().await? {
            Some(table) => Ok(table),
            None => anyhow::bail!(
                "no Delta table at {} (no {LOG_FOLDER}): transform an hour first, or run `elt migrate` on a lake of the older layout",
                self.url()?
            ),
        }
    }
}
