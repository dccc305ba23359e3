//! The fuzz checks: each takes arbitrary bytes, feeds them to one of oxinfer's decoders of untrusted input, and
//! asserts what must hold besides "no panic". Shared by the libFuzzer targets (fuzz_targets/) and by the main
//! crate's tests/fuzz_corpus.rs, which replays the committed corpus (fuzz/corpus/<target>/) through them.
//!
//! What every check asserts on success: each tensor's element count equals its shape's product, and the decoded
//! tensor bytes are at most a small multiple of the input (no amplification). On failure: the error text is at
//! most [`ERROR_SLACK`] bytes longer than the input itself (an error never amplifies what the client sent).

use std::path::Path;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use bytes::{Buf, Bytes};
use oxinfer::config::model_settings::ModelSettings;
use oxinfer::config::{Layers, Settings};
use oxinfer::content_types::{decode_inputs, ContentType};
use oxinfer::error::Error;
use oxinfer::grpc::convert::infer_request;
use oxinfer::grpc::pb::ModelInferRequest;
use oxinfer::http::binary::{split_body, Body, HEADER_LENGTH};
use oxinfer::http::json::rope::Rope;
use oxinfer::http::types::parse_infer_request_with_binary;
use oxinfer::model::TensorSpec;
use oxinfer::service::InferRequest;
use oxinfer::tensor::binary::{count_bytes_elements, decode_raw, raw_len};
use oxinfer::tensor::limits::Limits;
use oxinfer::tensor::{element_count, DataType, Parameters, Tensor};
use prost::Message;

/// Bodies from this size on take the REST JSON fast path (`FAST_PATH_BYTES` in src/http/types.rs).
pub const FAST_PATH_BYTES: usize = 16 * 1024;

/// How much longer than the input an error message may be (its fixed wording).
pub const ERROR_SLACK: usize = 1024;

/// Decoded bytes allowed per input byte: `1,` (2 bytes of JSON) is 8 bytes of FP64/INT64.
const AMPLIFICATION: usize = 4;

/// The REST JSON parser on `data` as a small body (serde reads it whole), and again padded with leading
/// whitespace past [`FAST_PATH_BYTES`] and cut into chunks (the envelope scan and the number reader): the two
/// must agree, tensor for tensor.
pub fn rest_json(data: &[u8]) {
    let small = parse_json_chunks(&[data]);
    check_request(&small, data.len(), 0);
    let mut padded = vec![b' '; FAST_PATH_BYTES.saturating_sub(data.len())];
    padded.extend_from_slice(data);
    let parts = cut(&padded, data);
    let large = parse_json_chunks(&parts);
    check_request(&large, padded.len(), 0);
    match (&small, &large) {
        (Ok(a), Ok(b)) => assert_same_request(a, b),
        (Err(_), Err(_)) => {}
        // serde stops at 128 levels of nesting; the fast path reads nested data without recursing.
        (Err(e), Ok(_)) if e.to_string().ends_with("recursion limit exceeded") => {}
        (a, b) => panic!(
            "the fast path disagrees with serde: small body {:?}, large body {:?}",
            a.as_ref().map(|_| "ok"),
            b.as_ref().map(|_| "ok")
        ),
    }
}

/// The binary tensor data extension: the first line is the `Inference-Header-Content-Length` value, the rest
/// the body (JSON header then raw tensor bytes), split as the REST handler does and decoded.
pub fn rest_binary(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(header) {
        headers.insert(HEADER_LENGTH, value);
    }
    // The body as two chunks, as it may arrive.
    let cut_at = body.len() / 2;
    let chunks =
        Bytes::copy_from_slice(&body[..cut_at]).chain(Bytes::copy_from_slice(&body[cut_at..]));
    let result = split_body(&headers, chunks).and_then(|split| match split {
        Body::Json(mut json) => {
            let json = json.copy_to_bytes(json.remaining());
            parse_infer_request_with_binary(
                &Rope::new([&json[..]]),
                Bytes::new(),
                &Limits::default(),
            )
        }
        Body::Mixed { json, binary } => {
            parse_infer_request_with_binary(&Rope::new([&json[..]]), binary, &Limits::default())
        }
        Body::Raw(raw) => raw_body(raw).map(|tensor| InferRequest {
            inputs: vec![tensor],
            ..InferRequest::default()
        }),
    });
    check_request(&result, data.len(), 0);
}

