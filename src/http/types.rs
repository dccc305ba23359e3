//! REST wire types for inference: the request read borrowing the body's bytes, the response written from tensors.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::Error;
use crate::service::{InferRequest, InferResponse, RequestedOutput};
use crate::tensor::json::{decode_data, JsonData};
use crate::tensor::{element_count, shape_from_wire, DataType, Parameters, Tensor, TensorData};

/// `POST .../infer` body. `data` stays raw text until the tensor's datatype and shape are known.
#[derive(Debug, Deserialize)]
pub struct InferRequestJson<'a> {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<Parameters>,
    #[serde(borrow)]
    pub inputs: Vec<InputJson<'a>>,
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutputJson>>,
}

/// One request input.
#[derive(Debug, Deserialize)]
pub struct InputJson<'a> {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Option<Parameters>,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

/// One entry of the request's `outputs`.
#[derive(Debug, Deserialize)]
pub struct RequestedOutputJson {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<Parameters>,
}

/// Parses a JSON infer request body into the transport-free request.
pub fn parse_infer_request(body: &[u8]) -> Result<InferRequest, Error> {
    let wire: InferRequestJson<'_> = serde_json::from_slice(body)
        .map_err(|e| Error::InvalidInput(format!("invalid inference request: {e}")))?;
    let mut inputs = Vec::with_capacity(wire.inputs.len());
    for input in wire.inputs {
        inputs.push(decode_input(input)?);
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

fn decode_input(input: InputJson<'_>) -> Result<Tensor, Error> {
    let name = input.name;
    let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
        Error::InvalidInput(format!(
            "input '{name}' has unknown datatype '{}'",
            input.datatype
        ))
    })?;
    let shape = shape_from_wire(&name, &input.shape)?;
    let count = element_count(&name, &shape)?;
    let raw = input
        .data
        .ok_or_else(|| Error::InvalidInput(format!("input '{name}' has no data")))?;
    let data: TensorData = decode_data(&name, datatype, count, raw)?;
    Ok(Tensor {
        name,
        shape,
        data,
        parameters: input.parameters.unwrap_or_default(),
    })
}

/// `POST .../infer` response body, serialised straight from the output buffers.
#[derive(Serialize)]
struct InferResponseJson<'a> {
    model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<&'a str>,
    id: &'a str,
    #[serde(skip_serializing_if = "Parameters::is_empty")]
    parameters: &'a Parameters,
    outputs: Vec<OutputJson<'a>>,
}

#[derive(Serialize)]
struct OutputJson<'a> {
    name: &'a str,
    shape: &'a [usize],
    datatype: &'static str,
    #[serde(skip_serializing_if = "Parameters::is_empty")]
    parameters: &'a Parameters,
    data: JsonData<'a>,
}

/// Serialises a response as JSON bytes.
pub fn write_infer_response(response: &InferResponse) -> Vec<u8> {
    let body = InferResponseJson {
        model_name: &response.model_name,
        model_version: response.model_version.as_deref(),
        id: &response.id,
        parameters: &response.parameters,
        outputs: response
            .outputs
            .iter()
            .map(|t| OutputJson {
                name: &t.name,
                shape: &t.shape,
                datatype: t.datatype().as_str(),
                parameters: &t.parameters,
                data: JsonData(&t.data),
            })
            .collect(),
    };
    let estimate = response
        .outputs
        .iter()
        .map(|t| t.data.len() * 12)
        .sum::<usize>()
        + 256;
    let mut out = Vec::with_capacity(estimate);
    serde_json::to_writer(&mut out, &body).expect("serialising to memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mlserver_dict_with_nulls() {
        let body = br#"{"id":null,"parameters":{"content_type":"np","headers":null},"inputs":[{"name":"x","shape":[2],"datatype":"INT64","parameters":null,"data":[1,2]}],"outputs":null}"#;
        let r = parse_infer_request(body).unwrap();
        assert_eq!(r.id, None);
        assert_eq!(r.inputs[0].data, TensorData::Int64(vec![1, 2]));
        assert!(r.outputs.is_empty());
    }

    #[test]
    fn errors_name_the_input() {
        let body = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FLOAT","data":[1,2]}]}"#;
        assert!(parse_infer_request(body)
            .unwrap_err()
            .to_string()
            .contains("'x'"));
        let body = br#"{"inputs":[{"name":"y","shape":[-2],"datatype":"FP32","data":[1,2]}]}"#;
        assert!(parse_infer_request(body)
            .unwrap_err()
            .to_string()
            .contains("'y'"));
        let body = br#"{"inputs":[{"name":"z","shape":[2],"datatype":"FP32"}]}"#;
        assert!(parse_infer_request(body)
            .unwrap_err()
            .to_string()
            .contains("'z' has no data"));
    }
}
