//! REST wire types for inference: the request read borrowing the body's bytes, the response written from tensors.

use bytes::{Buf, Bytes};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::error::{short, Error};
use crate::http::json::envelope::{split_envelope, DataSpan};
use crate::http::json::limits::check_request_limits;
use crate::http::json::rope::Rope;
use crate::http::json::{decode_data, decode_data_text, read_data_early, EarlyData, JsonData};
use crate::service::{InferRequest, InferResponse, RequestedOutput};
use crate::tensor::binary::{decode_raw, into_raw_bytes, raw_len};
use crate::tensor::limits::{BytesBudget, Limits};
use crate::tensor::{parse_wire_header, DataType, Parameters, Tensor, TensorData};

/// `POST .../infer` body. `data` stays raw text until the tensor's datatype and shape are known.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = InferenceRequest, description = "An inference request.")]
pub struct InferRequestJson<'a> {
    /// Echoed in the response; a UUID is generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters (`content_type`, `binary_data_output`, ...).
    #[serde(default)]
    #[schema(value_type = Option<crate::service::ParametersSchema>)]
    pub parameters: Option<Parameters>,
    /// Every input of the model, once each.
    #[serde(borrow)]
    pub inputs: Vec<InputJson<'a>>,
    /// The outputs to return (all of them when absent), with per-output parameters.
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutputJson>>,
}

/// One request input.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RequestInput)]
pub struct InputJson<'a> {
    /// The model input it feeds.
    pub name: String,
    /// The tensor's dimensions (non-negative).
    pub shape: Vec<i64>,
    /// The tensor's datatype; it must match the model's (codecs convert some, see `content_type`).
    #[schema(value_type = crate::tensor::DataType)]
    pub datatype: String,
    /// Input parameters (`content_type`, `binary_data_size`, ...).
    #[serde(default)]
    #[schema(value_type = Option<crate::service::ParametersSchema>)]
    pub parameters: Option<Parameters>,
    /// The elements; absent when `parameters.binary_data_size` says they follow the JSON as bytes.
    #[serde(borrow, default)]
    #[schema(value_type = Option<super::schemas::TensorData>)]
    pub data: Option<&'a RawValue>,
}

/// One entry of the request's `outputs`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RequestOutput)]
pub struct RequestedOutputJson {
    /// The model output to return.
    pub name: String,
    /// Output parameters (`binary_data`, `classification`).
    #[serde(default)]
    #[schema(value_type = Option<crate::service::ParametersSchema>)]
    pub parameters: Option<Parameters>,
}

/// Parses a JSON infer request body into the transport-free request, within the per-request `limits`.
pub fn parse_infer_request(body: &[u8], limits: &Limits) -> Result<InferRequest, Error> {
    parse_infer_request_with_binary(&Rope::new([body]), bytes::Bytes::new(), limits)
}

/// Parses the JSON of an infer request (read from the chunks it arrived in); inputs with `binary_data_size`
/// take their bytes, in order, from `binary` (the binary tensor data extension), which they must use up exactly.
/// The per-request `limits` are checked before anything is built for what the request declares.
pub fn parse_infer_request_with_binary(
    json: &Rope<'_>,
    mut binary: impl Buf,
    limits: &Limits,
) -> Result<InferRequest, Error> {
    let binary_len = binary.remaining();
    // Large bodies: serde reads only the envelope; the data arrays are read from the body by the fast reader.
    // A body with more inputs than allowed leaves the scan early (then the limit check below refuses it).
    let mut envelope = if json.len() >= FAST_PATH_BYTES {
        split_envelope(json, limits.max_tensors, |head, start| {
            read_data_early(head, json, start, limits.max_elements)
        })
    } else {
        None
    };
    let whole;
    let (header, spans) = match &mut envelope {
        Some(e) => (e.json.as_slice(), e.spans.as_mut_slice()),
        None => {
            whole = json.slice(0..json.len());
            (&*whole, &mut [][..])
        }
    };
    check_request_limits(header, limits)?;
    let wire: InferRequestJson<'_> = serde_json::from_slice(header)
        .map_err(|e| Error::InvalidInput(format!("invalid inference request: {e}")))?;
    let mut inputs = Vec::with_capacity(wire.inputs.len());
    let mut bytes_budget = limits.bytes_budget();
    // The spans are in input order: one walk along them (not a search per input).
    let mut spans = spans.iter_mut().peekable();
    for (index, input) in wire.inputs.into_iter().enumerate() {
        let text = spans.next_if(|s| s.input == index).map(|s| (json, s));
        inputs.push(decode_input(
            input,
            text,
            &mut binary,
            limits,
            &mut bytes_budget,
        )?);
    }
    if binary.has_remaining() {
        return Err(Error::InvalidInput(format!(
            "the body carries {binary_len} bytes of binary tensor data but the inputs' binary_data_size add up to {}",
            binary_len - binary.remaining()
        )));
    }
    Ok(InferRequest {
        id: wire.id,
        parameters: wire.parameters.unwrap_or_default(),
        inputs,
        outputs: wire
            .outputs
            .unwrap_or_default()
            .into_iter()
            .map(|o| RequestedOutput {
                name: o.name,
                parameters: o.parameters.unwrap_or_default(),
            })
            .collect(),
    })
}

