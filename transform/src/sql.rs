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

/// Checks that `sql` plans against `raw_events`, without reading anything: every entry point
/// calls this before its first file, so a bad SQL fails at once with this message.
pub async fn validate(sql: &str) -> anyhow::Result<SchemaRef> {
    let (_, empty) =
        futures::channel::mpsc::channel::<Result<datafusion::arrow::record_batch::RecordBatch>>(1);
    let stream = Box::pin(RecordBatchStreamAdapter::new(raw_events_schema(), empty));
    let planned = execute(sql, stream).await.map_err(|e| {
        anyhow::Error::new(e).context("the transform SQL does not plan against raw_events")
    })?;
    Ok(planned.schema())
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
