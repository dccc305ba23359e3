//! BYTES are bytes: NUL bytes, bytes that are not UTF-8 and empty elements round-trip exactly through the
//! `identity_string` model (an ONNX string Identity) over REST JSON, REST binary, gRPC typed and gRPC raw.

use crate::support;

use base64::Engine;
use oxinfer::tensor::binary::{decode_raw, encode_raw};
use oxinfer::tensor::{BytesBuf, TensorData};
use serde_json::{json, Value};
use support::grpc::*;
use support::shared;

const MODEL: &str = "identity_string";

/// The elements every transport must carry back unchanged.
const ELEMENTS: [&[u8]; 6] = [
    b"a\x00b",
    b"",
    b"\xff\xfe",
    b"a\x00b\x80",
    b"\x00",
    b"plain text longer than a small-string buffer",
];

fn elements() -> TensorData {
    TensorData::Bytes(ELEMENTS.into_iter().collect::<BytesBuf>())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn infer_url() -> String {
    shared().rest_url(&format!("/v2/models/{MODEL}/infer"))
}

async fn post_json(body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(infer_url())
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn rest_json_carries_nul_as_an_escape() {
    client().await; // waits until the models are loaded
    let body = json!({"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "BYTES",
        "data": ["a\u{0}b", "", "\u{0}", "é"]}]});
    let (status, r) = post_json(&body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["outputs"][0],
        json!({"name": "OUTPUT0", "shape": [4], "datatype": "BYTES", "data": ["a\u{0}b", "", "\u{0}", "é"]})
    );
    // A body over 16 KiB takes the envelope fast path, which reads the data arrays itself.
    let many: Vec<String> = (0..3000).map(|i| format!("{i}\u{0}")).collect();
    let body =
        json!({"inputs": [{"name": "INPUT0", "shape": [3000], "datatype": "BYTES", "data": many}]});
    assert!(serde_json::to_vec(&body).unwrap().len() > 16 * 1024);
    let (status, r) = post_json(&body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"], json!(many));
}

#[tokio::test]
async fn rest_json_base64_in_and_base64_marked_out() {
    client().await;
    let encoded: Vec<String> = ELEMENTS.iter().map(|e| b64(e)).collect();
    let body = json!({"inputs": [{"name": "INPUT0", "shape": [6], "datatype": "BYTES",
        "parameters": {"content_type": "base64"}, "data": encoded}]});
    let (status, r) = post_json(&body).await;
    assert_eq!(status, 200, "{r}");
    // Not every element is UTF-8: the JSON output is all base64, and says so.
    assert_eq!(
        r["outputs"][0],
        json!({"name": "OUTPUT0", "shape": [6], "datatype": "BYTES",
               "parameters": {"content_type": "base64"}, "data": encoded})
    );
    // MLServer's Base64Codec: an element that is not base64 is taken as the bytes it is.
    let body = json!({"inputs": [{"name": "INPUT0", "shape": [3], "datatype": "BYTES",
        "parameters": {"content_type": "base64"}, "data": [b64(b"\xff"), "not base64!", "YQBi"]}]});
    let (status, r) = post_json(&body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["outputs"][0]["parameters"],
        json!({"content_type": "base64"})
    );
    assert_eq!(
        r["outputs"][0]["data"],
        json!([b64(b"\xff"), b64(b"not base64!"), b64(b"a\x00b")])
    );
}

/// POSTs a binary-extension body; returns status, JSON header and the bytes after it.
async fn post_binary(header: &Value, binary: &[u8]) -> (u16, Value, Vec<u8>) {
    let mut body = serde_json::to_vec(header).unwrap();
    let header_len = body.len();
    body.extend_from_slice(binary);
    let r = reqwest::Client::new()
        .post(infer_url())
        .header("Inference-Header-Content-Length", header_len.to_string())
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let json_len: Option<usize> = r
        .headers()
        .get("inference-header-content-length")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let bytes = r.bytes().await.unwrap().to_vec();
    let split = json_len.unwrap_or(bytes.len());
    let json = serde_json::from_slice(&bytes[..split]).unwrap();
    (status, json, bytes[split..].to_vec())
}

#[tokio::test]
async fn rest_binary_round_trips_exact_bytes() {
    client().await;
    let mut raw = Vec::new();
    encode_raw(&elements(), &mut raw);
    let input = json!({"name": "INPUT0", "shape": [6], "datatype": "BYTES",
        "parameters": {"binary_data_size": raw.len()}});
    // Binary out.
    let header = json!({"inputs": [input], "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": true}}]});
    let (status, r, tail) = post_binary(&header, &raw).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["outputs"][0]["parameters"],
        json!({"binary_data_size": raw.len()})
    );
    assert_eq!(tail, raw);
    assert_eq!(
        decode_raw("OUTPUT0", oxinfer::tensor::DataType::Bytes, 6, &tail[..]).unwrap(),
        elements()
    );
    // JSON out: base64, marked.
    let header = json!({"inputs": [input]});
    let (status, r, tail) = post_binary(&header, &raw).await;
    assert_eq!(status, 200, "{r}");
    assert!(tail.is_empty());
    assert_eq!(
        r["outputs"][0]["parameters"],
        json!({"content_type": "base64"})
    );
    let back: Vec<Vec<u8>> = r["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(back, ELEMENTS.map(<[u8]>::to_vec));
    // A raw body (header length 0): one element's bytes alone (batch 1), every output binary.
    let mut one = Vec::new();
    encode_raw(
        &TensorData::Bytes([ELEMENTS[3]].into_iter().collect()),
        &mut one,
    );
    let r = reqwest::Client::new()
        .post(infer_url())
        .header("Inference-Header-Content-Length", "0")
        .header("content-type", "application/octet-stream")
        .body(one.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let json_len: usize = r.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[json_len..], one.as_slice());
}

#[tokio::test]
async fn grpc_typed_and_raw_round_trip_exact_bytes() {
    let mut client = client().await;
    let inputs = vec![tensor("INPUT0", vec![6], elements())];
    for raw in [false, true] {
        let request = if raw {
            raw_request(MODEL, &inputs)
        } else {
            typed_request(MODEL, &inputs)
        };
        let response = client.model_infer(request).await.unwrap().into_inner();
        let outputs = outputs(&response, raw);
        let out = output(&outputs, "OUTPUT0");
        assert_eq!(out.shape(), vec![6], "raw: {raw}");
        assert_eq!(*out.data(), elements(), "raw: {raw}");
    }
    // Empty tensor.
    let empty = vec![tensor(
        "INPUT0",
        vec![0],
        TensorData::Bytes(BytesBuf::default()),
    )];
    let response = client
        .model_infer(raw_request(MODEL, &empty))
        .await
        .unwrap()
        .into_inner();
    let outputs = outputs(&response, true);
    assert_eq!(output(&outputs, "OUTPUT0").shape(), vec![0]);
    assert!(output(&outputs, "OUTPUT0").data().is_empty());
}