/// Bodies from this size on take the envelope fast path (small ones are not worth the extra scan).
const FAST_PATH_BYTES: usize = 16 * 1024;

/// Decodes one input; `text` is where its `data` lies in the body, if the envelope scan took it out (and what
/// the scan read of it).
fn decode_input(
    input: InputJson<'_>,
    text: Option<(&Rope<'_>, &mut DataSpan<EarlyData>)>,
    binary: &mut impl Buf,
    limits: &Limits,
    bytes_budget: &mut BytesBudget,
) -> Result<Tensor, Error> {
    let name = input.name;
    let (datatype, shape, count) = parse_wire_header(&name, &input.datatype, &input.shape, limits)?;
    if datatype == DataType::Bytes {
        bytes_budget.take(&name, count)?;
    }
    let shown = short(&name);
    let mut parameters = input.parameters.unwrap_or_default();
    let data: TensorData = match parameters.remove("binary_data_size") {
        Some(size) => {
            if input.data.is_some() {
                return Err(Error::InvalidInput(format!(
                    "input '{shown}' has both data and binary_data_size; give one"
                )));
            }
            let size = size
                .as_u64()
                .and_then(|s| usize::try_from(s).ok())
                .ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "input '{shown}' binary_data_size must be a non-negative integer, got {}",
                        short(&size.to_string())
                    ))
                })?;
            if size > binary.remaining() {
                return Err(Error::InvalidInput(format!(
                    "input '{shown}' binary_data_size is {size} but only {} bytes of binary data remain in the body",
                    binary.remaining()
                )));
            }
            decode_raw(&shown, datatype, count, binary.take(size))?
        }
        None => {
            let raw = input
                .data
                .ok_or_else(|| Error::InvalidInput(format!("input '{shown}' has no data")))?;
            match text {
                Some((body, span)) => match span.early.take() {
                    Some(early) if early.datatype == datatype && early.data.len() == count => {
                        early.data
                    }
                    _ => decode_data_text(&shown, datatype, count, body, span.range.clone())?,
                },
                None => decode_data(&shown, datatype, count, raw)?,
            }
        }
    };
    drop(shown);
    Ok(Tensor::new(name, shape, data)?.with_parameters(parameters))
}

/// `POST .../infer` response body, serialised straight from the output buffers.
#[derive(Serialize, ToSchema)]
#[schema(as = InferenceResponse, description = "An inference response.")]
pub struct InferResponseJson<'a> {
    /// The model that answered.
    model_name: &'a str,
    /// Its version, when the model is versioned.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    model_version: Option<&'a str>,
    /// The request's `id`, or a generated UUID.
    id: &'a str,
    /// Response parameters.
    #[serde(skip_serializing_if = "Parameters::is_empty")]
    #[schema(value_type = crate::service::ParametersSchema)]
    parameters: &'a Parameters,
    /// The outputs, in the model's order (or the order they were requested in).
    outputs: Vec<OutputJson<'a>>,
}

/// One response output.
#[derive(Serialize, ToSchema)]
#[schema(as = ResponseOutput)]
pub struct OutputJson<'a> {
    /// The model output.
    name: &'a str,
    /// The tensor's dimensions.
    #[schema(value_type = Vec<u64>)]
    shape: &'a [usize],
    /// The tensor's datatype.
    #[schema(value_type = crate::tensor::DataType)]
    datatype: &'static str,
    /// Output parameters (`content_type`, `binary_data_size` when the data follows as bytes).
    #[serde(skip_serializing_if = "Parameters::is_empty")]
    #[schema(value_type = crate::service::ParametersSchema)]
    parameters: Parameters,
    /// The elements, flat in row-major order; absent for outputs sent as binary data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = super::schemas::TensorData)]
    data: Option<JsonData<'a>>,
}

/// Output parameters that steer the encoding and are not echoed back.
const ENCODING_PARAMETERS: [&str; 3] = ["binary_data", "binary_data_size", "classification"];

