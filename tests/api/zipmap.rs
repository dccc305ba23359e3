//! Non-tensor outputs end to end: skl2onnx's default ZipMap probabilities served as `[N, K]` tensors with
//! their keys as `labels` (metadata, config, REST JSON and binary, gRPC typed and raw, classification,
//! batching), and outputs V2 cannot carry (a sequence of tensors, an optional) refused by name.

use crate::support;

use std::path::Path;

use serde_json::{json, Value};
use support::pb;
use support::pb::infer_parameter::ParameterChoice as P;
use support::pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use support::GrpcInferenceServiceClient;
use support::{assert_error, TestServer};

/// `output_probability` of tests/models/iris_zipmap*.onnx on the two sample rows (printed by
/// scripts/make_models.py when it wrote them), columns in key order 0, 1, 2.
const PROBABILITIES: [f64; 6] = [
    0.9815794229507446,
    0.018420549109578133,
    1.459569620720913e-08,
    5.639357550535351e-05,
    0.08062587678432465,
    0.9193177223205566,
];
const ROWS: [f32; 8] = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3];

fn fixture(name: &str) -> std::path::PathBuf {
    support::source_file("tests/models").join(name)
}

/// A model folder holding `file` as model.onnx, with `settings` (name added).
fn add_model(root: &Path, name: &str, file: &str, mut settings: Value) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture(file), dir.join("model.onnx")).unwrap();
    settings["name"] = json!(name);
    std::fs::write(
        dir.join("model-settings.json"),
        serde_json::to_vec(&settings).unwrap(),
    )
    .unwrap();
}

async fn server() -> (TestServer, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    add_model(root.path(), "zipmap", "iris_zipmap.onnx", json!({}));
    add_model(
        root.path(),
        "zipmap-strings",
        "iris_zipmap_strings.onnx",
        json!({}),
    );
    add_model(
        root.path(),
        "zipmap-named",
        "iris_zipmap.onnx",
        json!({"outputs": [{"name": "output_probability",
                            "parameters": {"labels": ["setosa", "versicolor", "virginica"]}}]}),
    );
    add_model(
        root.path(),
        "zipmap-batched",
        "iris_zipmap.onnx",
        json!({"max_batch_size": 8, "max_batch_time": 0.001}),
    );
    add_model(root.path(), "seq-output", "seq_output.onnx", json!({}));
    let s = TestServer::start(root.path()).await;
    (s, root)
}

fn request() -> Value {
    json!({"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": ROWS}]})
}

fn output<'a>(response: &'a Value, name: &str) -> &'a Value {
    response["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {response}"))
}

fn assert_close(actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len(), "{actual:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < 1e-6, "{actual:?} != {expected:?}");
    }
}

