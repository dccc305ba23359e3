//! Joining tensors of several requests along dimension 0, and splitting a batched result back by row counts.

use super::{BytesBuf, Tensor, TensorData};
use crate::error::Error;

/// Concatenates `parts` (same name, datatype and dimensions after the first) along dimension 0 into a new
/// buffer; the parts are left as they were, so each request can still run alone if the batch fails.
pub fn concat_rows(parts: &[&Tensor]) -> Result<Tensor, Error> {
    let first = parts
        .first()
        .ok_or_else(|| Error::Internal("nothing to concatenate".into()))?;
    for part in parts {
        if part.shape.get(1..) != first.shape.get(1..) || part.datatype() != first.datatype() {
            return Err(Error::Internal(format!(
                "tensor '{}' parts do not fit one batch",
                first.name
            )));
        }
    }
    let rows: usize = parts
        .iter()
        .map(|t| t.shape.first().copied().unwrap_or(0))
        .sum();
    let elements: usize = parts.iter().map(|p| p.data.len()).sum();
    macro_rules! join {
        ($variant:ident) => {{
            let mut joined = Vec::with_capacity(elements);
            for part in parts {
                if let TensorData::$variant(v) = &part.data {
                    joined.extend_from_slice(v);
                }
            }
            TensorData::$variant(joined)
        }};
    }
    let data = match &first.data {
        TensorData::Bool(_) => join!(Bool),
        TensorData::Uint8(_) => join!(Uint8),
        TensorData::Uint16(_) => join!(Uint16),
        TensorData::Uint32(_) => join!(Uint32),
        TensorData::Uint64(_) => join!(Uint64),
        TensorData::Int8(_) => join!(Int8),
        TensorData::Int16(_) => join!(Int16),
        TensorData::Int32(_) => join!(Int32),
        TensorData::Int64(_) => join!(Int64),
        TensorData::Fp16(_) => join!(Fp16),
        TensorData::Bf16(_) => join!(Bf16),
        TensorData::Fp32(_) => join!(Fp32),
        TensorData::Fp64(_) => join!(Fp64),
        TensorData::Bytes(_) => {
            let bytes = parts
                .iter()
                .map(|p| match &p.data {
                    TensorData::Bytes(b) => b.data.len(),
                    _ => 0,
                })
                .sum();
            let mut joined = BytesBuf::with_capacity(elements, bytes);
            for part in parts {
                if let TensorData::Bytes(b) = &part.data {
                    joined.extend(b);
                }
            }
            TensorData::Bytes(joined)
        }
    };
    let mut shape = first.shape.clone();
    if let Some(d) = shape.first_mut() {
        *d = rows;
    }
    Tensor::new(first.name.clone(), shape, data)
}

/// Splits `tensor` along dimension 0 into consecutive pieces of `rows[i]` rows each; `rows` must add up to
/// the tensor's first dimension. The first piece keeps the original buffer.
pub fn split_rows(tensor: Tensor, rows: &[usize]) -> Result<Vec<Tensor>, Error> {
    let total: usize = rows.iter().sum();
    if tensor.shape.first() != Some(&total) {
        return Err(Error::Internal(format!(
            "output '{}' has shape {:?}, which cannot be split into {total} request rows",
            tensor.name, tensor.shape
        )));
    }
    let per_row: usize = tensor.shape[1..].iter().product();
    let Tensor {
        name,
        shape,
        mut data,
        parameters,
    } = tensor;
    let mut pieces = Vec::with_capacity(rows.len());
    // From the last piece to the first: each split_off copies only that piece.
    let mut end = total;
    for &n in rows[1..].iter().rev() {
        let start = end - n;
        let piece = match &mut data {
            TensorData::Bytes(b) => TensorData::Bytes(b.split_off(start * per_row)),
            other => split_off_typed(other, start * per_row),
        };
        pieces.push(piece);
        end = start;
    }
    pieces.push(data);
    pieces.reverse();
    Ok(pieces
        .into_iter()
        .zip(rows)
        .map(|(data, &n)| {
            let mut piece_shape = shape.clone();
            piece_shape[0] = n;
            Tensor {
                name: name.clone(),
                shape: piece_shape,
                data,
                parameters: parameters.clone(),
            }
        })
        .collect())
}

