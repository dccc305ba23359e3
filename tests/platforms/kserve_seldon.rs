//! KServe and Seldon Core v2 start-up conventions through the real binary: KServe's arguments (without the
//! `start` subcommand), `MLSERVER_MODEL_*` single models, bare model folders, and Seldon's agent flow
//! (`MLSERVER_MODELS_DIR` created later, start-up loading off, gRPC load/unload/index).

use crate::support;

use std::path::Path;

use serde_json::{json, Value};
use support::pb;
use support::GrpcInferenceServiceClient;
use support::ModelSettings;
use support::{
    assert_error, bundled_model, iris_request, test_settings, write_model, Spawned, TestServer,
};
use tonic::Code;

fn copy_model(model: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(bundled_model(model), to).unwrap();
}

async fn post(url: String, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn kserve_arguments_without_start_serve_a_bare_folder() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    copy_model("iris", &models.join("model.onnx"));
    let dir_arg = format!("--model_dir={}", models.display());
    // As a ServingRuntime passes them: appended to the entrypoint, underscore spellings, `=` values.
    let server = Spawned::start(
        &[
            "--model_name=flower",
            &dir_arg,
            "--http_port=0",
            "--grpc_port",
            "0",
        ],
        &[("MLSERVER_HOST", "127.0.0.1")],
    );
    server.wait_ready().await;
    let (status, r) = post(server.url("/v2/models/flower/infer"), &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model_name"], "flower");
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));
    let (status, index) = post(server.url("/v2/repository/index"), &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        index,
        json!([{"name": "flower", "version": "", "state": "READY", "reason": ""}])
    );
}

#[tokio::test]
async fn mlserver_model_env_builds_the_single_model() {
    let dir = tempfile::tempdir().unwrap();
    let uri = bundled_model("iris");
    let server = Spawned::start(
        &["start", dir.path().to_str().unwrap(), "--host", "127.0.0.1"],
        &[
            ("MLSERVER_HTTP_PORT", "0"),
            ("MLSERVER_GRPC_PORT", "0"),
            ("MLSERVER_MODEL_NAME", "env-iris"),
            ("MLSERVER_MODEL_URI", uri.to_str().unwrap()),
            ("MLSERVER_MODEL_VERSION", "3"),
            ("MLSERVER_MODEL_IMPLEMENTATION", "mlserver_onnx.OnnxModel"),
            ("MLSERVER_MODEL_PARALLEL_WORKERS", "2"),
        ],
    );
    server.wait_ready().await;
    let (status, r) = post(server.url("/v2/models/env-iris/infer"), &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model_version"], "3");
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));
    let config: Value = reqwest::get(server.url("/v2/models/env-iris/config"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["instance_group"][0]["count"], 2, "{config}");
}

#[test]
fn a_bad_mlserver_model_variable_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = support::oxinfer()
        .args(["start", dir.path().to_str().unwrap()])
        .env("MLSERVER_MODEL_PARALLEL_WORKERS", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MLSERVER_MODEL_PARALLEL_WORKERS"), "{err}");
}

