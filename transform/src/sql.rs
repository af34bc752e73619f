//! The SQL stage: DataFusion reads `raw_events` as a stream and the transform SQL shapes it.

use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};

use crate::functions::{EagerCoalesce, FirstSeen, FIRST_SEEN};
use crate::schema::raw_events_schema;

/// The built-in transform: `transform/sql/ghactivity.sql`.
pub const BUILTIN_SQL: &str = include_str!("../sql/ghactivity.sql");

/// Plans `sql` over `raw_events` fed by `input`, and starts it. Where the engine drops later
/// occurrences ahead, `first_seen` is told its input holds each id once.
pub(crate) async fn execute(
    sql: &TransformSql,
    input: SendableRecordBatchStream,
) -> Result<SendableRecordBatchStream> {
    let first_seen = if sql.dedupes_ahead {
        FirstSeen::over_unique_ids()
    } else {
        FirstSeen::new()
    };
    plan(&sql.text, input, first_seen)
        .await?
        .execute_stream()
        .await
}

/// Plans `sql` over `raw_events` fed by `input`.
///
/// One partition and one thread: the SQL is cheap projections over a stream whose order matters
/// (first occurrence wins), and the cores are busy decompressing, parsing and encoding. The batch
/// size is small on purpose: a filter hands on batches of more than half of it untouched, and
/// gathers smaller ones into new ones of that size, copying them. The parsers' batches (a 1 MiB
/// chunk, some 250 of today's events) thus go through as they are, and only the short runs
/// between duplicates dropped ahead (see [`TransformSql::dedupes_ahead`]) are gathered.
async fn plan(
    sql: &str,
    input: SendableRecordBatchStream,
    first_seen: FirstSeen,
) -> Result<DataFrame> {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(64);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_udf(ScalarUDF::from(first_seen));
    ctx.register_udf(ScalarUDF::from(EagerCoalesce::new()));
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
    ctx.sql_with_options(sql, read_only).await
}

/// The transform SQL, known to plan against `raw_events`: the engine takes only this, so a bad
/// SQL fails once, before the first file, wherever the transform runs.
#[derive(Clone, Debug)]
pub struct TransformSql {
    text: Arc<str>,
    dedupes_ahead: bool,
}

