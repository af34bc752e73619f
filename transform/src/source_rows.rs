//! Rows of an hour's result per source: counted from the output's `source_file` as the rows are
//! written, so a row dropped by the SQL or held by a neighbouring hour is not counted.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

/// The output column the sources are told apart by.
const SOURCE_COLUMN: &str = "source_file";

pub(crate) struct SourceRows {
    names: Vec<String>,
    column: Option<usize>,
    rows: Vec<u64>,
}

impl SourceRows {
    /// Counts for `names` (the hour's files, by place) in output of `schema`. With one source
    /// every row is its; without a `source_file` column (a user's SQL may drop it) several
    /// sources' rows cannot be told apart, and none are counted.
    pub fn new(names: &[String], schema: &SchemaRef) -> SourceRows {
        SourceRows {
            names: names.to_vec(),
            column: schema.index_of(SOURCE_COLUMN).ok(),
            rows: vec![0; names.len()],
        }
    }

    pub fn add(&mut self, batch: &RecordBatch) {
        if self.names.len() == 1 {
            self.rows[0] += batch.num_rows() as u64;
            return;
        }
        let Some(column) = self.column.map(|c| batch.column(c)) else {
            return;
        };
        let mut last = 0;
        let mut count = |value: &str| {
            if self.names.get(last).map(String::as_str) != Some(value) {
                match self.names.iter().position(|n| n == value) {
                    Some(found) => last = found,
                    None => return,
                }
            }
            self.rows[last] += 1;
        };
        if let Some(values) = column.as_string_opt::<i32>() {
            values.iter().flatten().for_each(&mut count);
        } else if let Some(values) = column.as_string_view_opt() {
            values.iter().flatten().for_each(&mut count);
        } else if let Some(values) = column.as_string_opt::<i64>() {
            values.iter().flatten().for_each(&mut count);
        }
    }

    /// Rows per source, in the sources' order.
    pub fn finish(self) -> Vec<u64> {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn rows_are_counted_by_their_source_file() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Int64, true),
            Field::new("source_file", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(StringArray::from(vec![
                    Some("a.json.gz"),
                    Some("sources/m/a.json.gz"),
                    Some("a.json.gz"),
                    None,
                ])),
            ],
        )
        .unwrap();
        let names = ["a.json.gz".to_string(), "sources/m/a.json.gz".to_string()];
        let mut rows = SourceRows::new(&names, &schema);
        rows.add(&batch);
        rows.add(&batch.slice(0, 1));
        assert_eq!(rows.finish(), [3, 1]);

        let mut one = SourceRows::new(&names[..1], &schema);
        one.add(&batch);
        assert_eq!(one.finish(), [4], "one source: every row");
    }
}
