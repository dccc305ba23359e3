//! numpy-style `astype` between numeric datatypes, for the `np` and `pd` codecs.

use half::{bf16, f16};

use crate::tensor::{DataType, TensorData};

/// Numbers widened losslessly where possible: integers as i128, floats as f64.
enum Wide {
    Int(Vec<i128>),
    Float(Vec<f64>),
}

fn widen(data: &TensorData) -> Option<Wide> {
    Some(match data {
        TensorData::Bool(v) => Wide::Int(v.iter().map(|&x| x as i128).collect()),
        TensorData::Uint8(v) => Wide::Int(v.iter().map(|&x| x as i128).collect()),
        TensorData::Uint16(v) => Wide::Int(v.iter().map(|&x| x as i128).collect()),
        TensorData::Uint32(v) => Wide::Int(v.iter().map(|&x| x as i128).collect()),
        TensorData::Uint64(v) => Wide::Int(v.iter().map(|&x| x as i128).collect()),
        TensorData::Int8(v) => Wide::Int(v.iter().map(|&x| x as i128).collect()),
        TensorData::Int16(v) => Wide::Int(v.iter().map(|&x| x as i128).collect()),
        TensorData::Int32(v) => Wide::Int(v.iter().map(|&x| x as i128).collect()),
        TensorData::Int64(v) => Wide::Int(v.iter().map(|&x| x as i128).collect()),
        TensorData::Fp16(v) => Wide::Float(v.iter().map(|x| x.to_f64()).collect()),
        TensorData::Bf16(v) => Wide::Float(v.iter().map(|x| x.to_f64()).collect()),
        TensorData::Fp32(v) => Wide::Float(v.iter().map(|&x| x as f64).collect()),
        TensorData::Fp64(v) => Wide::Float(v.clone()),
        TensorData::Bytes(_) => return None,
    })
}

/// Converts numeric `data` to `to` as numpy's astype does (floats truncate toward zero into integers,
/// integers wrap); BYTES on either side is returned unchanged.
pub fn cast(data: &TensorData, to: DataType) -> TensorData {
    let Some(wide) = widen(data) else {
        return data.clone();
    };
    macro_rules! build {
        ($variant:ident, $int:expr, $float:expr) => {
            TensorData::$variant(match wide {
                Wide::Int(v) => v.into_iter().map($int).collect(),
                Wide::Float(v) => v.into_iter().map($float).collect(),
            })
        };
    }
    match to {
        DataType::Bool => build!(Bool, |x| x != 0, |x| x != 0.0),
        DataType::Uint8 => build!(Uint8, |x| x as u8, |x| x as i128 as u8),
        DataType::Uint16 => build!(Uint16, |x| x as u16, |x| x as i128 as u16),
        DataType::Uint32 => build!(Uint32, |x| x as u32, |x| x as i128 as u32),
        DataType::Uint64 => build!(Uint64, |x| x as u64, |x| x as i128 as u64),
        DataType::Int8 => build!(Int8, |x| x as i8, |x| x as i128 as i8),
        DataType::Int16 => build!(Int16, |x| x as i16, |x| x as i128 as i16),
        DataType::Int32 => build!(Int32, |x| x as i32, |x| x as i128 as i32),
        DataType::Int64 => build!(Int64, |x| x as i64, |x| x as i64),
        DataType::Fp16 => build!(Fp16, |x| f16::from_f64(x as f64), f16::from_f64),
        DataType::Bf16 => build!(Bf16, |x| bf16::from_f64(x as f64), bf16::from_f64),
        DataType::Fp32 => build!(Fp32, |x| x as f32, |x| x as f32),
        DataType::Fp64 => build!(Fp64, |x| x as f64, |x| x),
        DataType::Bytes => data.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_like_astype() {
        assert_eq!(
            cast(&TensorData::Fp64(vec![1.5, -2.5]), DataType::Fp32),
            TensorData::Fp32(vec![1.5, -2.5])
        );
        assert_eq!(
            cast(&TensorData::Fp64(vec![1.9, -2.9]), DataType::Int32),
            TensorData::Int32(vec![1, -2])
        );
        assert_eq!(
            cast(&TensorData::Int64(vec![3]), DataType::Fp32),
            TensorData::Fp32(vec![3.0])
        );
        assert_eq!(
            cast(&TensorData::Int64(vec![0, 5]), DataType::Bool),
            TensorData::Bool(vec![false, true])
        );
    }
}
