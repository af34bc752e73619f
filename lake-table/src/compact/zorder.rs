//! The Z-order key of a row: the bits of the first 8 bytes of each of its text columns,
//! interleaved (most significant first), so that sorting by it clusters rows near in every
//! column at once. A compaction can lay a day out by it instead of the sort key, to compare.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BinaryBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Bytes of each column that enter the key.
const PREFIX_BYTES: usize = 8;

#[derive(Debug, PartialEq, Eq, Hash)]
struct ZOrderKey {
    signature: Signature,
}

/// The `zorder_key(col, …)` function.
pub fn udf() -> ScalarUDF {
    ScalarUDF::from(ZOrderKey {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

impl ScalarUDFImpl for ZOrderKey {
    fn name(&self) -> &str {
        "zorder_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let columns = args
            .args
            .iter()
            .map(|arg| cast(&arg.to_array(rows)?, &DataType::Utf8).map_err(Into::into))
            .collect::<Result<Vec<_>>>()?;
        let texts: Vec<_> = columns.iter().map(|c| c.as_string::<i32>()).collect();
        let mut keys = BinaryBuilder::with_capacity(rows, rows * PREFIX_BYTES * texts.len());
        let mut prefixes = vec![0u64; texts.len()];
        for row in 0..rows {
            for (prefix, text) in prefixes.iter_mut().zip(&texts) {
                let mut bytes = [0u8; PREFIX_BYTES];
                if text.is_valid(row) {
                    let value = text.value(row).as_bytes();
                    let n = value.len().min(PREFIX_BYTES);
                    bytes[..n].copy_from_slice(&value[..n]);
                }
                *prefix = u64::from_be_bytes(bytes);
            }
            keys.append_value(interleave(&prefixes));
        }
        Ok(ColumnarValue::Array(Arc::new(keys.finish())))
    }
}

/// The bits of `values`, interleaved from the most significant: bit 63 of each, then bit 62 …
fn interleave(values: &[u64]) -> Vec<u8> {
    let mut out = vec![0u8; values.len() * PREFIX_BYTES];
    let mut at = 0;
    for bit in (0..64).rev() {
        for value in values {
            if (value >> bit) & 1 == 1 {
                out[at / 8] |= 0x80 >> (at % 8);
            }
            at += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_interleave_from_the_most_significant() {
        assert_eq!(interleave(&[u64::MAX, 0]), [0xAA; 16].to_vec());
        assert_eq!(interleave(&[0, u64::MAX]), [0x55; 16].to_vec());
        let a = interleave(&[u64::from_be_bytes(*b"apache/a"), 0]);
        let b = interleave(&[u64::from_be_bytes(*b"apache/b"), 0]);
        assert!(a < b, "the key keeps each column's order");
    }
}
