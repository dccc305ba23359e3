//! gRPC integration tests: the real server on port 0, driven with the generated tonic client.

use crate::support;

use std::collections::HashMap;

use oxinfer::tensor::{Tensor, TensorData};
use prost::Message;
use support::grpc::*;
use support::pb;
use support::pb::infer_parameter::ParameterChoice as P;
use support::pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use support::{bundled_repository, shared, spawn_server, test_settings};
use tonic::Code;

const IRIS_ROWS: [f32; 8] = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3];

fn iris_input() -> Tensor {
    tensor("input", vec![2, 4], TensorData::Fp32(IRIS_ROWS.to_vec()))
}

fn simple_inputs() -> Vec<Tensor> {
    vec![
        tensor("INPUT0", vec![1, 16], TensorData::Int32((0..16).collect())),
        tensor("INPUT1", vec![1, 16], TensorData::Int32(vec![1; 16])),
    ]
}

fn simple_string_inputs() -> Vec<Tensor> {
    let numbers: Vec<String> = (0..16).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    vec![
        tensor("INPUT0", vec![1, 16], bytes_data(&refs)),
        tensor("INPUT1", vec![1, 16], bytes_data(&["1"; 16])),
    ]
}

async fn infer_err(client: &mut Client, request: pb::ModelInferRequest) -> tonic::Status {
    match client.model_infer(request).await {
        Ok(response) => panic!(
            "the request must fail; it got {} outputs",
            response.into_inner().outputs.len()
        ),
        Err(status) => status,
    }
}

