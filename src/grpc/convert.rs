//! Conversions between the gRPC messages and the transport-free types: tensors in typed `contents` or raw
//! contents (every datatype), parameters both ways, metadata. Decoding errors are `Error::InvalidInput`
//! naming the tensor; fitting the request to the model is the service's job, not this module's.

use std::collections::HashMap;

use prost::bytes::Bytes;
use serde_json::Value;

use super::pb;
use super::pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use super::pb::model_infer_response::InferOutputTensor;
use super::pb::model_metadata_response::TensorMetadata;
use crate::error::{shape_text, short, Error};
use crate::model::TensorSpec;
use crate::service::{InferRequest, InferResponse, ModelMetadata, RequestedOutput, ServerMetadata};
use crate::tensor::binary::{decode_raw, into_raw_bytes};
use crate::tensor::limits::{BytesBudget, Limits};
use crate::tensor::{parse_wire_header, DataType, Parameters, Tensor, TensorData};

/// A decoded `ModelInferRequest`.
#[derive(Debug)]
pub struct DecodedInfer {
    pub model_name: String,
    /// `None` when the request left it empty (the default version).
    pub model_version: Option<String>,
    pub request: InferRequest,
    /// The inputs came as `raw_input_contents`: answer with `raw_output_contents` (tritonclient reads only those).
    pub raw: bool,
}

/// Decodes a `ModelInferRequest`: inputs from `raw_input_contents` (one entry per input) or typed `contents`,
/// within the per-request `limits` (counts first, then each input's header before its data is converted).
pub fn infer_request(
    message: pb::ModelInferRequest,
    limits: &Limits,
) -> Result<DecodedInfer, Error> {
    limits.check_tensor_count("inputs", message.inputs.len())?;
    limits.check_tensor_count("requested outputs", message.outputs.len())?;
    let raw = !message.raw_input_contents.is_empty();
    if let Some(both) = message
        .inputs
        .iter()
        .find(|i| raw && i.contents.as_ref().is_some_and(has_elements))
    {
        // Triton's wording, which its grpc_explicit_int_content_client.py example looks for.
        return Err(Error::InvalidInput(format!(
            "contents field must not be specified when using raw_input_contents for '{}' for model '{}'; send one or the other",
            short(&both.name),
            short(&message.model_name)
        )));
    }
    if raw && message.raw_input_contents.len() != message.inputs.len() {
        return Err(Error::InvalidInput(format!(
            "raw_input_contents has {} entries but the request has {} inputs; give exactly one per input, in order",
            message.raw_input_contents.len(),
            message.inputs.len()
        )));
    }
    let mut raw_contents = message.raw_input_contents.into_iter();
    let mut bytes_budget = limits.bytes_budget();
    let inputs = message
        .inputs
        .into_iter()
        .map(|input| input_tensor(input, raw_contents.next(), limits, &mut bytes_budget))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = message
        .outputs
        .into_iter()
        .map(|output: InferRequestedOutputTensor| RequestedOutput {
            name: output.name,
            parameters: parameters_from_proto(output.parameters),
        })
        .collect();
    Ok(DecodedInfer {
        model_name: message.model_name,
        model_version: non_empty(message.model_version),
        request: InferRequest {
            id: non_empty(message.id),
            parameters: parameters_from_proto(message.parameters),
            inputs,
            outputs,
        },
        raw,
    })
}

/// `None` for the empty string proto3 uses for "not set".
pub fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn input_tensor(
    input: InferInputTensor,
    raw_bytes: Option<Bytes>,
    limits: &Limits,
    bytes_budget: &mut BytesBudget,
) -> Result<Tensor, Error> {
    let name = input.name;
    let (datatype, shape, count) = parse_wire_header(&name, &input.datatype, &input.shape, limits)?;
    if datatype == DataType::Bytes {
        bytes_budget.take(&name, count)?;
    }
    let shown = short(&name);
    let data = match raw_bytes {
        Some(bytes) => {
            if input.contents.as_ref().is_some_and(has_elements) {
                return Err(Error::InvalidInput(format!(
                    "input '{shown}' has both contents and raw_input_contents; send one or the other"
                )));
            }
            decode_raw(&shown, datatype, count, bytes)?
        }
        None => typed_contents(
            &shown,
            datatype,
            &shape,
            count,
            input.contents.unwrap_or_default(),
        )?,
    };
    drop(shown);
    let mut tensor = Tensor::new(name, shape, data)?;
    tensor.parameters = parameters_from_proto(input.parameters);
    Ok(tensor)
}

