//! Adaptive batching, timeouts and backpressure through the real server, with concurrent requests: each request
//! gets its own rows and its own requested outputs (MLServer's known batching bugs), BYTES split correctly,
//! incompatible shapes run in separate batches, the statistics show fewer executions than inferences.
//!
//! An idle instance runs what is queued at once (it never holds a request for `max_batch_time`), so batches
//! form from requests that arrive while the instance computes. Tests that need a batch either keep the
//! instance busy with tests/models/slow_identity.onnx (a fixed cost per execution) or repeat a round of
//! concurrent requests until the statistics show one.

use crate::support;

use std::path::Path;

use oxinfer::tensor::Tensor;
use serde_json::{json, Value};
use support::grpc::{datatypes_inputs, outputs, raw_request, DATATYPES};
use support::pb;
use support::spawn_server;
use support::{assert_close, assert_error, TestServer};

/// A model-settings.json for `folder`'s copy of a bundled model, with adaptive batching.
fn batched(root: &Path, folder: &str, model: &str, size: usize, time: f64, extra: Value) {
    support::write_model(
        root,
        folder,
        &json!({
            "name": folder,
            "implementation": "oxinfer.OnnxModel",
            "max_batch_size": size,
            "max_batch_time": time,
            "parameters": {"uri": "./model.onnx", "extra": extra},
        }),
        Some(model),
    );
}

/// A plain (unbatched) copy of a bundled model, as the reference.
fn plain(root: &Path, folder: &str, model: &str) {
    support::write_model(
        root,
        folder,
        &json!({"name": folder, "parameters": {"uri": "./model.onnx"}}),
        Some(model),
    );
}

/// A copy of tests/models/slow_identity.onnx (y = x after a fixed, batch-independent amount of work), with
/// adaptive batching and one instance.
fn slow(root: &Path, folder: &str, size: usize, time: f64, extra: Value) {
    let dir = support::write_model(
        root,
        folder,
        &json!({
            "name": folder,
            "max_batch_size": size,
            "max_batch_time": time,
            "parallel_workers": 1,
            "parameters": {"uri": "./model.onnx", "extra": extra_with_one_thread(extra)},
        }),
        None,
    );
    let fixture = support::test_model("slow_identity");
    std::fs::copy(fixture, dir.join("model.onnx")).unwrap();
}

/// One intra-op thread, so the fixed cost does not shrink with the machine's core count.
fn extra_with_one_thread(mut extra: Value) -> Value {
    extra["intra_op_threads"] = json!(1);
    extra
}

/// A slow_identity request body of `rows` rows of 2 values starting at `base`.
fn slow_body(rows: usize, base: f32) -> Value {
    let data: Vec<f32> = (0..rows * 2).map(|i| base + i as f32).collect();
    json!({"inputs": [{"name": "x", "shape": [rows, 2], "datatype": "FP32", "data": data}]})
}

/// Starts a slow_identity request that keeps `model`'s only instance busy, and returns once it has surely
/// started running (the model's fixed cost is far longer than the pause).
async fn occupy(s: &TestServer, model: &str) -> tokio::task::JoinHandle<u16> {
    occupy_at(
        s.client.clone(),
        s.url(&format!("/v2/models/{model}/infer")),
    )
    .await
}

/// [`occupy`] through the REST `url` of a model's infer endpoint.
async fn occupy_at(client: reqwest::Client, url: String) -> tokio::task::JoinHandle<u16> {
    let task = tokio::spawn(async move {
        let mut body = slow_body(1, 0.0);
        body["parameters"] = json!({"timeout": 30});
        let r = client.post(url).json(&body).send().await;
        r.expect("blocker").status().as_u16()
    });
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    task
}

/// Rounds of concurrent requests at most, until one forms a batch (an idle instance does not wait for one).
const ROUNDS: usize = 200;