fn json_floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn zipmap_outputs_over_rest() {
    let (s, _root) = server().await;

    // Metadata: [-1, K] of the map's value type, the keys as labels, in the graph's order.
    let (status, meta) = s.get("/v2/models/zipmap").await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(
        meta["outputs"],
        json!([
            {"name": "output_label", "datatype": "INT64", "shape": [-1]},
            {"name": "output_probability", "datatype": "FP32", "shape": [-1, 3],
             "parameters": {"labels": [0, 1, 2]}}
        ])
    );
    let (_, meta) = s.get("/v2/models/zipmap-strings").await;
    assert_eq!(
        output(&meta, "output_probability")["parameters"]["labels"],
        json!(["setosa", "versicolor", "virginica"])
    );
    // Model-settings labels only rename classes for classification; the metadata shows the keys.
    let (_, meta) = s.get("/v2/models/zipmap-named").await;
    assert_eq!(
        output(&meta, "output_probability")["parameters"],
        json!({"labels": [0, 1, 2]})
    );
    // Every tensor starts with the batch dimension: Triton's batching form, which leaves it out of `dims`.
    let (_, config) = s.get("/v2/models/zipmap/config").await;
    assert_eq!(config["max_batch_size"], json!(4));
    assert_eq!(
        config["output"][1],
        json!({"name": "output_probability", "data_type": "TYPE_FP32", "dims": [3]})
    );

    // JSON, every output.
    for model in ["zipmap", "zipmap-batched"] {
        let (status, r) = s
            .post(&format!("/v2/models/{model}/infer"), &request())
            .await;
        assert_eq!(status, 200, "{r}");
        let probs = output(&r, "output_probability");
        assert_eq!(probs["datatype"], "FP32");
        assert_eq!(probs["shape"], json!([2, 3]));
        assert_eq!(probs["parameters"], json!({"labels": [0, 1, 2]}));
        assert_close(&json_floats(&probs["data"]), &PROBABILITIES);
        assert_eq!(output(&r, "output_label")["data"], json!([0, 2]));
        assert!(output(&r, "output_label").get("parameters").is_none());
    }
    let (_, r) = s.post("/v2/models/zipmap-strings/infer", &request()).await;
    let probs = output(&r, "output_probability");
    assert_eq!(
        probs["parameters"]["labels"],
        json!(["setosa", "versicolor", "virginica"])
    );
    assert_close(&json_floats(&probs["data"]), &PROBABILITIES);
    assert_eq!(
        output(&r, "output_label")["data"],
        json!(["setosa", "virginica"])
    );

    // Binary extension: the same row-major floats, labels beside binary_data_size.
    let mut req = request();
    req["outputs"] = json!([{"name": "output_probability", "parameters": {"binary_data": true}}]);
    let header = serde_json::to_vec(&req).unwrap();
    let r = s
        .client
        .post(s.url("/v2/models/zipmap/infer"))
        .header("Inference-Header-Content-Length", header.len().to_string())
        .body(header)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let json_len: usize = r.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.bytes().await.unwrap();
    let head: Value = serde_json::from_slice(&body[..json_len]).unwrap();
    let out = &head["outputs"][0];
    assert_eq!(out["parameters"]["binary_data_size"], 24, "{out}");
    assert_eq!(out["parameters"]["labels"], json!([0, 1, 2]));
    let floats: Vec<f64> = body[json_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    assert_close(&floats, &PROBABILITIES);

    // Classification: the keys are the labels, unless model-settings name the classes.
    let mut req = request();
    req["outputs"] = json!([{"name": "output_probability", "parameters": {"classification": 2}}]);
    let cases = [
        (
            "zipmap",
            [
                "0.981579:0:0",
                "0.018421:1:1",
                "0.919318:2:2",
                "0.080626:1:1",
            ],
        ),
        (
            "zipmap-strings",
            [
                "0.981579:0:setosa",
                "0.018421:1:versicolor",
                "0.919318:2:virginica",
                "0.080626:1:versicolor",
            ],
        ),
        (
            "zipmap-named",
            [
                "0.981579:0:setosa",
                "0.018421:1:versicolor",
                "0.919318:2:virginica",
                "0.080626:1:versicolor",
            ],
        ),
    ];
    for (model, want) in cases {
        let (status, r) = s.post(&format!("/v2/models/{model}/infer"), &req).await;
        assert_eq!(status, 200, "{r}");
        let out = &r["outputs"][0];
        assert_eq!(out["datatype"], "BYTES");
        assert_eq!(out["shape"], json!([2, 2]));
        assert_eq!(out["data"], json!(want), "{model}");
        assert!(
            out.get("parameters")
                .is_none_or(|p| p.get("labels").is_none()),
            "{out}"
        );
    }
}

#[tokio::test]
async fn outputs_v2_cannot_carry_are_refused_by_name() {
    let (s, _root) = server().await;
    let (status, meta) = s.get("/v2/models/seq-output").await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(
        meta["outputs"],
        json!([{"name": "y", "datatype": "FP32", "shape": [-1, 2]}])
    );
    let mut req =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]});
    let (status, r) = s.post("/v2/models/seq-output/infer", &req).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["outputs"],
        json!([{"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}])
    );
    req["outputs"] = json!([{"name": "ys"}]);
    assert_error(
        &s.post("/v2/models/seq-output/infer", &req).await,
        501,
        "output 'ys' is a sequence of tensors (seq(tensor(float))); oxinfer serves tensor outputs and \
         ZipMap-style seq(map(int64|string, float|double)) outputs only",
    );
    req["outputs"] = json!([{"name": "y"}, {"name": "yo"}]);
    assert_error(
        &s.post("/v2/models/seq-output/infer", &req).await,
        501,
        "output 'yo' is an optional value (optional(tensor(float)))",
    );
    req["outputs"] = json!([{"name": "nope"}]);
    assert_error(
        &s.post("/v2/models/seq-output/infer", &req).await,
        400,
        "unknown output 'nope'",
    );
}

fn labels_param(
    parameters: &std::collections::HashMap<String, pb::InferParameter>,
) -> Option<&str> {
    match parameters.get("labels")?.parameter_choice.as_ref()? {
        P::StringParam(s) => Some(s),
        _ => None,
    }
}

#[tokio::test]
async fn zipmap_outputs_over_grpc() {
    let (s, _root) = server().await;
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", s.server.grpc_addr))
        .await
        .unwrap();
    let meta = client
        .model_metadata(pb::ModelMetadataRequest {
            name: "zipmap-strings".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let probs = &meta.outputs[1];
    assert_eq!(
        (
            probs.name.as_str(),
            probs.datatype.as_str(),
            probs.shape.as_slice()
        ),
        ("output_probability", "FP32", &[-1i64, 3][..])
    );
    // Lists travel as their JSON text (InferParameter has no list type).
    assert_eq!(
        labels_param(&probs.parameters),
        Some(r#"["setosa","versicolor","virginica"]"#)
    );

    let input = |raw: bool| InferInputTensor {
        name: "X".into(),
        datatype: "FP32".into(),
        shape: vec![2, 4],
        contents: (!raw).then(|| pb::InferTensorContents {
            fp32_contents: ROWS.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    for raw in [false, true] {
        let request = pb::ModelInferRequest {
            model_name: "zipmap".into(),
            inputs: vec![input(raw)],
            outputs: vec![InferRequestedOutputTensor {
                name: "output_probability".into(),
                ..Default::default()
            }],
            raw_input_contents: if raw {
                vec![ROWS.iter().flat_map(|v| v.to_le_bytes()).collect()]
            } else {
                vec![]
            },
            ..Default::default()
        };
        let response = client.model_infer(request).await.unwrap().into_inner();
        let out = &response.outputs[0];
        assert_eq!(out.name, "output_probability");
        assert_eq!(
            (out.datatype.as_str(), out.shape.as_slice()),
            ("FP32", &[2i64, 3][..])
        );
        assert_eq!(labels_param(&out.parameters), Some("[0,1,2]"));
        let floats: Vec<f64> = if raw {
            response.raw_output_contents[0]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect()
        } else {
            let contents = out.contents.as_ref().expect("typed contents");
            contents.fp32_contents.iter().map(|&v| v as f64).collect()
        };
        assert_close(&floats, &PROBABILITIES);
    }

    let status = client
        .model_infer(pb::ModelInferRequest {
            model_name: "seq-output".into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![1, 2],
                contents: Some(pb::InferTensorContents {
                    fp32_contents: vec![1.0, 2.0],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            outputs: vec![InferRequestedOutputTensor {
                name: "ys".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status.message().contains("seq(tensor(float))"),
        "{}",
        status.message()
    );
}
