//! The binary tensor data extension on REST: binary inputs and outputs, mixed bodies, raw bodies, malformed cases.

use crate::support;

use serde_json::{json, Value};
use support::{bundled_repository, in_chunks, TestServer};

const HEADER: &str = "Inference-Header-Content-Length";

/// A JSON header followed by raw bytes, as tritonclient sends it.
fn body(header: &Value, binary: &[u8]) -> (Vec<u8>, usize) {
    let mut out = serde_json::to_vec(header).unwrap();
    let len = out.len();
    out.extend_from_slice(binary);
    (out, len)
}

/// POSTs a binary body; returns status, the JSON part, and the binary part of the answer.
async fn post_binary(
    s: &TestServer,
    path: &str,
    body: impl Into<reqwest::Body>,
    header_len: usize,
) -> (u16, Value, Vec<u8>) {
    let r = s
        .client
        .post(s.url(path))
        .header(HEADER, header_len.to_string())
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
    match json_len {
        Some(n) => (
            status,
            serde_json::from_slice(&bytes[..n]).unwrap(),
            bytes[n..].to_vec(),
        ),
        None => (status, serde_json::from_slice(&bytes).unwrap(), Vec::new()),
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f32_from(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The same body sent as 3-byte HTTP chunks: the server sees it in pieces that split the JSON header, the
/// binary part and every multi-byte element.
fn in_small_chunks(body: Vec<u8>) -> reqwest::Body {
    in_chunks(body, 3)
}

const IRIS_ROWS: [f32; 8] = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3];

#[tokio::test]
async fn binary_inputs_and_outputs() {
    let s = TestServer::start(&bundled_repository()).await;
    let header = json!({
        "parameters": {"binary_data_output": true},
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}]
    });
    let (b, len) = body(&header, &f32_bytes(&IRIS_ROWS));
    let (status, json, raw) = post_binary(&s, "/v2/models/iris/infer", b, len).await;
    assert_eq!(status, 200, "{json}");
    let outputs = json["outputs"].as_array().unwrap();
    assert_eq!(outputs[0]["parameters"], json!({"binary_data_size": 16}));
    assert_eq!(outputs[1]["parameters"], json!({"binary_data_size": 24}));
    assert!(outputs[0].get("data").is_none());
    assert_eq!(raw.len(), 40);
    let labels: Vec<i64> = raw[..16]
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(labels, vec![0, 2]);
    let probabilities = f32_from(&raw[16..]);
    assert!(
        (probabilities[0] - 0.981_656_85).abs() < 1e-6,
        "{probabilities:?}"
    );
    assert!(
        (probabilities[5] - 0.919_861_2).abs() < 1e-6,
        "{probabilities:?}"
    );
}

#[tokio::test]
async fn binary_inputs_with_json_outputs_and_per_output_choice() {
    let s = TestServer::start(&bundled_repository()).await;
    // No output parameters: JSON outputs, JSON response.
    let header = json!({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}]});
    let (b, len) = body(&header, &f32_bytes(&IRIS_ROWS));
    let (status, json, raw) = post_binary(&s, "/v2/models/iris/infer", b, len).await;
    assert_eq!(status, 200, "{json}");
    assert!(raw.is_empty());
    assert_eq!(json["outputs"][0]["data"], json!([0, 2]));
    // The output's own flag beats the request-level one.
    let header = json!({
        "parameters": {"binary_data_output": true},
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}],
        "outputs": [{"name": "label", "parameters": {"binary_data": false}}, {"name": "probabilities"}]
    });
    let (b, len) = body(&header, &f32_bytes(&IRIS_ROWS));
    let (status, json, raw) = post_binary(&s, "/v2/models/iris/infer", b, len).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["outputs"][0]["data"], json!([0, 2]));
    assert!(json["outputs"][0].get("parameters").is_none(), "{json}");
    assert_eq!(json["outputs"][1]["parameters"]["binary_data_size"], 24);
    assert_eq!(raw.len(), 24);
}

