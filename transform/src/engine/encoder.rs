//! Stages 3 and 4: the transform SQL over `raw_events` (on the async runtime), and the Parquet
//! encoder on a thread of its own, staging parts as they fill.

use anyhow::Context;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::join;
use crate::input::ReadStats;
use crate::parts::{Encoded, PartWriter, Staged, Target};
use crate::sql::TransformSql;

/// What the SQL and the encoder came to. Both are reported: the SQL's error is the cause when
/// the encoder only stopped for want of input, and the encoder's when the SQL stopped for want
/// of a consumer.
pub(super) struct SqlAndParts {
    pub sql: anyhow::Result<()>,
    pub encoded: anyhow::Result<Encoded>,
    /// The parts staged before a failure, for clean-up.
    pub staged_so_far: Vec<Staged>,
}

/// Runs `sql` over `raw_events` and encodes its output into parts under `target`'s staging.
/// An error here (planning, or a thread that would not start or join) stages nothing.
pub(super) async fn run(
    sql: &TransformSql,
    raw_events: SendableRecordBatchStream,
    target: Target,
    max_part_bytes: u64,
    sources: &[String],
) -> anyhow::Result<SqlAndParts> {
    let mut output = crate::sql::execute(sql, raw_events)
        .await
        .context("running the transform SQL")?;
    let (batch_tx, mut batch_rx) = mpsc::channel::<RecordBatch>(1);
    let mut writer = PartWriter::new(target, output.schema(), max_part_bytes, sources);
    let encoder = std::thread::Builder::new()
        .name("gh-elt-encoder".into())
        .spawn(move || {
            while let Some(batch) = batch_rx.blocking_recv() {
                if let Err(e) = writer.write(&batch) {
                    return (Err(e), writer.staged().to_vec());
                }
            }
            let staged = writer.staged().to_vec();
            (writer.finish(), staged)
        })?;
    let mut sql_result = Ok(());
    while let Some(batch) = output.next().await {
        match batch {
            Ok(batch) => {
                if batch_tx.send(batch).await.is_err() {
                    break; // the encoder failed: its error is reported with the result
                }
            }
            Err(e) => {
                sql_result = Err(anyhow::Error::from(e));
                break;
            }
        }
    }
    drop((batch_tx, output));
    let (encoded, staged_so_far) = join(encoder).await?;
    Ok(SqlAndParts {
        sql: sql_result,
        encoded,
        staged_so_far,
    })
}

impl SqlAndParts {
    /// The read and the parts, or the first error with everything staged, for clean-up. The
    /// reader's error comes first: a truncated file also starves the SQL.
    pub fn settle(
        self,
        read: anyhow::Result<ReadStats>,
    ) -> Result<(ReadStats, Encoded), (anyhow::Error, Vec<Staged>)> {
        // When encoding finished, its list includes the last part.
        let staged = match &self.encoded {
            Ok(done) => done.parts.clone(),
            Err(_) => self.staged_so_far,
        };
        let checked = (|| {
            let read = read?;
            self.sql?;
            Ok::<_, anyhow::Error>((read, self.encoded?))
        })();
        checked.map_err(|e| (e, staged))
    }
}