/// A gRPC `ModelInferRequest` decoded by prost from `data`, then converted (typed or raw contents).
pub fn grpc_infer(data: &[u8]) {
    let Ok(message) = ModelInferRequest::decode(data) else {
        return;
    };
    let result = infer_request(message, &Limits::default()).map(|decoded| decoded.request);
    check_request(&result, data.len(), 0);
}

/// The content-type decoders (np, str, base64, datetime, pd, pd_json, img) on one input. Layout: byte 0 the
/// content type, byte 1 the input's datatype (low nibble) and the model's (high nibble), byte 2 the model
/// shape (bit 7: the content type at request level too; bit 6: resizes past 1024 allowed), bytes 3-6 an optional
/// `parameters.resize` (u16 height, u16 width; both 0: none), then the input's elements in the raw layout
/// (BYTES: 4-byte little-endian length, then the bytes).
pub fn codecs(data: &[u8]) {
    let [ct, types, shape, h0, h1, w0, w1, elements @ ..] = data else {
        return;
    };
    let content_type = [
        "np",
        "str",
        "base64",
        "datetime",
        "pd",
        "pd_json",
        "img",
        "pillow_image",
    ][usize::from(*ct) % 8];
    let input_type = DataType::ALL[usize::from(types & 0x0f) % DataType::ALL.len()];
    let model_type = DataType::ALL[usize::from(types >> 4) % DataType::ALL.len()];
    let Ok(tensor) = raw_tensor("x", input_type, Bytes::copy_from_slice(elements)) else {
        return;
    };
    let mut tensor = tensor;
    let mut parameters = Parameters::new();
    parameters.insert("content_type".into(), content_type.into());
    // Resizes past 1024 only when asked (bit 6 of byte 2): the time goes to exploring the decoders, not to
    // resizing; the pending seeds ask for the huge ones that the image limits must refuse.
    let side = |lo: u8, hi: u8| match u16::from_le_bytes([lo, hi]) {
        n if shape & 0x40 == 0 => n % 1024,
        n => n,
    };
    let (h, w) = (side(*h0, *h1), side(*w0, *w1));
    if (h, w) != (0, 0) {
        parameters.insert("resize".into(), serde_json::json!([h, w]));
    }
    tensor.parameters = parameters;
    let model_shape: Vec<i64> = match (shape & 0x3f) % 6 {
        0 => vec![-1],
        1 => vec![-1, -1],
        2 => vec![1, -1],
        3 => vec![-1, -1, -1, 3],
        4 => vec![-1, 3, 8, 8],
        _ => vec![8, 8, 1],
    };
    let spec = TensorSpec {
        name: "x".into(),
        datatype: if content_type.ends_with("image") || content_type == "img" {
            DataType::Uint8
        } else {
            model_type
        },
        shape: model_shape,
        parameters: None,
    };
    let mut request = InferRequest {
        inputs: vec![tensor],
        ..InferRequest::default()
    };
    let request_ct = ContentType::parse(content_type).filter(|_| shape & 0x80 != 0);
    let result = decode_inputs(&mut request.inputs, &[spec], request_ct, &Limits::default())
        .map(|()| request);
    // Images decompress and resize: bounded by the pixel limit (4 channels), not by the input's size.
    let pixels = usize::try_from(Settings::default().max_image_pixels).unwrap_or(usize::MAX);
    check_request(&result, data.len(), pixels.saturating_mul(4));
}

/// Settings parsing: `data` as settings.json (when it is a JSON object) or else as `MLSERVER_*=value` lines, then
/// merged and validated; and `data` as a model-settings.json. Accepted durations must convert without panicking.
pub fn settings(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let env = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>();
    if let Ok(mut layers) = Layers::read(Path::new("/nonexistent-oxinfer-fuzz"), env.into_iter()) {
        if let Ok(serde_json::Value::Object(file)) = serde_json::from_slice(data) {
            layers.file = file;
        }
        if let Ok(settings) = layers.resolve() {
            for (name, seconds) in [
                (
                    "graceful_shutdown_timeout",
                    settings.graceful_shutdown_timeout,
                ),
                (
                    "http_header_read_timeout",
                    settings.http_header_read_timeout,
                ),
                ("http_keep_alive_timeout", settings.http_keep_alive_timeout),
                ("grpc_keepalive_time", settings.grpc_keepalive_time),
                ("grpc_keepalive_timeout", settings.grpc_keepalive_timeout),
            ] {
                assert!(
                    Duration::try_from_secs_f64(seconds).is_ok(),
                    "{name} = {seconds} was accepted but is not a duration"
                );
            }
        }
    }
    if let Err(e) = ModelSettings::parse(data) {
        check_error_len(&e, data.len());
    }
}

