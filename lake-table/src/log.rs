//! The few log operations a commit needs, without loading the table: the newest version (one
//! GET of `_last_checkpoint` and one LIST from there), a version's actions, and a version
//! written only if it is not there yet.

use std::collections::BTreeMap;

use anyhow::Context;
use deltalake_core::arrow::array::{Array, AsArray, RecordBatch};
use deltalake_core::arrow::datatypes::Int64Type;
use deltalake_core::parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use deltalake_core::parquet::arrow::ProjectionMask;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde_json::Value;

use crate::{Table, LOG_FOLDER};

/// What became of a version's write.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    Written,
    /// Another writer's commit has that version.
    Taken,
}

/// `ghactivity/_delta_log/00000000000000000042.json`
pub fn commit_key(table: &Table, version: u64) -> String {
    table.key(&format!("{LOG_FOLDER}{version:020}.json"))
}

/// The table's newest version, or `None` when it has none yet.
pub async fn latest_version(table: &Table) -> anyhow::Result<Option<u64>> {
    let from = last_checkpoint(table).await?;
    let folder = Path::from(table.key(LOG_FOLDER));
    let offset = Path::from(table.key(&format!("{LOG_FOLDER}{:020}", from.unwrap_or(0))));
    let listed: Vec<_> = table
        .store
        .list_with_offset(Some(&folder), &offset)
        .try_collect()
        .await
        .with_context(|| format!("listing {folder}"))?;
    let newest = listed
        .iter()
        .filter_map(|meta| meta.location.filename().and_then(commit_version))
        .max();
    Ok(newest.or(from))
}

/// The version of a commit file's name (`00000000000000000042.json`).
pub fn commit_version(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Every application transaction of the table's newest version (`appId` → version): the newest
/// checkpoint's, then each commit's after it. Read in one pass, where delta-rs looks one up at a
/// time.
pub async fn transactions(table: &Table) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut txns = BTreeMap::new();
    let checkpoint = last_checkpoint(table).await?;
    if let Some(version) = checkpoint {
        let key = table.key(&format!("{LOG_FOLDER}{version:020}.checkpoint.parquet"));
        checkpoint_transactions(table, &key, &mut txns)
            .await
            .with_context(|| format!("reading the transactions of {key}"))?;
    }
    let Some(latest) = latest_version(table).await? else {
        return Ok(txns);
    };
    let first = checkpoint.map_or(0, |c| c + 1);
    for version in first..=latest {
        let Some(actions) = read_commit(table, version).await? else {
            continue;
        };
        for action in &actions {
            let Some(txn) = action.get("txn") else {
                continue;
            };
            if let (Some(app), Some(v)) = (
                txn.get("appId").and_then(Value::as_str),
                txn.get("version").and_then(Value::as_u64),
            ) {
                txns.insert(app.to_string(), v);
            }
        }
    }
    Ok(txns)
}

