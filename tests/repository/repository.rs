//! Model discovery, versions and failure isolation, on fixture repositories built in temporary folders.

use crate::support;

use serde_json::json;
use support::{assert_error, iris_request, test_settings, write_model, TestServer};

#[tokio::test]
async fn versions_and_the_default_version() {
    let dir = tempfile::tempdir().unwrap();
    write_model(
        dir.path(),
        "iris-v1",
        &json!({"name": "iris", "parameters": {"uri": "./model.onnx", "version": "1"}}),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "iris-v10",
        &json!({"name": "iris", "parameters": {"version": "10"}}),
        Some("iris-labels"),
    );
    write_model(
        dir.path(),
        "iris-v2",
        &json!({"name": "iris", "parameters": {"version": "2"}}),
        Some("iris"),
    );
    let s = TestServer::start(dir.path()).await;
    assert_eq!(s.get("/v2/health/ready").await.0, 200);

    let (_, meta) = s.get("/v2/models/iris").await;
    assert_eq!(meta["versions"], json!(["1", "2", "10"]));
    // Default = highest version (integer order: 10 > 2), which is the string-label copy.
    let (status, r) = s.post("/v2/models/iris/infer", &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model_version"], "10");
    assert_eq!(r["outputs"][0]["datatype"], "BYTES");
    let (status, r) = s
        .post("/v2/models/iris/versions/1/infer", &iris_request())
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model_version"], "1");
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));
    assert_eq!(s.get("/v2/models/iris/versions/2").await.0, 200);
    assert_eq!(
        s.get("/v2/models/iris/versions/2/ready").await.1,
        json!({"name": "iris", "ready": true})
    );
    assert_error(
        &s.get("/v2/models/iris/versions/3").await,
        404,
        "Model iris with version 3 not found",
    );
}

#[tokio::test]
async fn the_unversioned_copy_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    write_model(
        dir.path(),
        "a",
        &json!({"name": "m", "parameters": {"version": "5"}}),
        Some("iris-labels"),
    );
    write_model(dir.path(), "b", &json!({"name": "m"}), Some("iris"));
    let s = TestServer::start(dir.path()).await;
    let (status, r) = s.post("/v2/models/m/infer", &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert!(r.get("model_version").is_none());
    assert_eq!(r["outputs"][0]["datatype"], "INT64");
}

#[tokio::test]
async fn broken_models_do_not_take_the_server_down() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "good", &json!({}), Some("iris"));
    let corrupt = write_model(
        dir.path(),
        "corrupt",
        &json!({"implementation": "oxinfer.OnnxModel"}),
        None,
    );
    std::fs::write(corrupt.join("model.onnx"), b"this is not an onnx file").unwrap();
    std::fs::create_dir_all(dir.path().join("badjson")).unwrap();
    std::fs::write(
        dir.path().join("badjson/model-settings.json"),
        b"{\"name\": ",
    )
    .unwrap();
    write_model(
        dir.path(),
        "sklearn",
        &json!({"implementation": "mlserver_sklearn.SKLearnModel"}),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "missing",
        &json!({"parameters": {"uri": "./nowhere.onnx"}}),
        None,
    );

    let s = TestServer::start(dir.path()).await;
    assert_eq!(s.get("/v2/health/live").await.0, 200);
    // Ready stays false: a model meant to load did not.
    assert_eq!(
        s.get("/v2/health/ready").await,
        (503, json!({"ready": false}))
    );
    // The good model serves.
    let (status, r) = s.post("/v2/models/good/infer", &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));
    // The broken ones are known, not ready, and say why.
    assert_eq!(
        s.get("/v2/models/corrupt/ready").await,
        (503, json!({"name": "corrupt", "ready": false}))
    );
    assert_error(
        &s.post("/v2/models/corrupt/infer", &iris_request()).await,
        503,
        "Model corrupt is not available",
    );
    assert_error(
        &s.get("/v2/models/sklearn").await,
        503,
        "mlserver_sklearn.SKLearnModel",
    );
    assert_error(&s.get("/v2/models/missing").await, 503, "nowhere.onnx");
    // The unparsable settings file was skipped.
    assert_error(
        &s.get("/v2/models/badjson").await,
        404,
        "Model badjson not found",
    );
}

#[tokio::test]
async fn name_defaults_to_the_folder_and_uri_can_be_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("nested/deeper/my-model");
    std::fs::create_dir_all(folder.join("weights")).unwrap();
    std::fs::copy(
        support::bundled_model("simple"),
        folder.join("weights/net.onnx"),
    )
    .unwrap();
    std::fs::write(
        folder.join("model-settings.json"),
        br#"{"parameters": {"uri": "weights"}}"#,
    )
    .unwrap();
    let s = TestServer::start(dir.path()).await;
    let (status, meta) = s.get("/v2/models/my-model").await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["inputs"][0]["name"], "INPUT0");
}

