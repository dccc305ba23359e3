//! The classification extension: an output asked for with `classification: N` becomes its top N classes,
//! a BYTES tensor of `"<value>:<index>[:<label>]"` per batch row.

use crate::error::Error;
use crate::match_tensor_data;
use crate::tensor::{BytesBuf, Tensor, TensorData};

/// The `classification` parameter of a requested output, if any.
pub fn requested(
    parameters: &crate::tensor::Parameters,
    output: &str,
) -> Result<Option<usize>, Error> {
    match parameters.get("classification") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&n| n >= 1)
            .map(|n| Some(n as usize))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "output '{}' classification must be a positive integer, got {}",
                    crate::error::short(output),
                    crate::error::short(&v.to_string())
                ))
            }),
    }
}

/// Replaces `tensor` by its top `n` classes. Rank 1: one row of classes -> [n]; rank >= 2: the first dimension
/// is the batch and the rest the classes -> [batch, n].
pub fn classify(tensor: &mut Tensor, n: usize, labels: Option<&[String]>) -> Result<(), Error> {
    let name = tensor.name.clone();
    let values: Vec<f64> = match_tensor_data!(tensor.data(),
        v => v.iter().map(as_f64).collect(),
        _b => return Err(Error::InvalidInput(format!("output '{name}' is BYTES and cannot be classified"))));
    let (rows, classes) = match tensor.shape() {
        [] => (1, 1),
        [c] => (1, *c),
        [b, rest @ ..] => (*b, rest.iter().product()),
    };
    let n = n.min(classes);
    let mut out = BytesBuf::with_capacity(rows * n, rows * n * 16);
    let integral = !matches!(
        tensor.data(),
        TensorData::Fp16(_) | TensorData::Bf16(_) | TensorData::Fp32(_) | TensorData::Fp64(_)
    );
    let mut order: Vec<usize> = Vec::with_capacity(classes);
    for row in 0..rows {
        let slice = &values[row * classes..(row + 1) * classes];
        order.clear();
        order.extend(0..classes);
        order.sort_by(|&a, &b| slice[b].total_cmp(&slice[a]).then(a.cmp(&b)));
        for &index in order.iter().take(n) {
            let value = if integral {
                format!("{}", slice[index] as i64)
            } else {
                format!("{:.6}", slice[index])
            };
            let entry = match labels.and_then(|l| l.get(index)) {
                Some(label) => format!("{value}:{index}:{label}"),
                None => format!("{value}:{index}"),
            };
            out.push(entry.as_bytes());
        }
    }
    let shape = if tensor.shape().len() <= 1 {
        vec![n]
    } else {
        vec![rows, n]
    };
    tensor.set(shape, TensorData::Bytes(out))
}

fn as_f64<T: ToF64>(x: &T) -> f64 {
    x.to_f64()
}

/// Numeric elements widened for ranking.
trait ToF64 {
    fn to_f64(&self) -> f64;
}

macro_rules! to_f64 {
    ($($t:ty),*) => {$(impl ToF64 for $t { fn to_f64(&self) -> f64 { *self as f64 } })*};
}
to_f64!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);

impl ToF64 for bool {
    fn to_f64(&self) -> f64 {
        *self as u8 as f64
    }
}
impl ToF64 for half::f16 {
    fn to_f64(&self) -> f64 {
        half::f16::to_f64(*self)
    }
}
impl ToF64 for half::bf16 {
    fn to_f64(&self) -> f64 {
        half::bf16::to_f64(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_per_row_with_labels() {
        let mut t = Tensor::new(
            "p",
            vec![2, 3],
            TensorData::Fp32(vec![0.1, 0.7, 0.2, 0.5, 0.1, 0.4]),
        )
        .unwrap();
        let labels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        classify(&mut t, 2, Some(&labels)).unwrap();
        assert_eq!(t.shape(), vec![2, 2]);
        let TensorData::Bytes(b) = t.data() else {
            panic!()
        };
        let got: Vec<&str> = b.iter().map(|e| std::str::from_utf8(e).unwrap()).collect();
        assert_eq!(
            got,
            vec![
                "0.700000:1:b",
                "0.200000:2:c",
                "0.500000:0:a",
                "0.400000:2:c"
            ]
        );
    }

    #[test]
    fn integers_and_rank_one() {
        let mut t = Tensor::new("x", vec![3], TensorData::Int32(vec![3, 9, 1])).unwrap();
        classify(&mut t, 5, None).unwrap();
        assert_eq!(t.shape(), vec![3]);
        let TensorData::Bytes(b) = t.data() else {
            panic!()
        };
        assert_eq!(b.get(0), b"9:1");
    }
}
