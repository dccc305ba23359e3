//! The raw tensor layout of gRPC's `raw_input_contents`/`raw_output_contents` (and of the binary tensor data
//! extension): row-major, little-endian, no padding; BOOL one byte per element; each BYTES element a 4-byte
//! little-endian length followed by its bytes.

use half::{bf16, f16};

use super::{BytesBuf, DataType, TensorData};
use crate::error::Error;

/// Decodes input `name`'s raw bytes into a buffer of `datatype` with `count` elements (the shape's product).
/// Sizes are checked against the bytes present before anything is allocated.
pub fn decode(
    name: &str,
    datatype: DataType,
    shape: &[usize],
    count: usize,
    bytes: &[u8],
) -> Result<TensorData, Error> {
    let Some(size) = datatype.element_size() else {
        return decode_bytes(name, count, bytes).map(TensorData::Bytes);
    };
    if count.checked_mul(size) != Some(bytes.len()) {
        return Err(Error::InvalidInput(format!(
            "input '{name}' ({datatype}) has {} bytes of raw contents but shape {shape:?} needs {count} x {size} bytes",
            bytes.len()
        )));
    }
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        DataType::Uint8 => TensorData::Uint8(bytes.to_vec()),
        DataType::Int8 => TensorData::Int8(bytes.iter().map(|&b| b as i8).collect()),
        DataType::Uint16 => TensorData::Uint16(le(bytes, u16::from_le_bytes)),
        DataType::Uint32 => TensorData::Uint32(le(bytes, u32::from_le_bytes)),
        DataType::Uint64 => TensorData::Uint64(le(bytes, u64::from_le_bytes)),
        DataType::Int16 => TensorData::Int16(le(bytes, i16::from_le_bytes)),
        DataType::Int32 => TensorData::Int32(le(bytes, i32::from_le_bytes)),
        DataType::Int64 => TensorData::Int64(le(bytes, i64::from_le_bytes)),
        DataType::Fp16 => TensorData::Fp16(le(bytes, f16::from_le_bytes)),
        DataType::Bf16 => TensorData::Bf16(le(bytes, bf16::from_le_bytes)),
        DataType::Fp32 => TensorData::Fp32(le(bytes, f32::from_le_bytes)),
        DataType::Fp64 => TensorData::Fp64(le(bytes, f64::from_le_bytes)),
        DataType::Bytes => unreachable!("BYTES has no fixed element size"),
    })
}

/// Splits little-endian bytes (a whole number of `N`-byte elements) into values.
fn le<T, const N: usize>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| from(chunk.try_into().expect("chunks_exact yields N bytes")))
        .collect()
}