/// Raw little-endian bytes of two elements of each datatype, and the same values as JSON.
fn datatype_cases() -> Vec<(&'static str, &'static str, Vec<u8>, Value)> {
    let le = |parts: &[&[u8]]| parts.concat();
    vec![
        ("bool", "BOOL", vec![1, 0], json!([true, false])),
        ("int8", "INT8", vec![0x80, 0x7f], json!([-128, 127])),
        (
            "int16",
            "INT16",
            le(&[&(-2i16).to_le_bytes(), &300i16.to_le_bytes()]),
            json!([-2, 300]),
        ),
        (
            "int32",
            "INT32",
            le(&[&i32::MIN.to_le_bytes(), &7i32.to_le_bytes()]),
            json!([i32::MIN, 7]),
        ),
        (
            "int64",
            "INT64",
            le(&[&i64::MAX.to_le_bytes(), &(-1i64).to_le_bytes()]),
            json!([i64::MAX, -1]),
        ),
        ("uint8", "UINT8", vec![0, 255], json!([0, 255])),
        (
            "uint16",
            "UINT16",
            le(&[&65535u16.to_le_bytes(), &1u16.to_le_bytes()]),
            json!([65535, 1]),
        ),
        (
            "uint32",
            "UINT32",
            le(&[&u32::MAX.to_le_bytes(), &2u32.to_le_bytes()]),
            json!([u32::MAX, 2]),
        ),
        (
            "uint64",
            "UINT64",
            le(&[&u64::MAX.to_le_bytes(), &3u64.to_le_bytes()]),
            json!([u64::MAX, 3]),
        ),
        (
            "fp16",
            "FP16",
            vec![0x00, 0x38, 0x00, 0xc0],
            json!([0.5, -2.0]),
        ),
        (
            "fp32",
            "FP32",
            f32_bytes(&[0.5, -1.25]),
            json!([0.5, -1.25]),
        ),
        (
            "fp64",
            "FP64",
            le(&[&0.1f64.to_le_bytes(), &(-2.5f64).to_le_bytes()]),
            json!([0.1, -2.5]),
        ),
        (
            "string",
            "BYTES",
            le(&[&[2, 0, 0, 0], b"hi", &[3, 0, 0, 0], "é!".as_bytes()]),
            json!(["hi", "é!"]),
        ),
    ]
}

#[tokio::test]
async fn every_datatype_travels_binary_both_ways() {
    let s = TestServer::start(&bundled_repository()).await;
    let cases = datatype_cases();
    let mut inputs = Vec::new();
    let mut binary = Vec::new();
    for (i, (suffix, dt, raw, data)) in cases.iter().enumerate() {
        // Every other input as JSON, to mix both forms in one body.
        if i % 2 == 0 {
            inputs.push(
                json!({"name": format!("input_{suffix}"), "shape": [1, 2], "datatype": dt,
                               "parameters": {"binary_data_size": raw.len()}}),
            );
            binary.extend_from_slice(raw);
        } else {
            inputs.push(json!({"name": format!("input_{suffix}"), "shape": [1, 2], "datatype": dt, "data": data}));
        }
    }
    let header = json!({"inputs": inputs, "parameters": {"binary_data_output": true}});
    let (b, len) = body(&header, &binary);
    for chunked in [false, true] {
        let sent = if chunked {
            in_small_chunks(b.clone())
        } else {
            b.clone().into()
        };
        let (status, json, raw) = post_binary(&s, "/v2/models/datatypes/infer", sent, len).await;
        assert_eq!(status, 200, "{json}");
        assert_outputs_are(&cases, &json, &raw);
    }
}