impl TransformSql {
    /// Plans `text` against `raw_events` without reading anything.
    pub async fn prepare(text: impl Into<Arc<str>>) -> anyhow::Result<TransformSql> {
        let text = text.into();
        let (_, empty) = futures::channel::mpsc::channel::<
            Result<datafusion::arrow::record_batch::RecordBatch>,
        >(1);
        let stream = Box::pin(RecordBatchStreamAdapter::new(raw_events_schema(), empty));
        let planned = async {
            let frame = plan(&text, stream, FirstSeen::new()).await?;
            let dedupes_ahead = filters_first_seen_of_id_only(frame.logical_plan())?;
            frame.execute_stream().await?;
            Ok::<_, DataFusionError>(dedupes_ahead)
        };
        let dedupes_ahead = planned.await.map_err(|e| {
            anyhow::Error::new(e).context("the transform SQL does not plan against raw_events")
        })?;
        Ok(TransformSql {
            text,
            dedupes_ahead,
        })
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
            dedupes_ahead: true,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the engine may drop the later occurrences of an id before the SQL sees them: true
    /// when the SQL's one use of `first_seen` is `WHERE first_seen(id)` straight over
    /// `raw_events`, which then keeps every row it is given. The result is the same, and the
    /// rows kept go on as slices of the parsers' batches instead of being copied by the filter.
    pub fn dedupes_ahead(&self) -> bool {
        self.dedupes_ahead
    }
}

/// Whether `plan` calls `first_seen` once, as the whole predicate of a filter straight over the
/// `raw_events` scan, on its `id` column.
fn filters_first_seen_of_id_only(plan: &LogicalPlan) -> Result<bool> {
    let (mut calls, mut straight) = (0, false);
    plan.apply(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if matches!(e, Expr::ScalarFunction(f) if f.name() == FIRST_SEEN) {
                    calls += 1;
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        if let LogicalPlan::Filter(filter) = node {
            let over_raw_events = matches!(filter.input.as_ref(),
                LogicalPlan::TableScan(scan) if scan.table_name.table() == "raw_events");
            let of_id = matches!(&filter.predicate, Expr::ScalarFunction(f)
                if f.name() == FIRST_SEEN
                    && matches!(f.args.as_slice(), [Expr::Column(c)] if c.name == "id"));
            straight |= over_raw_events && of_id;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(calls == 1 && straight)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_builtin_sql_plans() {
        let prepared = TransformSql::prepare(BUILTIN_SQL).await.unwrap();
        assert_eq!(prepared.text(), TransformSql::builtin().text());
        assert!(prepared.dedupes_ahead() && TransformSql::builtin().dedupes_ahead());
    }

    /// Duplicates are dropped ahead of the SQL only where the SQL itself would drop exactly them.
    #[tokio::test]
    async fn duplicates_are_dropped_ahead_only_for_a_plain_first_seen_of_id() {
        let cases = [
            ("SELECT id, type FROM raw_events WHERE first_seen(id)", true),
            ("SELECT id FROM raw_events", false),
            ("SELECT id FROM raw_events WHERE first_seen(id) AND type = 'PushEvent'", false),
            ("SELECT id FROM raw_events WHERE type = 'PushEvent' AND first_seen(id)", false),
            ("SELECT id, first_seen(id) AS first FROM raw_events", false),
            ("SELECT id FROM raw_events WHERE first_seen(actor.id)", false),
            ("SELECT id FROM raw_events WHERE first_seen(id) AND first_seen(repo.id)", false),
            (
                "SELECT id FROM (SELECT * FROM raw_events WHERE type = 'PushEvent') e WHERE first_seen(id)",
                false,
            ),
        ];
        for (sql, ahead) in cases {
            let prepared = TransformSql::prepare(sql).await.unwrap();
            assert_eq!(prepared.dedupes_ahead(), ahead, "{sql}");
        }
    }

    /// Rows with ids 1, 1 and 2, through `sql` as prepared.
    async fn ids_out_of(sql: &str) -> Vec<i64> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Int64Type;
        use futures::TryStreamExt;

        let line = |id: u64| {
            format!(
                r#"{{"id":"{id}","type":"PushEvent","created_at":"2024-03-05T14:00:01Z","payload":{{}}}}"#
            )
        };
        let chunk = crate::input::Chunk {
            seq: 0,
            source: 0,
            first_line: 1,
            data: format!("{}\n{}\n{}\n", line(1), line(1), line(2)).into_bytes(),
        };
        let mut parser = crate::parse::ChunkParser::new("f".into(), 1 << 20).unwrap();
        let batch = parser.parse(&chunk).unwrap().batch;
        let input = futures::stream::iter([Ok(batch)]);
        let input = Box::pin(RecordBatchStreamAdapter::new(raw_events_schema(), input));
        let prepared = TransformSql::prepare(sql).await.unwrap();
        let batches: Vec<_> = execute(&prepared, input)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    /// Where the engine drops later occurrences ahead, `first_seen` trusts it and keeps no set of
    /// its own; elsewhere it drops them itself.
    #[tokio::test]
    async fn first_seen_remembers_ids_only_where_the_engine_does_not() {
        assert_eq!(
            ids_out_of("SELECT id FROM raw_events WHERE first_seen(id)").await,
            [1, 1, 2],
            "the engine's stream holds each id once: the SQL is not asked again"
        );
        assert_eq!(
            ids_out_of("SELECT id FROM raw_events WHERE first_seen(id) AND public IS NULL").await,
            [1, 2]
        );
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