/// POSTs every body at once (concurrently) and returns the answers in the same order.
async fn post_all(s: &TestServer, path: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let client = s.client.clone();
            let url = s.url(path);
            tokio::spawn(async move {
                let r = client.post(url).json(&body).send().await.expect("POST");
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.expect("JSON body"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("request task"));
    }
    answers
}

/// (inference_count, execution_count) of a model.
async fn counts(s: &TestServer, model: &str) -> (u64, u64) {
    let (status, stats) = s.get(&format!("/v2/models/{model}/stats")).await;
    assert_eq!(status, 200, "{stats}");
    let m = &stats["model_stats"][0];
    (
        m["inference_count"].as_u64().unwrap(),
        m["execution_count"].as_u64().unwrap(),
    )
}

const IRIS_ROWS: [[f64; 4]; 7] = [
    [5.1, 3.5, 1.4, 0.2],
    [6.7, 3.0, 5.2, 2.3],
    [5.9, 3.0, 4.2, 1.5],
    [4.9, 3.0, 1.4, 0.2],
    [6.3, 3.3, 6.0, 2.5],
    [5.5, 2.4, 3.8, 1.1],
    [7.7, 2.6, 6.9, 2.3],
];

fn iris_body(rows: &[[f64; 4]], id: &str, outputs: Option<Value>) -> Value {
    let mut body = json!({
        "id": id,
        "parameters": {"tag": id},
        "inputs": [{"name": "input", "shape": [rows.len(), 4], "datatype": "FP32", "data": rows}],
    });
    if let Some(outputs) = outputs {
        body["outputs"] = outputs;
    }
    body
}

/// Compares a batched answer with the unbatched one: same ids, outputs, shapes, labels; floats within 1e-6.
fn assert_same_answer(batched: &Value, reference: &Value) {
    assert_eq!(batched["id"], reference["id"]);
    let (b, r) = (
        batched["outputs"].as_array().unwrap(),
        reference["outputs"].as_array().unwrap(),
    );
    assert_eq!(b.len(), r.len(), "{batched} vs {reference}");
    for (b, r) in b.iter().zip(r) {
        assert_eq!(b["name"], r["name"]);
        assert_eq!(b["shape"], r["shape"], "{b} vs {r}");
        assert_eq!(b["datatype"], r["datatype"]);
        assert_eq!(b["parameters"], r["parameters"]);
        if b["datatype"] == "FP32" {
            let expected: Vec<f64> = r["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_close(&b["data"], &expected);
        } else {
            assert_eq!(b["data"], r["data"]);
        }
    }
}

#[tokio::test]
async fn each_request_gets_its_own_rows_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    plain(dir.path(), "iris", "iris");
    batched(dir.path(), "iris-batch", "iris", 4, 2.0, json!({}));
    plain(dir.path(), "labels", "iris-labels");
    batched(dir.path(), "labels-batch", "iris-labels", 3, 2.0, json!({}));
    let s = TestServer::start(dir.path()).await;

    // Mixed row counts; each request asks for different outputs (one with classification), in its own order.
    let bodies = vec![
        iris_body(&IRIS_ROWS[0..1], "a", Some(json!([{"name": "label"}]))),
        iris_body(
            &IRIS_ROWS[1..3],
            "b",
            Some(json!([{"name": "probabilities"}])),
        ),
        iris_body(
            &IRIS_ROWS[3..6],
            "c",
            Some(
                json!([{"name": "probabilities", "parameters": {"classification": 2}}, {"name": "label"}]),
            ),
        ),
        iris_body(&IRIS_ROWS[6..7], "d", None),
    ];
    // Concurrent rounds until one is batched; every answer is checked, batched or not.
    for _ in 0..ROUNDS {
        let answers = post_all(&s, "/v2/models/iris-batch/infer", bodies.clone()).await;
        for (answer, body) in answers.iter().zip(&bodies) {
            assert_eq!(answer.0, 200, "{}", answer.1);
            assert_eq!(answer.1["model_name"], "iris-batch");
            let reference = s.post("/v2/models/iris/infer", body).await;
            assert_eq!(reference.0, 200);
            assert_same_answer(&answer.1, &reference.1);
        }
        // Rows really are per request: a 1-row request gets 1 label, the 3-row one gets 3 classifications.
        assert_eq!(answers[0].1["outputs"][0]["shape"], json!([1]));
        assert_eq!(answers[0].1["outputs"].as_array().unwrap().len(), 1);
        assert_eq!(answers[2].1["outputs"][0]["shape"], json!([3, 2]));
        assert_eq!(answers[2].1["outputs"][1]["data"], json!([0, 2, 1]));
        assert_eq!(answers[3].1["outputs"][0]["data"], json!([2]));
        let (inferences, executions) = counts(&s, "iris-batch").await;
        assert_eq!(inferences % 4, 0);
        if executions < inferences {
            break;
        }
    }
    let (inferences, executions) = counts(&s, "iris-batch").await;
    assert!(
        executions < inferences,
        "{executions} executions for {inferences} requests: not batched"
    );
    let (plain_inferences, plain_executions) = counts(&s, "iris").await;
    assert_eq!(
        plain_inferences, plain_executions,
        "no batching without settings"
    );

    // BYTES outputs split by each request's rows.
    let bodies = vec![
        iris_body(&IRIS_ROWS[0..2], "x", None),
        iris_body(&IRIS_ROWS[2..3], "y", Some(json!([{"name": "label"}]))),
        iris_body(&IRIS_ROWS[3..7], "z", None),
    ];
    for _ in 0..ROUNDS {
        let answers = post_all(&s, "/v2/models/labels-batch/infer", bodies.clone()).await;
        let labels: Vec<&Value> = answers.iter().map(|a| &a.1["outputs"][0]).collect();
        assert_eq!(labels[0]["data"], json!(["setosa", "virginica"]));
        assert_eq!(labels[1]["data"], json!(["versicolor"]));
        assert_eq!(labels[1]["shape"], json!([1]));
        assert_eq!(
            labels[2]["data"],
            json!(["setosa", "virginica", "versicolor", "virginica"])
        );
        assert_eq!(answers[2].1["outputs"][1]["shape"], json!([4, 3]));
        let (inferences, executions) = counts(&s, "labels-batch").await;
        if executions < inferences {
            return;
        }
    }
    panic!("labels-batch: no round of concurrent requests was batched");
}

#[tokio::test]
async fn bytes_inputs_are_joined_and_split() {
    let dir = tempfile::tempdir().unwrap();
    batched(dir.path(), "strings", "simple_string", 3, 2.0, json!({}));
    let s = TestServer::start(dir.path()).await;
    let body = |rows: usize, base: i64| {
        let a: Vec<String> = (0..rows * 16)
            .map(|i| (base + i as i64).to_string())
            .collect();
        let b: Vec<String> = (0..rows * 16).map(|i| (i as i64 % 5).to_string()).collect();
        json!({"inputs": [
            {"name": "INPUT0", "shape": [rows, 16], "datatype": "BYTES", "data": a},
            {"name": "INPUT1", "shape": [rows, 16], "datatype": "BYTES", "data": b},
        ]})
    };
    let cases = [(1usize, 0i64), (3, 1000), (2, -50)];
    for round in 1..=ROUNDS {
        let answers = post_all(
            &s,
            "/v2/models/strings/infer",
            cases.iter().map(|&(r, b)| body(r, b)).collect(),
        )
        .await;
        for ((status, answer), &(rows, base)) in answers.iter().zip(&cases) {
            assert_eq!(*status, 200, "{answer}");
            let sums: Vec<String> = (0..rows * 16)
                .map(|i| (base + i as i64 + i as i64 % 5).to_string())
                .collect();
            let out0 = &answer["outputs"][0];
            assert_eq!(out0["name"], "OUTPUT0");
            assert_eq!(out0["shape"], json!([rows, 16]));
            assert_eq!(out0["data"], json!(sums));
        }
        let (inferences, executions) = counts(&s, "strings").await;
        assert_eq!(inferences, 3 * round as u64);
        if executions < inferences {
            return;
        }
    }
    panic!("strings: no round of concurrent requests was batched");
}

/// A `datatypes` request (every datatype, BYTES included) whose second dimension depends on `width`.
fn datatypes_request(model: &str, rows: usize, flat: bool) -> (pb::ModelInferRequest, Vec<Tensor>) {
    let mut inputs = datatypes_inputs(rows);
    if flat {
        for t in &mut inputs {
            t.reshape(vec![1, rows * 3]).unwrap();
        }
    }
    (raw_request(model, &inputs), inputs)
}

#[tokio::test]
async fn every_datatype_batches_and_incompatible_shapes_run_apart() {
    let dir = tempfile::tempdir().unwrap();
    batched(dir.path(), "dt", "datatypes", 4, 2.0, json!({}));
    batched(dir.path(), "dt-shapes", "datatypes", 4, 2.0, json!({}));
    let settings = support::Settings {
        model_repository_root: dir.path().to_path_buf(),
        ..support::test_settings(&support::bundled_repository())
    };
    let addrs = spawn_server(settings);
    let client = support::grpc::ready_client(addrs).await;

    let http = reqwest::Client::new();
    let stats = |model: &'static str| {
        let http = http.clone();
        async move {
            let v: Value = http
                .get(addrs.rest_url(&format!("/v2/models/{model}/stats")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let m = v["model_stats"][0].clone();
            (
                m["inference_count"].as_u64().unwrap(),
                m["execution_count"].as_u64().unwrap(),
            )
        }
    };
    // [rows, 3] for rows 1, 2, 3, 1: one compatible group (rounds until one is batched); [1, 3 * rows]: three
    // different widths (one round).
    for (model, flat, rounds) in [("dt", false, ROUNDS), ("dt-shapes", true, 1)] {
        for _ in 0..rounds {
            let mut tasks = Vec::new();
            for rows in [1usize, 2, 3, 1] {
                let (request, inputs) = datatypes_request(model, rows, flat);
                let mut client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let response = client
                        .model_infer(request)
                        .await
                        .expect("infer")
                        .into_inner();
                    (outputs(&response, true), inputs)
                }));
            }
            for task in tasks {
                let (outs, inputs) = task.await.unwrap();
                assert_eq!(outs.len(), DATATYPES.len());
                for (out, input) in outs.iter().zip(&inputs) {
                    assert_eq!(out.name, input.name.replace("input_", "output_"));
                    assert_eq!(out.shape(), input.shape(), "{model} {}", out.name);
                    assert_eq!(out.data(), input.data(), "{model} {}", out.name);
                }
            }
            let (inferences, executions) = stats(model).await;
            if executions < inferences {
                break;
            }
        }
    }
    let (inferences, executions) = stats("dt").await;
    assert!(
        executions < inferences,
        "{executions} executions for {inferences}: not batched"
    );
    let (inferences, executions) = stats("dt-shapes").await;
    assert_eq!(inferences, 4);
    assert!(
        executions >= 3,
        "widths 3, 6, 9 cannot share a batch: {executions} executions"
    );
}

