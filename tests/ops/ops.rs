//! Operations through the real server: Prometheus metrics after known traffic (REST and gRPC), CORS, gzip both
//! ways (only infer responses of 500 bytes or more are compressed), the body limit, root_path and request ids.

use crate::support;

use std::io::{Read, Write};

use oxinfer::config::{CorsSettings, Settings};
use serde_json::{json, Value};
use support::pb;
use support::GrpcInferenceServiceClient;
use support::*;

/// A repository with `iris` (no version) and `iris7` (version 7).
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "iris", &json!({"name": "iris"}), Some("iris"));
    write_model(
        dir.path(),
        "iris7",
        &json!({"name": "iris7", "parameters": {"version": "7"}}),
        Some("iris"),
    );
    dir
}

async fn scrape(server: &TestServer) -> String {
    let addr = server.server.metrics_addr.expect("metrics listener");
    let r = server
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    r.text().await.unwrap()
}

/// The value of the sample `name{...}` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().unwrap())
    })
}

fn iris_row(rows: usize) -> Value {
    json!({"inputs": [{"name": "input", "shape": [rows, 4], "datatype": "FP32",
                       "data": ([6.7, 3.0, 5.2, 2.3].repeat(rows))}]})
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn metrics_count_known_rest_and_grpc_traffic() {
    let dir = fixture();
    let server = TestServer::start(dir.path()).await;
    for _ in 0..3 {
        let (status, body) = server.post("/v2/models/iris/infer", &iris_row(1)).await;
        assert_eq!(status, 200, "{body}");
    }
    let bad = json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]});
    assert_eq!(server.post("/v2/models/iris/infer", &bad).await.0, 400);
    assert_eq!(
        server
            .post("/v2/models/iris7/versions/7/infer", &iris_row(2))
            .await
            .0,
        200
    );
    // Unknown models and routes must not create label values from the request.
    assert_eq!(
        server.post("/v2/models/nope/infer", &iris_row(1)).await.0,
        404
    );
    assert_eq!(server.get("/some/random/path/123").await.0, 404);
    assert_eq!(server.get("/v2/models/iris/ready").await.0, 200);

    let mut grpc =
        GrpcInferenceServiceClient::connect(format!("http://{}", server.server.grpc_addr))
            .await
            .unwrap();
    assert!(
        grpc.server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    let err = grpc
        .model_metadata(pb::ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    let text = scrape(&server).await;
    let iris = [("model", "iris"), ("version", "None")];
    assert_eq!(
        sample(&text, "model_infer_request_success_total", &iris),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "model_infer_request_failure_total", &iris),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "model_infer_request_duration_count", &iris),
        Some(4.0)
    );
    assert!(sample(&text, "model_infer_request_duration_sum", &iris).unwrap() > 0.0);
    let iris7 = [("model", "iris7"), ("version", "7")];
    assert_eq!(
        sample(&text, "model_infer_request_success_total", &iris7),
        Some(1.0)
    );
    assert!(
        !text.contains("nope"),
        "unknown model names must not become labels:\n{text}"
    );
    assert!(
        !text.contains("random"),
        "raw paths must not become labels:\n{text}"
    );

    // Queue depth seen by each request, and queue/compute time from the statistics (3 + 1 executions).
    let queue = [("model_name", "iris"), ("model_version", "None")];
    assert_eq!(
        sample(&text, "parallel_request_queue_count", &queue),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, "model_infer_queue_duration_seconds_count", &iris),
        Some(3.0)
    );
    let infer_phase = [("model", "iris"), ("version", "None"), ("phase", "infer")];
    assert_eq!(
        sample(
            &text,
            "model_infer_compute_duration_seconds_count",
            &infer_phase
        ),
        Some(3.0)
    );
    assert!(
        sample(
            &text,
            "model_infer_compute_duration_seconds_sum",
            &infer_phase
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        sample(&text, "model_infer_executions_total", &iris7),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "model_infer_inferences_total", &iris),
        Some(3.0)
    );
    // Scrape-time gauges for autoscalers: nothing waits once the answers are in; one instance each.
    assert_eq!(sample(&text, "model_queue_depth", &iris), Some(0.0));
    assert_eq!(sample(&text, "model_instances", &iris7), Some(1.0));

    // REST: labelled by route template in MLServer's spelling, status code and app name.
    let infer_route = "/v2/models/{model_name}/infer";
    let ok = [
        ("method", "POST"),
        ("path", infer_route),
        ("status_code", "200"),
        ("app_name", "mlserver"),
    ];
    assert_eq!(sample(&text, "rest_server_requests_total", &ok), Some(3.0));
    let bad_input = [("path", infer_route), ("status_code", "400")];
    assert_eq!(
        sample(&text, "rest_server_requests_total", &bad_input),
        Some(1.0)
    );
    let not_found = [("path", infer_route), ("status_code", "404")];
    assert_eq!(
        sample(&text, "rest_server_requests_total", &not_found),
        Some(1.0)
    );
    let versioned = [(
        "path",
        "/v2/models/{model_name}/versions/{model_version}/infer",
    )];
    assert_eq!(
        sample(&text, "rest_server_requests_total", &versioned),
        Some(1.0)
    );
    let unmatched = [
        ("method", "GET"),
        ("path", "unmatched"),
        ("status_code", "404"),
    ];
    assert_eq!(
        sample(&text, "rest_server_requests_total", &unmatched),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "rest_server_request_duration_seconds_count", &ok),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "rest_server_requests_in_progress",
            &[("method", "POST")]
        ),
        Some(0.0)
    );
    assert!(text.contains("# TYPE rest_server_requests_total counter"));
    assert!(text.contains("# TYPE model_infer_request_duration histogram"));

    // gRPC: started and handled by method and code.
    let live = [
        ("grpc_type", "UNARY"),
        ("grpc_service", "inference.GRPCInferenceService"),
        ("grpc_method", "ServerLive"),
    ];
    assert_eq!(sample(&text, "grpc_server_started_total", &live), Some(1.0));
    let live_ok = [("grpc_method", "ServerLive"), ("grpc_code", "OK")];
    assert_eq!(
        sample(&text, "grpc_server_handled_total", &live_ok),
        Some(1.0),
        "{text}"
    );
    let meta_nf = [("grpc_method", "ModelMetadata"), ("grpc_code", "NOT_FOUND")];
    assert_eq!(
        sample(&text, "grpc_server_handled_total", &meta_nf),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "grpc_server_handling_seconds_count",
            &[("grpc_method", "ServerLive")]
        ),
        Some(1.0)
    );

    // Process metrics.
    assert!(sample(&text, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(sample(&text, "process_open_fds", &[]).unwrap() > 0.0);
    assert!(sample(&text, "process_start_time_seconds", &[]).unwrap() > 1.5e9);
    assert!(sample(&text, "process_cpu_seconds_total", &[]).is_some());
}

#[tokio::test]
async fn a_null_metrics_endpoint_disables_the_listener() {
    let dir = fixture();
    let server = TestServer::start_with(Settings {
        metrics_endpoint: None,
        ..test_settings(dir.path())
    })
    .await;
    assert!(server.server.metrics_addr.is_none());
    assert_eq!(
        server.post("/v2/models/iris/infer", &iris_row(1)).await.0,
        200
    );
    let mut grpc =
        GrpcInferenceServiceClient::connect(format!("http://{}", server.server.grpc_addr))
            .await
            .unwrap();
    assert!(
        grpc.server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
}

#[tokio::test]
async fn metrics_endpoint_path_is_configurable() {
    let dir = fixture();
    let server = TestServer::start_with(Settings {
        metrics_endpoint: Some("/prom".into()),
        metrics_rest_server_prefix: "oxi_rest".into(),
        ..test_settings(dir.path())
    })
    .await;
    assert_eq!(server.get("/v2/health/live").await.0, 200);
    let addr = server.server.metrics_addr.unwrap();
    let r = reqwest::get(format!("http://{addr}/prom")).await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(
        sample(
            &text,
            "oxi_rest_requests_total",
            &[("path", "/v2/health/live")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .status(),
        404
    );
}

fn cors(value: Value) -> Option<CorsSettings> {
    Some(serde_json::from_value(value).unwrap())
}

async fn preflight(server: &TestServer, origin: &str) -> reqwest::Response {
    server
        .client
        .request(
            reqwest::Method::OPTIONS,
            server.url("/v2/models/iris/infer"),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn cors_preflight_follows_cors_settings() {
    let dir = fixture();
    let server = TestServer::start_with(Settings {
        cors_settings: cors(json!({
            "allow_origins": ["https://ok.example"],
            "allow_origin_regex": "https://[a-z]+\\.corp\\.example",
            "allow_methods": ["GET", "POST"],
            "expose_headers": ["x-request-id"],
            "max_age": 120,
        })),
        ..test_settings(dir.path())
    })
    .await;
    let r = preflight(&server, "https://ok.example").await;
    assert!(r.status().is_success());
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://ok.example")
    );
    let methods = header(&r, "access-control-allow-methods")
        .unwrap()
        .to_ascii_uppercase();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    assert!(header(&r, "access-control-allow-headers")
        .unwrap()
        .contains("content-type"));
    assert_eq!(header(&r, "access-control-max-age"), Some("120"));
    assert_eq!(header(&r, "access-control-allow-credentials"), None);

    let r = preflight(&server, "https://team.corp.example").await;
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://team.corp.example")
    );
    for origin in ["https://evil.example", "https://team.corp.example.evil.com"] {
        let r = preflight(&server, origin).await;
        assert_eq!(header(&r, "access-control-allow-origin"), None, "{origin}");
    }

    // A simple cross-origin request gets the origin and the exposed headers.
    let r = server
        .client
        .post(server.url("/v2/models/iris/infer"))
        .header("origin", "https://ok.example")
        .json(&iris_row(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://ok.example")
    );
    assert!(header(&r, "access-control-expose-headers")
        .unwrap()
        .contains("x-request-id"));
}

#[tokio::test]
async fn cors_wildcards_and_absence() {
    let dir = fixture();
    let any = TestServer::start_with(Settings {
        cors_settings: cors(
            json!({"allow_origins": ["*"], "allow_methods": ["*"], "allow_headers": ["*"]}),
        ),
        ..test_settings(dir.path())
    })
    .await;
    let r = preflight(&any, "https://anything.example").await;
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));

    // With credentials, `*` cannot be sent: the origin is echoed (as Starlette does).
    let creds = TestServer::start_with(Settings {
        cors_settings: cors(
            json!({"allow_origins": ["*"], "allow_credentials": true, "allow_methods": ["*"]}),
        ),
        ..test_settings(dir.path())
    })
    .await;
    let r = preflight(&creds, "https://app.example").await;
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));

    // No cors_settings (MLServer's default): no CORS headers at all.
    let none = TestServer::start(dir.path()).await;
    let r = preflight(&none, "https://ok.example").await;
    assert_eq!(header(&r, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn gzip_responses_and_request_bodies() {
    let dir = fixture();
    let server = TestServer::start(dir.path()).await;
    let body = serde_json::to_vec(&iris_row(300)).unwrap();

    // Response compressed when asked for, and it decodes to the right answer.
    let r = server
        .client
        .post(server.url("/v2/models/iris/infer"))
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-encoding"), Some("gzip"));
    let compressed = r.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["outputs"][0]["data"], json!(vec![2; 300]));
    assert!(compressed.len() < text.len());

    // Not compressed unless asked for.
    let r = server
        .client
        .post(server.url("/v2/models/iris/infer"))
        .json(&iris_row(300))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "content-encoding"), None);

    // A gzip request body is accepted, and a deflate one.
    for (encoding, bytes) in [
        ("gzip", gzip(&body)),
        ("deflate", {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&body).unwrap();
            e.finish().unwrap()
        }),
    ] {
        let r = server
            .client
            .post(server.url("/v2/models/iris/infer"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{encoding}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(
            answer["outputs"][0]["data"],
            json!(vec![2; 300]),
            "{encoding}"
        );
    }

    // Other encodings: 415 in the server's error shape.
    let r = server
        .client
        .post(server.url("/v2/models/iris/infer"))
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_error(&(status, r.json().await.unwrap()), 415, "Content-Encoding");
}

/// `tritonclient.http.aio` sends `Accept-Encoding: gzip, deflate` on every call but decompresses only infer
/// answers: only those are compressed (as Triton does), and only from 500 bytes on (as MLServer does).
#[tokio::test]
async fn only_infer_responses_of_500_bytes_or_more_are_compressed() {
    let dir = fixture();
    let server = TestServer::start(dir.path()).await;
    let infer = |path: &'static str, rows: usize, accept: Option<&'static str>| {
        let mut request = server
            .client
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&iris_row(rows)).unwrap());
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let encoding = header(&r, "content-encoding").map(str::to_string);
            let vary = header(&r, "vary").map(str::to_string);
            (status, encoding, vary, r.bytes().await.unwrap().len())
        }
    };
    // Large answers: compressed in the encoding accepted, on both infer routes.
    for (path, accept, expected) in [
        ("/v2/models/iris/infer", Some("gzip"), Some("gzip")),
        ("/v2/models/iris/infer", Some("gzip, deflate"), Some("gzip")),
        ("/v2/models/iris/infer", Some("deflate"), Some("deflate")),
        (
            "/v2/models/iris7/versions/7/infer",
            Some("gzip"),
            Some("gzip"),
        ),
        ("/v2/models/iris/infer", Some("identity"), None),
        ("/v2/models/iris/infer", Some("gzip;q=0"), None),
        ("/v2/models/iris/infer", None, None),
    ] {
        let (status, encoding, vary, len) = infer(path, 300, accept).await;
        assert_eq!(status, 200, "{path} {accept:?}");
        assert_eq!(encoding.as_deref(), expected, "{path} {accept:?}");
        if expected.is_none() {
            assert!(len >= 500, "{len} bytes: big enough to compress");
        }
        assert_eq!(
            vary.as_deref(),
            Some("accept-encoding"),
            "{path} {accept:?}"
        );
    }
    // A small answer is not worth it.
    let (status, encoding, _, len) = infer("/v2/models/iris/infer", 1, Some("gzip")).await;
    assert_eq!((status, encoding), (200, None));
    assert!(len < 500, "{len}");
    // Errors of the infer routes are not compressed either.
    let (status, encoding, _, _) = infer("/v2/models/nope/infer", 300, Some("gzip")).await;
    assert_eq!((status, encoding), (404, None));

    // Nothing else is compressed, however large: metadata, config, statistics, index, readiness, docs.
    for _ in 0..3 {
        infer("/v2/models/iris7/infer", 1, None).await;
    }
    let mut largest = 0;
    for (method, path) in [
        ("GET", "/v2"),
        ("GET", "/v2/health/ready"),
        ("GET", "/v2/models/iris"),
        ("GET", "/v2/models/iris/ready"),
        ("GET", "/v2/models/iris/config"),
        ("GET", "/v2/models/iris7/versions/7/config"),
        ("GET", "/v2/models/stats"),
        ("GET", "/v2/docs/dataplane.json"),
        ("POST", "/v2/repository/index"),
    ] {
        let request = match method {
            "GET" => server.client.get(server.url(path)),
            _ => server.client.post(server.url(path)).body("{}"),
        };
        let r = request
            .header("accept-encoding", "gzip, deflate")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        assert_eq!(header(&r, "content-encoding"), None, "{path}");
        let body = r.bytes().await.unwrap();
        serde_json::from_slice::<Value>(&body).unwrap_or_else(|e| panic!("{path}: {e}"));
        largest = largest.max(body.len());
    }
    assert!(largest >= 500, "some answer was large enough: {largest}");
}