/// Parses a JSON body that arrived in `parts`.
fn parse_json_chunks(parts: &[&[u8]]) -> Result<InferRequest, Error> {
    parse_infer_request_with_binary(
        &Rope::new(parts.iter().copied()),
        Bytes::new(),
        &Limits::default(),
    )
}

/// Cuts `body` into chunks at places chosen by `seed` (so that the fuzzer also explores the chunk borders).
fn cut<'a>(body: &'a [u8], seed: &[u8]) -> Vec<&'a [u8]> {
    let step = 1 + seed.last().map_or(0, |&b| usize::from(b)) * 7;
    let first =
        body.len().saturating_sub(seed.len()) + seed.first().map_or(0, |&b| usize::from(b) % 16);
    let mut parts = vec![&body[..first.min(body.len())]];
    let mut at = first.min(body.len());
    while at < body.len() {
        let end = (at + step).min(body.len());
        parts.push(&body[at..end]);
        at = end;
    }
    parts
}

/// A raw request body (`Inference-Header-Content-Length: 0`) as one input; its datatype from the first byte.
fn raw_body(mut raw: impl Buf) -> Result<Tensor, Error> {
    if !raw.has_remaining() {
        return Err(Error::InvalidInput("empty".into()));
    }
    let datatype = DataType::ALL[usize::from(raw.get_u8()) % DataType::ALL.len()];
    raw_tensor("raw", datatype, raw.copy_to_bytes(raw.remaining()))
}

/// `bytes` decoded as a one-dimensional tensor of `datatype`, its length inferred as the server does for raw
/// bodies (trailing bytes of a partial element are dropped).
fn raw_tensor(name: &str, datatype: DataType, bytes: Bytes) -> Result<Tensor, Error> {
    let (count, bytes) = match datatype.element_size() {
        Some(size) => {
            let count = bytes.len() / size;
            (count, bytes.slice(..count * size))
        }
        None => {
            let count = count_bytes_elements(&bytes)
                .ok_or_else(|| Error::InvalidInput("ragged BYTES".into()))?;
            (count, bytes)
        }
    };
    let data = decode_raw(name, datatype, count, bytes)?;
    Tensor::new(name, vec![count], data)
}

/// What must hold of any decoded request (or its error), given the input's length; `more_bytes` decoded
/// bytes are allowed beyond the no-amplification bound.
fn check_request(result: &Result<InferRequest, Error>, input_len: usize, more_bytes: usize) {
    match result {
        Ok(request) => {
            let mut decoded = 0usize;
            for tensor in &request.inputs {
                let count = element_count(&tensor.name, tensor.shape())
                    .expect("a decoded tensor's shape has a product");
                assert_eq!(
                    count,
                    tensor.data().len(),
                    "tensor {:?} shape {:?} holds {} elements",
                    tensor.name,
                    tensor.shape(),
                    tensor.data().len()
                );
                assert_eq!(tensor.datatype(), tensor.data().datatype());
                decoded += raw_len(tensor.data());
            }
            let allowed = AMPLIFICATION * input_len + 64 * request.inputs.len() + more_bytes;
            assert!(
                decoded <= allowed,
                "{input_len} input bytes decoded into {decoded} tensor bytes"
            );
        }
        Err(e) => check_error_len(&e.to_string(), input_len),
    }
}

fn check_error_len(message: &str, input_len: usize) {
    assert!(
        message.len() <= input_len + ERROR_SLACK,
        "a {input_len}-byte input got a {}-byte error: {}...",
        message.len(),
        message.chars().take(300).collect::<String>()
    );
}

/// The small-body and large-body parses of one request are the same request.
fn assert_same_request(a: &InferRequest, b: &InferRequest) {
    assert_eq!(a.id, b.id);
    assert_eq!(a.parameters, b.parameters);
    assert_eq!(a.inputs.len(), b.inputs.len());
    for (x, y) in a.inputs.iter().zip(&b.inputs) {
        // Debug, not ==: NaN is not equal to itself.
        assert_eq!(
            format!("{x:?}"),
            format!("{y:?}"),
            "input decoded differently by the fast path"
        );
    }
    let names = |r: &InferRequest| {
        r.outputs
            .iter()
            .map(|o| (o.name.clone(), o.parameters.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(a), names(b));
}