/// Reads `count` length-prefixed BYTES elements that must fill `bytes` exactly.
fn decode_bytes(name: &str, count: usize, bytes: &[u8]) -> Result<BytesBuf, Error> {
    // Every element takes at least its 4-byte prefix: this bounds the allocation by the bytes present.
    let mut out = BytesBuf::with_capacity(count.min(bytes.len() / 4), bytes.len());
    let mut rest = bytes;
    for i in 0..count {
        let Some((prefix, tail)) = rest.split_first_chunk::<4>() else {
            return Err(Error::InvalidInput(format!(
                "input '{name}' (BYTES): raw contents end before element {i} of {count} (each element needs a 4-byte length prefix)"
            )));
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        if len > tail.len() {
            return Err(Error::InvalidInput(format!(
                "input '{name}' (BYTES): element {i} declares {len} bytes but only {} remain in the raw contents",
                tail.len()
            )));
        }
        let (element, tail) = tail.split_at(len);
        out.push(element);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(Error::InvalidInput(format!(
            "input '{name}' (BYTES): {} bytes of raw contents are left over after the {count} elements its shape needs",
            rest.len()
        )));
    }
    Ok(out)
}

/// Encodes a buffer in the raw layout.
pub fn encode(data: &TensorData) -> Vec<u8> {
    match data {
        TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        TensorData::Uint8(v) => v.clone(),
        TensorData::Int8(v) => v.iter().map(|&x| x as u8).collect(),
        TensorData::Uint16(v) => flat(v, u16::to_le_bytes),
        TensorData::Uint32(v) => flat(v, u32::to_le_bytes),
        TensorData::Uint64(v) => flat(v, u64::to_le_bytes),
        TensorData::Int16(v) => flat(v, i16::to_le_bytes),
        TensorData::Int32(v) => flat(v, i32::to_le_bytes),
        TensorData::Int64(v) => flat(v, i64::to_le_bytes),
        TensorData::Fp16(v) => flat(v, f16::to_le_bytes),
        TensorData::Bf16(v) => flat(v, bf16::to_le_bytes),
        TensorData::Fp32(v) => flat(v, f32::to_le_bytes),
        TensorData::Fp64(v) => flat(v, f64::to_le_bytes),
        TensorData::Bytes(b) => {
            let total: usize = b.iter().map(|e| 4 + e.len()).sum();
            let mut out = Vec::with_capacity(total);
            for element in b.iter() {
                out.extend_from_slice(&(element.len() as u32).to_le_bytes());
                out.extend_from_slice(element);
            }
            out
        }
    }
}

fn flat<T: Copy, const N: usize>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * N);
    for &value in values {
        out.extend_from_slice(&to(value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: TensorData) {
        let bytes = encode(&data);
        let count = data.len();
        let back = decode("x", data.datatype(), &[count], count, &bytes).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn every_datatype_round_trips() {
        round_trip(TensorData::Bool(vec![true, false, true]));
        round_trip(TensorData::Uint8(vec![0, 255]));
        round_trip(TensorData::Uint16(vec![0, 65535]));
        round_trip(TensorData::Uint32(vec![0, u32::MAX]));
        round_trip(TensorData::Uint64(vec![0, u64::MAX]));
        round_trip(TensorData::Int8(vec![-128, 127]));
        round_trip(TensorData::Int16(vec![i16::MIN, i16::MAX]));
        round_trip(TensorData::Int32(vec![i32::MIN, i32::MAX]));
        round_trip(TensorData::Int64(vec![i64::MIN, i64::MAX]));
        round_trip(TensorData::Fp16(vec![
            f16::from_f32(1.5),
            f16::from_f32(-2.0),
        ]));
        round_trip(TensorData::Bf16(vec![bf16::from_f32(1.5)]));
        round_trip(TensorData::Fp32(vec![1.5, -0.25]));
        round_trip(TensorData::Fp64(vec![1e300, -0.5]));
        round_trip(TensorData::Bytes(
            [b"ab".as_slice(), b"", b"xyz"].into_iter().collect(),
        ));
    }

    #[test]
    fn layout_is_little_endian_with_length_prefixes() {
        assert_eq!(encode(&TensorData::Int32(vec![1])), vec![1, 0, 0, 0]);
        let b: BytesBuf = [b"hi".as_slice()].into_iter().collect();
        assert_eq!(encode(&TensorData::Bytes(b)), vec![2, 0, 0, 0, b'h', b'i']);
    }

    #[test]
    fn wrong_sizes_name_the_tensor() {
        let err = decode("t", DataType::Fp32, &[2], 2, &[0; 7]).unwrap_err();
        assert!(err.to_string().contains("'t'"), "{err}");
        // A huge shape with few bytes fails before allocating.
        let err = decode(
            "t",
            DataType::Fp32,
            &[usize::MAX / 2],
            usize::MAX / 2,
            &[0; 8],
        );
        assert!(err.is_err());
        let err = decode("s", DataType::Bytes, &[1], 1, &[9, 0, 0, 0, b'a']).unwrap_err();
        assert!(err.to_string().contains("'s'"), "{err}");
        assert!(decode("s", DataType::Bytes, &[2], 2, &[1, 0, 0, 0, b'a']).is_err());
        assert!(decode("s", DataType::Bytes, &[1], 1, &[0, 0, 0, 0, 1]).is_err());
        let huge = decode("s", DataType::Bytes, &[usize::MAX], usize::MAX, &[0, 0]);
        assert!(huge.is_err());
    }
}
