//! Conversions between our tensors and ONNX Runtime values and element types.

use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType};

use super::{BytesBuf, DataType, TensorData};
use crate::error::Error;
use crate::{match_number_type, match_tensor_data};

/// The V2 datatype of an ONNX element type, if the protocol has one.
pub fn datatype_of(element: TensorElementType) -> Option<DataType> {
    Some(match element {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Float16 => DataType::Fp16,
        TensorElementType::Bfloat16 => DataType::Bf16,
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::String => DataType::Bytes,
        _ => return None,
    })
}

/// Moves a tensor's buffer into an ONNX Runtime value (numeric buffers are handed over, not copied).
pub fn to_ort_value(name: &str, shape: &[usize], data: TensorData) -> Result<DynValue, Error> {
    let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let wrap = |e: ort::Error| Error::InvalidInput(format!("input '{name}': {e}"));
    Ok(match_tensor_data!(data,
        v => OrtTensor::from_array((shape, v)).map_err(wrap)?.into_dyn(),
        b => {
            if let Some(i) = b.iter().position(|e| e.contains(&0)) {
                return Err(Error::InvalidInput(format!(
                    "input '{name}' element {i} contains a NUL byte, which an ONNX string tensor cannot hold"
                )));
            }
            let mut elements = Vec::with_capacity(b.len());
            for (i, element) in b.iter().enumerate() {
                let s = std::str::from_utf8(element).map_err(|_| {
                    Error::InvalidInput(format!(
                        "input '{name}' element {i} is not valid UTF-8, which an ONNX string tensor needs"
                    ))
                })?;
                elements.push(s.to_owned());
            }
            OrtTensor::from_string_array((shape, elements.as_slice()))
                .map_err(wrap)?
                .into_dyn()
        }
    ))
}

/// Copies an ONNX Runtime output value into a tensor buffer, returning its shape too.
pub fn from_ort_value(name: &str, value: &DynValue) -> Result<(Vec<usize>, TensorData), Error> {
    let wrap = |e: ort::Error| Error::Internal(format!("output '{name}': {e}"));
    let element = value.dtype().tensor_type().ok_or_else(|| {
        Error::Unsupported(format!(
            "output '{name}' is not a tensor (sequence or map outputs are not supported)"
        ))
    })?;
    let datatype = datatype_of(element).ok_or_else(|| {
        Error::Unsupported(format!(
            "output '{name}' has element type {element:?}, which V2 cannot carry"
        ))
    })?;
    Ok(match_number_type!(datatype,
        variant => {
            let (shape, slice) = value.try_extract_tensor().map_err(wrap)?;
            (dims(shape), variant(slice.to_vec()))
        },
        DataType::Bool => {
            let (shape, slice) = value.try_extract_tensor::<bool>().map_err(wrap)?;
            (dims(shape), TensorData::Bool(slice.to_vec()))
        }
        DataType::Bytes => {
            let (shape, strings) = value.try_extract_strings().map_err(wrap)?;
            let total = strings.iter().map(String::len).sum();
            let mut buf = BytesBuf::with_capacity(strings.len(), total);
            for s in &strings {
                buf.push(s.as_bytes());
            }
            (dims(shape), TensorData::Bytes(buf))
        }
    ))
}

fn dims(shape: &[i64]) -> Vec<usize> {
    shape.iter().map(|&d| d.max(0) as usize).collect()
}