#[tokio::test]
async fn declared_inputs_are_checked_and_their_parameters_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_model(
        dir.path(),
        "declared",
        &json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4], "parameters": {"content_type": "np"}}],
                "parameters": {"content_type": "np"}}),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "mismatch",
        &json!({"inputs": [{"name": "input", "datatype": "INT32", "shape": [-1, 4]}]}),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "badextra",
        &json!({"parameters": {"extra": {"intra_op_threads": 0}}}),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "tuned",
        &json!({"parameters": {"extra": {"intra_op_threads": 1, "inter_op_threads": 1, "graph_optimization_level": "basic"}}}),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "noarena",
        &json!({"parameters": {"extra": {"enable_cpu_mem_arena": false, "enable_mem_pattern": false}}}),
        Some("iris"),
    );
    write_model(
        dir.path(),
        "badflag",
        &json!({"parameters": {"extra": {"enable_mem_pattern": "yes"}}}),
        Some("iris"),
    );
    let s = TestServer::start(dir.path()).await;
    let (status, meta) = s.get("/v2/models/declared").await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(
        meta["inputs"][0]["parameters"],
        json!({"content_type": "np"})
    );
    assert_eq!(meta["parameters"], json!({"content_type": "np"}));
    assert_error(
        &s.get("/v2/models/mismatch").await,
        503,
        "declares INT32 but the ONNX model has FP32",
    );
    assert_error(
        &s.get("/v2/models/badextra").await,
        503,
        "intra_op_threads must be a positive integer",
    );
    assert_eq!(
        s.post("/v2/models/tuned/infer", &iris_request()).await.0,
        200
    );
    assert_error(
        &s.get("/v2/models/badflag").await,
        503,
        "enable_mem_pattern must be true or false",
    );
    let (status, body) = s.post("/v2/models/noarena/infer", &iris_request()).await;
    assert_eq!(status, 200, "{body}");
    let label = body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap();
    assert_eq!(label["data"], json!([0, 2]));
}

#[tokio::test]
async fn ready_is_false_with_no_models_unless_loading_at_startup_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    assert_eq!(
        s.get("/v2/health/ready").await,
        (503, json!({"ready": false}))
    );

    let mut settings = test_settings(dir.path());
    settings.load_models_at_startup = false;
    let s = TestServer::start_with(settings).await;
    assert_eq!(
        s.get("/v2/health/ready").await,
        (200, json!({"ready": true}))
    );
}

#[tokio::test]
async fn load_models_at_startup_false_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "iris", &json!({}), Some("iris"));
    let mut settings = test_settings(dir.path());
    settings.load_models_at_startup = false;
    let s = TestServer::start_with(settings).await;
    assert_error(&s.get("/v2/models/iris").await, 404, "Model iris not found");
}

#[tokio::test]
async fn settings_json_values_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.json"),
        br#"{"server_name": "custom", "extensions": ["x"]}"#,
    )
    .unwrap();
    write_model(dir.path(), "iris", &json!({}), Some("iris"));
    let mut layers = oxinfer::config::Layers::read(dir.path(), std::iter::empty()).unwrap();
    let mut flags = serde_json::Map::new();
    flags.insert("model_repository_root".into(), json!(dir.path()));
    flags.insert("host".into(), json!("127.0.0.1"));
    flags.insert("http_port".into(), json!(0));
    flags.insert("grpc_port".into(), json!(0));
    layers.flags = flags;
    let s = TestServer::start_with(layers.resolve().unwrap()).await;
    let (_, meta) = s.get("/v2").await;
    assert_eq!(meta["name"], "custom");
    assert_eq!(meta["extensions"].as_array().unwrap().last().unwrap(), "x");
}

#[tokio::test]
async fn onnx_runtime_telemetry_is_turned_off_before_the_library_loads() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "iris", &json!({}), Some("iris"));
    let s = TestServer::start(dir.path()).await;
    assert_eq!(
        s.post("/v2/models/iris/infer", &iris_request()).await.0,
        200
    );
    for var in ["ORT_DISABLE_TELEMETRY", "ORT_TELEMETRY_DISABLED"] {
        assert_eq!(std::env::var(var).as_deref(), Ok("1"), "{var}");
    }
}

/// The threads of the real server with `models` copies of iris once all are ready, leaving out the async
/// runtime's (`tokio-rt-worker`: its blocking threads, one per model loaded at start-up, linger 10 s); one request
/// to the last model checks that a parked instance wakes for it.
async fn threads_when_ready(models: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..models {
        write_model(
            dir.path(),
            &format!("iris-{i}"),
            &json!({"name": format!("iris-{i}")}),
            Some("iris"),
        );
    }
    let repo = dir.path().to_str().unwrap();
    let args = [
        "start",
        repo,
        "--host",
        "127.0.0.1",
        "--http-port",
        "0",
        "--grpc-port",
        "0",
    ];
    let server = support::Spawned::start(&args, &[]);
    server.wait_ready().await;
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.child.id())).unwrap();
    let threads = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() != "tokio-rt-worker")
        .count();
    let answer = reqwest::Client::new()
        .post(server.url(&format!("/v2/models/iris-{}/infer", models - 1)))
        .json(&iris_request())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    threads
}

/// A model holds no thread while it is idle: its instance's thread starts with a request and ends after a quiet
/// spell, and its ONNX Runtime session runs on the process-wide pool. Before, each model held two (its instance's
/// thread and an ONNX Runtime pool thread).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn idle_models_hold_no_threads() {
    let one = threads_when_ready(1).await;
    let twenty = threads_when_ready(20).await;
    assert!(
        twenty <= one + 2,
        "1 model: {one} threads, 20 models: {twenty} threads (the async runtime's left out)"
    );
}
