//! The SQL stage: DataFusion reads `raw_events` as a stream and the transform SQL shapes it.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use hashbrown::HashSet;

use crate::schema::raw_events_schema;

/// The built-in transform: `transform/sql/ghactivity.sql`.
pub const BUILTIN_SQL: &str = include_str!("../sql/ghactivity.sql");

/// Plans `sql` over `raw_events` fed by `input`, and starts it.
///
/// One partition and one thread: the SQL is cheap projections over a stream whose order matters
/// (first occurrence wins), and the cores are busy decompressing, parsing and encoding. Batches
/// of 2048 rows (about 7 MB of GHArchive events) keep the few batches alive between the operators
/// and the encoder small.
pub(crate) async fn execute(
    sql: &str,
    input: SendableRecordBatchStream,
) -> Result<SendableRecordBatchStream> {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(2048);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_udf(ScalarUDF::from(FirstSeen::new()));
    let source = Arc::new(OneShot {
        schema: raw_events_schema(),
        stream: Mutex::new(Some(input)),
    });
    ctx.register_table(
        "raw_events",
        Arc::new(StreamingTable::try_new(raw_events_schema(), vec![source])?),
    )?;
    let read_only = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx.sql_with_options(sql, read_only).await?;
    frame.execute_stream().await
}

/// The transform SQL, known to plan against `raw_events`: the engine takes only this, so a bad
/// SQL fails once, before the first file, wherever the transform runs.
#[derive(Clone, Debug)]
pub struct TransformSql {
    text: Arc<str>,
}

impl TransformSql {
    /// Plans `text` against `raw_events` without reading anything.
    pub async fn prepare(text: impl Into<Arc<str>>) -> anyhow::Result<TransformSql> {
        let text = text.into();
        let (_, empty) = futures::channel::mpsc::channel::<
            Result<datafusion::arrow::record_batch::RecordBatch>,
        >(1);
        let stream = Box::pin(RecordBatchStreamAdapter::new(raw_events_schema(), empty));
        execute(&text, stream).await.map_err(|e| {
            anyhow::Error::new(e).context("the transform SQL does not plan against raw_events")
        })?;
        Ok(TransformSql { text })
    }

    /// Reads and prepares the SQL in `path`.
    pub async fn from_file(path: &std::path::Path) -> anyhow::Result<TransformSql> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading the SQL file {}: {e}", path.display()))?;
        TransformSql::prepare(text).await
    }

    /// `transform/sql/ghactivity.sql` (its test below prepares it).
    pub fn builtin() -> TransformSql {
        TransformSql {
            text: Arc::from(BUILTIN_SQL),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// `raw_events` as a table that can be scanned once: the stream of the file being transformed.
struct OneShot {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("raw_events (one-shot stream)")
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        match self.stream.lock().ok().and_then(|mut s| s.take()) {
            Some(stream) => stream,
            None => {
                let error = DataFusionError::Execution(
                    "raw_events can be scanned only once per file".into(),
                );
                Box::pin(RecordBatchStreamAdapter::new(
                    self.schema.clone(),
                    futures::stream::once(async { Err(error) }),
                ))
            }
        }
    }
}

/// `first_seen(id)`: true the first time an id is seen in this file, false after. It keeps the
/// dedupe streaming: the set of ids seen (8 bytes each) is all it holds, never the rows.
#[derive(Debug)]
struct FirstSeen {
    signature: Signature,
    seen: Mutex<HashSet<i64>>,
}

impl FirstSeen {
    fn new() -> FirstSeen {
        FirstSeen {
            signature: Signature::exact(vec![DataType::Int64], Volatility::Volatile),
            seen: Mutex::new(HashSet::with_capacity(1 << 18)),
        }
    }
}

// Each file gets its own instance: identity is the instance.
impl PartialEq for FirstSeen {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for FirstSeen {}
impl Hash for FirstSeen {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(self, state)
    }
}

impl ScalarUDFImpl for FirstSeen {
    fn name(&self) -> &str {
        "first_seen"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ids = args.args[0].to_array(args.number_rows)?;
        let ids = ids.as_primitive::<Int64Type>();
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| DataFusionError::Execution("first_seen: lock poisoned".into()))?;
        let firsts: BooleanArray = (0..ids.len())
            .map(|i| Some(ids.is_valid(i) && seen.insert(ids.value(i))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(firsts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_builtin_sql_plans() {
        let prepared = TransformSql::prepare(BUILTIN_SQL).await.unwrap();
        assert_eq!(prepared.text(), TransformSql::builtin().text());
    }

    #[tokio::test]
    async fn a_sql_that_does_not_plan_is_refused_with_the_reason() {
        let error = TransformSql::prepare("SELECT no_such_column FROM raw_events")
            .await
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("does not plan against raw_events"),
            "{message}"
        );
        assert!(message.contains("no_such_column"), "{message}");
    }
}
