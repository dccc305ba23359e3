//! Hostile requests against the per-request limits, sent to the real binary: 150k-input bodies (REST and gRPC),
//! a million-dimension shape, rank/element/BYTES limits on every decoding path, image resize and declared-size
//! attacks. Each asserts the answer, the liveness latency while the attack runs, and memory where it is about
//! memory. The tests take turns (one attack at a time), so that the latencies are the attack's own.

use crate::support;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use support::hostile::{liveness_during, rss_bytes};
use support::pb;
use support::pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use support::GrpcInferenceServiceClient;
use support::{bundled_repository, Spawned};
use tonic::Code;

/// The issue's target for liveness while any client does its worst.
const LIVENESS: Duration = Duration::from_millis(100);

/// Longest error message a client may get (REST body or gRPC status), with room for the JSON around it.
const SHORT_ERROR: usize = 2048 + 64;

// One attack at a time in the test binary (`support::hostile::alone()`). The tests that measure liveness run on two
// worker threads, so that the client's own work (encoding 9 MB bodies in a debug build) does not delay the probes.

fn spawn(env: &[(&str, &str)]) -> Spawned {
    let repository = bundled_repository();
    let mut all = vec![("MLSERVER_HOST", "127.0.0.1")];
    all.extend_from_slice(env);
    Spawned::start(
        &[
            "start",
            repository.to_str().unwrap(),
            "--http_port",
            "0",
            "--grpc_port",
            "0",
        ],
        &all,
    )
}

async fn grpc_client(server: &Spawned) -> GrpcInferenceServiceClient<tonic::transport::Channel> {
    GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .expect("gRPC connects")
        .max_decoding_message_size(64 << 20)
}

/// POSTs `body` (with `headers`), returning the status, the raw body length and the body as JSON.
async fn post(url: String, headers: &[(&str, String)], body: Vec<u8>) -> (u16, usize, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    for (key, value) in headers {
        request = request.header(*key, value);
    }
    let response = request.body(body).send().await.expect("the server answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, bytes.len(), json)
}

/// Asserts a short 400 whose error contains every needle.
fn assert_refused(answer: &(u16, usize, Value), needles: &[&str]) {
    let (status, len, body) = answer;
    assert_eq!(*status, 400, "{body}");
    assert!(*len <= SHORT_ERROR, "error body of {len} bytes");
    let message = body["error"].as_str().expect("an error message");
    for needle in needles {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
}

/// Asserts an INVALID_ARGUMENT with a short message containing every needle.
fn assert_invalid_argument<T: std::fmt::Debug>(result: Result<T, tonic::Status>, needles: &[&str]) {
    let status = result.expect_err("the request is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().len() <= SHORT_ERROR,
        "{}",
        status.message().len()
    );
    for needle in needles {
        assert!(
            status.message().contains(needle),
            "{:?} lacks {needle:?}",
            status.message()
        );
    }
}

/// A JSON infer body with `n` one-element FP32 inputs (about 60 bytes each).
fn many_inputs_json(n: usize) -> Vec<u8> {
    let mut body = String::from(r#"{"inputs":["#);
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"name":"input{i}","shape":[1],"datatype":"FP32","data":[{i}]}}"#
        ));
    }
    body.push_str("]}");
    body.into_bytes()
}

fn grpc_input(name: &str, datatype: &str, shape: Vec<i64>) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        ..Default::default()
    }
}