fn split_off_typed(data: &mut TensorData, at: usize) -> TensorData {
    match data {
        TensorData::Bool(v) => TensorData::Bool(v.split_off(at)),
        TensorData::Uint8(v) => TensorData::Uint8(v.split_off(at)),
        TensorData::Uint16(v) => TensorData::Uint16(v.split_off(at)),
        TensorData::Uint32(v) => TensorData::Uint32(v.split_off(at)),
        TensorData::Uint64(v) => TensorData::Uint64(v.split_off(at)),
        TensorData::Int8(v) => TensorData::Int8(v.split_off(at)),
        TensorData::Int16(v) => TensorData::Int16(v.split_off(at)),
        TensorData::Int32(v) => TensorData::Int32(v.split_off(at)),
        TensorData::Int64(v) => TensorData::Int64(v.split_off(at)),
        TensorData::Fp16(v) => TensorData::Fp16(v.split_off(at)),
        TensorData::Bf16(v) => TensorData::Bf16(v.split_off(at)),
        TensorData::Fp32(v) => TensorData::Fp32(v.split_off(at)),
        TensorData::Fp64(v) => TensorData::Fp64(v.split_off(at)),
        TensorData::Bytes(b) => TensorData::Bytes(b.split_off(at)),
    }
}

impl BytesBuf {
    /// Appends every element of `other`.
    pub fn extend(&mut self, other: &BytesBuf) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let base = self.data.len();
        self.data.extend_from_slice(&other.data);
        self.offsets
            .extend(other.offsets.iter().skip(1).map(|&o| base + o));
    }

    /// Keeps elements `..at` and returns elements `at..` as a new buffer.
    pub fn split_off(&mut self, at: usize) -> BytesBuf {
        if self.offsets.is_empty() {
            return BytesBuf::default();
        }
        let at = at.min(self.len());
        let byte_at = self.offsets[at];
        let data = self.data.split_off(byte_at);
        let offsets = self.offsets[at..].iter().map(|&o| o - byte_at).collect();
        self.offsets.truncate(at + 1);
        BytesBuf { data, offsets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp32(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor::new("x", shape, TensorData::Fp32(v)).unwrap()
    }

    #[test]
    fn concat_then_split_round_trips() {
        let a = fp32(vec![1, 2], vec![1., 2.]);
        let b = fp32(vec![2, 2], vec![3., 4., 5., 6.]);
        let c = fp32(vec![1, 2], vec![7., 8.]);
        let joined = concat_rows(&[&a, &b, &c]).unwrap();
        assert_eq!(joined.shape, vec![4, 2]);
        assert_eq!(
            joined.data,
            TensorData::Fp32(vec![1., 2., 3., 4., 5., 6., 7., 8.])
        );
        assert_eq!(split_rows(joined, &[1, 2, 1]).unwrap(), vec![a, b, c]);
    }

    #[test]
    fn bytes_round_trip() {
        let t = |shape: Vec<usize>, e: &[&[u8]]| {
            Tensor::new("s", shape, TensorData::Bytes(e.iter().copied().collect())).unwrap()
        };
        let a = t(vec![1, 2], &[b"a", b""]);
        let b = t(vec![2, 2], &[b"bb", b"ccc", b"d", b"eeee"]);
        let joined = concat_rows(&[&a, &b]).unwrap();
        assert_eq!(joined.shape, vec![3, 2]);
        let TensorData::Bytes(buf) = &joined.data else {
            panic!()
        };
        assert_eq!(buf.get(3), b"ccc");
        assert_eq!(split_rows(joined, &[1, 2]).unwrap(), vec![a, b]);
    }

    #[test]
    fn wrong_rows_are_an_error() {
        let t = fp32(vec![3], vec![1., 2., 3.]);
        assert!(split_rows(t, &[1, 1]).is_err());
        let a = fp32(vec![1, 2], vec![1., 2.]);
        let b = fp32(vec![1, 1], vec![3.]);
        assert!(concat_rows(&[&a, &b]).is_err());
    }
}
