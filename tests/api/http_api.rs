//! REST integration tests against the real server on the bundled model repository.

use crate::support;

use serde_json::{json, Value};
use support::{assert_close, assert_error, bundled_repository, iris_request, TestServer};

const IRIS_PROBABILITIES: [f64; 6] = [
    0.9816568493843079,
    0.01834314875304699,
    1.4395041603165737e-08,
    5.5262844398384914e-05,
    0.08008353412151337,
    0.9198611974716187,
];

async fn bundled() -> TestServer {
    TestServer::start(&bundled_repository()).await
}

#[tokio::test]
async fn health_and_server_metadata() {
    let s = bundled().await;
    assert_eq!(s.get("/v2/health/live").await, (200, json!({"live": true})));
    assert_eq!(
        s.get("/v2/health/ready").await,
        (200, json!({"ready": true}))
    );
    let (status, meta) = s.get("/v2").await;
    assert_eq!(status, 200);
    assert_eq!(meta["name"], "oxinfer");
    assert_eq!(meta["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["extensions"], json!(support::IMPLEMENTED_EXTENSIONS));
}

#[tokio::test]
async fn model_metadata_comes_from_the_onnx_file() {
    let s = bundled().await;
    let (status, meta) = s.get("/v2/models/iris").await;
    assert_eq!(status, 200);
    assert_eq!(
        meta,
        json!({
            "name": "iris",
            "versions": [],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}
            ]
        })
    );
    let (_, labels) = s.get("/v2/models/iris-labels").await;
    assert_eq!(
        labels["outputs"][0],
        json!({"name": "label", "datatype": "BYTES", "shape": [-1]})
    );
    let (_, simple) = s.get("/v2/models/simple").await;
    assert_eq!(
        simple["inputs"][0],
        json!({"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16]})
    );
}

#[tokio::test]
async fn model_ready_on_both_paths() {
    let s = bundled().await;
    assert_eq!(
        s.get("/v2/models/iris/ready").await,
        (200, json!({"name": "iris", "ready": true}))
    );
    assert_error(
        &s.get("/v2/models/nope/ready").await,
        404,
        "Model nope not found",
    );
    assert_error(
        &s.get("/v2/models/iris/versions/3/ready").await,
        404,
        "Model iris with version 3 not found",
    );
}

#[tokio::test]
async fn iris_infer_gives_known_values() {
    let s = bundled().await;
    let (status, r) = s.post("/v2/models/iris/infer", &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model_name"], "iris");
    assert!(r.get("model_version").is_none());
    assert_eq!(r["outputs"][0]["name"], "label");
    assert_eq!(r["outputs"][0]["datatype"], "INT64");
    assert_eq!(r["outputs"][0]["shape"], json!([2]));
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));
    assert_eq!(r["outputs"][1]["shape"], json!([2, 3]));
    assert_close(&r["outputs"][1]["data"], &IRIS_PROBABILITIES);
}

#[tokio::test]
async fn string_labels_come_back_as_bytes() {
    let s = bundled().await;
    let (status, r) = s
        .post("/v2/models/iris-labels/infer", &iris_request())
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["outputs"][0],
        json!({"name": "label", "shape": [2], "datatype": "BYTES", "data": ["setosa", "virginica"]})
    );
}

#[tokio::test]
async fn flat_and_nested_data_are_the_same() {
    let s = bundled().await;
    let flat = json!({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
        "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]});
    let (_, a) = s.post("/v2/models/iris/infer", &flat).await;
    let (_, b) = s.post("/v2/models/iris/infer", &iris_request()).await;
    assert_eq!(a["outputs"], b["outputs"]);
}

#[tokio::test]
async fn id_is_echoed_or_generated() {
    let s = bundled().await;
    let mut req = iris_request();
    req["id"] = json!("my-request-7");
    let (_, r) = s.post("/v2/models/iris/infer", &req).await;
    assert_eq!(r["id"], "my-request-7");
    let (_, r) = s.post("/v2/models/iris/infer", &iris_request()).await;
    let id = r["id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "uuid expected, got {id}");
    let (_, r2) = s.post("/v2/models/iris/infer", &iris_request()).await;
    assert_ne!(r2["id"], r["id"]);
}

#[tokio::test]
async fn requested_outputs_select_what_comes_back() {
    let s = bundled().await;
    let mut req = iris_request();
    req["outputs"] = json!([{"name": "probabilities"}]);
    let (status, r) = s.post("/v2/models/iris/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    let outputs = r["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["name"], "probabilities");
    req["outputs"] = json!([{"name": "nope"}]);
    assert_error(
        &s.post("/v2/models/iris/infer", &req).await,
        400,
        "unknown output 'nope'",
    );
}

#[tokio::test]
async fn mlserver_style_nulls_are_accepted() {
    let s = bundled().await;
    let req = json!({"id": null, "parameters": {"content_type": null, "headers": null}, "outputs": null,
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "parameters": null,
                    "data": [5.1, 3.5, 1.4, 0.2]}]});
    let (status, r) = s.post("/v2/models/iris/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"], json!([0]));
}

