//! Raw tensor bytes, the layout shared by the binary tensor data extension and gRPC raw contents:
//! little-endian elements, BOOL one byte, each BYTES element a 4-byte little-endian length then its bytes.

use bytes::{Buf, Bytes};
use half::{bf16, f16};

use super::{BytesBuf, DataType, TensorData};
use crate::error::Error;
use crate::match_number_type;

/// Decodes all of `bytes` as `count` elements of `datatype`, checking the size before allocating anything.
/// `bytes` may be in several chunks (a request body as it arrived): numbers are copied once, chunk by chunk,
/// straight into the tensor's buffer.
pub fn decode_raw(
    name: &str,
    datatype: DataType,
    count: usize,
    mut bytes: impl Buf,
) -> Result<TensorData, Error> {
    let Some(size) = datatype.element_size() else {
        let contiguous = bytes.copy_to_bytes(bytes.remaining());
        return decode_bytes(name, count, &contiguous).map(TensorData::Bytes);
    };
    let expected = count
        .checked_mul(size)
        .ok_or_else(|| Error::InvalidInput(format!("input '{name}' shape is too large")))?;
    if bytes.remaining() != expected {
        return Err(Error::InvalidInput(format!(
            "input '{name}' has {} bytes of {datatype} data but its shape needs {expected} ({count} elements x {size} bytes)",
            bytes.remaining()
        )));
    }
    Ok(match_number_type!(datatype,
        variant => variant(read_le(count, bytes)),
        DataType::Bool => {
            let mut out = Vec::with_capacity(count);
            while bytes.has_remaining() {
                let chunk = bytes.chunk();
                out.extend(chunk.iter().map(|&b| b != 0));
                let n = chunk.len();
                bytes.advance(n);
            }
            TensorData::Bool(out)
        }
        DataType::Bytes => unreachable!("handled above"),
    ))
}

/// Numbers for which every bit pattern is a value, stored little-endian on the wire.
trait LeNumber: Copy {
    fn le_to_native(self) -> Self;
}

macro_rules! le_number {
    ($($t:ty),*) => {$(
        impl LeNumber for $t {
            fn le_to_native(self) -> Self {
                <$t>::from_le_bytes(self.to_ne_bytes())
            }
        }
    )*};
}
le_number!(u8, i8, u16, i16, u32, i32, u64, i64, f16, bf16, f32, f64);

/// Reads `count` elements from `bytes`, which holds exactly `count * size_of::<T>()` bytes.
fn read_le<T: LeNumber>(count: usize, mut bytes: impl Buf) -> Vec<T> {
    let len = count * std::mem::size_of::<T>();
    assert_eq!(bytes.remaining(), len, "caller checks the size");
    let mut out: Vec<T> = Vec::with_capacity(count);
    let dst = out.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    let mut at = 0;
    while bytes.has_remaining() {
        let chunk = bytes.chunk();
        // SAFETY: `at + chunk.len() <= len` (the chunks add up to `len`), `dst` has room for `len` bytes, and a
        // fresh allocation cannot overlap the source.
        unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), dst.add(at), chunk.len()) };
        at += chunk.len();
        let n = chunk.len();
        bytes.advance(n);
    }
    // SAFETY: all `count` elements' bytes were written (`at == len`), and any bit pattern is a valid `T`.
    unsafe { out.set_len(count) };
    if cfg!(target_endian = "big") {
        out.iter_mut().for_each(|v| *v = v.le_to_native());
    }
    out
}

