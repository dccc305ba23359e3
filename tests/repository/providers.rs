//! Execution providers by configuration (`parameters.extra.execution_providers`) through the real server, with
//! the CPU build of ONNX Runtime the tests load: a GPU provider is a clear load error unless fallback is allowed.

use crate::support;

use serde_json::{json, Value};
use support::{assert_error, iris_request, write_model, TestServer};

fn extra(extra: Value) -> Value {
    json!({"parameters": {"extra": extra}})
}

/// The outputs of an iris answer: labels 0 and 2 for the two rows, and the same outputs as the model without
/// execution providers (`reference`) gives.
fn assert_iris_answer(body: &Value, reference: &Value) {
    let outputs = body["outputs"].as_array().unwrap();
    let label = outputs.iter().find(|o| o["name"] == "label").unwrap();
    assert_eq!(label["data"], json!([0, 2]), "{body}");
    assert_eq!(body["outputs"], reference["outputs"]);
}

#[tokio::test]
async fn a_provider_the_library_lacks_is_a_load_error_unless_fallback_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "plain", &json!({}), Some("iris"));
    write_model(
        dir.path(),
        "cuda",
        &extra(
            json!({"execution_providers": [{"name": "cuda", "options": {"device_id": 0}}, {"name": "cpu"}]}),
        ),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "tensorrt",
        &extra(json!({"execution_providers": ["TensorrtExecutionProvider"]})),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "fallback",
        &extra(json!({
            "execution_providers": [
                {"name": "TensorrtExecutionProvider", "options": {"device_id": 0, "trt_fp16_enable": true}},
                {"name": "CUDAExecutionProvider", "options": {"device_id": 0}},
                {"name": "openvino"},
                {"name": "CPUExecutionProvider"}],
            "execution_provider_fallback": true})),
        Some("iris"),
    );
    // As Seldon Core's agent writes them: every value a string.
    write_model(
        dir.path(),
        "seldon",
        &extra(json!({
            "execution_providers": "[{\"name\": \"cuda\", \"options\": {\"device_id\": \"0\"}}, {\"name\": \"cpu\"}]",
            "execution_provider_fallback": "true"})),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "cpu",
        &extra(json!({"execution_providers": ["cpu"]})),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "badoption",
        &extra(
            json!({"execution_providers": [{"name": "cuda", "options": {"device_id": "zero"}}]}),
        ),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "unknown",
        &extra(json!({"execution_providers": ["rocm", "cpu"]})),
        Some("iris"),
    );
    let s = TestServer::start(dir.path()).await;

    // Asking for CUDA (or TensorRT) without fallback: unavailable, with the reason and what to install.
    for (model, name) in [
        ("cuda", "cuda (CUDAExecutionProvider)"),
        ("tensorrt", "tensorrt (TensorrtExecutionProvider)"),
    ] {
        let (status, body) = s.get(&format!("/v2/models/{model}")).await;
        assert_eq!(status, 503, "{body}");
        let error = body["error"].as_str().unwrap();
        for needle in [
            &format!("execution provider {name} is not available in this ONNX Runtime build")
                as &str,
            "libonnxruntime.so.1.31.1 has ",
            "CPUExecutionProvider); install the GPU build",
            "install the GPU build",
            "OXINFER_ORT_FLAVOUR=gpu",
            "execution_provider_fallback",
        ] {
            assert!(error.contains(needle), "{model}: {needle:?} not in {error}");
        }
        assert_error(
            &s.post(&format!("/v2/models/{model}/infer"), &iris_request())
                .await,
            503,
            "not available in this ONNX Runtime build",
        );
    }
    let (status, index) = s.post("/v2/repository/index", &json!({})).await;
    assert_eq!(status, 200, "{index}");
    let entry = |name: &str| {
        index
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {index}"))
            .clone()
    };
    assert_eq!(entry("cuda")["state"], "UNAVAILABLE", "{index}");
    assert!(
        entry("cuda")["reason"]
            .as_str()
            .unwrap()
            .contains("execution provider cuda (CUDAExecutionProvider) is not available"),
        "{index}"
    );
    for ready in ["plain", "fallback", "seldon", "cpu"] {
        assert_eq!(entry(ready)["state"], "READY", "{index}");
    }

    // The other models serve; with fallback the missing GPU providers are skipped and the CPU answers.
    let (status, reference) = s.post("/v2/models/plain/infer", &iris_request()).await;
    assert_eq!(status, 200, "{reference}");
    for model in ["plain", "fallback", "seldon", "cpu"] {
        let (status, body) = s
            .post(&format!("/v2/models/{model}/infer"), &iris_request())
            .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_iris_answer(&body, &reference);
    }
    // Nothing runs on a GPU here, so Triton's view keeps KIND_CPU.
    for model in ["fallback", "cpu"] {
        let (status, config) = s.get(&format!("/v2/models/{model}/config")).await;
        assert_eq!(status, 200, "{config}");
        assert_eq!(config["instance_group"][0]["kind"], "KIND_CPU", "{config}");
    }

    // Settings that do not read are unavailable with the field named.
    assert_error(
        &s.get("/v2/models/badoption").await,
        503,
        "parameters.extra.execution_providers[0].options.device_id must be a non-negative integer, got \"zero\"",
    );
    assert_error(
        &s.get("/v2/models/unknown").await,
        503,
        "parameters.extra.execution_providers[0]: unknown execution provider \"rocm\"",
    );
}

#[tokio::test]
async fn the_repository_api_refuses_a_wrong_provider_option_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "plain", &json!({}), Some("iris"));
    let s = TestServer::start(dir.path()).await;
    write_model(
        dir.path(),
        "late",
        &extra(
            json!({"execution_providers": [{"name": "tensorrt", "options": {"trt_fp16_enable": "maybe"}}]}),
        ),
        Some("iris"),
    );
    assert_error(
        &s.post("/v2/repository/models/late/load", &json!({})).await,
        400,
        "parameters.extra.execution_providers[0].options.trt_fp16_enable must be true or false, got \"maybe\"",
    );
    write_model(
        dir.path(),
        "late",
        &extra(json!({"execution_providers": ["cuda"]})),
        Some("iris"),
    );
    assert_error(
        &s.post("/v2/repository/models/late/load", &json!({})).await,
        400,
        "execution provider cuda (CUDAExecutionProvider) is not available in this ONNX Runtime build",
    );
    write_model(
        dir.path(),
        "late",
        &extra(
            json!({"execution_providers": ["cuda", "cpu"], "execution_provider_fallback": true}),
        ),
        Some("iris"),
    );
    let loaded = s
        .client
        .post(s.url("/v2/repository/models/late/load"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(loaded.status().as_u16(), 200);
    let (status, body) = s.post("/v2/models/late/infer", &iris_request()).await;
    assert_eq!(status, 200, "{body}");
    let (status, reference) = s.post("/v2/models/plain/infer", &iris_request()).await;
    assert_eq!(status, 200, "{reference}");
    assert_iris_answer(&body, &reference);
}
