//! Committing a transformed file: its staged objects moved into place, then what an earlier run
//! of the same hour left and this run did not write removed, and the hour's record of its parts
//! written.
//!
//! The order makes a crash at any point safe: until the record is written, the previous record
//! still names every part the previous run wrote, so the next run of the hour finds them.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use anyhow::Context;
use events::{Hour, HourOutputs};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::parts::Staged;
use crate::TransformOptions;

/// Moves the staged objects into place, removes the stale ones, records the parts; returns the
/// parts' keys.
///
/// Stale are the parts of this hour that this run did not write: those the hour's previous
/// record names, wherever they are, and those found in the partitions this run wrote and in the
/// days either side of the hour's name (where a file's rows fall: the day before for late
/// events, the day after for a Pacific-named 2012–2014 file; this also finds parts written before
/// there were records). And the quarantine, when this run rejected nothing.
pub(crate) async fn commit(
    store: &Arc<dyn ObjectStore>,
    source: &str,
    hour: Hour,
    options: &TransformOptions,
    parts: &[Staged],
    quarantine: Option<&Staged>,
) -> anyhow::Result<Vec<String>> {
    for staged in parts.iter().chain(quarantine) {
        store
            .rename(&staged.staging, &staged.target)
            .await
            .with_context(|| format!("moving {} into place", staged.target))?;
    }
    let record = Path::from(hour.outputs_key(&options.curated_prefix));
    for path in stale_parts(store, hour, options, parts, &record).await? {
        delete_if_present(store, &path)
            .await
            .with_context(|| format!("removing stale part {path}"))?;
    }
    if quarantine.is_none() {
        let old = Path::from(hour.rejects_key(&options.rejects_prefix));
        delete_if_present(store, &old)
            .await
            .with_context(|| format!("removing stale quarantine {old}"))?;
    }
    let outputs = HourOutputs {
        source: source.to_string(),
        parts: parts.iter().map(|p| p.target.to_string()).collect(),
    };
    let json = serde_json::to_vec(&outputs)?;
    store
        .put(&record, PutPayload::from(json))
        .await
        .with_context(|| format!("writing {record}"))?;
    Ok(outputs.parts)
}

/// The parts of `hour` that this run did not write (see [`commit`]).
async fn stale_parts(
    store: &Arc<dyn ObjectStore>,
    hour: Hour,
    options: &TransformOptions,
    parts: &[Staged],
    record: &Path,
) -> anyhow::Result<BTreeSet<Path>> {
    let written: HashSet<&Path> = parts.iter().map(|p| &p.target).collect();
    let mut stale: BTreeSet<Path> = previous_parts(store, record)
        .await?
        .into_iter()
        .filter(|p| !written.contains(p))
        .collect();
    let day = hour.date();
    let mut partitions: BTreeSet<String> = [day.previous(), day, day.next()]
        .iter()
        .map(|d| d.partition_prefix(&options.curated_prefix))
        .collect();
    partitions.extend(parts.iter().filter_map(|p| {
        let key = p.target.as_ref();
        key.rsplit_once('/').map(|(folder, _)| format!("{folder}/"))
    }));
    for partition in partitions {
        let partition = Path::from(partition);
        let found: Vec<Path> = store
            .list(Some(&partition))
            .try_filter_map(|meta| {
                let name = meta.location.filename().unwrap_or_default();
                let is_stale = hour.part_index(name).is_some() && !written.contains(&meta.location);
                async move { Ok(is_stale.then_some(meta.location)) }
            })
            .try_collect()
            .await
            .with_context(|| format!("listing {partition}"))?;
        stale.extend(found);
    }
    Ok(stale)
}

/// The parts the hour's record names, or none when there is no record. A record that cannot be
/// read is logged and passed over: the partitions listed still find what is near the hour.
async fn previous_parts(store: &Arc<dyn ObjectStore>, record: &Path) -> anyhow::Result<Vec<Path>> {
    let bytes = match store.get(record).await {
        Ok(found) => found.bytes().await,
        Err(e) => Err(e),
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::Error::from(e).context(format!("reading {record}"))),
    };
    match serde_json::from_slice::<HourOutputs>(&bytes) {
        Ok(previous) => Ok(previous.parts.into_iter().map(Path::from).collect()),
        Err(error) => {
            tracing::warn!(%record, %error, "the hour's record of its parts is not readable; passed over");
            Ok(Vec::new())
        }
    }
}

async fn delete_if_present(store: &Arc<dyn ObjectStore>, path: &Path) -> object_store::Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Best-effort removal of staged objects after a failure; the failure itself is what is reported.
pub(crate) async fn discard(store: &Arc<dyn ObjectStore>, staged: &[Staged]) {
    for s in staged {
        if let Err(error) = store.delete(&s.staging).await {
            tracing::warn!(path = %s.staging, %error, "could not remove a staged object");
        }
    }
}