/// Decodes length-prefixed BYTES elements; the count must match and no prefix may run past the end.
fn decode_bytes(name: &str, count: usize, bytes: &[u8]) -> Result<BytesBuf, Error> {
    // Each element takes at least its 4-byte prefix, which bounds the allocation by the bytes present.
    let mut out = BytesBuf::with_capacity(count.min(bytes.len() / 4), bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        if out.len() == count {
            return Err(Error::InvalidInput(format!(
                "input '{name}' has more BYTES elements than its shape's {count}"
            )));
        }
        if rest.len() < 4 {
            return Err(Error::InvalidInput(format!(
                "input '{name}' BYTES element {} has a truncated length prefix",
                out.len()
            )));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if len > rest.len() {
            return Err(Error::InvalidInput(format!(
                "input '{name}' BYTES element {} claims {len} bytes but only {} remain",
                out.len(),
                rest.len()
            )));
        }
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    if out.len() != count {
        return Err(Error::InvalidInput(format!(
            "input '{name}' has {} BYTES elements but its shape needs {count}",
            out.len()
        )));
    }
    Ok(out)
}

/// Counts the length-prefixed elements in `bytes` (for a raw body whose shape must be inferred).
pub fn count_bytes_elements(bytes: &[u8]) -> Option<usize> {
    let mut rest = bytes;
    let mut n = 0;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return None;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = rest.get(4 + len..)?;
        n += 1;
    }
    Some(n)
}

/// Size in bytes of `data` in the raw layout.
pub fn raw_len(data: &TensorData) -> usize {
    match data {
        TensorData::Bytes(b) => b.iter().map(|e| 4 + e.len()).sum(),
        other => other.len() * other.datatype().element_size().unwrap_or(0),
    }
}

/// A numeric buffer seen as its bytes, which on a little-endian machine are the raw layout: the owner of a
/// `Bytes`, so an output goes to the wire without a copy.
#[cfg(target_endian = "little")]
struct LeBytes<T>(Vec<T>);

#[cfg(target_endian = "little")]
impl<T: bytemuck::Pod> AsRef<[u8]> for LeBytes<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// `data` in the raw layout, taking over its buffer where the layout is the buffer's own (numbers on a
/// little-endian machine, FP16/BF16 aside); BOOL and BYTES are copied.
pub fn into_raw_bytes(data: TensorData) -> Bytes {
    #[cfg(target_endian = "little")]
    let data = match data {
        TensorData::Uint8(v) => return Bytes::from(v),
        TensorData::Int8(v) => return Bytes::from_owner(LeBytes(v)),
        TensorData::Uint16(v) => return Bytes::from_owner(LeBytes(v)),
        TensorData::Uint32(v) => return Bytes::from_owner(LeBytes(v)),
        TensorData::Uint64(v) => return Bytes::from_owner(LeBytes(v)),
        TensorData::Int16(v) => return Bytes::from_owner(LeBytes(v)),
        TensorData::Int32(v) => return Bytes::from_owner(LeBytes(v)),
        TensorData::Int64(v) => return Bytes::from_owner(LeBytes(v)),
        TensorData::Fp32(v) => return Bytes::from_owner(LeBytes(v)),
        TensorData::Fp64(v) => return Bytes::from_owner(LeBytes(v)),
        other => other,
    };
    let mut out = Vec::with_capacity(raw_len(&data));
    encode_raw(&data, &mut out);
    Bytes::from(out)
}

/// Appends `data` to `out` in the raw layout.
pub fn encode_raw(data: &TensorData, out: &mut Vec<u8>) {
    out.reserve(raw_len(data));
    macro_rules! le {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
        TensorData::Uint8(v) => out.extend_from_slice(v),
        TensorData::Int8(v) => out.extend(v.iter().map(|&b| b as u8)),
        TensorData::Uint16(v) => le!(v),
        TensorData::Uint32(v) => le!(v),
        TensorData::Uint64(v) => le!(v),
        TensorData::Int16(v) => le!(v),
        TensorData::Int32(v) => le!(v),
        TensorData::Int64(v) => le!(v),
        TensorData::Fp16(v) => le!(v),
        TensorData::Bf16(v) => le!(v),
        TensorData::Fp32(v) => le!(v),
        TensorData::Fp64(v) => le!(v),
        TensorData::Bytes(b) => {
            for element in b.iter() {
                out.extend_from_slice(&(element.len() as u32).to_le_bytes());
                out.extend_from_slice(element);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datatype_round_trips() {
        let cases = vec![
            TensorData::Bool(vec![true, false]),
            TensorData::Uint8(vec![0, 255]),
            TensorData::Int8(vec![-128, 127]),
            TensorData::Uint16(vec![0, 65535]),
            TensorData::Int16(vec![-32768, 1]),
            TensorData::Uint32(vec![u32::MAX, 2]),
            TensorData::Int32(vec![i32::MIN, 3]),
            TensorData::Uint64(vec![u64::MAX, 4]),
            TensorData::Int64(vec![i64::MIN, 5]),
            TensorData::Fp16(vec![f16::from_f32(0.5), f16::from_f32(-2.0)]),
            TensorData::Bf16(vec![bf16::from_f32(0.5), bf16::from_f32(-2.0)]),
            TensorData::Fp32(vec![0.1, -1.5]),
            TensorData::Fp64(vec![0.1, -1.5]),
            TensorData::Bytes([b"ab".as_slice(), b""].into_iter().collect()),
        ];
        for data in cases {
            let mut raw = Vec::new();
            encode_raw(&data, &mut raw);
            assert_eq!(raw.len(), raw_len(&data));
            assert_eq!(into_raw_bytes(data.clone())[..], raw[..], "{data:?}");
            assert_eq!(decode_raw("x", data.datatype(), 2, &raw[..]).unwrap(), data);
            // In pieces that split elements, as a body arrives.
            let (a, b) = (raw.len().min(3), raw.len().min(5));
            let pieces = (&raw[..a]).chain(&raw[a..b]).chain(&raw[b..]);
            assert_eq!(decode_raw("x", data.datatype(), 2, pieces).unwrap(), data);
        }
    }

    #[test]
    fn sizes_are_checked() {
        let err = decode_raw("x", DataType::Fp32, 2, &[0u8; 7][..]).unwrap_err();
        assert!(err.to_string().contains("input 'x' has 7 bytes"), "{err}");
        let err = decode_raw("s", DataType::Bytes, 1, &[9, 0, 0, 0, b'a'][..]).unwrap_err();
        assert!(err.to_string().contains("claims 9 bytes"), "{err}");
        let err = decode_raw("s", DataType::Bytes, 2, &[1, 0, 0, 0, b'a'][..]).unwrap_err();
        assert!(err.to_string().contains("needs 2"), "{err}");
        assert!(decode_raw("x", DataType::Fp32, usize::MAX, &[][..]).is_err());
        assert_eq!(
            count_bytes_elements(&[1, 0, 0, 0, b'a', 0, 0, 0, 0]),
            Some(2)
        );
        assert_eq!(count_bytes_elements(&[1, 0, 0]), None);
    }
}