/// The `txn` rows of a checkpoint file.
async fn checkpoint_transactions(
    table: &Table,
    key: &str,
    txns: &mut BTreeMap<String, u64>,
) -> anyhow::Result<()> {
    let path = Path::from(key);
    let meta = table.store.head(&path).await?;
    let reader = crate::reader::PartReader::new(table.store.clone(), path, meta.size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let schema = builder.parquet_schema();
    let leaves: Vec<usize> = (0..schema.num_columns())
        .filter(|&i| {
            let column = schema.column(i);
            let parts = column.path().parts();
            parts.first().map(String::as_str) == Some("txn")
                && matches!(parts.get(1).map(String::as_str), Some("appId" | "version"))
        })
        .collect();
    let mask = ProjectionMask::leaves(schema, leaves);
    let batches: Vec<RecordBatch> = builder.with_projection(mask).build()?.try_collect().await?;
    for batch in batches {
        let Some(txn) = batch.column_by_name("txn").and_then(|c| c.as_struct_opt()) else {
            continue;
        };
        let (Some(apps), Some(versions)) = (
            txn.column_by_name("appId")
                .and_then(|c| c.as_string_opt::<i32>()),
            txn.column_by_name("version")
                .and_then(|c| c.as_primitive_opt::<Int64Type>()),
        ) else {
            continue;
        };
        for row in (0..txn.len()).filter(|&r| txn.is_valid(r) && apps.is_valid(r)) {
            if let Ok(version) = u64::try_from(versions.value(row)) {
                txns.insert(apps.value(row).to_string(), version);
            }
        }
    }
    Ok(())
}

/// The version `_last_checkpoint` names, if there is one.
async fn last_checkpoint(table: &Table) -> anyhow::Result<Option<u64>> {
    let path = Path::from(table.key(&format!("{LOG_FOLDER}_last_checkpoint")));
    let bytes = match table.store.get(&path).await {
        Ok(found) => found.bytes().await,
        Err(e) => Err(e),
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(anyhow::Error::from(e).context(format!("reading {path}"))),
    };
    let value: Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{path} is not JSON"))?;
    Ok(value.get("version").and_then(Value::as_u64))
}

/// The actions of `version`, or `None` when it is not there (or cleaned up).
pub async fn read_commit(table: &Table, version: u64) -> anyhow::Result<Option<Vec<Value>>> {
    let key = commit_key(table, version);
    let read = match table.store.get(&Path::from(key.as_str())).await {
        Ok(found) => found.bytes().await,
        Err(e) => Err(e),
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(anyhow::Error::from(e).context(format!("reading {key}"))),
    };
    let actions = bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(serde_json::from_slice)
        .collect::<Result<Vec<Value>, _>>()
        .with_context(|| format!("{key} is not a Delta commit (JSON lines)"))?;
    Ok(Some(actions))
}

/// Writes `version` unless a commit already has it.
pub async fn put_commit(table: &Table, version: u64, actions: &[Value]) -> anyhow::Result<Put> {
    let mut body = String::new();
    for action in actions {
        body.push_str(&serde_json::to_string(action)?);
        body.push('\n');
    }
    let key = commit_key(table, version);
    let options = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match table
        .store
        .put_opts(&Path::from(key.as_str()), PutPayload::from(body), options)
        .await
    {
        Ok(_) => Ok(Put::Written),
        Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => Ok(Put::Taken),
        Err(e) => Err(anyhow::Error::from(e).context(format!("writing {key}"))),
    }
}

/// The application transaction of `app_id` in a commit's actions: its version.
pub fn txn_version(actions: &[Value], app_id: &str) -> Option<u64> {
    actions.iter().find_map(|action| {
        let txn = action.get("txn")?;
        (txn.get("appId")?.as_str()? == app_id)
            .then(|| txn.get("version")?.as_u64())
            .flatten()
    })
}

/// The commit info's field `field` (ours are under `ghElt`).
pub fn commit_info<'a>(actions: &'a [Value], field: &str) -> Option<&'a Value> {
    actions
        .iter()
        .find_map(|action| action.get("commitInfo"))
        .and_then(|info| info.get(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_versions_are_read_from_names() {
        assert_eq!(commit_version("00000000000000000042.json"), Some(42));
        assert_eq!(
            commit_version("00000000000000000042.checkpoint.parquet"),
            None
        );
        assert_eq!(commit_version("_last_checkpoint"), None);
        assert_eq!(commit_version("42.json"), None);
        assert_eq!(commit_version("0000000000000000004x.json"), None);
    }

    #[test]
    fn txn_of_an_app_id() {
        let actions: Vec<Value> = vec![
            serde_json::json!({"commitInfo": {"ghElt": {"run_id": "r1"}}}),
            serde_json::json!({"txn": {"appId": "2024-03-05-14", "version": 3}}),
        ];
        assert_eq!(txn_version(&actions, "2024-03-05-14"), Some(3));
        assert_eq!(txn_version(&actions, "2024-03-05-15"), None);
        assert_eq!(
            commit_info(&actions, "ghElt").and_then(|g| g.get("run_id")),
            Some(&serde_json::json!("r1"))
        );
    }
}