#[tokio::test]
async fn seldon_agent_flow_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let models_dir = dir.path().join("agent/models");
    let server = Spawned::start(
        &[
            "start",
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ],
        &[
            ("MLSERVER_MODELS_DIR", models_dir.to_str().unwrap()),
            ("MLSERVER_LOAD_MODELS_AT_STARTUP", "false"),
        ],
    );
    // Ready with no model: none is due yet (the folder does not even exist).
    server.wait_ready().await;
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let load = |name: &str| pb::RepositoryModelLoadRequest {
        model_name: name.into(),
        ..Default::default()
    };
    let unload = |name: &str| pb::RepositoryModelUnloadRequest {
        model_name: name.into(),
        ..Default::default()
    };
    let status = client
        .repository_model_load(load("iris_1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // The agent downloads the model and writes its model-settings.json, then loads it.
    let folder = models_dir.join("iris_1");
    copy_model("iris", &folder.join("model.onnx"));
    std::fs::write(
        folder.join("model-settings.json"),
        br#"{"name": "iris_1", "implementation": "mlserver_onnx.OnnxModel", "parameters": {"uri": "./model.onnx", "version": "1"}}"#,
    )
    .unwrap();
    client.repository_model_load(load("iris_1")).await.unwrap();
    let index = client
        .repository_index(pb::RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner();
    let entries: Vec<_> = index
        .models
        .iter()
        .map(|m| (m.name.as_str(), m.version.as_str(), m.state.as_str()))
        .collect();
    assert_eq!(entries, vec![("iris_1", "1", "READY")]);
    let (status, r) = post(server.url("/v2/models/iris_1/infer"), &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));

    client
        .repository_model_unload(unload("iris_1"))
        .await
        .unwrap();
    let status = client
        .model_ready(pb::ModelReadyRequest {
            name: "iris_1".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let (status, _) = post(server.url("/v2/models/iris_1/infer"), &iris_request()).await;
    assert_eq!(status, 404);
    let status = client
        .repository_model_unload(unload("iris_1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        client
            .server_live(pb::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
}

#[tokio::test]
async fn triton_layout_serves_every_version_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_model("iris", &root.join("flowers/1/model.onnx"));
    copy_model("iris-labels", &root.join("flowers/2/model.onnx"));
    std::fs::write(root.join("flowers/config.pbtxt"), b"name: \"flowers\"").unwrap();
    copy_model("iris", &root.join("plain/net.onnx"));
    let s = TestServer::start(root).await;
    assert_eq!(s.get("/v2/health/ready").await.0, 200);
    assert_eq!(
        s.get("/v2/models/flowers").await.1["versions"],
        json!(["1", "2"])
    );
    // Default version: the highest.
    let (status, r) = s.post("/v2/models/flowers/infer", &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model_version"], "2");
    assert_eq!(r["outputs"][0]["data"], json!(["setosa", "virginica"]));
    let (_, r) = s
        .post("/v2/models/flowers/versions/1/infer", &iris_request())
        .await;
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));
    assert_eq!(
        s.post("/v2/models/plain/infer", &iris_request()).await.0,
        200
    );
    // A new version folder is picked up by load; a removed one goes.
    copy_model("iris", &root.join("flowers/3/model.onnx"));
    std::fs::remove_dir_all(root.join("flowers/1")).unwrap();
    let r = s
        .client
        .post(s.url("/v2/repository/models/flowers/load"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.get("/v2/models/flowers").await.1["versions"],
        json!(["2", "3"])
    );
    assert_error(
        &s.get("/v2/models/flowers/versions/1").await,
        404,
        "Model flowers with version 1 not found",
    );
}

#[tokio::test]
async fn one_onnx_file_or_a_version_folder_is_one_model_named_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single");
    copy_model("iris", &single.join("whatever-name.onnx"));
    let mut settings = test_settings(&single);
    settings.default_model = Some(ModelSettings {
        name: Some("given".into()),
        ..ModelSettings::default()
    });
    let s = TestServer::start_with(settings).await;
    let (status, r) = s.post("/v2/models/given/infer", &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));

    // Triton's layout for one model (storageUri pointing at the model's folder): named after the folder.
    let versioned = dir.path().join("my-model");
    copy_model("iris", &versioned.join("7/model.onnx"));
    let s = TestServer::start(&versioned).await;
    let (status, r) = s.post("/v2/models/my-model/infer", &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model_version"], "7");
}

/// A server on `root` with KServe's `--model_name=isvc` (as `settings.default_model`).
async fn serve_as_isvc(root: &Path) -> TestServer {
    let mut settings = test_settings(root);
    settings.default_model = Some(ModelSettings {
        name: Some("isvc".into()),
        ..ModelSettings::default()
    });
    TestServer::start_with(settings).await
}

#[tokio::test]
async fn a_storage_uri_of_one_nested_model_is_served_under_the_inference_service_name() {
    // The real binary with KServe's arguments, on a storageUri that unpacked into one folder.
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("mnt-models");
    copy_model("iris", &models.join("iris-v3/model.onnx"));
    let dir_arg = format!("--model_dir={}", models.display());
    let server = Spawned::start(
        &[
            "--model_name=isvc",
            &dir_arg,
            "--http_port=0",
            "--grpc_port=0",
        ],
        &[("MLSERVER_HOST", "127.0.0.1")],
    );
    server.wait_ready().await;
    let (status, r) = post(server.url("/v2/models/isvc/infer"), &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));
    let (status, _) = post(server.url("/v2/models/iris-v3/infer"), &iris_request()).await;
    assert_eq!(status, 404);

    // Deeper layouts, and a repository of one folder whose model-settings.json has no name.
    for (layout, version) in [
        ("model.onnx", None),
        ("export/iris/1/model.onnx", Some("1")),
        ("a/b/c/net.onnx", None),
        ("iris/3/model.onnx", Some("3")),
    ] {
        let root = dir.path().join(layout.replace('/', "_"));
        copy_model("iris", &root.join(layout));
        let s = serve_as_isvc(&root).await;
        let (status, r) = s.post("/v2/models/isvc/infer", &iris_request()).await;
        assert_eq!(status, 200, "{layout}: {r}");
        assert_eq!(r["outputs"][0]["data"], json!([0, 2]), "{layout}");
        assert_eq!(
            r.get("model_version").and_then(Value::as_str),
            version,
            "{layout}"
        );
    }
    let root = dir.path().join("repository");
    write_model(
        &root,
        "iris-v3",
        &json!({"parameters": {"uri": "./model.onnx"}}),
        Some("iris"),
    );
    let s = serve_as_isvc(&root).await;
    assert_eq!(
        s.post("/v2/models/isvc/infer", &iris_request()).await.0,
        200
    );
}

#[tokio::test]
async fn several_models_keep_their_own_names_under_a_model_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_model("iris", &root.join("first/model.onnx"));
    copy_model("iris-labels", &root.join("second/1/model.onnx"));
    let s = serve_as_isvc(root).await;
    assert_eq!(s.get("/v2/health/ready").await.0, 200);
    assert_eq!(
        s.post("/v2/models/first/infer", &iris_request()).await.0,
        200
    );
    assert_eq!(
        s.post("/v2/models/second/infer", &iris_request()).await.0,
        200
    );
    assert_error(
        &s.post("/v2/models/isvc/infer", &iris_request()).await,
        404,
        "Model isvc not found",
    );
    // Loose .onnx files in no layout that names them: nothing is served and the server is not ready.
    let loose = dir.path().join("loose");
    copy_model("iris", &loose.join("p/q/one.onnx"));
    copy_model("iris", &loose.join("p/r/two.onnx"));
    let s = serve_as_isvc(&loose).await;
    assert_eq!(s.get("/v2/health/ready").await.0, 503);
}