#[tokio::test]
async fn gzip_can_be_disabled() {
    let dir = fixture();
    let server = TestServer::start_with(Settings {
        gzip_enabled: false,
        ..test_settings(dir.path())
    })
    .await;
    let body = serde_json::to_vec(&iris_row(300)).unwrap();
    let r = server
        .client
        .post(server.url("/v2/models/iris/infer"))
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-encoding"), None);
    assert!(
        r.bytes().await.unwrap().len() >= 500,
        "big enough to compress"
    );
    let r = server
        .client
        .post(server.url("/v2/models/iris/infer"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(&body))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_error(&(status, r.json().await.unwrap()), 415, "gzip_enabled");
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_even_when_compressed() {
    let dir = fixture();
    let server = TestServer::start_with(Settings {
        max_request_body_size: 2000,
        ..test_settings(dir.path())
    })
    .await;
    assert_eq!(
        server.post("/v2/models/iris/infer", &iris_row(2)).await.0,
        200
    );
    let big = serde_json::to_vec(&iris_row(200)).unwrap();
    assert!(big.len() > 2000);
    let r = server
        .client
        .post(server.url("/v2/models/iris/infer"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_error(&(status, r.json().await.unwrap()), 413, "2000 bytes");
    // The limit applies to the decompressed body: a small gzip that inflates past it is refused too.
    let small = gzip(&big);
    assert!(small.len() < 2000);
    let r = server
        .client
        .post(server.url("/v2/models/iris/infer"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(small)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_error(
        &(status, r.json().await.unwrap()),
        413,
        "max_request_body_size",
    );
}

#[tokio::test]
async fn root_path_serves_routes_under_the_prefix_and_without_it() {
    let dir = fixture();
    let server = TestServer::start_with(Settings {
        root_path: "/seldon/ns/iris/".into(),
        ..test_settings(dir.path())
    })
    .await;
    assert_eq!(
        server.get("/seldon/ns/iris/v2/health/ready").await,
        (200, json!({"ready": true}))
    );
    assert_eq!(server.get("/v2/health/ready").await.0, 200);
    let (status, body) = server
        .post("/seldon/ns/iris/v2/models/iris/infer", &iris_row(1))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["outputs"][0]["data"], json!([2]));
    assert_eq!(server.get("/seldon/ns/irisX/v2/health/ready").await.0, 404);
    let (status, body) = server.get("/seldon/ns/iris/v2/models/nope").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": "Request for unknown model: 'nope' is not found (Model nope not found)"})
    );
    // Metrics label the route, not the prefix.
    let text = scrape(&server).await;
    assert_eq!(
        sample(
            &text,
            "rest_server_requests_total",
            &[("path", "/v2/models/{model_name}/infer")]
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let dir = fixture();
    let server = TestServer::start(dir.path()).await;
    let r = server
        .client
        .get(server.url("/v2/health/live"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-request-id"), Some("trace-me-42"));
    let r = server
        .client
        .get(server.url("/v2/models/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let generated = header(&r, "x-request-id").unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");

    // gRPC too, in the response metadata.
    let mut grpc =
        GrpcInferenceServiceClient::connect(format!("http://{}", server.server.grpc_addr))
            .await
            .unwrap();
    let mut request = tonic::Request::new(pb::ServerLiveRequest {});
    request
        .metadata_mut()
        .insert("x-request-id", "grpc-id-7".parse().unwrap());
    let response = grpc.server_live(request).await.unwrap();
    assert_eq!(
        response.metadata().get("x-request-id").unwrap(),
        "grpc-id-7"
    );
}
