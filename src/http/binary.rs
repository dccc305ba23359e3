//! The binary tensor data extension on REST: splitting the body at `Inference-Header-Content-Length`,
//! and deciding which outputs travel as raw bytes.

use axum::http::HeaderMap;
use bytes::{Buf, Bytes};

use crate::error::Error;
use crate::service::InferRequest;

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