/// Each binary output of the `datatypes` model holds the bytes its input case sent.
fn assert_outputs_are(cases: &[(&str, &str, Vec<u8>, Value)], json: &Value, raw: &[u8]) {
    let mut offset = 0;
    for out in json["outputs"].as_array().unwrap() {
        let size = out["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
        let suffix = out["name"]
            .as_str()
            .unwrap()
            .strip_prefix("output_")
            .unwrap();
        let (_, dt, expected, _) = cases.iter().find(|c| c.0 == suffix).unwrap();
        assert_eq!(out["datatype"], *dt);
        assert_eq!(&raw[offset..offset + size], expected.as_slice(), "{suffix}");
        offset += size;
    }
    assert_eq!(offset, raw.len());
}

#[tokio::test]
async fn a_raw_body_feeds_a_single_input_model() {
    let s = TestServer::start(&bundled_repository()).await;
    let rows = f32_bytes(&IRIS_ROWS[4..]);
    for sent in [rows.clone().into(), in_small_chunks(rows)] {
        let (status, json, raw) = post_binary(&s, "/v2/models/iris/infer", sent, 0).await;
        assert_eq!(status, 200, "{json}");
        assert_eq!(json["outputs"][0]["shape"], json!([1]));
        assert_eq!(i64::from_le_bytes(raw[..8].try_into().unwrap()), 2);
        assert_eq!(raw.len(), 8 + 12);
    }
}

#[tokio::test]
async fn the_header_name_is_case_insensitive() {
    let s = TestServer::start(&bundled_repository()).await;
    let header = json!({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}]});
    let (b, len) = body(&header, &f32_bytes(&IRIS_ROWS));
    for name in [
        "inference-header-content-length",
        "INFERENCE-HEADER-CONTENT-LENGTH",
    ] {
        let r = s
            .client
            .post(s.url("/v2/models/iris/infer"))
            .header(name, len)
            .body(b.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
}

#[tokio::test]
async fn malformed_binary_requests_get_400_saying_what_is_wrong() {
    let s = TestServer::start(&bundled_repository()).await;
    let check = |got: (u16, Value, Vec<u8>), needle: &str| {
        assert_eq!(got.0, 400, "{}", got.1);
        let msg = got.1["error"].as_str().unwrap().to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    };
    let header = json!({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}]});
    let (b, len) = body(&header, &f32_bytes(&IRIS_ROWS));
    // Header length beyond the body.
    check(
        post_binary(&s, "/v2/models/iris/infer", b.clone(), b.len() + 10).await,
        "but the body has only",
    );
    // binary_data_size sum differs from the bytes present (too few, then too many).
    let (short, _) = body(&header, &f32_bytes(&IRIS_ROWS[..6]));
    check(
        post_binary(&s, "/v2/models/iris/infer", short, len).await,
        "only 24 bytes of binary data remain",
    );
    let mut long = b.clone();
    long.extend_from_slice(&[0; 4]);
    check(
        post_binary(&s, "/v2/models/iris/infer", long, len).await,
        "add up to 32",
    );
    // binary_data_size on a tensor that also has data.
    let both = json!({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": IRIS_ROWS,
                                  "parameters": {"binary_data_size": 32}}]});
    let (b, len) = body(&both, &f32_bytes(&IRIS_ROWS));
    check(
        post_binary(&s, "/v2/models/iris/infer", b, len).await,
        "both data and binary_data_size",
    );
    // Size not matching the shape.
    let wrong = json!({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 28}}]});
    let (b, len) = body(&wrong, &f32_bytes(&IRIS_ROWS[..7]));
    check(
        post_binary(&s, "/v2/models/iris/infer", b, len).await,
        "input 'input' has 28 bytes",
    );
    // A BYTES length prefix running past the end.
    let strings = json!({"inputs": [{"name": "input_string", "shape": [1, 1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]});
    let (b, len) = body(&strings, &[50, 0, 0, 0, b'h', b'i']);
    check(
        post_binary(&s, "/v2/models/datatypes/infer", b, len).await,
        "claims 50 bytes",
    );
    // A raw body for a model with several inputs.
    check(
        post_binary(&s, "/v2/models/simple/infer", vec![0; 64], 0).await,
        "needs a single-input model",
    );
}
