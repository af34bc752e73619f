//! The functions the transform SQL gets besides DataFusion's own: `first_seen(id)`, and a
//! `coalesce` that picks from its arguments' arrays instead of filtering the batch.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::is_not_null;
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::binary::try_type_union_resolution;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use hashbrown::HashSet;

pub(crate) const FIRST_SEEN: &str = "first_seen";

/// `first_seen(id)`: true the first time an id is seen in this file, false after. It keeps the
/// dedupe streaming: the set of ids seen (8 bytes each) is all it holds, never the rows.
#[derive(Debug)]
pub(crate) struct FirstSeen {
    signature: Signature,
    /// `None` over input that holds each id once already: then there is nothing to remember.
    seen: Option<Mutex<HashSet<i64>>>,
}

impl FirstSeen {
    pub fn new() -> FirstSeen {
        FirstSeen {
            signature: Signature::exact(vec![DataType::Int64], Volatility::Volatile),
            seen: Some(Mutex::new(HashSet::with_capacity(1 << 18))),
        }
    }

    /// Over input from which the engine has dropped every later occurrence of an id
    /// ([`crate::sql::TransformSql::dedupes_ahead`]): every non-null id is a first one. A second
    /// set of the hour's ids would only cost memory (10 MiB at 600,000 events) and time.
    pub fn over_unique_ids() -> FirstSeen {
        FirstSeen {
            seen: None,
            ..FirstSeen::new()
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
        FIRST_SEEN
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
        let Some(seen) = &self.seen else {
            let firsts: BooleanArray = (0..ids.len()).map(|i| Some(ids.is_valid(i))).collect();
            return Ok(ColumnarValue::Array(Arc::new(firsts)));
        };
        let mut seen = seen
            .lock()
            .map_err(|_| DataFusionError::Execution("first_seen: lock poisoned".into()))?;
        let firsts: BooleanArray = (0..ids.len())
            .map(|i| Some(first_occurrence(&mut seen, ids, i)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(firsts)))
    }
}

/// `first_seen`'s rule, kept in one place for the UDF and for the engine's dedupe ahead of the
/// SQL: row `row`'s id is seen for the first time (noted now); a null id never is.
pub(crate) fn first_occurrence(
    seen: &mut HashSet<i64>,
    ids: &datafusion::arrow::array::Int64Array,
    row: usize,
) -> bool {
    ids.is_valid(row) && seen.insert(ids.value(row))
}

/// `coalesce(a, b, …)`: the first of its arguments that is not null, as SQL has it. DataFusion's
/// own rewrites it as `CASE WHEN a IS NOT NULL THEN a WHEN …`, which copies the batch's columns
/// (the whole `payload` struct here) once per branch to evaluate the later ones on the rows left;
/// the transform's flattened columns made that the largest cost after parsing. This one takes
/// the arguments' arrays (`payload.issue.title` and the like are zero-copy children) and fills
/// the first one's nulls from the next, copying only a column that needs filling.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct EagerCoalesce {
    signature: Signature,
}

impl EagerCoalesce {
    pub fn new() -> EagerCoalesce {
        EagerCoalesce {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for EagerCoalesce {
    fn name(&self) -> &str {
        "coalesce"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Err(DataFusionError::Internal(
            "coalesce: return_field_from_args answers".into(),
        ))
    }

    /// The first argument's type that is not `Null`; nullable unless one argument is not.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let fields = args.arg_fields;
        let data_type = fields
            .iter()
            .map(|f| f.data_type())
            .find(|t| !t.is_null())
            .or_else(|| fields.first().map(|f| f.data_type()))
            .ok_or_else(|| DataFusionError::Plan("coalesce needs an argument".into()))?;
        let nullable = fields.iter().all(|f| f.is_nullable());
        Ok(Arc::new(Field::new(
            self.name(),
            data_type.clone(),
            nullable,
        )))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.is_empty() {
            return Err(DataFusionError::Plan("coalesce needs an argument".into()));
        }
        try_type_union_resolution(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let mut arrays = args.args.into_iter().map(|a| a.into_array(rows));
        let mut result = match arrays.next() {
            Some(first) => first?,
            None => return Err(DataFusionError::Plan("coalesce needs an argument".into())),
        };
        for next in arrays {
            if result.null_count() == 0 {
                break;
            }
            let next = next?;
            result = fill_nulls(result, next)?;
        }
        Ok(ColumnarValue::Array(result))
    }
}

/// `values` with its nulls taken from `fallback`, row by row; no copy when either side settles it.
fn fill_nulls(values: ArrayRef, fallback: ArrayRef) -> Result<ArrayRef> {
    if values.null_count() == values.len() {
        return Ok(fallback);
    }
    if fallback.null_count() == fallback.len() {
        return Ok(values);
    }
    let present = is_not_null(&values)?;
    Ok(zip(&present, &values, &fallback)?)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn fill_nulls_takes_the_first_value_present_in_each_row() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, None, Some("d")]));
        let b: ArrayRef = Arc::new(StringArray::from(vec![Some("x"), Some("b"), None, None]));
        let filled = fill_nulls(a, b).unwrap();
        let filled = filled.as_string::<i32>();
        assert_eq!(
            filled.iter().collect::<Vec<_>>(),
            vec![Some("a"), Some("b"), None, Some("d")]
        );
        let empty: ArrayRef = Arc::new(Int64Array::from(vec![None, None]));
        let full: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2)]));
        assert!(Arc::ptr_eq(
            &fill_nulls(empty.clone(), full.clone()).unwrap(),
            &full
        ));
        assert!(Arc::ptr_eq(
            &fill_nulls(full.clone(), empty).unwrap(),
            &full
        ));
    }
}