fn has_elements(c: &pb::InferTensorContents) -> bool {
    !(c.bool_contents.is_empty()
        && c.int_contents.is_empty()
        && c.int64_contents.is_empty()
        && c.uint_contents.is_empty()
        && c.uint64_contents.is_empty()
        && c.fp32_contents.is_empty()
        && c.fp64_contents.is_empty()
        && c.bytes_contents.is_empty())
}

/// Takes the elements from the `contents` field that carries `datatype`; the count must match the shape.
fn typed_contents(
    name: &str,
    datatype: DataType,
    shape: &[usize],
    count: usize,
    c: pb::InferTensorContents,
) -> Result<TensorData, Error> {
    let check = |len: usize, field: &str| {
        if len == count {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "input '{name}' ({datatype}) has {len} elements in contents.{field} but shape {} needs {count}",
                shape_text(shape)
            )))
        }
    };
    let narrow_err = |value: String| {
        Error::InvalidInput(format!(
            "input '{name}' value {value} is out of range for {datatype}"
        ))
    };
    Ok(match datatype {
        DataType::Bool => {
            check(c.bool_contents.len(), "bool_contents")?;
            TensorData::Bool(c.bool_contents)
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 => {
            check(c.int_contents.len(), "int_contents")?;
            match datatype {
                DataType::Int8 => TensorData::Int8(narrow(c.int_contents, narrow_err)?),
                DataType::Int16 => TensorData::Int16(narrow(c.int_contents, narrow_err)?),
                _ => TensorData::Int32(c.int_contents),
            }
        }
        DataType::Int64 => {
            check(c.int64_contents.len(), "int64_contents")?;
            TensorData::Int64(c.int64_contents)
        }
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => {
            check(c.uint_contents.len(), "uint_contents")?;
            match datatype {
                DataType::Uint8 => TensorData::Uint8(narrow(c.uint_contents, narrow_err)?),
                DataType::Uint16 => TensorData::Uint16(narrow(c.uint_contents, narrow_err)?),
                _ => TensorData::Uint32(c.uint_contents),
            }
        }
        DataType::Uint64 => {
            check(c.uint64_contents.len(), "uint64_contents")?;
            TensorData::Uint64(c.uint64_contents)
        }
        DataType::Fp32 => {
            check(c.fp32_contents.len(), "fp32_contents")?;
            TensorData::Fp32(c.fp32_contents)
        }
        DataType::Fp64 => {
            check(c.fp64_contents.len(), "fp64_contents")?;
            TensorData::Fp64(c.fp64_contents)
        }
        DataType::Bytes => {
            check(c.bytes_contents.len(), "bytes_contents")?;
            TensorData::Bytes(c.bytes_contents.iter().map(Vec::as_slice).collect())
        }
        DataType::Fp16 | DataType::Bf16 if count == 0 => match datatype {
            DataType::Fp16 => TensorData::Fp16(Vec::new()),
            _ => TensorData::Bf16(Vec::new()),
        },
        DataType::Fp16 | DataType::Bf16 => {
            return Err(Error::InvalidInput(format!(
                "input '{name}' is {datatype}, which has no typed contents field: send it in raw_input_contents"
            )))
        }
    })
}

/// Converts every element to the narrower type, or fails on the first that does not fit.
fn narrow<S, T>(values: Vec<S>, error: impl Fn(String) -> Error) -> Result<Vec<T>, Error>
where
    S: Copy + ToString,
    T: TryFrom<S>,
{
    values
        .into_iter()
        .map(|v| T::try_from(v).map_err(|_| error(v.to_string())))
        .collect()
}

/// Encodes a response; outputs go in `raw_output_contents` when `raw` is set or when an output is FP16/BF16
/// (which have no typed field), else in typed `contents`.
pub fn infer_response(response: InferResponse, raw: bool) -> pb::ModelInferResponse {
    let raw = raw
        || response
            .outputs
            .iter()
            .any(|t| matches!(t.datatype(), DataType::Fp16 | DataType::Bf16));
    let mut raw_output_contents = Vec::new();
    let mut outputs = Vec::with_capacity(response.outputs.len());
    for tensor in response.outputs {
        let datatype = tensor.datatype().as_str().to_string();
        let (name, shape, data, parameters) = tensor.into_parts();
        let contents = if raw {
            raw_output_contents.push(into_raw_bytes(data));
            None
        } else {
            Some(typed_output(data))
        };
        outputs.push(InferOutputTensor {
            name,
            datatype,
            shape: shape.iter().map(|&d| d as i64).collect(),
            parameters: parameters_to_proto(&parameters),
            contents,
        });
    }
    pb::ModelInferResponse {
        model_name: response.model_name,
        model_version: response.model_version.unwrap_or_default(),
        id: response.id,
        parameters: parameters_to_proto(&response.parameters),
        outputs,
        raw_output_contents,
    }
}