fn grpc_request(model: &str, inputs: Vec<InferInputTensor>) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: model.into(),
        inputs,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_body_of_150k_inputs_is_refused_at_once_and_liveness_holds() {
    let _alone = support::hostile::alone().await;
    let server = spawn(&[]);
    server.wait_ready().await;
    let body = many_inputs_json(150_000);
    assert!(body.len() > 9_000_000, "{}", body.len());
    let url = server.url("/v2/models/iris/infer");
    // Two at once, as the issue reproduced it (27-47 s of frozen server before).
    let probed = liveness_during(&server.http, None, async {
        let started = Instant::now();
        let answers = tokio::join!(
            post(url.clone(), &[], body.clone()),
            post(url.clone(), &[], body.clone())
        );
        (answers, started.elapsed())
    })
    .await;
    let ((first, second), took) = &probed.result;
    for answer in [first, second] {
        assert_refused(
            answer,
            &["more than 1024 inputs", "max_tensors_per_request"],
        );
    }
    eprintln!(
        "150k-input JSON bodies: answered in {took:?}, worst liveness {:?}",
        probed.worst()
    );
    assert!(*took < Duration::from_secs(5), "answered in {took:?}");
    probed.assert_live_within(LIVENESS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_request_of_150k_inputs_is_refused_and_liveness_holds() {
    let _alone = support::hostile::alone().await;
    let server = spawn(&[]);
    server.wait_ready().await;
    let inputs: Vec<InferInputTensor> = (0..150_000)
        .map(|i| {
            let mut input = grpc_input(&format!("input{i}"), "FP32", vec![1]);
            input.contents = Some(pb::InferTensorContents {
                fp32_contents: vec![i as f32],
                ..Default::default()
            });
            input
        })
        .collect();
    let mut client = grpc_client(&server).await;
    let probed = liveness_during(&server.http, None, async {
        let started = Instant::now();
        let mut second = client.clone();
        let answers = tokio::join!(
            client.model_infer(grpc_request("iris", inputs.clone())),
            second.model_infer(grpc_request("iris", inputs.clone()))
        );
        (answers, started.elapsed())
    })
    .await;
    // The quadratic matching is gone (27-47 s of frozen server before), and the two 5 MB protobuf messages
    // (600k objects, about a second each in a debug build) are decoded as blocking work (src/grpc/codec.rs).
    eprintln!(
        "worst liveness during the gRPC attack: {:?}",
        probed.worst()
    );
    probed.assert_live_within(LIVENESS);
    let ((first, second), took) = probed.result;
    assert_invalid_argument(first, &["more than 1024 inputs", "max_tensors_per_request"]);
    assert_invalid_argument(second, &["max_tensors_per_request"]);
    // This includes the test's own (debug-build) encoding of the two messages: seconds on a busy machine.
    assert!(took < Duration::from_secs(20), "answered in {took:?}");
    // Requested outputs are counted too.
    let mut request = grpc_request("iris", vec![]);
    request.outputs = (0..2000)
        .map(|i| InferRequestedOutputTensor {
            name: format!("o{i}"),
            ..Default::default()
        })
        .collect();
    assert_invalid_argument(
        client.model_infer(request).await,
        &["more than 1024 requested outputs"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn million_dimension_shape_gets_a_short_error_on_rest_and_grpc() {
    let _alone = support::hostile::alone().await;
    let server = spawn(&[]);
    server.wait_ready().await;
    let shape = vec![1i64; 1_000_000];
    let body = serde_json::to_vec(&json!({"inputs": [
        {"name": "input", "shape": shape, "datatype": "FP32", "data": [1.0]}
    ]}))
    .unwrap();
    let url = server.url("/v2/models/iris/infer");
    let probed = liveness_during(&server.http, None, post(url, &[], body)).await;
    assert_refused(
        &probed.result,
        &["input 'input'", "1000000 dimensions", "max_shape_rank"],
    );
    probed.assert_live_within(LIVENESS);
    // gRPC: the real status (it was "Stream removed": a 3 MB message does not fit in a header).
    let mut client = grpc_client(&server).await;
    let request = grpc_request("iris", vec![grpc_input("input", "FP32", shape)]);
    assert_invalid_argument(
        client.model_infer(request).await,
        &["input 'input'", "max_shape_rank"],
    );
    // A shape within the rank limit but the wrong one for the model: abbreviated in the message, both ways.
    let long = vec![1i64; 16];
    let body = serde_json::to_vec(&json!({"inputs": [
        {"name": "input", "shape": long, "datatype": "FP32", "data": [1.0]}
    ]}))
    .unwrap();
    assert_refused(
        &post(server.url("/v2/models/iris/infer"), &[], body).await,
        &["(16 dims)", "expects [-1, 4]"],
    );
    // A name of a megabyte is cut in the message.
    let name = "n".repeat(1 << 20);
    let body = serde_json::to_vec(&json!({"inputs": [
        {"name": name, "shape": [1], "datatype": "FP32", "data": [1.0]}
    ]}))
    .unwrap();
    assert_refused(
        &post(server.url("/v2/models/iris/infer"), &[], body).await,
        &["unexpected input 'nnnn", "...'"],
    );
    let request = grpc_request("iris", vec![grpc_input(&name, "FP32", vec![1])]);
    assert_invalid_argument(client.model_infer(request).await, &["...'"]);
}

#[tokio::test]
async fn rank_element_and_bytes_limits_hold_on_every_decoding_path() {
    let _alone = support::hostile::alone().await;
    let server = spawn(&[
        ("MLSERVER_MAX_SHAPE_RANK", "4"),
        ("MLSERVER_MAX_TENSOR_ELEMENTS", "1000"),
        ("MLSERVER_MAX_BYTES_ELEMENTS", "100"),
    ]);
    server.wait_ready().await;
    let url = server.url("/v2/models/simple_string/infer");
    // REST JSON.
    let body = |input: Value| serde_json::to_vec(&json!({ "inputs": [input] })).unwrap();
    let rank =
        json!({"name": "INPUT0", "shape": [1, 1, 1, 1, 1], "datatype": "BYTES", "data": ["1"]});
    assert_refused(
        &post(url.clone(), &[], body(rank)).await,
        &["'INPUT0'", "5 dimensions", "max_shape_rank"],
    );
    let elements =
        json!({"name": "INPUT0", "shape": [1000, 1000], "datatype": "BYTES", "data": []});
    assert_refused(
        &post(url.clone(), &[], body(elements)).await,
        &[
            "'INPUT0'",
            "[1000, 1000]",
            "1000000 elements",
            "max_tensor_elements",
        ],
    );
    let strings: Vec<String> = (0..60).map(|i| i.to_string()).collect();
    let two = serde_json::to_vec(&json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 60], "datatype": "BYTES", "data": strings},
        {"name": "INPUT1", "shape": [1, 60], "datatype": "BYTES", "data": strings},
    ]}))
    .unwrap();
    assert_refused(
        &post(url.clone(), &[], two).await,
        &["'INPUT1'", "max_bytes_elements"],
    );
    // REST binary extension: refused from the header, before the bytes are read.
    let header = serde_json::to_vec(&json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 999], "datatype": "BYTES", "parameters": {"binary_data_size": 8}},
    ]}))
    .unwrap();
    let mut binary_body = header.clone();
    binary_body.extend_from_slice(&[4, 0, 0, 0, b'1', b'2', b'3', b'4']);
    assert_refused(
        &post(
            url.clone(),
            &[("inference-header-content-length", header.len().to_string())],
            binary_body,
        )
        .await,
        &["'INPUT0'", "max_bytes_elements"],
    );
    // REST raw body (a single-input model; its length gives the element count).
    let raw = post(
        server.url("/v2/models/image_stats/infer"),
        &[("inference-header-content-length", "0".into())],
        vec![0; 32 * 32 * 3],
    )
    .await;
    assert_refused(&raw, &["'image'", "3072 elements", "max_tensor_elements"]);
    // gRPC raw contents.
    let mut client = grpc_client(&server).await;
    let raw_request = |input: InferInputTensor, bytes: Vec<u8>| pb::ModelInferRequest {
        model_name: "simple_string".into(),
        inputs: vec![input],
        raw_input_contents: vec![bytes.into()],
        ..Default::default()
    };
    assert_invalid_argument(
        client
            .model_infer(raw_request(
                grpc_input("INPUT0", "BYTES", vec![1, 1, 1, 1, 1]),
                vec![],
            ))
            .await,
        &["'INPUT0'", "max_shape_rank"],
    );
    assert_invalid_argument(
        client
            .model_infer(raw_request(
                grpc_input("INPUT0", "FP32", vec![1 << 40]),
                vec![],
            ))
            .await,
        &["'INPUT0'", "max_tensor_elements"],
    );
    assert_invalid_argument(
        client
            .model_infer(raw_request(
                grpc_input("INPUT0", "BYTES", vec![1, 101]),
                vec![0; 4 * 101],
            ))
            .await,
        &["'INPUT0'", "max_bytes_elements"],
    );
    // gRPC typed contents.
    let mut typed = grpc_input("INPUT0", "BYTES", vec![1, 101]);
    typed.contents = Some(pb::InferTensorContents {
        bytes_contents: vec![b"1".to_vec(); 101],
        ..Default::default()
    });
    assert_invalid_argument(
        client
            .model_infer(grpc_request("simple_string", vec![typed]))
            .await,
        &["'INPUT0'", "max_bytes_elements"],
    );
    // Within the limits the same server answers.
    let ok: Vec<String> = (0..16).map(|i| i.to_string()).collect();
    let fine = serde_json::to_vec(&json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "BYTES", "data": ok},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "BYTES", "data": ok},
    ]}))
    .unwrap();
    let (status, _, body) = post(url, &[], fine).await;
    assert_eq!(status, 200, "{body}");
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb([255, 0, 100]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A real PNG whose header is rewritten to declare `width` x `height` (its pixel data stays 1x1).
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(1, 1);
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let mut crc = !0u32;
    for &b in &bytes[12..29] {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    bytes[29..33].copy_from_slice(&(!crc).to_be_bytes());
    bytes
}

fn image_request(image: &[u8], parameters: Value) -> Vec<u8> {
    let data = base64::engine::general_purpose::STANDARD.encode(image);
    serde_json::to_vec(
        &json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
        "parameters": parameters, "data": [data]}]}),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_resize_and_declared_size_are_refused_before_any_pixel_is_allocated() {
    let _alone = support::hostile::alone().await;
    let server = spawn(&[]);
    server.wait_ready().await;
    let pid = server.child.id();
    let url = server.url("/v2/models/image_stats/infer");
    let idle = rss_bytes(pid);
    // The request's own resize to 20000x20000 (a 1.2 GB buffer before): four at once.
    let resize = image_request(&png(8, 8), json!({"resize": [20000, 20000]}));
    let declared = image_request(&png_declaring(100_000, 100_000), json!({}));
    let probed = liveness_during(&server.http, Some(pid), async {
        tokio::join!(
            post(url.clone(), &[], resize.clone()),
            post(url.clone(), &[], resize.clone()),
            post(url.clone(), &[], declared.clone()),
            post(url.clone(), &[], declared.clone()),
        )
    })
    .await;
    let (a, b, c, d) = &probed.result;
    for answer in [a, b] {
        assert_refused(
            answer,
            &["input 'image'", "20000x20000", "max_image_pixels"],
        );
    }
    for answer in [c, d] {
        assert_refused(
            answer,
            &[
                "input 'image'",
                "declares 100000x100000",
                "max_image_pixels",
            ],
        );
    }
    probed.assert_live_within(LIVENESS);
    // Nothing near an image's size was allocated: the peak stays within 32 MiB of idle (20000x20000 RGB is 1.2 GB).
    let grew = probed.peak_rss.saturating_sub(idle);
    eprintln!(
        "image attacks: RSS idle {idle}, peak {}, worst liveness {:?}",
        probed.peak_rss,
        probed.worst()
    );
    assert!(grew < 32 << 20, "RSS grew by {grew} bytes (idle {idle})");
    // The same image at a size within the limits still answers.
    let fine = image_request(&png(8, 8), json!({"resize": true}));
    let (status, _, body) = post(url, &[], fine).await;
    assert_eq!(status, 200, "{body}");
}

/// The binary with `RUST_LOG=filter`, its stderr kept line by line.
fn logged(filter: &str) -> Spawned {
    let repository = bundled_repository();
    Spawned::start(
        &[
            "start",
            repository.to_str().unwrap(),
            "--http_port",
            "0",
            "--grpc_port",
            "0",
        ],
        &[("MLSERVER_HOST", "127.0.0.1"), ("RUST_LOG", filter)],
    )
}

#[tokio::test]
async fn grpc_client_errors_are_not_logged_as_errors() {
    let _alone = support::hostile::alone().await;
    let server = logged("info,oxinfer=debug");
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .expect("gRPC connects");
    let bad = grpc_request("iris", vec![grpc_input("input", "FLOAT", vec![1])]);
    let status = client.model_infer(bad).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    let missing = grpc_request("no-such-model", vec![]);
    let status = client.model_infer(missing).await.expect_err("refused");
    assert_eq!(status.code(), Code::NotFound);
    // Both were logged, at DEBUG (polled: the log is written as the answers go out).
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.lines_with("gRPC call refused").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no DEBUG line for the refused calls"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.lines_with("ERROR"), Vec::<String>::new());
}