/// One column per datatype with edge values; the `datatypes` model echoes each input.
fn datatype_cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("bool", "BOOL", json!([true, false, false, true])),
        ("int8", "INT8", json!([-128, 127, 0, -1])),
        ("int16", "INT16", json!([-32768, 32767, 0, 1])),
        ("int32", "INT32", json!([-2147483648i64, 2147483647, 0, 7])),
        ("int64", "INT64", json!([i64::MIN, i64::MAX, 0, -5])),
        ("uint8", "UINT8", json!([0, 255, 1, 2])),
        ("uint16", "UINT16", json!([0, 65535, 1, 2])),
        ("uint32", "UINT32", json!([0, 4294967295u64, 1, 2])),
        ("uint64", "UINT64", json!([0, u64::MAX, 1, 2])),
        ("fp16", "FP16", json!([0.5, -2.0, 65504.0, 0.25])),
        (
            "fp32",
            "FP32",
            json!([0.1, -1.5, 3.4028234663852886e38, 1e-7]),
        ),
        (
            "fp64",
            "FP64",
            json!([0.1, -1.5, 1.7976931348623157e308, 5e-324]),
        ),
        ("string", "BYTES", json!(["a", "héllo", "", "日本"])),
    ]
}

#[tokio::test]
async fn every_datatype_round_trips_by_value() {
    let s = bundled().await;
    let inputs: Vec<Value> = datatype_cases()
        .into_iter()
        .map(|(suffix, dt, data)| json!({"name": format!("input_{suffix}"), "shape": [2, 2], "datatype": dt, "data": data}))
        .collect();
    let (status, r) = s
        .post("/v2/models/datatypes/infer", &json!({"inputs": inputs}))
        .await;
    assert_eq!(status, 200, "{r}");
    let outputs = r["outputs"].as_array().unwrap();
    for (suffix, dt, data) in datatype_cases() {
        let out = outputs
            .iter()
            .find(|o| o["name"] == format!("output_{suffix}"))
            .unwrap_or_else(|| panic!("output_{suffix} missing"));
        assert_eq!(out["datatype"], dt);
        assert_eq!(out["shape"], json!([2, 2]));
        if dt == "FP32" {
            let got: Vec<f32> = out["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let want: Vec<f32> = data
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(got, want);
        } else {
            assert_eq!(out["data"], data, "{suffix}");
        }
    }
}

#[tokio::test]
async fn triton_simple_models_compute() {
    let s = bundled().await;
    let a: Vec<i32> = (0..16).collect();
    let b: Vec<i32> = vec![1; 16];
    let req = json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": a},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": b}]});
    let (status, r) = s.post("/v2/models/simple/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    let sum: Vec<i32> = (1..17).collect();
    let diff: Vec<i32> = (-1..15).collect();
    assert_eq!(r["outputs"][0]["name"], "OUTPUT0");
    assert_eq!(r["outputs"][0]["data"], json!(sum));
    assert_eq!(r["outputs"][1]["data"], json!(diff));

    let sa: Vec<String> = a.iter().map(i32::to_string).collect();
    let sb: Vec<String> = b.iter().map(i32::to_string).collect();
    let req = json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "BYTES", "data": sa},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "BYTES", "data": sb}]});
    let (status, r) = s.post("/v2/models/simple_string/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    let sum: Vec<String> = (1..17).map(|v: i32| v.to_string()).collect();
    assert_eq!(r["outputs"][0]["datatype"], "BYTES");
    assert_eq!(r["outputs"][0]["data"], json!(sum));
}