#[tokio::test]
async fn timeouts_answer_504_and_dropped_requests_never_run() {
    let dir = tempfile::tempdir().unwrap();
    // Requests queued behind a busy instance: their timeout (or their client) expires before it is free.
    slow(dir.path(), "slow", 8, 3.0, json!({}));
    slow(dir.path(), "slow-default", 8, 3.0, json!({"timeout": 0.05}));
    let s = TestServer::start(dir.path()).await;
    let mut body = slow_body(2, 1.0);

    for bad in [json!("soon"), json!(0), json!(-1)] {
        body["parameters"] = json!({"timeout": bad});
        assert_error(
            &s.post("/v2/models/slow/infer", &body).await,
            400,
            "request parameter 'timeout' must be a positive number of seconds",
        );
    }
    let blocker = occupy(&s, "slow").await;
    body["parameters"] = json!({"timeout": 0.05});
    // A client that leaves before its request ran, at the same time.
    let gone = s
        .client
        .post(s.url("/v2/models/slow/infer"))
        .timeout(std::time::Duration::from_millis(60))
        .json(&slow_body(1, 9.0))
        .send();
    let (timed_out, gone) = tokio::join!(s.post("/v2/models/slow/infer", &body), gone);
    assert_error(&timed_out, 504, "timed out");
    assert!(gone.is_err(), "the client gave up");
    assert_eq!(blocker.await.unwrap(), 200);
    // The model's default timeout, and a request overriding it.
    let blocker = occupy(&s, "slow-default").await;
    let plain_body = slow_body(1, 5.0);
    assert_error(
        &s.post("/v2/models/slow-default/infer", &plain_body).await,
        504,
        "timed out",
    );
    assert_eq!(blocker.await.unwrap(), 200);
    let mut patient = plain_body.clone();
    patient["parameters"] = json!({"timeout": 30});
    let (status, answer) = s.post("/v2/models/slow-default/infer", &patient).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"][0]["data"], json!([5.0, 6.0]));

    // Only the requests still waited for have run (the blockers and these two).
    body["parameters"]
        .as_object_mut()
        .unwrap()
        .remove("timeout");
    let (status, answer) = s.post("/v2/models/slow/infer", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"][0]["data"], json!([1.0, 2.0, 3.0, 4.0]));
    assert_eq!(
        counts(&s, "slow").await.0,
        2,
        "timed-out and abandoned requests never ran"
    );
    assert_eq!(counts(&s, "slow-default").await.0, 2);
}

#[tokio::test]
async fn grpc_timeout_is_deadline_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    slow(dir.path(), "slow", 8, 3.0, json!({}));
    let settings = support::Settings {
        model_repository_root: dir.path().to_path_buf(),
        ..support::test_settings(&support::bundled_repository())
    };
    let addrs = spawn_server(settings);
    let mut client = support::grpc::ready_client(addrs).await;
    let blocker = occupy_at(
        reqwest::Client::new(),
        addrs.rest_url("/v2/models/slow/infer"),
    )
    .await;
    let input = support::grpc::tensor(
        "x",
        vec![1, 2],
        oxinfer::tensor::TensorData::Fp32(vec![5.1, 3.5]),
    );
    let mut request = raw_request("slow", &[input]);
    request.parameters.insert(
        "timeout".into(),
        pb::InferParameter {
            parameter_choice: Some(pb::infer_parameter::ParameterChoice::DoubleParam(0.05)),
        },
    );
    let status = client.model_infer(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert!(
        status.message().contains("timed out"),
        "{}",
        status.message()
    );
    assert_eq!(blocker.await.unwrap(), 200);
}

#[tokio::test]
async fn a_full_queue_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    // One queued request at most, while the only instance is busy with another.
    slow(dir.path(), "slow", 2, 3.0, json!({}));
    let settings = support::Settings {
        model_repository_root: dir.path().to_path_buf(),
        model_queue_size: 1,
        ..support::test_settings(&support::bundled_repository())
    };
    let addrs = spawn_server(settings);
    let client = support::grpc::ready_client(addrs).await;
    let blocker = occupy_at(
        reqwest::Client::new(),
        addrs.rest_url("/v2/models/slow/infer"),
    )
    .await;
    // Six requests of six different widths: none can join another's batch.
    let mut tasks = Vec::new();
    for width in 1..=6 {
        let data: Vec<f32> = (0..width).map(|i| i as f32).collect();
        let input =
            support::grpc::tensor("x", vec![1, width], oxinfer::tensor::TensorData::Fp32(data));
        let request = raw_request("slow", std::slice::from_ref(&input));
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            (client.model_infer(request).await, input)
        }));
    }
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            (Ok(response), input) => {
                let outs = outputs(&response.into_inner(), true);
                assert_eq!(outs[0].data(), input.data());
            }
            (Err(status), _) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted);
                assert!(
                    status
                        .message()
                        .contains("is overloaded: 1 requests already queued"),
                    "{}",
                    status.message()
                );
                refused += 1;
            }
        }
    }
    assert!(refused >= 1, "six requests cannot fit in 1 queued");
    assert_eq!(blocker.await.unwrap(), 200);
}

