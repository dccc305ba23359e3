//! Operations of the real binary: SIGTERM drains in-flight REST and gRPC requests then exits 0 and refuses
//! new connections; `oxinfer health`; structured (JSON) logs carry the request id.

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::pb::model_infer_request::InferInputTensor;
use support::GrpcInferenceServiceClient;
use support::{pb, Spawned};

fn repo() -> String {
    support::bundled_repository().display().to_string()
}

/// A started binary: its addresses (from its log lines) and every later stderr line, as they come
/// (`process.lines`).
struct Started {
    process: Spawned,
    http: SocketAddr,
    grpc: SocketAddr,
    metrics: Option<SocketAddr>,
}

/// Starts `oxinfer start <repo> --host 127.0.0.1` with free ports and `extra` flags; waits for the listening lines.
fn start(extra: &[&str], env: &[(&str, &str)]) -> Started {
    let repo = repo();
    let mut args = vec![
        "start",
        &repo,
        "--host",
        "127.0.0.1",
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--metrics-port",
        "0",
    ];
    args.extend_from_slice(extra);
    let command = Spawned::command(&args, env);
    let wants_metrics = !extra.contains(&"null");
    let process = if wants_metrics {
        Spawned::run_with_metrics(command)
    } else {
        Spawned::run(command)
    };
    for line in &process.startup {
        assert!(
            !line.contains('\u{1b}'),
            "colour codes in a log that is not a terminal: {line}"
        );
    }
    let addr = |a: &str| -> SocketAddr { a.parse().expect("a listening address") };
    Started {
        http: addr(&process.http),
        grpc: addr(&process.grpc),
        metrics: process.metrics.as_deref().map(addr),
        process,
    }
}

