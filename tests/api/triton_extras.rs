//! Triton's extras over REST: classification, model configuration and statistics with real counts.

use crate::support;

use serde_json::{json, Value};
use support::{assert_error, bundled_repository, iris_request, write_model, TestServer};

#[tokio::test]
async fn classification_returns_top_n_with_labels() {
    let s = TestServer::start(&bundled_repository()).await;
    let mut req = iris_request();
    req["outputs"] = json!([{"name": "probabilities", "parameters": {"classification": 2}}]);
    let (status, r) = s.post("/v2/models/iris/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    let out = &r["outputs"][0];
    assert_eq!(out["datatype"], "BYTES");
    assert_eq!(out["shape"], json!([2, 2]));
    assert_eq!(
        out["data"],
        json!([
            "0.981657:0:setosa",
            "0.018343:1:versicolor",
            "0.919861:2:virginica",
            "0.080084:1:versicolor"
        ])
    );
    assert!(out.get("parameters").is_none(), "{out}");
    // Without labels in the settings: value:index.
    let (_, r) = s.post("/v2/models/iris-labels/infer", &req).await;
    assert_eq!(r["outputs"][0]["data"][0], "0.981657:0");
    // Integer outputs, and the bad cases.
    req["outputs"] = json!([{"name": "label", "parameters": {"classification": 1}}]);
    let (_, r) = s.post("/v2/models/iris/infer", &req).await;
    assert_eq!(r["outputs"][0]["data"], json!(["2:1"]));
    req["outputs"] = json!([{"name": "probabilities", "parameters": {"classification": 0}}]);
    assert_error(
        &s.post("/v2/models/iris/infer", &req).await,
        400,
        "classification must be a positive integer",
    );
    req["outputs"] = json!([{"name": "label", "parameters": {"classification": 1}}]);
    assert_error(
        &s.post("/v2/models/iris-labels/infer", &req).await,
        400,
        "BYTES and cannot be classified",
    );
}

#[tokio::test]
async fn model_configuration_in_tritons_shape() {
    let s = TestServer::start(&bundled_repository()).await;
    let (status, config) = s.get("/v2/models/simple/config").await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["name"], "simple");
    assert_eq!(config["platform"], "onnxruntime_onnx");
    assert_eq!(config["backend"], "onnxruntime");
    // Every tensor starts with a variable dimension: Triton's batching form, as Triton's own `simple`
    // (max_batch_size > 0, dims without the batch dimension), so perf_analyzer needs no --shape.
    assert_eq!(
        config["max_batch_size"],
        support::TRITON_DEFAULT_MAX_BATCH_SIZE
    );
    assert_eq!(
        config["input"][0],
        json!({"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [16]})
    );
    assert_eq!(config["output"][1]["name"], "OUTPUT1");
    assert_eq!(config["instance_group"][0]["count"], 1);
    let (_, strings) = s.get("/v2/models/iris-labels/config").await;
    assert_eq!(strings["output"][0]["data_type"], "TYPE_STRING");
    // A tensor that is only the batch dimension is written as Triton writes it.
    assert_eq!(
        strings["output"][0],
        json!({"name": "label", "data_type": "TYPE_STRING", "dims": [1], "reshape": {"shape": []}})
    );
    assert_error(
        &s.get("/v2/models/nope/config").await,
        404,
        "Model nope not found",
    );
}

#[tokio::test]
async fn model_configuration_takes_max_batch_size_from_the_settings() {
    let root = tempfile::tempdir().unwrap();
    write_model(
        root.path(),
        "simple",
        &json!({"name": "simple", "max_batch_size": 8}),
        Some("simple"),
    );
    let s = TestServer::start(root.path()).await;
    let (status, config) = s.get("/v2/models/simple/config").await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["max_batch_size"], 8);
    assert_eq!(config["output"][0]["dims"], json!([16]));
}

fn stats_of<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["model_stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap()
}

#[tokio::test]
async fn statistics_count_real_traffic() {
    let s = TestServer::start(&bundled_repository()).await;
    let (_, before) = s.get("/v2/models/iris/stats").await;
    assert_eq!(stats_of(&before, "iris")["inference_count"], 0);
    for _ in 0..3 {
        assert_eq!(
            s.post("/v2/models/iris/infer", &iris_request()).await.0,
            200
        );
    }
    let bad = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]});
    assert_eq!(s.post("/v2/models/iris/infer", &bad).await.0, 400);

    let (status, body) = s.get("/v2/models/iris/stats").await;
    assert_eq!(status, 200, "{body}");
    let iris = stats_of(&body, "iris");
    assert_eq!(iris["inference_count"], 3);
    assert_eq!(iris["execution_count"], 3);
    assert!(iris["last_inference"].as_u64().unwrap() > 1_600_000_000_000);
    let stats = &iris["inference_stats"];
    assert_eq!(stats["success"]["count"], 3);
    assert_eq!(stats["fail"]["count"], 1);
    for phase in [
        "success",
        "queue",
        "compute_input",
        "compute_infer",
        "compute_output",
    ] {
        if phase != "success" {
            assert_eq!(stats[phase]["count"], 3, "{phase}");
        }
        assert!(stats[phase]["ns"].as_u64().unwrap() > 0, "{phase}: {stats}");
    }
    assert!(stats["compute_infer"]["ns"].as_u64() <= stats["success"]["ns"].as_u64());

    let (_, all) = s.get("/v2/models/stats").await;
    assert_eq!(all["model_stats"].as_array().unwrap().len(), 7);
    assert_eq!(stats_of(&all, "simple")["inference_count"], 0);
    assert_error(
        &s.get("/v2/models/iris/versions/4/stats").await,
        404,
        "version 4 not found",
    );
}

#[tokio::test]
async fn server_metadata_advertises_what_is_implemented() {
    let s = TestServer::start(&bundled_repository()).await;
    let (_, meta) = s.get("/v2").await;
    let extensions: Vec<&str> = meta["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for e in [
        "binary_tensor_data",
        "classification",
        "model_configuration",
        "statistics",
    ] {
        assert!(extensions.contains(&e), "{extensions:?}");
    }
}
