//! ZipMap outputs (`seq(map(int64|string, float|double))`, what scikit-learn classifiers converted by
//! skl2onnx, onnxmltools and friends return as probabilities) served as one `[N, K]` tensor: row i holds
//! map i's values in the order the graph lists the keys.

use std::collections::HashMap;
use std::hash::Hash;

use ort::value::{DynMapValueType, DynValue, PrimitiveTensorElementType};

use super::onnx_graph::MapKeys;
use crate::error::Error;
use crate::tensor::{DataType, TensorData};

/// A ZipMap output: its keys (the columns, in order) and its value type.
#[derive(Debug, Clone, PartialEq)]
pub struct ZipMapOutput {
    pub keys: MapKeys,
    /// FP32 or FP64.
    pub datatype: DataType,
}

impl ZipMapOutput {
    /// Copies the sequence of maps ONNX Runtime returned for output `name` into a `[N, K]` tensor.
    pub fn extract(&self, name: &str, value: &DynValue) -> Result<(Vec<usize>, TensorData), Error> {
        let wrap = |e: ort::Error| Error::Internal(format!("output '{name}': {e}"));
        let maps = value
            .try_extract_sequence::<DynMapValueType>()
            .map_err(wrap)?;
        let columns = self.keys.len();
        let data = match (&self.keys, self.datatype) {
            (MapKeys::Int64(keys), DataType::Fp32) => {
                TensorData::Fp32(rows::<i64, f32>(name, keys, &maps)?)
            }
            (MapKeys::Int64(keys), DataType::Fp64) => {
                TensorData::Fp64(rows::<i64, f64>(name, keys, &maps)?)
            }
            (MapKeys::String(keys), DataType::Fp32) => {
                TensorData::Fp32(rows::<String, f32>(name, keys, &maps)?)
            }
            (MapKeys::String(keys), DataType::Fp64) => {
                TensorData::Fp64(rows::<String, f64>(name, keys, &maps)?)
            }
            (_, other) => {
                return Err(Error::Internal(format!(
                    "output '{name}': maps of {other} values are not served"
                )))
            }
        };
        Ok((vec![maps.len(), columns], data))
    }
}

fn rows<K, V>(name: &str, keys: &[K], maps: &[ort::value::DynMap]) -> Result<Vec<V>, Error>
where
    K: ort::value::IntoTensorElementType + Clone + Hash + Eq + std::fmt::Display,
    V: PrimitiveTensorElementType + Clone + Copy + Default,
{
    let rows = maps
        .iter()
        .map(|m| {
            m.try_extract_key_values::<K, V>()
                .map_err(|e| Error::Internal(format!("output '{name}': {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    assemble(name, keys, &rows)
}

/// Lays `rows` (one map's entries each, in any order) out as one row-major buffer, columns in `keys`'
/// order. A row that lacks a key, has a key the graph does not list, or repeats one is an internal error
/// naming the output.
pub fn assemble<K, V>(name: &str, keys: &[K], rows: &[Vec<(K, V)>]) -> Result<Vec<V>, Error>
where
    K: Hash + Eq + std::fmt::Display,
    V: Copy + Default,
{
    let columns: HashMap<&K, usize> = keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let width = keys.len();
    let mut out = vec![V::default(); rows.len() * width];
    let mut seen = vec![false; width];
    for (r, row) in rows.iter().enumerate() {
        let cells = &mut out[r * width..(r + 1) * width];
        seen.fill(false);
        for (key, value) in row {
            let column = *columns.get(key).ok_or_else(|| {
                Error::Internal(format!(
                    "output '{name}': row {r} has key {key}, which the model's ZipMap does not list"
                ))
            })?;
            if std::mem::replace(&mut seen[column], true) {
                return Err(Error::Internal(format!(
                    "output '{name}': row {r} has key {key} twice"
                )));
            }
            cells[column] = *value;
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(Error::Internal(format!(
                "output '{name}': row {r} has no value for key {}",
                keys[missing]
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_graph_key_order() {
        let keys = [2i64, 0, 1];
        let rows = vec![
            vec![(0, 0.1f32), (1, 0.2), (2, 0.7)],
            vec![(1, 0.5), (2, 0.0), (0, 0.5)],
        ];
        assert_eq!(
            assemble("p", &keys, &rows).unwrap(),
            vec![0.7, 0.1, 0.2, 0.0, 0.5, 0.5]
        );
        let names = ["b".to_string(), "a".to_string()];
        let rows = vec![vec![("a".to_string(), 1.0f64), ("b".to_string(), 2.0)]];
        assert_eq!(assemble("p", &names, &rows).unwrap(), vec![2.0, 1.0]);
        let none: Vec<Vec<(i64, f32)>> = vec![];
        assert!(assemble("p", &keys, &none).unwrap().is_empty());
    }

    #[test]
    fn missing_extra_and_repeated_keys_are_internal_errors() {
        let keys = [0i64, 1];
        let missing = vec![vec![(0, 1.0f32), (1, 0.0)], vec![(1, 1.0)]];
        let e = assemble("probs", &keys, &missing).unwrap_err();
        assert!(
            matches!(&e, Error::Internal(m) if m == "output 'probs': row 1 has no value for key 0"),
            "{e}"
        );
        let extra = vec![vec![(0, 1.0f32), (1, 0.0), (5, 0.0)]];
        let e = assemble("probs", &keys, &extra).unwrap_err();
        assert!(
            matches!(&e, Error::Internal(m) if m.contains("key 5")),
            "{e}"
        );
        let twice = vec![vec![(0, 1.0f32), (0, 0.0)]];
        let e = assemble("probs", &keys, &twice).unwrap_err();
        assert!(
            matches!(&e, Error::Internal(m) if m.contains("twice")),
            "{e}"
        );
    }
}