/// A metric's value (summed over its label sets) from the metrics endpoint.
async fn metric(metrics: SocketAddr, name: &str, label: &str) -> f64 {
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const ROWS: usize = 2_000;

/// An iris request body of `ROWS` rows.
fn iris_body() -> Vec<u8> {
    serde_json::to_vec(&json!({"inputs": [{"name": "input", "shape": [ROWS, 4],
        "datatype": "FP32", "data": ([6.7, 3.0, 5.2, 2.3].repeat(ROWS))}]}))
    .unwrap()
}

/// A REST request held in flight by the client: the head and half the body are sent, the rest on demand.
struct HeldRequest {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl HeldRequest {
    fn open(http: SocketAddr) -> HeldRequest {
        let body = iris_body();
        let mut stream = TcpStream::connect(http).unwrap();
        write!(
            stream,
            "POST /v2/models/iris/infer HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        let half = body.len() / 2;
        stream.write_all(&body[..half]).unwrap();
        stream.flush().unwrap();
        HeldRequest {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body and reads the answer: status and JSON body.
    fn finish(mut self) -> (u16, Value) {
        self.stream.write_all(&self.rest).unwrap();
        let mut response = Vec::new();
        self.stream.read_to_end(&mut response).unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(
            text.len() > 12,
            "no HTTP answer: the in-flight request was dropped"
        );
        let status = text[9..12].parse().unwrap();
        let (_, body) = text
            .split_once("\r\n\r\n")
            .expect("a complete HTTP response");
        (status, serde_json::from_str(body).expect("a JSON body"))
    }
}

fn iris_grpc_request() -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: "iris".into(),
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![ROWS as i64, 4],
            contents: Some(pb::InferTensorContents {
                fp32_contents: [6.7f32, 3.0, 5.2, 2.3].repeat(ROWS),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn refused(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
}

/// Requests are held in flight by the client itself (a REST body half sent, a gRPC stream left open), so they
/// are certainly in flight when SIGTERM arrives: the server must stop accepting, still answer them, then exit 0.
#[test]
fn sigterm_drains_in_flight_rest_and_grpc_requests_then_exits_0() {
    let mut server = start(&[], &[]);
    let (http, grpc, metrics) = (server.http, server.grpc, server.metrics.unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        server.process.wait_ready().await;
        let held: Vec<HeldRequest> = (0..2).map(|_| HeldRequest::open(http)).collect();
        let mut client = GrpcInferenceServiceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        sender.send(iris_grpc_request()).await.unwrap();
        let mut answers = client
            .model_stream_infer(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        let first = answers
            .message()
            .await
            .unwrap()
            .expect("first stream answer");
        assert_eq!(first.error_message, "");
        // Both REST requests are in the server's hands (the head is parsed, the body is awaited).
        let deadline = Instant::now() + Duration::from_secs(60);
        while metric(metrics, "rest_server_requests_in_progress", "POST").await < 2.0 {
            assert!(
                Instant::now() < deadline,
                "held requests never reached the server"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        server.process.sigterm();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(refused(http) && refused(grpc)) {
            assert!(
                Instant::now() < deadline,
                "still accepting connections after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            server.process.child.try_wait().unwrap().is_none(),
            "the server must wait for its in-flight requests"
        );

        for request in held {
            let (status, answer) = tokio::task::spawn_blocking(move || request.finish())
                .await
                .unwrap();
            assert_eq!(status, 200, "{answer}");
            let labels = answer["outputs"][0]["data"].as_array().unwrap();
            assert_eq!(labels.len(), ROWS);
            assert!(labels.iter().all(|l| l == 2));
        }
        sender.send(iris_grpc_request()).await.unwrap();
        let second = answers
            .message()
            .await
            .unwrap()
            .expect("second stream answer");
        assert_eq!(second.error_message, "");
        let shape = &second.infer_response.unwrap().outputs[0].shape;
        assert_eq!(shape, &vec![ROWS as i64]);
        drop(sender);
        assert!(
            answers.message().await.unwrap().is_none(),
            "the stream ends cleanly"
        );
    });
    let status = server.process.wait_exit();
    assert!(status.success(), "exit status {status}");
    let lines: Vec<String> = server.process.lines.try_iter().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("all in-flight requests finished")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("panicked")), "{lines:#?}");
}

/// Every thread of the server (runtime, model and ONNX Runtime threads) runs under `SCHED_BATCH` (policy 3, the
/// 41st field of /proc/PID/task/TID/stat), so a woken thread does not preempt a busy one (src/sched.rs).
fn assert_threads_are_batch(pid: u32) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let mut seen = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let (Ok(stat), Ok(name)) = (
            std::fs::read_to_string(dir.join("stat")),
            std::fs::read_to_string(dir.join("comm")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // The name in parentheses may hold spaces: count fields after the last ')'.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let policy = after_name.split(' ').nth(38).unwrap();
        assert_eq!(policy, "3", "thread '{}' policy {policy}", name.trim());
        seen += 1;
    }
    assert!(seen >= 3, "{seen} threads");
}

#[test]
fn health_subcommand_reports_readiness() {
    let mut server = start(&[], &[]);
    let port = server.http.port().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(server.process.wait_ready());
    assert_threads_are_batch(server.process.child.id());
    let ok = support::oxinfer()
        .args(["health", "--http-port", &port])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    // The port can come from MLSERVER_HTTP_PORT, as the server's does.
    let ok = support::oxinfer()
        .arg("health")
        .env("MLSERVER_HTTP_PORT", &port)
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    server.process.sigterm();
    assert!(server.process.wait_exit().success());
    let down = support::oxinfer()
        .args(["health", "--http-port", &port, "--timeout", "2"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1), "{down:?}");
}

#[test]
fn structured_logs_carry_the_request_id() {
    let server = start(
        &["--use-structured-logging", "--metrics-endpoint", "null"],
        &[("RUST_LOG", "debug,ort=warn,h2=info,hyper=info,tower=info")],
    );
    assert!(server.metrics.is_none());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        server.process.wait_ready().await;
        let r = reqwest::Client::new()
            .get(format!("http://{}/v2/models/no-such-model", server.http))
            .header("x-request-id", "req-id-1234")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["x-request-id"], "req-id-1234");
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = server
            .process
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a log line with the request id");
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            panic!("not a JSON log line: {line}");
        };
        if line.contains("req-id-1234") && line.contains("Model no-such-model not found") {
            assert_eq!(entry["span"]["request_id"], "req-id-1234", "{line}");
            break;
        }
    }
}
