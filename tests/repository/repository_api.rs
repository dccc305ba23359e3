//! The model repository extension through the real server: index, load and unload over REST and gRPC while
//! other models keep serving, models added or changed on disk after start, unload with requests in flight,
//! Triton's configuration override on load, and not-found messages in both Triton's and MLServer's words.

use crate::support;

use std::path::Path;

use serde_json::{json, Value};
use support::pb;
use support::GrpcInferenceServiceClient;
use support::{
    assert_error, bundled_model, iris_request, test_settings, wait_until, write_model, TestServer,
};
use tonic::Code;

/// A repository with `iris` and `iris-labels` (named `labels`), both with model-settings.json.
fn two_models(root: &Path) {
    write_model(root, "iris", &json!({"name": "iris"}), Some("iris"));
    write_model(root, "labels", &json!({}), Some("iris-labels"));
}

async fn post_empty(s: &TestServer, path: &str, body: Option<&str>) -> (u16, String) {
    let mut request = s.client.post(s.url(path));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let r = request.send().await.expect("POST");
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn index(s: &TestServer, body: &Value) -> Value {
    let (status, index) = s.post("/v2/repository/index", body).await;
    assert_eq!(status, 200, "{index}");
    index
}

fn entry(name: &str, version: &str, state: &str, reason: &str) -> Value {
    json!({"name": name, "version": version, "state": state, "reason": reason})
}

/// Asserts the iris answer for [`iris_request`].
fn assert_iris(r: &(u16, Value)) {
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["outputs"][0]["data"], json!([0, 2]), "{}", r.1);
}

async fn grpc_client(s: &TestServer) -> GrpcInferenceServiceClient<tonic::transport::Channel> {
    GrpcInferenceServiceClient::connect(format!("http://{}", s.server.grpc_addr))
        .await
        .expect("gRPC connects")
}

#[tokio::test]
async fn rest_index_load_unload_while_another_model_serves() {
    let dir = tempfile::tempdir().unwrap();
    two_models(dir.path());
    let s = TestServer::start(dir.path()).await;
    let (_, meta) = s.get("/v2").await;
    assert!(meta["extensions"]
        .as_array()
        .unwrap()
        .contains(&json!("model_repository")));
    let all_ready = json!([
        entry("iris", "", "READY", ""),
        entry("labels", "", "READY", "")
    ]);
    assert_eq!(index(&s, &json!({})).await, all_ready);
    assert_eq!(index(&s, &json!({"ready": true})).await, all_ready);
    assert_eq!(index(&s, &json!({"ready": null})).await, all_ready);
    // No body at all (Triton's clients), and a bad one.
    let (status, body) = post_empty(&s, "/v2/repository/index", None).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), all_ready);
    assert_error(
        &s.post("/v2/repository/index", &json!({"ready": "yes"}))
            .await,
        400,
        "invalid repository index request",
    );

    // Unload iris: 200 with an empty body; iris is gone, labels still serves.
    assert_eq!(
        post_empty(&s, "/v2/repository/models/iris/unload", None).await,
        (200, String::new())
    );
    assert_error(
        &s.post("/v2/models/iris/infer", &iris_request()).await,
        404,
        "Model iris not found",
    );
    assert_error(
        &s.get("/v2/models/iris/ready").await,
        404,
        "Model iris not found",
    );
    let (status, r) = s.post("/v2/models/labels/infer", &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"], json!(["setosa", "virginica"]));
    assert_eq!(s.get("/v2/health/ready").await.0, 200);
    assert_eq!(
        index(&s, &json!({})).await,
        json!([
            entry("iris", "", "UNAVAILABLE", "unloaded"),
            entry("labels", "", "READY", "")
        ])
    );
    assert_eq!(
        index(&s, &json!({"ready": true})).await,
        json!([entry("labels", "", "READY", "")])
    );

    // Unknown models are 404, for unload (also once unloaded) and load.
    for path in [
        "/v2/repository/models/iris/unload",
        "/v2/repository/models/nosuch/unload",
        "/v2/repository/models/nosuch/load",
    ] {
        let model = path.split('/').nth(4).unwrap();
        assert_error(
            &s.post(path, &json!({})).await,
            404,
            &format!("Model {model} not found"),
        );
    }
    // A Triton config override with a field this server does not support is refused, naming it.
    assert_error(
        &s.post(
            "/v2/repository/models/iris/load",
            &json!({"parameters": {"config": "{\"ensemble_scheduling\": {}}"}}),
        )
        .await,
        400,
        "failed to load 'iris': load config: field 'ensemble_scheduling' is not supported",
    );
    assert_error(
        &s.post(
            "/v2/repository/models/iris/load",
            &json!({"parameters": {"config": {"max_batch_size": 2}}}),
        )
        .await,
        400,
        "must be a string",
    );
    assert_error(
        &s.post(
            "/v2/repository/models/iris/load",
            &json!({"parameters": {"file:1/model.onnx": "AAAA"}}),
        )
        .await,
        501,
        "load parameter 'file:1/model.onnx' is not supported",
    );

    // A JSON array is not a request (serde would read it as an empty struct).
    for body in [json!([]), json!(["x"]), json!("x")] {
        assert_error(
            &s.post("/v2/repository/models/iris/load", &body).await,
            400,
            "invalid load request",
        );
    }
    // Load it back: a body is optional.
    assert_eq!(
        post_empty(&s, "/v2/repository/models/iris/load", None).await,
        (200, String::new())
    );
    assert_iris(&s.post("/v2/models/iris/infer", &iris_request()).await);
    assert_eq!(index(&s, &json!({})).await, all_ready);
    // Loading a loaded model reloads it, and it keeps serving.
    assert_eq!(
        post_empty(&s, "/v2/repository/models/iris/load", Some("{}")).await,
        (200, String::new())
    );
    assert_iris(&s.post("/v2/models/iris/infer", &iris_request()).await);
    assert_eq!(s.get("/v2/health/ready").await.0, 200);
}