#[tokio::test]
async fn bad_inputs_get_400_naming_the_tensor() {
    let s = bundled().await;
    let infer = |body: Value| {
        let s = &s;
        async move { s.post("/v2/models/iris/infer", &body).await }
    };
    let one = |name: &str, shape: Value, dt: &str, data: Value| json!({"inputs": [{"name": name, "shape": shape, "datatype": dt, "data": data}]});
    assert_error(
        &infer(one("nope", json!([1, 4]), "FP32", json!([1, 2, 3, 4]))).await,
        400,
        "unexpected input 'nope'",
    );
    assert_error(
        &infer(json!({"inputs": []})).await,
        400,
        "missing input 'input'",
    );
    assert_error(
        &infer(one("input", json!([1, 4]), "FP64", json!([1, 2, 3, 4]))).await,
        400,
        "input 'input' has datatype FP64 but model iris expects FP32",
    );
    assert_error(
        &infer(one("input", json!([1, 3]), "FP32", json!([1, 2, 3]))).await,
        400,
        "input 'input' has shape [1, 3]",
    );
    assert_error(
        &infer(one("input", json!([4]), "FP32", json!([1, 2, 3, 4]))).await,
        400,
        "input 'input' has shape [4]",
    );
    assert_error(
        &infer(one("input", json!([2, 4]), "FP32", json!([1, 2, 3, 4]))).await,
        400,
        "input 'input' has 4 elements in data but its shape needs 8",
    );
    assert_error(
        &infer(one("input", json!([1, 4]), "FP32", json!([1, 2, 3, 4, 5]))).await,
        400,
        "input 'input'",
    );
    assert_error(
        &infer(one("input", json!([1, 4]), "FLOAT32", json!([1, 2, 3, 4]))).await,
        400,
        "input 'input' has unknown datatype 'FLOAT32'",
    );
    assert_error(
        &infer(one("input", json!([1, 4]), "FP32", json!([1, "x", 3, 4]))).await,
        400,
        "input 'input' (FP32)",
    );
    assert_error(
        &infer(one("input", json!([1, -4]), "FP32", json!([1, 2, 3, 4]))).await,
        400,
        "tensor 'input' has a negative dimension",
    );
    let twice = json!({"inputs": [
        {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]});
    assert_error(
        &infer(twice).await,
        400,
        "input 'input' is given more than once",
    );
    assert_error(
        &infer(one(
            "input",
            json!([4_000_000_000u64, 4_000_000_000u64, 4_000_000_000u64]),
            "FP32",
            json!([1]),
        ))
        .await,
        400,
        "input",
    );
}

#[tokio::test]
async fn malformed_bodies_get_400_in_the_error_shape() {
    let s = bundled().await;
    assert_error(
        &s.post_raw("/v2/models/iris/infer", "{not json").await,
        400,
        "invalid inference request",
    );
    assert_error(
        &s.post_raw("/v2/models/iris/infer", "{}").await,
        400,
        "inputs",
    );
    assert_error(
        &s.post_raw(
            "/v2/models/datatypes/infer",
            r#"{"inputs":[{"name":"input_uint8","shape":[1,1],"datatype":"UINT8","data":[256]}]}"#,
        )
        .await,
        400,
        "input 'input_uint8'",
    );
}

#[tokio::test]
async fn a_model_failing_on_its_input_is_a_400_not_a_crash() {
    let s = bundled().await;
    let bad: Vec<&str> = vec!["abc"; 16];
    let req = json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "BYTES", "data": bad},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "BYTES", "data": bad}]});
    assert_error(
        &s.post("/v2/models/simple_string/infer", &req).await,
        400,
        "simple_string",
    );
    let (status, _) = s.post("/v2/models/iris/infer", &iris_request()).await;
    assert_eq!(status, 200, "other models keep serving");
    assert_eq!(s.get("/v2/health/live").await.0, 200);
}