/// Puts a buffer in the `contents` field for its datatype (FP16/BF16 never get here; see [`infer_response`]).
fn typed_output(data: TensorData) -> pb::InferTensorContents {
    let mut c = pb::InferTensorContents::default();
    match data {
        TensorData::Bool(v) => c.bool_contents = v,
        TensorData::Int8(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int16(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int32(v) => c.int_contents = v,
        TensorData::Int64(v) => c.int64_contents = v,
        TensorData::Uint8(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint16(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint32(v) => c.uint_contents = v,
        TensorData::Uint64(v) => c.uint64_contents = v,
        TensorData::Fp16(v) => c.fp32_contents = v.into_iter().map(f32::from).collect(),
        TensorData::Bf16(v) => c.fp32_contents = v.into_iter().map(f32::from).collect(),
        TensorData::Fp32(v) => c.fp32_contents = v,
        TensorData::Fp64(v) => c.fp64_contents = v,
        TensorData::Bytes(b) => c.bytes_contents = b.iter().map(<[u8]>::to_vec).collect(),
    }
    c
}

/// Proto parameters as JSON values (a parameter with no value set becomes `null`).
pub fn parameters_from_proto(map: HashMap<String, pb::InferParameter>) -> Parameters {
    use pb::infer_parameter::ParameterChoice as P;
    map.into_iter()
        .map(|(key, parameter)| {
            let value = match parameter.parameter_choice {
                Some(P::BoolParam(b)) => Value::Bool(b),
                Some(P::Int64Param(i)) => Value::from(i),
                Some(P::StringParam(s)) => Value::String(s),
                Some(P::DoubleParam(d)) => serde_json::Number::from_f64(d)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                Some(P::Uint64Param(u)) => Value::from(u),
                None => Value::Null,
            };
            (key, value)
        })
        .collect()
}

/// JSON parameters as proto ones: integers as int64 (uint64 above i64::MAX), other numbers as double;
/// nested values (MLServer's `headers`) as their JSON text; `null` is left out.
pub fn parameters_to_proto(params: &Parameters) -> HashMap<String, pb::InferParameter> {
    use pb::infer_parameter::ParameterChoice as P;
    params
        .iter()
        .filter_map(|(key, value)| {
            let choice = match value {
                Value::Null => return None,
                Value::Bool(b) => P::BoolParam(*b),
                Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                    (Some(i), _) => P::Int64Param(i),
                    (None, Some(u)) => P::Uint64Param(u),
                    _ => P::DoubleParam(n.as_f64().unwrap_or(f64::NAN)),
                },
                Value::String(s) => P::StringParam(s.clone()),
                other => P::StringParam(other.to_string()),
            };
            Some((
                key.clone(),
                pb::InferParameter {
                    parameter_choice: Some(choice),
                },
            ))
        })
        .collect()
}

pub fn server_metadata(metadata: ServerMetadata) -> pb::ServerMetadataResponse {
    pb::ServerMetadataResponse {
        name: metadata.name,
        version: metadata.version,
        extensions: metadata.extensions,
    }
}

/// The model metadata message. The model-level parameters stay out (field 6 is declared differently by the
/// official proto and by MLServer's, see docs/conformance.md); REST's metadata carries them. Per-tensor parameters
/// go in `TensorMetadata` field 4, which MLServer's and Seldon's protos declare and the others skip as unknown.
pub fn model_metadata(metadata: ModelMetadata) -> pb::ModelMetadataResponse {
    pb::ModelMetadataResponse {
        name: metadata.name,
        versions: metadata.versions,
        platform: metadata.platform,
        inputs: metadata.inputs.into_iter().map(tensor_metadata).collect(),
        outputs: metadata.outputs.into_iter().map(tensor_metadata).collect(),
    }
}

fn tensor_metadata(spec: TensorSpec) -> TensorMetadata {
    TensorMetadata {
        name: spec.name,
        datatype: spec.datatype.as_str().to_string(),
        shape: spec.shape,
        parameters: spec
            .parameters
            .as_ref()
            .map(parameters_to_proto)
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::infer_parameter::ParameterChoice as P;

    fn input(name: &str, datatype: &str, shape: Vec<i64>) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape,
            ..Default::default()
        }
    }

    fn err(message: pb::ModelInferRequest) -> String {
        infer_request(message, &Limits::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn typed_int8_is_range_checked() {
        let mut i = input("a", "INT8", vec![2]);
        i.contents = Some(pb::InferTensorContents {
            int_contents: vec![1, 300],
            ..Default::default()
        });
        let e = err(pb::ModelInferRequest {
            inputs: vec![i],
            ..Default::default()
        });
        assert!(e.contains("'a'") && e.contains("300"), "{e}");
    }

    #[test]
    fn malformed_requests_name_the_tensor() {
        let e = err(pb::ModelInferRequest {
            inputs: vec![input("a", "FLOAT", vec![1])],
            ..Default::default()
        });
        assert!(e.contains("'a'") && e.contains("FLOAT"), "{e}");
        let e = err(pb::ModelInferRequest {
            inputs: vec![input("a", "FP32", vec![1]), input("b", "FP32", vec![1])],
            raw_input_contents: vec![Bytes::from_static(&[0; 4])],
            ..Default::default()
        });
        assert!(e.contains("raw_input_contents"), "{e}");
        let mut both = input("a", "FP32", vec![1]);
        both.contents = Some(pb::InferTensorContents {
            fp32_contents: vec![1.0],
            ..Default::default()
        });
        let e = err(pb::ModelInferRequest {
            inputs: vec![both],
            raw_input_contents: vec![Bytes::from_static(&[0; 4])],
            ..Default::default()
        });
        assert!(
            e.contains(
                "contents field must not be specified when using raw_input_contents for 'a'"
            ),
            "{e}"
        );
        let e = err(pb::ModelInferRequest {
            inputs: vec![input("h", "FP16", vec![2])],
            ..Default::default()
        });
        assert!(e.contains("'h'") && e.contains("raw_input_contents"), "{e}");
    }

    #[test]
    fn limits_are_checked_before_contents_are_converted() {
        let limits = Limits {
            max_tensors: 2,
            max_rank: 3,
            max_elements: 100,
            max_bytes_elements: 5,
            ..Limits::default()
        };
        let check = |message: pb::ModelInferRequest| {
            infer_request(message, &limits).unwrap_err().to_string()
        };
        let e = check(pb::ModelInferRequest {
            inputs: (0..3)
                .map(|i| input(&format!("i{i}"), "FP32", vec![1]))
                .collect(),
            ..Default::default()
        });
        assert!(e.contains("more than 2 inputs"), "{e}");
        let e = check(pb::ModelInferRequest {
            outputs: (0..3)
                .map(|_| InferRequestedOutputTensor::default())
                .collect(),
            ..Default::default()
        });
        assert!(e.contains("more than 2 requested outputs"), "{e}");
        let e = check(pb::ModelInferRequest {
            inputs: vec![input("r", "FP32", vec![1; 1_000_000])],
            ..Default::default()
        });
        assert!(
            e.contains("'r'") && e.contains("max_shape_rank") && e.len() < 200,
            "{e}"
        );
        let e = check(pb::ModelInferRequest {
            inputs: vec![input("e", "FP32", vec![101])],
            raw_input_contents: vec![Bytes::new()],
            ..Default::default()
        });
        assert!(
            e.contains("'e'") && e.contains("max_tensor_elements"),
            "{e}"
        );
        let strings = |name: &str| {
            let mut typed = input(name, "BYTES", vec![3]);
            typed.contents = Some(pb::InferTensorContents {
                bytes_contents: vec![b"x".to_vec(); 3],
                ..Default::default()
            });
            typed
        };
        let e = check(pb::ModelInferRequest {
            inputs: vec![strings("a"), strings("b")],
            ..Default::default()
        });
        // The first input's 3 elements fit; the second's 3 more do not (counted before it is converted).
        assert!(e.contains("'b'") && e.contains("max_bytes_elements"), "{e}");
    }

    #[test]
    fn parameters_round_trip() {
        let params: Parameters = serde_json::from_value(serde_json::json!({
            "b": true, "i": -3, "u": u64::MAX, "d": 0.5, "s": "x", "n": null, "o": {"k": 1}
        }))
        .unwrap();
        let proto = parameters_to_proto(&params);
        assert_eq!(proto.len(), 6);
        assert_eq!(proto["u"].parameter_choice, Some(P::Uint64Param(u64::MAX)));
        assert_eq!(
            proto["o"].parameter_choice,
            Some(P::StringParam("{\"k\":1}".into()))
        );
        let back = parameters_from_proto(proto);
        for key in ["b", "i", "u", "d", "s"] {
            assert_eq!(back[key], params[key], "{key}");
        }
    }

    #[test]
    fn fp16_outputs_force_raw() {
        let response = InferResponse {
            model_name: "m".into(),
            model_version: None,
            id: "1".into(),
            parameters: Parameters::new(),
            outputs: vec![Tensor::new(
                "h",
                vec![1],
                TensorData::Fp16(vec![half::f16::from_f32(1.0)]),
            )
            .unwrap()],
        };
        let message = infer_response(response, false);
        assert_eq!(message.raw_output_contents.len(), 1);
        assert!(message.outputs[0].contents.is_none());
    }
}