#[tokio::test]
async fn an_idle_instance_runs_at_once_and_a_busy_one_gathers_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let window = 0.5;
    batched(dir.path(), "iris-batch", "iris", 8, window, json!({}));
    slow(dir.path(), "slow", 8, window, json!({}));
    let s = TestServer::start(dir.path()).await;

    // One request at a time: each is answered without waiting the window (a generous bound).
    for i in 0..5 {
        let body = iris_body(&IRIS_ROWS[i..i + 1], "one", None);
        let started = std::time::Instant::now();
        let (status, answer) = s.post("/v2/models/iris-batch/infer", &body).await;
        let took = started.elapsed();
        assert_eq!(status, 200, "{answer}");
        assert!(
            took.as_secs_f64() < window / 5.0,
            "a lone request took {took:?} with a {window} s window"
        );
    }
    assert_eq!(counts(&s, "iris-batch").await, (5, 5));

    // Sixteen requests queued while the only instance is busy: batched, each with its own rows.
    let blocker = occupy(&s, "slow").await;
    let bodies: Vec<Value> = (0..16)
        .map(|i| slow_body(1 + i % 3, 100.0 * i as f32))
        .collect();
    let answers = post_all(&s, "/v2/models/slow/infer", bodies.clone()).await;
    for ((status, answer), body) in answers.iter().zip(&bodies) {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["outputs"][0]["shape"], body["inputs"][0]["shape"]);
        assert_eq!(answer["outputs"][0]["data"], body["inputs"][0]["data"]);
    }
    assert_eq!(blocker.await.unwrap(), 200);
    let (inferences, executions) = counts(&s, "slow").await;
    assert_eq!(inferences, 17);
    assert!(
        executions < inferences,
        "{executions} executions for {inferences} requests: not batched"
    );
}