#[tokio::test]
async fn unknown_models_and_routes_are_404_with_mlserver_wording() {
    let s = bundled().await;
    assert_error(
        &s.post("/v2/models/nope/infer", &iris_request()).await,
        404,
        "Model nope not found",
    );
    assert_error(
        &s.post("/v2/models/iris/versions/9/infer", &iris_request())
            .await,
        404,
        "Model iris with version 9 not found",
    );
    assert_error(&s.get("/v2/models/nope").await, 404, "Model nope not found");
    assert_error(&s.get("/v2/nothing/here").await, 404, "no route");
    let r = s
        .client
        .get(s.url("/v2/models/iris/infer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

#[tokio::test]
async fn concurrent_requests_all_get_their_own_answers() {
    let s = bundled().await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let client = s.client.clone();
        let url = s.url("/v2/models/simple/infer");
        tasks.push(tokio::spawn(async move {
            let a = vec![i; 16];
            let req = json!({"id": format!("r{i}"), "inputs": [
                {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": a},
                {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![1; 16]}]});
            let r: Value = client
                .post(url)
                .json(&req)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(r["id"], format!("r{i}"));
            assert_eq!(r["outputs"][0]["data"], json!(vec![i + 1; 16]));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn trailing_slashes_answer_as_the_documented_routes() {
    let s = bundled().await;
    for (plain, slashed) in [
        ("/v2", "/v2/"),
        ("/v2/health/live", "/v2/health/live/"),
        ("/v2/health/ready", "/v2/health/ready/"),
        ("/v2/models/iris", "/v2/models/iris/"),
        ("/v2/models/iris/ready", "/v2/models/iris/ready/"),
        ("/v2/models/simple/config", "/v2/models/simple/config/"),
    ] {
        assert_eq!(s.get(slashed).await, s.get(plain).await, "{slashed}");
    }
    let (status, r) = s.post("/v2/models/iris/infer/", &iris_request()).await;
    assert_eq!(
        (status, &r["outputs"][0]["data"]),
        (200, &json!([0, 2])),
        "{r}"
    );
    // Unknown paths stay 404 with or without the slash; a wrong method stays 405.
    assert_error(&s.get("/v2/nothing/").await, 404, "no route");
    assert_error(
        &s.get("/v2/models/nope/").await,
        404,
        "Model nope not found",
    );
    let r = s
        .client
        .get(s.url("/v2/models/iris/infer/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // The documentation pages keep their own form (`/v2/docs` redirects to `/v2/docs/`).
    let r = s.client.get(s.url("/v2/docs/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn non_finite_floats_travel_as_strings_and_out_of_range_values_are_refused() {
    let s = bundled().await;
    // Every input of the `datatypes` model, with the float ones replaced.
    let body = |replace: &[(&str, &str, Value)]| {
        let inputs: Vec<Value> = datatype_cases()
            .into_iter()
            .map(|(suffix, dt, data)| {
                let name = format!("input_{suffix}");
                let (dt, data) = replace
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map(|(_, dt, data)| (*dt, data.clone()))
                    .unwrap_or((dt, data));
                json!({"name": name, "shape": [2, 2], "datatype": dt, "data": data})
            })
            .collect();
        json!({"inputs": inputs, "outputs": [
            {"name": "output_fp32"}, {"name": "output_fp64"}, {"name": "output_fp16"}]})
    };
    let (status, r) = s
        .post(
            "/v2/models/datatypes/infer",
            &body(&[
                (
                    "input_fp32",
                    "FP32",
                    json!(["NaN", "Infinity", "-Infinity", null]),
                ),
                ("input_fp64", "FP64", json!(["nan", "inf", -1.5, "-inf"])),
                ("input_fp16", "FP16", json!(["-Infinity", 65504, "NaN", 1])),
            ]),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["outputs"][0]["data"],
        json!(["NaN", "Infinity", "-Infinity", "NaN"])
    );
    assert_eq!(
        r["outputs"][1]["data"],
        json!(["NaN", "Infinity", -1.5, "-Infinity"])
    );
    assert_eq!(
        r["outputs"][2]["data"],
        json!(["-Infinity", 65504.0, "NaN", 1.0])
    );
    for (name, datatype, value) in [
        ("input_fp32", "FP32", json!([1e39, 0, 0, 0])),
        ("input_fp32", "FP32", json!([0, 0, 0, -4e38])),
        ("input_fp16", "FP16", json!([70000, 0, 0, 0])),
    ] {
        let answer = s
            .post(
                "/v2/models/datatypes/infer",
                &body(&[(name, datatype, value)]),
            )
            .await;
        assert_error(&answer, 400, &format!("input '{name}' ({datatype})"));
        assert_error(&answer, 400, "out of range");
    }
}
