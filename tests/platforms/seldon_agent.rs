//! Seldon Core v2's agent as it really lays out a model for the server: `oxinfer model-settings` writes the file
//! an ONNX-only artifact needs, then the agent's rewrite (a Go struct that keeps only some fields) puts it in
//! `MLSERVER_MODELS_DIR/<model>_<generation>/<pinned version 1>/` and loads `<model>_<generation>` over gRPC.
//! What survives the rewrite is served; tensor `parameters` (labels) and `max_batch_*` are gone, and the
//! server-wide `MLSERVER_MODEL_MAX_BATCH_*` variables bring batching back (k8s/seldon/README.md).

use crate::support;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use support::pb;
use support::GrpcInferenceServiceClient;
use support::{iris_request, Spawned};

fn fixture(path: &str) -> PathBuf {
    support::source_file(path)
}

/// Runs `oxinfer model-settings ARGS`; (exit code, stdout, stderr).
fn model_settings(args: &[&str]) -> (i32, String, String) {
    let out = support::oxinfer()
        .arg("model-settings")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn get(url: String) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn post(url: String, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

// -------------------------------------------------------------------------------------------------------------
// The agent's model of model-settings.json: seldon-core v2.10.2 scheduler/pkg/agent/repository/mlserver/
// mlserver.go `ModelSettings`, `ModelMetadataTensors`, `ModelParameters` (field order and omitempty as there).
// The agent reads the uploaded file into these structs and writes them back with Go's json.Marshal, twice
// (UpdateModelVersion sets name and parameters.version, SetExtraParameters adds the Model's spec.parameters).

#[derive(Debug, Default, Deserialize, Serialize)]
struct AgentSettings {
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    inputs: Vec<AgentTensor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    outputs: Vec<AgentTensor>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    platform: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    versions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parallel_workers: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    implementation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<AgentParameters>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct AgentTensor {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    shape: Vec<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    datatype: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct AgentParameters {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    uri: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    format: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    content_type: String,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    extra: serde_json::Map<String, Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    environment_tarball: String,
}

/// What the agent does to an uploaded artifact folder (`artifact` holds model-settings.json and model.onnx) for
/// Model `model` at generation `generation`: copies it to `models_dir/<model>_<generation>/1/` and rewrites
/// model-settings.json there. `spec_parameters` are the Model's `spec.parameters` (strings, into `extra`).
/// Returns the server-side name (`<model>_<generation>`).
fn agent_places(
    artifact: &Path,
    models_dir: &Path,
    model: &str,
    generation: u32,
    spec_parameters: &[(&str, &str)],
) -> String {
    let versioned = format!("{model}_{generation}");
    // util.GetPinnedModelVersion() is always 1: the folder and parameters.version are "1" for every generation.
    let target = models_dir.join(&versioned).join("1");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(artifact).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
    }
    let file = target.join("model-settings.json");
    let mut settings: AgentSettings =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    settings.name = versioned.clone();
    settings
        .parameters
        .get_or_insert_with(Default::default)
        .version = "1".into();
    let parameters = settings.parameters.get_or_insert_with(Default::default);
    for (name, value) in spec_parameters {
        parameters.extra.insert(name.to_string(), json!(value));
    }
    std::fs::write(&file, serde_json::to_vec(&settings).unwrap()).unwrap();
    versioned
}

#[test]
fn the_agents_rewrite_is_what_go_writes() {
    // The bundled iris settings after the agent: what encoding/json's Marshal of the agent's struct prints
    // (derived by reading the Go code: struct field order, omitempty, no spaces; no Go toolchain runs here).
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("artifact");
    std::fs::create_dir_all(&artifact).unwrap();
    std::fs::copy(
        fixture("model-repository/iris/model-settings.json"),
        artifact.join("model-settings.json"),
    )
    .unwrap();
    let name = agent_places(&artifact, &dir.path().join("models"), "iris", 3, &[]);
    assert_eq!(name, "iris_3");
    let written =
        std::fs::read_to_string(dir.path().join("models/iris_3/1/model-settings.json")).unwrap();
    assert_eq!(
        written,
        r#"{"name":"iris_3","outputs":[{"name":"probabilities"}],"implementation":"oxinfer.OnnxModel","parameters":{"uri":"./model.onnx","version":"1"}}"#
    );
}

#[tokio::test]
async fn model_settings_writes_a_file_the_server_serves() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("flowers");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        fixture("tests/models/iris_zipmap.onnx"),
        folder.join("model.onnx"),
    )
    .unwrap();
    let model = folder.join("model.onnx");
    let model = model.to_str().unwrap();
    let settings = folder.join("model-settings.json");

    // Standard output, and -o FILE, say the same.
    let (code, stdout, stderr) = model_settings(&[model]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = model_settings(&[
        model,
        "--max-batch-size",
        "4",
        "--max-batch-time",
        "0.005",
        "-o",
        settings.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let written: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    let mut plain: Value = serde_json::from_str(&stdout).unwrap();
    plain["max_batch_size"] = json!(4);
    plain["max_batch_time"] = json!(0.005);
    assert_eq!(written, plain);
    assert_eq!(
        written,
        json!({
            "name": "flowers",
            "implementation": "oxinfer.OnnxModel",
            "parameters": {"uri": "./model.onnx"},
            "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [
                {"name": "output_label", "datatype": "INT64", "shape": [-1]},
                {"name": "output_probability", "datatype": "FP32", "shape": [-1, 3],
                 "parameters": {"labels": [0, 1, 2]}}
            ],
            "max_batch_size": 4,
            "max_batch_time": 0.005
        })
    );

    // The server loads exactly that file.
    let server = Spawned::start(
        &[
            "start",
            dir.path().to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ],
        &[],
    );
    server.wait_ready().await;
    let (status, metadata) = get(server.url("/v2/models/flowers")).await;
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["inputs"], written["inputs"]);
    assert_eq!(metadata["outputs"], written["outputs"]);
    let (status, config) = get(server.url("/v2/models/flowers/config")).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["max_batch_size"], 4, "{config}");
    assert_eq!(
        config["dynamic_batching"]["max_queue_delay_microseconds"], 5000,
        "{config}"
    );
    let request = json!({"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32",
                                     "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]});
    let (status, r) = post(server.url("/v2/models/flowers/infer"), &request).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));
}

#[test]
fn model_settings_errors_are_clear() {
    let (code, _, stderr) = model_settings(&["/nonexistent/model.onnx"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("/nonexistent/model.onnx is not a file"),
        "{stderr}"
    );
    let not_onnx = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_onnx.path(), b"not a model").unwrap();
    let (code, _, stderr) = model_settings(&[not_onnx.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("error: cannot load"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, _, stderr) = model_settings(&["x.onnx", "--max-batch-size", "8"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--max-batch-time"), "{stderr}");
}

/// Starts oxinfer as Seldon's ServerConfig does (start-up loading off, models folder not there yet).
fn start_like_seldon(models_dir: &Path, extra_env: &[(&str, &str)]) -> Spawned {
    let mut env = vec![
        ("MLSERVER_MODELS_DIR", models_dir.to_str().unwrap()),
        ("MLSERVER_LOAD_MODELS_AT_STARTUP", "false"),
    ];
    env.extend_from_slice(extra_env);
    Spawned::start(
        &[
            "start",
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ],
        &env,
    )
}

async fn agent_loads(server: &Spawned, name: &str) {
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    client
        .repository_model_load(pb::RepositoryModelLoadRequest {
            model_name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// The bundled iris (class labels on `probabilities`) uploaded with max_batch_size 4, as a user would.
fn iris_artifact(root: &Path) -> PathBuf {
    let artifact = root.join("bucket/iris");
    std::fs::create_dir_all(&artifact).unwrap();
    std::fs::copy(
        fixture("model-repository/iris/model.onnx"),
        artifact.join("model.onnx"),
    )
    .unwrap();
    let mut settings: Value = serde_json::from_slice(
        &std::fs::read(fixture("model-repository/iris/model-settings.json")).unwrap(),
    )
    .unwrap();
    settings["max_batch_size"] = json!(4);
    settings["max_batch_time"] = json!(0.005);
    std::fs::write(
        artifact.join("model-settings.json"),
        serde_json::to_vec_pretty(&settings).unwrap(),
    )
    .unwrap();
    artifact
}

#[tokio::test]
async fn the_agents_layout_is_served_without_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let models_dir = dir.path().join("agent/models");
    let server = start_like_seldon(&models_dir, &[]);
    server.wait_ready().await;
    let name = agent_places(&iris_artifact(dir.path()), &models_dir, "iris", 2, &[]);
    agent_loads(&server, &name).await;

    // Served as <model>_<generation>, version "1" (the agent's proxy rewrites /v2/models/iris/... to it).
    let (status, metadata) = get(server.url("/v2/models/iris_2")).await;
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["name"], "iris_2");
    assert_eq!(metadata["versions"], json!(["1"]), "{metadata}");
    let (status, r) = post(server.url("/v2/models/iris_2/infer"), &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model_name"], "iris_2");
    assert_eq!(r["model_version"], "1");
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));
    let (status, r) = post(
        server.url("/v2/models/iris_2/versions/1/infer"),
        &iris_request(),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let (status, _) = post(server.url("/v2/models/iris/infer"), &iris_request()).await;
    assert_eq!(status, 404, "only the versioned name is served");

    // The class labels were tensor parameters: gone, classification answers with indices only.
    let mut classify = iris_request();
    classify["outputs"] = json!([{"name": "probabilities", "parameters": {"classification": 1}}]);
    let (status, r) = post(server.url("/v2/models/iris_2/infer"), &classify).await;
    assert_eq!(status, 200, "{r}");
    let top: Vec<&str> = r["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(top.len(), 2);
    assert!(top[0].ends_with(":0") && top[1].ends_with(":2"), "{top:?}");
    // Adaptive batching was max_batch_size/max_batch_time: gone too.
    let (status, config) = get(server.url("/v2/models/iris_2/config")).await;
    assert_eq!(status, 200, "{config}");
    assert!(config.get("dynamic_batching").is_none(), "{config}");
}

#[tokio::test]
async fn server_wide_batching_variables_survive_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let models_dir = dir.path().join("agent/models");
    // The workaround: MLServer's MLSERVER_MODEL_MAX_BATCH_* on the server container fill what the rewrite
    // dropped, for every model (those that cannot be batched stay unbatched, with a warning).
    let server = start_like_seldon(
        &models_dir,
        &[
            ("MLSERVER_MODEL_MAX_BATCH_SIZE", "4"),
            ("MLSERVER_MODEL_MAX_BATCH_TIME", "0.005"),
        ],
    );
    server.wait_ready().await;
    let name = agent_places(&iris_artifact(dir.path()), &models_dir, "iris", 1, &[]);
    agent_loads(&server, &name).await;
    let (status, config) = get(server.url("/v2/models/iris_1/config")).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["max_batch_size"], 4, "{config}");
    assert_eq!(
        config["dynamic_batching"]["max_queue_delay_microseconds"], 5000,
        "{config}"
    );
    let (status, r) = post(server.url("/v2/models/iris_1/infer"), &iris_request()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0]["data"], json!([0, 2]));
}

#[tokio::test]
async fn an_onnx_only_artifact_with_generated_settings_survives_the_agent() {
    // ZipMap labels live in the graph, so they survive the rewrite; thread counts in the Model's
    // spec.parameters arrive in parameters.extra as strings.
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("bucket/classifier");
    std::fs::create_dir_all(&artifact).unwrap();
    std::fs::copy(
        fixture("tests/models/iris_zipmap_strings.onnx"),
        artifact.join("model.onnx"),
    )
    .unwrap();
    let (code, _, stderr) = model_settings(&[
        artifact.join("model.onnx").to_str().unwrap(),
        "-o",
        artifact.join("model-settings.json").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let models_dir = dir.path().join("agent/models");
    let server = start_like_seldon(&models_dir, &[]);
    server.wait_ready().await;
    let name = agent_places(
        &artifact,
        &models_dir,
        "classifier",
        1,
        &[("intra_op_threads", "1")],
    );
    agent_loads(&server, &name).await;
    let (status, metadata) = get(server.url("/v2/models/classifier_1")).await;
    assert_eq!(status, 200, "{metadata}");
    let probabilities = &metadata["outputs"][1];
    assert_eq!(probabilities["shape"], json!([-1, 3]), "{metadata}");
    assert_eq!(
        probabilities["parameters"]["labels"],
        json!(["setosa", "versicolor", "virginica"]),
        "{metadata}"
    );
}
