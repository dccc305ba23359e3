//! KServe's V1 protocol (`/v1/models/{name}:predict`, `instances` -> `predictions`) against the bundled models,
//! with the V2 path's limits and clear 4xx answers for bad requests.

use crate::support;

use serde_json::{json, Value};
use support::{assert_close, assert_error, bundled_repository, test_settings, TestServer};

/// The iris answers for its two usual rows (labels 0 and 2), as in the V2 tests.
const IRIS_PROBABILITIES: [[f64; 3]; 2] = [
    [
        0.9816568493843079,
        0.01834314875304699,
        1.4395041603165737e-08,
    ],
    [
        5.5262844398384914e-05,
        0.08008353412151337,
        0.9198611974716187,
    ],
];

fn iris_instances() -> Value {
    json!({"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]})
}

#[tokio::test]
async fn health_list_and_readiness() {
    let s = TestServer::start(&bundled_repository()).await;
    assert_eq!(s.get("/").await, (200, json!({"status": "alive"})));
    let (status, list) = s.get("/v1/models").await;
    assert_eq!(status, 200);
    let models = list["models"].as_array().unwrap();
    assert!(
        models.contains(&json!("iris")) && models.contains(&json!("simple")),
        "{list}"
    );
    assert_eq!(
        s.get("/v1/models/iris").await,
        (200, json!({"name": "iris", "ready": true}))
    );
    assert_error(&s.get("/v1/models/nope").await, 404, "Model nope not found");
}

#[tokio::test]
async fn predict_single_input_rows_and_several_outputs() {
    let s = TestServer::start(&bundled_repository()).await;
    let (status, r) = s.post("/v1/models/iris:predict", &iris_instances()).await;
    assert_eq!(status, 200, "{r}");
    let predictions = r["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2);
    for (prediction, (label, probabilities)) in predictions
        .iter()
        .zip([(0, IRIS_PROBABILITIES[0]), (2, IRIS_PROBABILITIES[1])])
    {
        assert_eq!(prediction["label"], label, "{r}");
        assert_close(&prediction["probabilities"], &probabilities);
    }
    assert_eq!(r.as_object().unwrap().len(), 1, "only predictions: {r}");
    // "inputs" is read as KServe's model server reads it (before "instances"); string labels come back as text.
    let body = json!({"inputs": [[6.7, 3.0, 5.2, 2.3]], "instances": "ignored"});
    let (status, r) = s.post("/v1/models/iris-labels:predict", &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["predictions"][0]["label"], "virginica");
}

#[tokio::test]
async fn predict_objects_keyed_by_input_name_and_a_single_output() {
    let s = TestServer::start(&bundled_repository()).await;
    let a: Vec<i32> = (0..16).collect();
    let b = vec![1; 16];
    let body = json!({"instances": [{"INPUT0": a, "INPUT1": b}, {"INPUT1": a, "INPUT0": a}]});
    let (status, r) = s.post("/v1/models/simple:predict", &body).await;
    assert_eq!(status, 200, "{r}");
    let sum: Vec<i32> = (1..17).collect();
    let diff: Vec<i32> = (-1..15).collect();
    assert_eq!(
        r["predictions"][0],
        json!({"OUTPUT0": sum, "OUTPUT1": diff})
    );
    let double: Vec<i32> = (0..16).map(|x| 2 * x).collect();
    assert_eq!(
        r["predictions"][1],
        json!({"OUTPUT0": double, "OUTPUT1": vec![0; 16]})
    );
    // One output: the rows themselves.
    let body = json!({"instances": ["a", "é", ""]});
    let (status, r) = s.post("/v1/models/identity_string:predict", &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r, json!({"predictions": ["a", "é", ""]}));
}

#[tokio::test]
async fn bad_requests_are_4xx_naming_the_field() {
    let s = TestServer::start(&bundled_repository()).await;
    let predict = "/v1/models/iris:predict";
    let cases = [
        (json!({"rows": [[1, 2, 3, 4]]}), "needs \"instances\""),
        (
            json!({"instances": {"input": [1, 2, 3, 4]}}),
            "Expected \"instances\" to be a list",
        ),
        (json!({"instances": []}), "\"instances\" is empty"),
        (
            json!({"instances": [[1, 2, 3, 4], [1, 2]]}),
            "not rectangular",
        ),
        (json!({"instances": [[1, 2, 3]]}), "'input'"),
        (
            json!({"instances": [[1, "x", 3, 4]]}),
            "input 'input' (FP32)",
        ),
        (
            json!({"instances": [{"sepal": [1, 2, 3, 4]}]}),
            "'sepal' is not an input of model iris",
        ),
    ];
    for (body, needle) in cases {
        assert_error(&s.post(predict, &body).await, 400, needle);
    }
    assert_error(
        &s.post_raw(predict, "{\"instances\": [[1,").await,
        400,
        "not a V1 request",
    );
    assert_error(
        &s.post("/v1/models/simple:predict", &json!({"instances": [[1, 2]]}))
            .await,
        400,
        "send each of \"instances\" as an object keyed by input name",
    );
    assert_error(
        &s.post("/v1/models/nope:predict", &iris_instances()).await,
        404,
        "Model nope not found",
    );
    assert_error(
        &s.post("/v1/models/iris:explain", &iris_instances()).await,
        501,
        "explainer",
    );
    assert_error(
        &s.post("/v1/models/nope:explain", &iris_instances()).await,
        404,
        "nope",
    );
    assert_error(
        &s.post("/v1/models/iris:train", &iris_instances()).await,
        404,
        "no route",
    );
    // Nesting past max_shape_rank is refused before it is read.
    let deep = format!(
        "{{\"instances\": {}1{}}}",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    assert_error(&s.post_raw(predict, deep).await, 400, "max_shape_rank");
}

#[tokio::test]
async fn the_v2_limits_apply() {
    let mut settings = test_settings(&bundled_repository());
    settings.max_request_body_size = 4096;
    settings.max_tensor_elements = 40;
    let s = TestServer::start_with(settings).await;
    let rows = |n: usize| json!({"instances": vec![[5.1, 3.5, 1.4, 0.2]; n]});
    assert_eq!(s.post("/v1/models/iris:predict", &rows(10)).await.0, 200);
    assert_error(
        &s.post("/v1/models/iris:predict", &rows(11)).await,
        400,
        "max_tensor_elements",
    );
    assert_error(
        &s.post("/v1/models/iris:predict", &rows(500)).await,
        413,
        "max_request_body_size",
    );
}
