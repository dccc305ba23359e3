//! The binary tensor data extension on REST: splitting the body at `Inference-Header-Content-Length`,
//! and deciding which outputs travel as raw bytes.

use axum::http::HeaderMap;
use bytes::{Buf, Bytes};

use crate::error::Error;
use crate::service::{DataPlane, InferRequest};
use crate::tensor::binary::{count_bytes_elements, decode_raw};
use crate::tensor::limits::Limits;
use crate::tensor::Tensor;

/// The header giving the JSON part's length (header names are matched case-insensitively).
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// How a request body is laid out.
pub enum Body<B> {
    /// Plain JSON (left in its chunks).
    Json(B),
    /// JSON header followed by the inputs' raw bytes.
    Mixed { json: Bytes, binary: B },
    /// `Inference-Header-Content-Length: 0`: the whole body is the single input's raw bytes.
    Raw(B),
}

/// Splits `body` according to the header. The JSON part is copied out only when it spans chunks.
pub fn split_body<B: Buf>(headers: &HeaderMap, mut body: B) -> Result<Body<B>, Error> {
    let Some(value) = headers.get(HEADER_LENGTH) else {
        return Ok(Body::Json(body));
    };
    let length: usize = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            Error::InvalidInput(format!("{HEADER_LENGTH} must be a non-negative integer"))
        })?;
    if length == 0 {
        return Ok(Body::Raw(body));
    }
    if length > body.remaining() {
        return Err(Error::InvalidInput(format!(
            "{HEADER_LENGTH} is {length} but the body has only {} bytes",
            body.remaining()
        )));
    }
    let json = body.copy_to_bytes(length);
    Ok(Body::Mixed { json, binary: body })
}

/// Which outputs are answered as raw bytes: an output's `binary_data` wins over the request's
/// `binary_data_output`; a raw-body request gets every output raw.
pub struct BinaryOutputs {
    default: bool,
    named: Vec<(String, bool)>,
}

impl BinaryOutputs {
    pub fn from_request(request: &InferRequest, raw_body: bool) -> BinaryOutputs {
        let default =
            raw_body || flag(request.parameters.get("binary_data_output")).unwrap_or(false);
        let named = request
            .outputs
            .iter()
            .filter_map(|o| flag(o.parameters.get("binary_data")).map(|b| (o.name.clone(), b)))
            .collect();
        BinaryOutputs { default, named }
    }

    pub fn is_binary(&self, name: &str) -> bool {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map_or(self.default, |(_, b)| *b)
    }
}

/// A boolean parameter (JSON true/false, or the strings "true"/"false").
fn flag(value: Option<&serde_json::Value>) -> Option<bool> {
    match value? {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64().map(|n| n != 0),
        _ => None,
    }
}

/// Builds the request for a raw body (binary extension, `Inference-Header-Content-Length: 0`): the bytes are
/// the model's single input, batch 1; one other variable dimension is inferred from the byte count.
pub fn raw_body_request(
    service: &DataPlane,
    name: &str,
    version: Option<&str>,
    mut bytes: impl bytes::Buf,
) -> Result<InferRequest, Error> {
    let model = service.ready_model(name, version)?;
    let [spec] = model.signature.inputs.as_slice() else {
        return Err(Error::InvalidInput(format!(
            "a raw request body (Inference-Header-Content-Length: 0) needs a single-input model; {name} has {} inputs",
            model.signature.inputs.len()
        )));
    };
    let mut shape: Vec<Option<usize>> = spec
        .shape
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect();
    if let Some(first) = shape.first_mut().filter(|d| d.is_none()) {
        *first = Some(1);
    }
    let known: usize = shape.iter().flatten().product();
    let length = bytes.remaining();
    // BYTES elements are counted before decoding: those are read from one contiguous buffer.
    let mut strings = None;
    let elements = match spec.datatype.element_size() {
        Some(size) => length / size,
        None => {
            let contiguous = bytes.copy_to_bytes(length);
            let n = count_bytes_elements(&contiguous).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "input '{}' raw BYTES body has a length prefix running past the end",
                    spec.name
                ))
            })?;
            strings = Some(contiguous);
            n
        }
    };
    let unknown = shape.iter().filter(|d| d.is_none()).count();
    match unknown {
        0 => {}
        1 if known > 0 && elements % known == 0 => {
            let fill = elements / known;
            shape
                .iter_mut()
                .filter(|d| d.is_none())
                .for_each(|d| *d = Some(fill));
        }
        _ => {
            return Err(Error::InvalidInput(format!(
                "cannot infer the shape of input '{}' ({:?}) from a raw body of {} bytes",
                spec.name, spec.shape, length
            )))
        }
    }
    let shape: Vec<usize> = shape.into_iter().map(|d| d.unwrap_or(0)).collect();
    let count = crate::tensor::element_count(&spec.name, &shape)?;
    let limits = Limits::from(service.settings());
    limits.check_elements(&spec.name, &shape, count)?;
    if strings.is_some() {
        limits.bytes_budget().take(&spec.name, count)?;
    }
    let data = match strings {
        Some(strings) => decode_raw(&spec.name, spec.datatype, count, strings)?,
        None => decode_raw(&spec.name, spec.datatype, count, bytes)?,
    };
    Ok(InferRequest {
        inputs: vec![Tensor::new(spec.name.clone(), shape, data)?],
        ..InferRequest::default()
    })
}
