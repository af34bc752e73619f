//! Finding and opening an hour's raw files in the raw store: the first source's
//! (`RAW_PREFIX/HOUR.json.gz`) and each mirror's (`RAW_PREFIX/sources/NAME/HOUR.json.gz`), so
//! that the transform of the hour, whichever file's arrival started it, commits their union.

use std::sync::Arc;

use events::commits::SourceVersion;
use events::sources::{source_prefix, RawKey, MIRRORS_FOLDER};
use events::{Compression, Hour};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::{RawFile, RawHour};

/// One source's file of an hour, as listed.
#[derive(Debug, Clone)]
pub struct HourFile {
    pub key: RawKey,
    pub meta: ObjectMeta,
}

/// The hour's raw files in `store` below `raw_prefix`: the first source's, then the mirrors' in
/// name order (the first file holding an `event_id` wins it). Where a source holds the hour in
/// two compressions, the newer upload is taken.
pub async fn find(
    store: &dyn ObjectStore,
    raw_prefix: &str,
    hour: Hour,
) -> anyhow::Result<Vec<HourFile>> {
    let folders = source_folders(store, raw_prefix).await?;
    find_in(store, raw_prefix, &folders, hour).await
}

/// The folders of every source's raw files: the first source's (the raw prefix), then each
/// mirror's below `sources/`, in name order. One listing, for as many hours as need it.
pub async fn source_folders(
    store: &dyn ObjectStore,
    raw_prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let mirrors = Path::from(format!("{raw_prefix}{MIRRORS_FOLDER}"));
    let listed = match store.list_with_delimiter(Some(&mirrors)).await {
        Ok(listed) => listed.common_prefixes,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("listing the sources below {mirrors}"))
            )
        }
    };
    let mut names: Vec<String> = listed
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect();
    names.sort();
    let mut folders = vec![source_prefix(raw_prefix, None)];
    folders.extend(names.iter().map(|n| source_prefix(raw_prefix, Some(n))));
    Ok(folders)
}

/// [`find`] in `folders` as [`source_folders`] gave them.
pub async fn find_in(
    store: &dyn ObjectStore,
    raw_prefix: &str,
    folders: &[String],
    hour: Hour,
) -> anyhow::Result<Vec<HourFile>> {
    let mut files = Vec::new();
    for folder in folders {
        if let Some(file) = newest_in(store, raw_prefix, folder, hour).await? {
            files.push(file);
        }
    }
    Ok(files)
}

/// The newest of the hour's files (`HOUR.json.gz`, `.json.zst`, `.json`) directly in `folder`:
/// asked for by name, as a raw folder holds every hour of the archive.
async fn newest_in(
    store: &dyn ObjectStore,
    raw_prefix: &str,
    folder: &str,
    hour: Hour,
) -> anyhow::Result<Option<HourFile>> {
    let candidates = [Compression::Gzip, Compression::Zstd, Compression::None]
        .map(|compression| hour.raw_key(folder, compression));
    let heads = candidates.iter().map(|key| async move {
        match store.head(&Path::from(key.as_str())).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("looking for {key}"))),
        }
    });
    let mut newest: Option<HourFile> = None;
    for meta in futures::future::join_all(heads).await {
        let Some(meta) = meta? else { continue };
        let Ok(key) = RawKey::parse(raw_prefix, meta.location.as_ref()) else {
            continue;
        };
        if newest
            .as_ref()
            .is_none_or(|n| n.meta.last_modified < meta.last_modified)
        {
            newest = Some(HourFile { key, meta });
        }
    }
    Ok(newest)
}

/// Opens `files` (as [`find`] gave them) for the transform; `locate` gives a key's location as
/// the commit records it (`s3://bucket/key`, or a local path).
pub async fn open(
    store: Arc<dyn ObjectStore>,
    hour: Hour,
    files: &[HourFile],
    locate: &(dyn Fn(&str) -> String + Sync),
) -> anyhow::Result<RawHour> {
    anyhow::ensure!(
        !files.is_empty(),
        "no source's raw file of {hour} is in the raw store"
    );
    let mut opened = Vec::new();
    for file in files {
        let key = file.meta.location.to_string();
        let (body, meta) = adapters::objects::open_reader(store.clone(), &key).await?;
        opened.push(RawFile {
            source: file.key.source_file(),
            hour,
            body,
            progress: Arc::default(),
            version: SourceVersion {
                location: locate(&key),
                e_tag: meta.e_tag,
                version: meta.version,
                last_modified: Some(meta.last_modified),
                size: meta.size,
            },
        });
    }
    Ok(RawHour {
        hour,
        files: opened,
    })
}

/// Lists the store's files of the hour and opens them: what a transform of the hour reads.
pub async fn find_and_open(
    store: Arc<dyn ObjectStore>,
    raw_prefix: &str,
    hour: Hour,
    locate: &(dyn Fn(&str) -> String + Sync),
) -> anyhow::Result<RawHour> {
    let files = find(store.as_ref(), raw_prefix, hour).await?;
    open(store, hour, &files, locate).await
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;

    #[tokio::test]
    async fn the_first_source_comes_first_then_the_mirrors_by_name() {
        let store = InMemory::new();
        for key in [
            "raw/2024-03-05-1.json.gz",
            "raw/2024-03-05-10.json.gz",
            "raw/sources/zeta/2024-03-05-1.json.gz",
            "raw/sources/alpha/2024-03-05-1.json.gz",
            "raw/sources/alpha/+2024-3-05-1.json.gz",
            "raw/sources/beta/2024-03-05-2.json.gz",
            "raw/tmp/2024-03-05-1.json.gz",
        ] {
            store
                .put(&Path::from(key), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        let hour: Hour = "2024-03-05-1".parse().unwrap();
        let found = find(&store, "raw/", hour).await.unwrap();
        let names: Vec<String> = found.iter().map(|f| f.key.source_file()).collect();
        assert_eq!(
            names,
            [
                "2024-03-05-1.json.gz",
                "sources/alpha/2024-03-05-1.json.gz",
                "sources/zeta/2024-03-05-1.json.gz"
            ]
        );
        let none = find(&store, "raw/", "2024-03-05-3".parse().unwrap())
            .await
            .unwrap();
        assert!(none.is_empty());
    }
}