#[tokio::test]
async fn health_and_metadata_rpcs() {
    let mut client = client().await;
    let live = client.server_live(pb::ServerLiveRequest {}).await.unwrap();
    assert!(live.into_inner().live);
    let meta = client
        .server_metadata(pb::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "oxinfer");
    assert!(!meta.version.is_empty());

    let ready = client
        .model_ready(pb::ModelReadyRequest {
            name: "iris".into(),
            version: String::new(),
        })
        .await
        .unwrap();
    assert!(ready.into_inner().ready);

    let iris = client
        .model_metadata(pb::ModelMetadataRequest {
            name: "iris".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(iris.name, "iris");
    assert!(!iris.platform.is_empty());
    assert_eq!(iris.inputs.len(), 1);
    assert_eq!(iris.inputs[0].name, "input");
    assert_eq!(iris.inputs[0].datatype, "FP32");
    assert_eq!(iris.inputs[0].shape, vec![-1, 4]);
    let outputs: Vec<(&str, &str)> = iris
        .outputs
        .iter()
        .map(|o| (o.name.as_str(), o.datatype.as_str()))
        .collect();
    assert_eq!(outputs, vec![("label", "INT64"), ("probabilities", "FP32")]);
}

#[tokio::test]
async fn metadata_matches_rest() {
    let addrs = shared();
    let mut client = ready_client(addrs).await;
    let http = reqwest::Client::new();
    for model in ["iris", "datatypes", "simple_string"] {
        let grpc = client
            .model_metadata(pb::ModelMetadataRequest {
                name: model.into(),
                version: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let rest: serde_json::Value = http
            .get(addrs.rest_url(&format!("/v2/models/{model}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(rest["name"], grpc.name.as_str());
        assert_eq!(rest["platform"], grpc.platform.as_str());
        let specs = |list: &[pb::model_metadata_response::TensorMetadata]| {
            list.iter()
                .map(|t| serde_json::json!({"name": t.name, "datatype": t.datatype, "shape": t.shape}))
                .collect::<Vec<_>>()
        };
        let strip = |v: &serde_json::Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|t| serde_json::json!({"name": t["name"], "datatype": t["datatype"], "shape": t["shape"]}))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&rest["inputs"]), specs(&grpc.inputs), "{model}");
        assert_eq!(strip(&rest["outputs"]), specs(&grpc.outputs), "{model}");
    }
}

#[tokio::test]
async fn unknown_model_is_not_found_with_the_rest_message() {
    let addrs = shared();
    let mut client = ready_client(addrs).await;
    let status = client
        .model_ready(pb::ModelReadyRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.message(),
        "Request for unknown model: 'nope' is not found (Model nope not found)"
    );
    let status = client
        .model_metadata(pb::ModelMetadataRequest {
            name: "iris".into(),
            version: "7".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.message(),
        "Request for unknown model: 'iris' version 7 is not found (Model iris with version 7 not found)"
    );
    let status = infer_err(&mut client, raw_request("nope", &[iris_input()])).await;
    assert_eq!(status.code(), Code::NotFound);
    let rest: serde_json::Value = reqwest::Client::new()
        .post(addrs.rest_url("/v2/models/nope/infer"))
        .json(&rest_body(&[iris_input()]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["error"], status.message());
}

#[tokio::test]
async fn datatypes_raw_round_trip_every_datatype() {
    let mut client = client().await;
    let inputs = datatypes_inputs(2);
    let response = client
        .model_infer(raw_request("datatypes", &inputs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.model_name, "datatypes");
    let outputs = outputs(&response, true);
    assert_eq!(outputs.len(), DATATYPES.len());
    for input in &inputs {
        let suffix = input.name.strip_prefix("input_").unwrap();
        let out = output(&outputs, &format!("output_{suffix}"));
        assert_eq!(out.shape(), input.shape(), "{suffix}");
        assert_eq!(out.data(), input.data(), "{suffix}");
    }
}

#[tokio::test]
async fn datatypes_typed_round_trip_every_typed_datatype() {
    let mut client = client().await;
    // FP16 has no typed field: it goes empty ([0, 3]) and its output is not asked for, so the answer is typed.
    let inputs: Vec<Tensor> = DATATYPES
        .iter()
        .map(|s| match *s {
            "fp16" => tensor("input_fp16", vec![0, 3], TensorData::Fp16(vec![])),
            _ => datatypes_input(s, 2),
        })
        .collect();
    let mut request = typed_request("datatypes", &inputs);
    request.outputs = DATATYPES
        .iter()
        .filter(|s| **s != "fp16")
        .map(|s| InferRequestedOutputTensor {
            name: format!("output_{s}"),
            ..Default::default()
        })
        .collect();
    let response = client.model_infer(request).await.unwrap().into_inner();
    let typed = outputs(&response, false);
    assert_eq!(typed.len(), DATATYPES.len() - 1);
    for input in inputs.iter().filter(|t| t.name != "input_fp16") {
        let suffix = input.name.strip_prefix("input_").unwrap();
        let out = output(&typed, &format!("output_{suffix}"));
        assert_eq!(out.shape(), input.shape(), "{suffix}");
        assert_eq!(out.data(), input.data(), "{suffix}");
    }

    // Asked for every output, the FP16 one forces a raw answer.
    let response = client
        .model_infer(typed_request("datatypes", &inputs))
        .await
        .unwrap()
        .into_inner();
    let raw = outputs(&response, true);
    assert_eq!(output(&raw, "output_fp16").shape(), vec![0, 3]);
}

#[tokio::test]
async fn iris_typed_and_raw() {
    let mut client = client().await;
    for raw in [false, true] {
        let request = if raw {
            raw_request("iris", &[iris_input()])
        } else {
            typed_request("iris", &[iris_input()])
        };
        let response = client.model_infer(request).await.unwrap().into_inner();
        let outputs = outputs(&response, raw);
        let label = output(&outputs, "label");
        assert_eq!(label.shape(), vec![2]);
        assert_eq!(*label.data(), TensorData::Int64(vec![0, 2]));
        let probabilities = output(&outputs, "probabilities");
        assert_eq!(probabilities.shape(), vec![2, 3]);
        let TensorData::Fp32(p) = probabilities.data() else {
            panic!("probabilities are FP32");
        };
        for (row, want) in p.chunks(3).zip([0, 2]) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{row:?}");
            let argmax = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            assert_eq!(argmax, want, "{row:?}");
        }
    }
}

#[tokio::test]
async fn simple_with_hand_built_raw_bytes_id_and_parameters() {
    let mut client = client().await;
    let le = |values: &[i32]| {
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let input0: Vec<i32> = (0..16).collect();
    let input1: Vec<i32> = vec![1; 16];
    let param = |choice: P| pb::InferParameter {
        parameter_choice: Some(choice),
    };
    let output_parameters: HashMap<String, pb::InferParameter> = [
        ("b".to_string(), param(P::BoolParam(true))),
        ("i".to_string(), param(P::Int64Param(-5))),
        ("s".to_string(), param(P::StringParam("x".into()))),
        ("d".to_string(), param(P::DoubleParam(0.5))),
        ("u".to_string(), param(P::Uint64Param(u64::MAX))),
    ]
    .into_iter()
    .collect();
    let request = pb::ModelInferRequest {
        model_name: "simple".into(),
        id: "my-id".into(),
        parameters: [("my_tag".to_string(), param(P::StringParam("tag-7".into())))]
            .into_iter()
            .collect(),
        inputs: ["INPUT0", "INPUT1"]
            .iter()
            .map(|name| InferInputTensor {
                name: name.to_string(),
                datatype: "INT32".into(),
                shape: vec![1, 16],
                ..Default::default()
            })
            .collect(),
        outputs: vec![
            InferRequestedOutputTensor {
                name: "OUTPUT1".into(),
                parameters: output_parameters.clone(),
            },
            InferRequestedOutputTensor {
                name: "OUTPUT0".into(),
                parameters: HashMap::new(),
            },
        ],
        raw_input_contents: vec![le(&input0).into(), le(&input1).into()],
        ..Default::default()
    };
    let response = client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(response.id, "my-id");
    assert_eq!(response.model_name, "simple");
    let names: Vec<&str> = response.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, vec!["OUTPUT1", "OUTPUT0"], "requested order");
    assert_eq!(response.outputs[0].parameters, output_parameters);
    let sum: Vec<i32> = input0.iter().zip(&input1).map(|(a, b)| a + b).collect();
    let diff: Vec<i32> = input0.iter().zip(&input1).map(|(a, b)| a - b).collect();
    assert_eq!(
        response.raw_output_contents[1].as_ref(),
        le(&sum).as_slice()
    );
    assert_eq!(
        response.raw_output_contents[0].as_ref(),
        le(&diff).as_slice()
    );
}

#[tokio::test]
async fn simple_string_typed_and_raw() {
    let mut client = client().await;
    let inputs = simple_string_inputs();
    let sums: Vec<String> = (0..16).map(|i| (i + 1).to_string()).collect();
    let diffs: Vec<String> = (0..16).map(|i| (i - 1).to_string()).collect();
    for raw in [false, true] {
        let request = if raw {
            raw_request("simple_string", &inputs)
        } else {
            typed_request("simple_string", &inputs)
        };
        let response = client.model_infer(request).await.unwrap().into_inner();
        let outputs = outputs(&response, raw);
        let as_strings = |t: &Tensor| match t.data() {
            TensorData::Bytes(b) => b
                .iter()
                .map(|e| String::from_utf8(e.to_vec()).unwrap())
                .collect::<Vec<_>>(),
            other => panic!("BYTES expected, got {:?}", other.datatype()),
        };
        assert_eq!(output(&outputs, "OUTPUT0").datatype().as_str(), "BYTES");
        assert_eq!(as_strings(output(&outputs, "OUTPUT0")), sums);
        assert_eq!(as_strings(output(&outputs, "OUTPUT1")), diffs);
    }
}

/// The same request over REST (JSON) and gRPC (raw and, where every input can be typed, typed) gives the
/// same outputs, for every model of the bundled repository.
#[tokio::test]
async fn rest_and_grpc_give_identical_outputs_for_every_model() {
    let addrs = shared();
    let mut client = ready_client(addrs).await;
    let http = reqwest::Client::new();
    let cases: Vec<(&str, Vec<Tensor>)> = vec![
        ("iris", vec![iris_input()]),
        ("iris-labels", vec![iris_input()]),
        ("datatypes", datatypes_inputs(3)),
        ("simple", simple_inputs()),
        ("simple_string", simple_string_inputs()),
        ("image_stats", vec![image_input()]),
        (
            "identity_string",
            vec![tensor("INPUT0", vec![3], bytes_data(&["a\0b", "", "é"]))],
        ),
    ];
    let mut bundled: Vec<String> = std::fs::read_dir(bundled_repository())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model-settings.json").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    bundled.sort();
    let mut covered: Vec<String> = cases.iter().map(|(m, _)| m.to_string()).collect();
    covered.sort();
    assert_eq!(covered, bundled, "every bundled model has a parity case");

    for (model, inputs) in &cases {
        let rest: serde_json::Value = http
            .post(addrs.rest_url(&format!("/v2/models/{model}/infer")))
            .json(&rest_body(inputs))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rest_outputs: Vec<serde_json::Value> = rest["outputs"]
            .as_array()
            .unwrap_or_else(|| panic!("{model}: {rest}"))
            .iter()
            .map(|o| serde_json::json!({"name": o["name"], "datatype": o["datatype"], "shape": o["shape"], "data": o["data"]}))
            .collect();
        let typed_possible = inputs.iter().all(|t| t.name != "input_fp16");
        for raw in [true, false] {
            if !raw && !typed_possible {
                continue;
            }
            let request = if raw {
                raw_request(model, inputs)
            } else {
                typed_request(model, inputs)
            };
            let response = client.model_infer(request).await.unwrap().into_inner();
            let grpc_outputs: Vec<serde_json::Value> =
                outputs(&response, raw).iter().map(as_json).collect();
            assert_eq!(grpc_outputs, rest_outputs, "{model} (raw: {raw})");
        }
    }
}

#[tokio::test]
async fn tensor_over_4_mib_round_trips() {
    let mut client = client().await;
    let big: Vec<f32> = (0..2_000_000).map(|i| i as f32 * 0.5).collect();
    let inputs: Vec<Tensor> = DATATYPES
        .iter()
        .map(|s| match *s {
            "fp32" => tensor(
                "input_fp32",
                vec![1, 2_000_000],
                TensorData::Fp32(big.clone()),
            ),
            _ => datatypes_input(s, 1),
        })
        .collect();
    for raw in [true, false] {
        let request = if raw {
            raw_request("datatypes", &inputs)
        } else {
            let mut typed: Vec<Tensor> = inputs.clone();
            typed.retain(|t| t.name != "input_fp16");
            typed.push(tensor("input_fp16", vec![0, 3], TensorData::Fp16(vec![])));
            let mut request = typed_request("datatypes", &typed);
            request.outputs = vec![InferRequestedOutputTensor {
                name: "output_fp32".into(),
                ..Default::default()
            }];
            request
        };
        assert!(request.encoded_len() > 8_000_000);
        let response = client.model_infer(request).await.unwrap().into_inner();
        let outputs = outputs(&response, raw);
        let out = output(&outputs, "output_fp32");
        assert_eq!(out.shape(), vec![1, 2_000_000]);
        assert_eq!(*out.data(), TensorData::Fp32(big.clone()), "raw: {raw}");
    }
}

#[tokio::test]
async fn messages_over_the_limit_are_resource_exhausted() {
    const LIMIT: usize = 1024 * 1024;
    let addrs = spawn_server(support::Settings {
        grpc_max_message_length: Some(LIMIT),
        ..test_settings(&bundled_repository())
    });
    let mut client = ready_client(addrs).await;
    let with_fp32 = |n: usize| -> Vec<Tensor> {
        DATATYPES
            .iter()
            .map(|s| match *s {
                "fp32" => tensor("input_fp32", vec![1, n], TensorData::Fp32(vec![1.0; n])),
                _ => datatypes_input(s, 1),
            })
            .collect()
    };

    // A request over the limit.
    let status = infer_err(&mut client, raw_request("datatypes", &with_fp32(LIMIT / 2))).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");

    // The same on the stream ends the call with RESOURCE_EXHAUSTED.
    let stream = tokio_stream::iter(vec![raw_request("datatypes", &with_fp32(LIMIT / 2))]);
    let mut replies = client
        .model_stream_infer(stream)
        .await
        .unwrap()
        .into_inner();
    let status = replies.message().await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // A request under the limit whose response is over it: typed INT64 zeros take one byte each, and the
    // FP16 output makes the answer raw, eight bytes each.
    let n = LIMIT / 4;
    let inputs: Vec<Tensor> = DATATYPES
        .iter()
        .map(|s| match *s {
            "int64" => tensor("input_int64", vec![1, n], TensorData::Int64(vec![0; n])),
            "fp16" => tensor("input_fp16", vec![0, 3], TensorData::Fp16(vec![])),
            _ => datatypes_input(s, 1),
        })
        .collect();
    let request = typed_request("datatypes", &inputs);
    assert!(request.encoded_len() < LIMIT / 2);
    let status = infer_err(&mut client, request).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("response"), "{status:?}");

    // The server still serves.
    client
        .model_infer(raw_request("iris", &[iris_input()]))
        .await
        .unwrap();
}

#[tokio::test]
async fn stream_answers_in_order_and_survives_a_bad_request() {
    let mut client = client().await;
    let mut good = raw_request("simple", &simple_inputs());
    good.id = "first".into();
    let mut bad = raw_request("simple", &simple_inputs());
    bad.id = "second".into();
    bad.raw_input_contents[0] = vec![0u8; 3].into();
    let mut unknown = raw_request("nope", &simple_inputs());
    unknown.id = "third".into();
    let mut last = typed_request("simple", &simple_inputs());
    last.id = "fourth".into();
    let stream = tokio_stream::iter(vec![good, bad, unknown, last]);
    let mut replies = client
        .model_stream_infer(stream)
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(reply) = replies.message().await.unwrap() {
        got.push(reply);
    }
    assert_eq!(got.len(), 4);
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.infer_response.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(ids, vec!["first", "second", "third", "fourth"]);
    assert_eq!(got[0].error_message, "");
    assert!(
        got[1].error_message.contains("'INPUT0'"),
        "{:?}",
        got[1].error_message
    );
    assert_eq!(
        got[2].error_message,
        "Request for unknown model: 'nope' is not found (Model nope not found)"
    );
    assert_eq!(got[3].error_message, "");
    let first = outputs(got[0].infer_response.as_ref().unwrap(), true);
    let fourth = outputs(got[3].infer_response.as_ref().unwrap(), false);
    assert_eq!(
        *output(&first, "OUTPUT0").data(),
        TensorData::Int32((1..17).collect())
    );
    assert_eq!(
        output(&first, "OUTPUT0").data(),
        output(&fourth, "OUTPUT0").data()
    );
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument_naming_the_tensor() {
    let mut client = client().await;
    let base = || raw_request("simple", &simple_inputs());

    let mut wrong_size = base();
    wrong_size.raw_input_contents[1] = vec![0u8; 63].into();
    let mut both = base();
    both.inputs[0].contents = Some(typed_contents(&TensorData::Int32(vec![1; 16])));
    let mut too_few_raw = base();
    too_few_raw.raw_input_contents.pop();
    let mut unknown_datatype = base();
    unknown_datatype.inputs[1].datatype = "FLOAT".into();
    let mut bytes_past_end = raw_request("simple_string", &simple_string_inputs());
    bytes_past_end.raw_input_contents[0] = vec![200u8, 0, 0, 0, b'1'].into();
    let mut typed_count = typed_request("simple", &simple_inputs());
    typed_count.inputs[0].contents = Some(typed_contents(&TensorData::Int32(vec![1; 15])));
    let mut negative_shape = base();
    negative_shape.inputs[0].shape = vec![-1, 16];
    let mut huge_shape = base();
    huge_shape.inputs[0].shape = vec![i64::MAX, i64::MAX];

    let cases = [
        (wrong_size, "'INPUT1'"),
        (both, "'INPUT0'"),
        (too_few_raw, "raw_input_contents"),
        (unknown_datatype, "'INPUT1'"),
        (bytes_past_end, "'INPUT0'"),
        (typed_count, "'INPUT0'"),
        (negative_shape, "'INPUT0'"),
        (huge_shape, "'INPUT0'"),
    ];
    for (request, needle) in cases {
        let status = infer_err(&mut client, request).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(needle), "{needle}: {status:?}");
    }
}

#[tokio::test]
async fn model_mismatch_is_invalid_argument_with_the_rest_message() {
    let addrs = shared();
    let mut client = ready_client(addrs).await;
    let wrong = tensor("input", vec![2, 4], TensorData::Fp64(vec![1.0; 8]));
    let status = infer_err(
        &mut client,
        raw_request("iris", std::slice::from_ref(&wrong)),
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument);
    let response = reqwest::Client::new()
        .post(addrs.rest_url("/v2/models/iris/infer"))
        .json(&rest_body(&[wrong]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let rest: serde_json::Value = response.json().await.unwrap();
    assert_eq!(rest["error"], status.message());
}

#[tokio::test]
async fn model_config_for_simple_and_not_found_for_an_unknown_model() {
    use pb::model_instance_group::Kind;
    let addrs = shared();
    let mut client = ready_client(addrs).await;
    let config = client
        .model_config(pb::ModelConfigRequest {
            name: "simple".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .expect("a config");
    assert_eq!(config.name, "simple");
    assert_eq!(config.platform, "onnxruntime_onnx");
    assert_eq!(config.backend, "onnxruntime");
    assert_eq!(
        config.max_batch_size as usize,
        support::TRITON_DEFAULT_MAX_BATCH_SIZE
    );
    assert_eq!(config.default_model_filename, "model.onnx");
    let names = |tensors: Vec<(&str, i32, &[i64])>| -> Vec<(String, i32, Vec<i64>)> {
        tensors
            .into_iter()
            .map(|(n, t, d)| (n.to_string(), t, d.to_vec()))
            .collect()
    };
    let int32 = pb::DataType::TypeInt32 as i32;
    let inputs: Vec<_> = config
        .input
        .iter()
        .map(|t| (t.name.clone(), t.data_type, t.dims.clone()))
        .collect();
    assert_eq!(
        inputs,
        names(vec![("INPUT0", int32, &[16]), ("INPUT1", int32, &[16])])
    );
    let outputs: Vec<_> = config
        .output
        .iter()
        .map(|t| (t.name.clone(), t.data_type, t.dims.clone()))
        .collect();
    assert_eq!(
        outputs,
        names(vec![("OUTPUT0", int32, &[16]), ("OUTPUT1", int32, &[16])])
    );
    assert_eq!(config.instance_group.len(), 1);
    assert_eq!(config.instance_group[0].kind, Kind::Cpu as i32);
    assert!(config.instance_group[0].count >= 1);

    // The same configuration as REST's.
    let rest: serde_json::Value = reqwest::get(addrs.rest_url("/v2/models/simple/config"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["platform"], config.platform);
    assert_eq!(
        rest["instance_group"][0]["count"],
        config.instance_group[0].count
    );

    let status = client
        .model_config(pb::ModelConfigRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.message(),
        "Request for unknown model: 'nope' is not found (Model nope not found)"
    );
    let status = client
        .model_statistics(pb::ModelStatisticsRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn model_statistics_count_inferences_per_model_and_for_all_models() {
    // A server of its own: the shared one's counts move with the other tests.
    let addrs = spawn_server(test_settings(&bundled_repository()));
    let mut client = ready_client(addrs).await;
    let stats = |name: &str| pb::ModelStatisticsRequest {
        name: name.into(),
        version: String::new(),
    };
    let before = client
        .model_statistics(stats("simple"))
        .await
        .unwrap()
        .into_inner()
        .model_stats;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].execution_count, 0);
    assert_eq!(before[0].last_inference, 0);

    for _ in 0..3 {
        client
            .model_infer(raw_request("simple", &simple_inputs()))
            .await
            .unwrap();
    }
    let after = client
        .model_statistics(stats("simple"))
        .await
        .unwrap()
        .into_inner()
        .model_stats;
    assert_eq!(after.len(), 1);
    let simple = &after[0];
    assert_eq!(simple.name, "simple");
    assert_eq!(simple.version, "1");
    assert_eq!(simple.execution_count, 3);
    assert_eq!(simple.inference_count, 3);
    assert!(simple.last_inference > 0);
    let inference = simple.inference_stats.as_ref().expect("inference_stats");
    let success = inference.success.expect("success");
    assert_eq!(success.count, 3);
    assert!(success.ns > 0);
    let compute_infer = inference.compute_infer.expect("compute_infer");
    assert_eq!(compute_infer.count, 3);
    assert!(compute_infer.ns > 0);
    assert_eq!(inference.fail.expect("fail").count, 0);
    assert_eq!(inference.cache_hit.expect("cache_hit").count, 0);

    // The same numbers as REST's.
    let rest: serde_json::Value = reqwest::get(addrs.rest_url("/v2/models/simple/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rest = &rest["model_stats"][0];
    assert_eq!(rest["execution_count"], simple.execution_count);
    assert_eq!(rest["inference_stats"]["success"]["count"], success.count);

    // An empty name: every ready model, `simple` with its counts among them.
    let all = client
        .model_statistics(stats(""))
        .await
        .unwrap()
        .into_inner()
        .model_stats;
    let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
    for wanted in ["simple", "iris", "datatypes"] {
        assert!(names.contains(&wanted), "{names:?}");
    }
    let simple = all.iter().find(|m| m.name == "simple").unwrap();
    assert_eq!(simple.execution_count, 3);
    let iris = all.iter().find(|m| m.name == "iris").unwrap();
    assert_eq!(iris.execution_count, 0);
}

#[tokio::test]
async fn repository_rpcs_answer_for_the_bundled_models() {
    // Only non-destructive calls here: the server is shared (round trips are in tests/repository_api.rs).
    let mut client = client().await;
    let index = client
        .repository_index(pb::RepositoryIndexRequest {
            ready: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let iris = index.models.iter().find(|m| m.name == "iris").unwrap();
    assert_eq!((iris.state.as_str(), iris.version.as_str()), ("READY", ""));
    let status = client
        .repository_model_load(pb::RepositoryModelLoadRequest {
            model_name: "nosuch".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .repository_model_unload(pb::RepositoryModelUnloadRequest {
            model_name: "nosuch".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.message(),
        "Request for unknown model: 'nosuch' is not found (Model nosuch not found)"
    );
}

#[tokio::test]
async fn health_follows_server_and_model_readiness() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let addrs = shared();
    ready_client(addrs).await;
    let mut health = HealthClient::new(channel(addrs).await);
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    for service in [
        "",
        "inference.GRPCInferenceService",
        "iris",
        "simple_string",
    ] {
        let status = health
            .check(check(service))
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
    let status = health.check(check("nope")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let mut watch = health.watch(check("iris")).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let mut watch = health.watch(check("nope")).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::ServiceUnknown as i32);
}

#[tokio::test]
async fn reflection_lists_and_describes_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let addrs = shared();
    ready_client(addrs).await;
    let mut reflection = ServerReflectionClient::new(channel(addrs).await);
    let requests = tokio_stream::iter(vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "inference.GRPCInferenceService".into(),
            )),
        },
    ]);
    let mut replies = reflection
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let listed = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("expected a service list: {listed:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for wanted in ["inference.GRPCInferenceService", "grpc.health.v1.Health"] {
        assert!(names.contains(&wanted), "{names:?}");
    }
    let described = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("expected a file descriptor: {described:?}");
    };
    let file = lossy_text(&files.file_descriptor_proto[0]);
    assert!(
        file.contains("ModelStreamInferResponse"),
        "descriptor lacks the messages"
    );

    // v1alpha (older grpcurl and tools) is served too.
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as Alpha;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    let mut alpha = Alpha::new(channel(addrs).await);
    let requests = tokio_stream::iter(vec![
        tonic_reflection::pb::v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(AlphaRequest::ListServices(String::new())),
        },
    ]);
    let mut replies = alpha
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    assert!(replies.message().await.unwrap().is_some());
}

/// An encoded FileDescriptorProto as lossy text: enough to see which message names it holds.
fn lossy_text(encoded: &[u8]) -> String {
    String::from_utf8_lossy(encoded).into_owned()
}

/// Raw pixels for `image_stats` (UINT8 [1,32,32,3]): the `img` codec lets pixels through untouched.
fn image_input() -> Tensor {
    let pixels: Vec<u8> = (0..32 * 32 * 3).map(|i| (i % 251) as u8).collect();
    Tensor::new("image", vec![1, 32, 32, 3], TensorData::Uint8(pixels)).unwrap()
}

#[tokio::test]
async fn metadata_carries_tensor_parameters_and_no_field_6() {
    let addrs = shared();
    let mut client = ready_client(addrs).await;
    let metadata = client
        .model_metadata(pb::ModelMetadataRequest {
            name: "image_stats".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        metadata.inputs[0].parameters.get("content_type"),
        Some(&pb::InferParameter {
            parameter_choice: Some(P::StringParam("img".into()))
        })
    );
    // Field 6 is declared one way by the official proto and another by MLServer's: it is never sent.
    let bytes = metadata.encode_to_vec();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let (tag, wire) = prost::encoding::decode_key(&mut rest).unwrap();
        assert_ne!(tag, 6, "field 6 was sent");
        prost::encoding::skip_field(wire, tag, &mut rest, Default::default()).unwrap();
    }
}

#[tokio::test]
async fn grpc_raw_outputs_always_answers_typed_requests_raw() {
    let settings = support::Settings {
        grpc_raw_outputs: oxinfer::config::RawOutputs::Always,
        ..test_settings(&bundled_repository())
    };
    let mut client = ready_client(spawn_server(settings)).await;
    let response = client
        .model_infer(typed_request("simple", &simple_inputs()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.raw_output_contents.len(), 2);
    assert!(response.outputs.iter().all(|o| o.contents.is_none()));
    let got = outputs(&response, true);
    let sum: Vec<i32> = (1..17).collect();
    assert_eq!(*output(&got, "OUTPUT0").data(), TensorData::Int32(sum));
    // The default answers a typed request typed, as MLServer does.
    let mut client = ready_client(shared()).await;
    let response = client
        .model_infer(typed_request("simple", &simple_inputs()))
        .await
        .unwrap()
        .into_inner();
    assert!(response.raw_output_contents.is_empty());
}