/// Serialises a response. Outputs for which `binary(name)` is true go after the JSON as raw bytes (binary tensor
/// data extension), one part each, their buffers handed over rather than copied where the layout allows
/// (`into_raw_bytes`); the JSON's length is returned then, for the `Inference-Header-Content-Length` header.
pub fn write_infer_response(
    response: InferResponse,
    binary: impl Fn(&str) -> bool,
) -> (Vec<u8>, Vec<Bytes>, Option<usize>) {
    let mut any_binary = false;
    let outputs = response
        .outputs
        .iter()
        .map(|t| {
            let mut parameters = t.parameters.clone();
            for key in ENCODING_PARAMETERS {
                parameters.remove(key);
            }
            let is_binary = binary(&t.name);
            if is_binary {
                any_binary = true;
                parameters.insert("binary_data_size".into(), raw_len(t.data()).into());
            }
            let data = (!is_binary).then(|| JsonData::new(t.data()));
            if data.as_ref().is_some_and(JsonData::base64) {
                // JSON strings are text: bytes that are not UTF-8 go base64-encoded, and say so (MLServer's codec).
                parameters.insert("content_type".into(), "base64".into());
            }
            OutputJson {
                name: &t.name,
                shape: t.shape(),
                datatype: t.datatype().as_str(),
                parameters,
                data,
            }
        })
        .collect();
    let body = InferResponseJson {
        model_name: &response.model_name,
        model_version: response.model_version.as_deref(),
        id: &response.id,
        parameters: &response.parameters,
        outputs,
    };
    let estimate: usize = response
        .outputs
        .iter()
        .filter(|t| !binary(&t.name))
        .map(|t| t.data().len() * 12)
        .sum::<usize>()
        + 256;
    let mut out = Vec::with_capacity(estimate);
    serde_json::to_writer(&mut out, &body).expect("serialising to memory cannot fail");
    if !any_binary {
        return (out, Vec::new(), None);
    }
    let json_len = out.len();
    let parts = response
        .outputs
        .into_iter()
        .filter(|t| binary(&t.name))
        .map(|t| into_raw_bytes(t.into_parts().2))
        .collect();
    (out, parts, Some(json_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mlserver_dict_with_nulls() {
        let body = br#"{"id":null,"parameters":{"content_type":"np","headers":null},"inputs":[{"name":"x","shape":[2],"datatype":"INT64","parameters":null,"data":[1,2]}],"outputs":null}"#;
        let r = parse_infer_request(body, &Limits::default()).unwrap();
        assert_eq!(r.id, None);
        assert_eq!(*r.inputs[0].data(), TensorData::Int64(vec![1, 2]));
        assert!(r.outputs.is_empty());
    }

    /// A body of `n` one-element FP32 inputs (data last: large bodies take the envelope path).
    fn many_inputs(n: usize) -> String {
        let inputs: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"name":"i{i}","shape":[1],"datatype":"FP32","data":[{i}]}}"#))
            .collect();
        format!(r#"{{"inputs":[{}]}}"#, inputs.join(","))
    }

    #[test]
    fn many_inputs_are_matched_in_one_walk() {
        let limits = Limits {
            max_tensors: 100_000,
            ..Limits::default()
        };
        // The best of three runs of parsing `n` inputs.
        let time = |n: usize| {
            let body = many_inputs(n);
            (0..3)
                .map(|_| {
                    let started = std::time::Instant::now();
                    let r = parse_infer_request(body.as_bytes(), &limits).unwrap();
                    assert_eq!(
                        *r.inputs[n - 1].data(),
                        TensorData::Fp32(vec![(n - 1) as f32])
                    );
                    started.elapsed()
                })
                .min()
                .unwrap()
        };
        let (small, large) = (time(4_000), time(32_000));
        // 8x the inputs: about 8x the time when linear, 64x when quadratic (a search per input).
        assert!(large < small * 24, "{small:?} -> {large:?}");
    }

    #[test]
    fn limits_are_checked_before_parsing() {
        let limits = Limits {
            max_tensors: 10,
            max_rank: 4,
            max_elements: 100,
            max_bytes_elements: 5,
            ..Limits::default()
        };
        for body in [many_inputs(11), many_inputs(20_000)] {
            let e = parse_infer_request(body.as_bytes(), &limits).unwrap_err();
            assert!(e.to_string().contains("max_tensors_per_request"), "{e}");
        }
        let outputs = r#"{"inputs":[],"outputs":[{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"}]}"#;
        let e = parse_infer_request(outputs.as_bytes(), &limits).unwrap_err();
        assert!(
            e.to_string().contains("more than 10 requested outputs"),
            "{e}"
        );
        let rank = format!(
            r#"{{"inputs":[{{"name":"r","shape":[{}],"datatype":"FP32","data":[1]}}]}}"#,
            vec!["1"; 1_000_000].join(",")
        );
        let e = parse_infer_request(rank.as_bytes(), &limits)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'r'") && e.contains("max_shape_rank") && e.len() < 200,
            "{e}"
        );
        // A large body (the envelope path, whose early reader would read the data): refused all the same.
        let values = vec!["1.5"; 20_000].join(",");
        let large = format!(
            r#"{{"inputs":[{{"name":"l","shape":[20000],"datatype":"FP32","data":[{values}]}}]}}"#
        );
        let e = parse_infer_request(large.as_bytes(), &limits)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'l'") && e.contains("max_tensor_elements"),
            "{e}"
        );
        let big = r#"{"inputs":[{"name":"e","shape":[10,11],"datatype":"FP32","data":[1]}]}"#;
        let e = parse_infer_request(big.as_bytes(), &limits)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'e'") && e.contains("max_tensor_elements"),
            "{e}"
        );
        let strings = r#"{"inputs":[{"name":"a","shape":[3],"datatype":"BYTES","data":["x","y","z"]},
            {"name":"b","shape":[3],"datatype":"BYTES","data":["x","y","z"]}]}"#;
        let e = parse_infer_request(strings.as_bytes(), &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'b'") && e.contains("max_bytes_elements"), "{e}");
    }

    #[test]
    fn binary_inputs_are_limited_too() {
        let limits = Limits {
            max_bytes_elements: 2,
            ..Limits::default()
        };
        let json = r#"{"inputs":[{"name":"s","shape":[3],"datatype":"BYTES","parameters":{"binary_data_size":15}}]}"#;
        let mut binary = Vec::new();
        for _ in 0..3 {
            binary.extend_from_slice(&1u32.to_le_bytes());
            binary.push(b'x');
        }
        let e = parse_infer_request_with_binary(
            &Rope::new([json.as_bytes()]),
            bytes::Bytes::from(binary),
            &limits,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'s'") && e.contains("max_bytes_elements"), "{e}");
    }

    #[test]
    fn errors_name_the_input() {
        let body = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FLOAT","data":[1,2]}]}"#;
        assert!(parse_infer_request(body, &Limits::default())
            .unwrap_err()
            .to_string()
            .contains("'x'"));
        let body = br#"{"inputs":[{"name":"y","shape":[-2],"datatype":"FP32","data":[1,2]}]}"#;
        assert!(parse_infer_request(body, &Limits::default())
            .unwrap_err()
            .to_string()
            .contains("'y'"));
        let body = br#"{"inputs":[{"name":"z","shape":[2],"datatype":"FP32"}]}"#;
        assert!(parse_infer_request(body, &Limits::default())
            .unwrap_err()
            .to_string()
            .contains("'z' has no data"));
    }

    /// A body over the fast path's threshold with two FP32 inputs, keys in `order` ("data" last: read during the
    /// envelope scan; "data" first: skipped, then read).
    fn large_body(data_last: bool) -> String {
        let values: Vec<String> = (0..3000).map(|i| format!("{:?}", i as f32 / 7.0)).collect();
        let data = values.join(", ");
        let input = |name: &str| {
            let head = format!(r#""name": "{name}", "shape": [3000], "datatype": "FP32""#);
            if data_last {
                format!(r#"{{{head}, "data": [{data}]}}"#)
            } else {
                format!(r#"{{"data": [{data}], {head}}}"#)
            }
        };
        format!(
            r#"{{"inputs": [{}, {}], "id": "r"}}"#,
            input("a"),
            input("b")
        )
    }

    #[test]
    fn large_bodies_read_alike_in_any_key_order_and_any_chunks() {
        use crate::http::json::rope::testing::cut;
        let expected =
            parse_infer_request(large_body(false).as_bytes(), &Limits::default()).unwrap();
        assert_eq!(expected.inputs[1].data().len(), 3000);
        for data_last in [false, true] {
            let body = large_body(data_last);
            let b = body.as_bytes();
            for cuts in [
                vec![],
                vec![1, 2],
                vec![b.len() / 3, b.len() / 2],
                vec![77, b.len() - 5],
            ] {
                let r = parse_infer_request_with_binary(
                    &cut(b, &cuts),
                    bytes::Bytes::new(),
                    &Limits::default(),
                )
                .unwrap();
                assert_eq!(r.id.as_deref(), Some("r"));
                for (got, want) in r.inputs.iter().zip(&expected.inputs) {
                    assert_eq!(
                        (&got.name, got.data()),
                        (&want.name, want.data()),
                        "{cuts:?}"
                    );
                }
            }
            // A shape the data does not fill, and a bad element: the same clear errors either way.
            let short = body.replacen("[3000]", "[3001]", 1);
            let e = parse_infer_request(short.as_bytes(), &Limits::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("'a'") && e.contains("3001"), "{e}");
            let bad = body.replacen("0.14285715", "\"x\"", 1);
            let e = parse_infer_request(bad.as_bytes(), &Limits::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("'a'"), "{e}");
        }
    }
}