#[tokio::test]
async fn grpc_index_load_unload() {
    let dir = tempfile::tempdir().unwrap();
    two_models(dir.path());
    let s = TestServer::start(dir.path()).await;
    let mut client = grpc_client(&s).await;
    let index = |ready| pb::RepositoryIndexRequest {
        repository_name: String::new(),
        ready,
    };
    let summary = |r: pb::RepositoryIndexResponse| {
        r.models
            .into_iter()
            .map(|m| (m.name, m.version, m.state, m.reason))
            .collect::<Vec<_>>()
    };
    let ready = |name: &str| {
        (
            name.to_string(),
            String::new(),
            "READY".to_string(),
            String::new(),
        )
    };
    assert_eq!(
        summary(
            client
                .repository_index(index(false))
                .await
                .unwrap()
                .into_inner()
        ),
        vec![ready("iris"), ready("labels")]
    );

    client
        .repository_model_unload(pb::RepositoryModelUnloadRequest {
            model_name: "iris".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let status = client
        .model_ready(pb::ModelReadyRequest {
            name: "iris".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.message(),
        "Request for unknown model: 'iris' is not found (Model iris not found)"
    );
    let (status, r) = s.post("/v2/models/labels/infer", &iris_request()).await;
    assert_eq!(
        (status, &r["outputs"][0]["data"]),
        (200, &json!(["setosa", "virginica"]))
    );
    assert_eq!(
        summary(
            client
                .repository_index(index(true))
                .await
                .unwrap()
                .into_inner()
        ),
        vec![ready("labels")]
    );
    assert_eq!(
        summary(
            client
                .repository_index(index(false))
                .await
                .unwrap()
                .into_inner()
        )[0],
        (
            "iris".to_string(),
            String::new(),
            "UNAVAILABLE".to_string(),
            "unloaded".to_string()
        )
    );

    for (name, code) in [
        ("iris", Code::NotFound),
        ("nosuch", Code::NotFound),
        ("", Code::InvalidArgument),
    ] {
        let status = client
            .repository_model_unload(pb::RepositoryModelUnloadRequest {
                model_name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
    }
    let status = client
        .repository_model_load(pb::RepositoryModelLoadRequest {
            model_name: "nosuch".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.message(),
        "failed to load 'nosuch': Model nosuch not found in the repository"
    );
    let file_upload = pb::RepositoryModelLoadRequest {
        model_name: "iris".into(),
        parameters: [(
            "file:1/model.onnx".to_string(),
            pb::ModelRepositoryParameter {
                parameter_choice: Some(
                    pb::model_repository_parameter::ParameterChoice::BytesParam(vec![1, 2, 3]),
                ),
            },
        )]
        .into(),
        ..Default::default()
    };
    let status = client.repository_model_load(file_upload).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);

    client
        .repository_model_load(pb::RepositoryModelLoadRequest {
            model_name: "iris".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        client
            .model_ready(pb::ModelReadyRequest {
                name: "iris".into(),
                version: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert_iris(&s.post("/v2/models/iris/infer", &iris_request()).await);
    assert!(
        client
            .server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
}

#[tokio::test]
async fn models_added_after_start_load_when_start_up_loading_is_off() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "iris", &json!({}), Some("iris"));
    let mut settings = test_settings(dir.path());
    settings.load_models_at_startup = false;
    let s = TestServer::start_with(settings).await;
    // Seldon's start: nothing loaded, ready (no model is due), the model on disk is listed as not loaded.
    assert_eq!(
        s.get("/v2/health/ready").await,
        (200, json!({"ready": true}))
    );
    assert_error(&s.get("/v2/models/iris").await, 404, "Model iris not found");
    assert_eq!(
        index(&s, &json!({})).await,
        json!([entry("iris", "", "UNAVAILABLE", "not loaded")])
    );
    // A model copied in after start.
    write_model(
        dir.path(),
        "late",
        &json!({"name": "late", "parameters": {"version": "3"}}),
        Some("iris"),
    );
    assert_eq!(
        post_empty(&s, "/v2/repository/models/late/load", None).await,
        (200, String::new())
    );
    let (status, r) = s.post("/v2/models/late/infer", &iris_request()).await;
    assert_iris(&(status, r.clone()));
    assert_eq!(r["model_version"], "3");
    assert_eq!(
        index(&s, &json!({})).await,
        json!([
            entry("iris", "", "UNAVAILABLE", "not loaded"),
            entry("late", "3", "READY", "")
        ])
    );
    assert_eq!(s.get("/v2/health/ready").await.0, 200);
    // A model that fails to load: the load and the index say why; it is not kept (404, as in MLServer) and
    // does not hold readiness back (the other models of a Seldon server keep serving).
    let broken = write_model(dir.path(), "broken", &json!({}), None);
    std::fs::write(broken.join("model.onnx"), b"not onnx").unwrap();
    let r = s
        .post("/v2/repository/models/broken/load", &json!({}))
        .await;
    assert_error(&r, 400, "Model broken failed to load");
    let listed = index(&s, &json!({})).await;
    assert_eq!(listed[0]["name"], "broken");
    assert_eq!(listed[0]["state"], "UNAVAILABLE");
    let reason = listed[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Model broken failed to load"),
        "{listed}"
    );
    assert_eq!(s.get("/v2/health/ready").await.0, 200);
    assert_error(
        &s.post("/v2/models/broken/infer", &iris_request()).await,
        404,
        "Model broken not found",
    );
    assert_error(
        &s.post("/v2/repository/models/broken/unload", &json!({}))
            .await,
        404,
        "Model broken not found",
    );
}

#[tokio::test]
async fn unloading_a_model_that_failed_at_start_up_restores_readiness() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "iris", &json!({}), Some("iris"));
    let broken = write_model(dir.path(), "broken", &json!({}), None);
    std::fs::write(broken.join("model.onnx"), b"not onnx").unwrap();
    let s = TestServer::start(dir.path()).await;
    // At start-up a broken model holds readiness back (a broken KServe revision is never promoted).
    assert_eq!(s.get("/v2/health/ready").await.0, 503);
    assert_error(
        &s.post("/v2/models/broken/infer", &iris_request()).await,
        503,
        "Model broken is not available",
    );
    assert_eq!(
        post_empty(&s, "/v2/repository/models/broken/unload", None).await,
        (200, String::new())
    );
    assert_eq!(s.get("/v2/health/ready").await.0, 200);
    assert_eq!(
        index(&s, &json!({})).await,
        json!([
            entry("broken", "", "UNAVAILABLE", "unloaded"),
            entry("iris", "", "READY", "")
        ])
    );
}

#[tokio::test]
async fn load_picks_up_a_changed_model_and_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let folder = write_model(
        dir.path(),
        "flowers",
        &json!({"parameters": {"version": "1"}}),
        Some("iris"),
    );
    let s = TestServer::start(dir.path()).await;
    let (status, r) = s.post("/v2/models/flowers/infer", &iris_request()).await;
    assert_iris(&(status, r.clone()));
    assert_eq!(r["model_version"], "1");

    // New settings (version 2) and a new file (the one answering class names).
    std::fs::write(
        folder.join("model-settings.json"),
        br#"{"parameters": {"version": "2"}}"#,
    )
    .unwrap();
    std::fs::copy(bundled_model("iris-labels"), folder.join("model.onnx")).unwrap();
    assert_eq!(
        post_empty(&s, "/v2/repository/models/flowers/load", None).await,
        (200, String::new())
    );
    let (status, r) = s.post("/v2/models/flowers/infer", &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model_version"], "2");
    assert_eq!(r["outputs"][0]["data"], json!(["setosa", "virginica"]));
    assert_eq!(
        s.get("/v2/models/flowers").await.1["versions"],
        json!(["2"])
    );
    assert_error(
        &s.post("/v2/models/flowers/versions/1/infer", &iris_request())
            .await,
        404,
        "Model flowers with version 1 not found",
    );
    assert_eq!(
        index(&s, &json!({})).await,
        json!([entry("flowers", "2", "READY", "")])
    );

    // A second version next to it: both serve.
    write_model(
        dir.path(),
        "flowers-v3",
        &json!({"name": "flowers", "parameters": {"version": "3"}}),
        Some("iris"),
    );
    assert_eq!(
        post_empty(&s, "/v2/repository/models/flowers/load", None)
            .await
            .0,
        200
    );
    assert_eq!(
        s.get("/v2/models/flowers").await.1["versions"],
        json!(["2", "3"])
    );
    assert_iris(
        &s.post("/v2/models/flowers/versions/3/infer", &iris_request())
            .await,
    );
    assert_eq!(
        s.post("/v2/models/flowers/versions/2/infer", &iris_request())
            .await
            .1["outputs"][0]["datatype"],
        "BYTES"
    );

    // A reload that fails keeps the loaded copy serving, and says so.
    std::fs::write(folder.join("model.onnx"), b"broken").unwrap();
    assert_error(
        &s.post("/v2/repository/models/flowers/load", &json!({}))
            .await,
        400,
        "the loaded copy keeps serving",
    );
    assert_eq!(
        s.post("/v2/models/flowers/versions/2/infer", &iris_request())
            .await
            .0,
        200
    );
    assert_eq!(s.get("/v2/health/ready").await.0, 200);
}

#[tokio::test]
async fn unload_waits_for_the_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    two_models(dir.path());
    let s = TestServer::start(dir.path()).await;
    // Holding the model is what a request in flight does.
    let in_flight = s.server.service.ready_model("iris", None).unwrap();
    let client = s.client.clone();
    let url = s.url("/v2/repository/models/iris/unload");
    let unload = tokio::spawn(async move { client.post(url).send().await.unwrap().status() });
    wait_until("iris to be unloading", || async {
        index(&s, &json!({})).await[0]["state"] == "UNLOADING"
    })
    .await;
    // New requests are refused with 503 while it drains; the request in flight still gets its answer.
    assert_error(
        &s.post("/v2/models/iris/infer", &iris_request()).await,
        503,
        "Model iris is unloading",
    );
    let input = oxinfer::tensor::Tensor::new(
        "input",
        vec![1, 4],
        oxinfer::tensor::TensorData::Fp32(vec![6.7, 3.0, 5.2, 2.3]),
    )
    .unwrap();
    let outputs = in_flight
        .workers
        .infer(vec![input], None, None)
        .await
        .unwrap();
    assert_eq!(outputs[0].name, "label");
    assert!(
        !unload.is_finished(),
        "unload returned with a request in flight"
    );
    assert_eq!(s.get("/v2/health/ready").await.0, 200, "labels is ready");
    drop(in_flight);
    assert_eq!(unload.await.unwrap(), 200);
    assert_error(
        &s.post("/v2/models/iris/infer", &iris_request()).await,
        404,
        "Model iris not found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_running_through_an_unload_all_get_answers() {
    let dir = tempfile::tempdir().unwrap();
    two_models(dir.path());
    let s = TestServer::start(dir.path()).await;
    // Clients send large batches back to back until the model is gone; the unload comes in the middle.
    let rows = 2000;
    let data: Vec<f32> = [6.7, 3.0, 5.2, 2.3].repeat(rows);
    let body = json!({"inputs": [{"name": "input", "shape": [rows, 4], "datatype": "FP32", "data": data}]});
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (client, url, body) = (
            s.client.clone(),
            s.url("/v2/models/iris/infer"),
            body.clone(),
        );
        let served = served.clone();
        clients.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let r = client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .expect("answered");
                let status = r.status().as_u16();
                let body = r.json::<Value>().await.expect("JSON");
                if status == 200 {
                    served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                outcomes.push((status, body));
                if status == 404 {
                    return outcomes;
                }
            }
        }));
    }
    wait_until("the clients to be served", || {
        let served = served.clone();
        async move { served.load(std::sync::atomic::Ordering::SeqCst) >= 8 }
    })
    .await;
    let (status, text) = post_empty(&s, "/v2/repository/models/iris/unload", None).await;
    assert_eq!((status, text.as_str()), (200, ""));
    let mut seen = std::collections::BTreeMap::new();
    for client in clients {
        for (status, body) in client.await.unwrap() {
            *seen.entry(status).or_insert(0) += 1;
            match status {
                200 => {
                    let labels = body["outputs"][0]["data"].as_array().unwrap();
                    assert_eq!(labels.len(), rows);
                    assert!(labels.iter().all(|l| l == 2), "wrong answers");
                }
                503 => assert!(
                    body["error"].as_str().unwrap().contains("unloading"),
                    "{body}"
                ),
                404 => assert_eq!(
                    body["error"],
                    "Request for unknown model: 'iris' is not found (Model iris not found)"
                ),
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    eprintln!("answers around the unload, by status: {seen:?}");
    assert_eq!(
        s.post("/v2/models/labels/infer", &iris_request()).await.0,
        200
    );
}

/// The model configuration as REST shows it: (max_batch_size, INPUT0 dims, queue delay, instances).
async fn rest_config(s: &TestServer) -> (Value, Value, Value, Value) {
    let (status, config) = s.get("/v2/models/simple/config").await;
    assert_eq!(status, 200, "{config}");
    (
        config["max_batch_size"].clone(),
        config["input"][0]["dims"].clone(),
        config["dynamic_batching"]["max_queue_delay_microseconds"].clone(),
        config["instance_group"][0]["count"].clone(),
    )
}

/// The same through the ModelConfig RPC.
async fn grpc_config(
    client: &mut GrpcInferenceServiceClient<tonic::transport::Channel>,
) -> (i32, Vec<i64>, Option<u64>, i32) {
    let config = client
        .model_config(pb::ModelConfigRequest {
            name: "simple".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    (
        config.max_batch_size,
        config.input[0].dims.clone(),
        config
            .dynamic_batching
            .map(|b| b.max_queue_delay_microseconds),
        config.instance_group[0].count,
    )
}

fn config_parameter(
    config: &str,
) -> std::collections::HashMap<String, pb::ModelRepositoryParameter> {
    [(
        "config".to_string(),
        pb::ModelRepositoryParameter {
            parameter_choice: Some(
                pb::model_repository_parameter::ParameterChoice::StringParam(config.into()),
            ),
        },
    )]
    .into()
}

fn simple_request() -> Value {
    let data: Vec<i32> = (0..16).collect();
    json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": data},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": data},
    ]})
}

/// Triton's model-control flow: load with a configuration (it takes effect), a refused one (the loaded copy
/// keeps serving), load without one (back to the files), over REST and gRPC.
#[tokio::test]
async fn load_with_a_triton_config_override() {
    let dir = tempfile::tempdir().unwrap();
    write_model(
        dir.path(),
        "simple",
        &json!({"name": "simple"}),
        Some("simple"),
    );
    let s = TestServer::start(dir.path()).await;
    let mut client = grpc_client(&s).await;
    assert_eq!(
        rest_config(&s).await,
        (json!(4), json!([16]), Value::Null, json!(1))
    );

    let config = json!({
        "name": "simple", "backend": "onnxruntime", "max_batch_size": 16,
        "dynamic_batching": {"max_queue_delay_microseconds": 2000, "preferred_batch_size": [4, 8]},
        "instance_group": [{"kind": "KIND_CPU", "count": 2}],
        "input": [{"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [16]}],
    });
    let (status, body) = post_empty(
        &s,
        "/v2/repository/models/simple/load",
        Some(&json!({"parameters": {"config": config.to_string()}}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        rest_config(&s).await,
        (json!(16), json!([16]), json!(2000), json!(2))
    );
    assert_eq!(
        grpc_config(&mut client).await,
        (16, vec![16], Some(2000), 2)
    );
    let (status, answer) = s.post("/v2/models/simple/infer", &simple_request()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"][0]["data"][3], json!(6));

    // A configuration the model does not fit: 400, and the loaded copy keeps serving.
    let wrong = json!({"max_batch_size": 4, "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [16]}]});
    let (status, body) = post_empty(
        &s,
        "/v2/repository/models/simple/load",
        Some(&json!({"parameters": {"config": wrong.to_string()}}).to_string()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("failed to load") && body.contains("FP32"),
        "{body}"
    );
    assert_eq!(rest_config(&s).await.0, json!(16));

    // gRPC, with protobuf's JSON spellings (camelCase, integers as strings).
    client
        .repository_model_load(pb::RepositoryModelLoadRequest {
            model_name: "simple".into(),
            parameters: config_parameter(
                r#"{"maxBatchSize": "4", "instanceGroup": [{"count": "3"}]}"#,
            ),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(grpc_config(&mut client).await, (4, vec![16], None, 3));
    for (config, needle) in [
        (
            r#"{"sequence_batching": {}}"#,
            "field 'sequence_batching' is not supported",
        ),
        (
            r#"{"instance_group": [{"kind": "KIND_GPU"}]}"#,
            "instance_group[0].kind",
        ),
        (
            r#"{"max_batch_size": 1e99}"#,
            "field 'max_batch_size' must be an integer",
        ),
        (
            "not json",
            "failed to load 'simple': load config: the configuration is not valid JSON",
        ),
    ] {
        let status = client
            .repository_model_load(pb::RepositoryModelLoadRequest {
                model_name: "simple".into(),
                parameters: config_parameter(config),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{config}");
        assert!(
            status.message().contains(needle),
            "{config}: {}",
            status.message()
        );
    }
    assert_eq!(grpc_config(&mut client).await, (4, vec![16], None, 3));

    // Loaded again without a configuration: model-settings.json again.
    client
        .repository_model_load(pb::RepositoryModelLoadRequest {
            model_name: "simple".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(grpc_config(&mut client).await, (4, vec![16], None, 1));
    assert_eq!(
        rest_config(&s).await,
        (json!(4), json!([16]), Value::Null, json!(1))
    );
}

/// Unknown models and versions: 404 / NOT_FOUND with Triton's words (its clients look for "Request for unknown
/// model") and MLServer's ("Model X not found").
#[tokio::test]
async fn not_found_messages_hold_both_servers_words() {
    let dir = tempfile::tempdir().unwrap();
    two_models(dir.path());
    let s = TestServer::start(dir.path()).await;
    for path in [
        "/v2/models/nope",
        "/v2/models/nope/ready",
        "/v2/models/nope/config",
    ] {
        let (status, body) = s.get(path).await;
        assert_eq!(status, 404, "{path}");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.starts_with("Request for unknown model"),
            "{message}"
        );
        assert!(message.contains("Model nope not found"), "{message}");
    }
    let (status, body) = s.post("/v2/models/nope/infer", &iris_request()).await;
    assert_eq!(status, 404);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("Request for unknown model: 'nope'"));
    let (status, body) = s.get("/v2/models/iris/versions/3").await;
    assert_eq!(status, 404);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("Request for unknown model: 'iris' version 3"),
        "{message}"
    );
    assert!(
        message.contains("Model iris with version 3 not found"),
        "{message}"
    );

    let mut client = grpc_client(&s).await;
    let status = client
        .model_metadata(pb::ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("Request for unknown model"));
    assert!(status.message().contains("Model nope not found"));
    let status = client
        .model_metadata(pb::ModelMetadataRequest {
            name: "iris".into(),
            version: "3".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status
        .message()
        .contains("Request for unknown model: 'iris' version 3"));
    assert!(status
        .message()
        .contains("Model iris with version 3 not found"));
    let status = client
        .repository_model_load(pb::RepositoryModelLoadRequest {
            model_name: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("failed to load"));
    assert!(status.message().contains("Model nope not found"));
}
