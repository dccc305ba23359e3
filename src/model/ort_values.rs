//! Conversions between our tensors and ONNX Runtime values and element types.

use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType};

use crate::error::Error;
use crate::tensor::{DataType, TensorData};
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

/// Moves a tensor's buffer into an ONNX Runtime value (numeric buffers are handed over, not copied; BYTES
/// elements are copied by length, so they may hold any bytes).
pub fn to_ort_value(name: &str, shape: &[usize], data: TensorData) -> Result<DynValue, Error> {
    let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let wrap = |e: ort::Error| Error::InvalidInput(format!("input '{name}': {e}"));
    Ok(match_tensor_data!(data,
        v => OrtTensor::from_array((shape, v)).map_err(wrap)?.into_dyn(),
        b => super::ort_strings::string_tensor(&shape, &b).map_err(wrap)?
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
            let shape = value.dtype().tensor_shape().map(|s| dims(s)).unwrap_or_default();
            (shape, TensorData::Bytes(super::ort_strings::read_strings(value).map_err(wrap)?))
        }
    ))
}

fn dims(shape: &[i64]) -> Vec<usize> {
    shape.iter().map(|&d| d.max(0) as usize).collect()
}
