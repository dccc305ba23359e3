//! Test support: starts the real server in-process on port 0 and waits, by polling, until start-up loading is over.

#![allow(dead_code)]

pub mod hostile;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oxinfer::config::Settings;
use oxinfer::server::RunningServer;
use serde_json::Value;

/// The bundled model repository.
pub fn bundled_repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model-repository")
}

/// A bundled model file, for building fixture repositories.
pub fn bundled_model(name: &str) -> PathBuf {
    bundled_repository().join(name).join("model.onnx")
}

/// Settings for a test server on 127.0.0.1 with free ports.
pub fn test_settings(root: &Path) -> Settings {
    Settings {
        model_repository_root: root.to_path_buf(),
        host: "127.0.0.1".into(),
        http_port: 0,
        grpc_port: 0,
        metrics_port: 0,
        ..Settings::default()
    }
}

pub struct TestServer {
    pub server: RunningServer,
    pub base: String,
    pub client: reqwest::Client,
}

impl TestServer {
    /// Starts a server on `root` and waits until its models have loaded (or failed to).
    pub async fn start(root: &Path) -> TestServer {
        Self::start_with(test_settings(root)).await
    }

    pub async fn start_with(settings: Settings) -> TestServer {
        oxinfer::runtime::init(None).expect("ONNX Runtime (run scripts/provision-ort.sh)");
        let server = oxinfer::server::start(settings)
            .await
            .expect("server starts");
        let base = format!("http://{}", server.http_addr);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !server.service.startup_finished() {
            assert!(
                Instant::now() < deadline,
                "models did not finish loading in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        TestServer {
            server,
            base,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET, returning status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    /// POST a JSON body, returning status and JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    /// POST raw bytes, returning status and JSON body.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }
}

/// `body` sent as HTTP chunks of `size` bytes (the server reads it in pieces cut at those points).
pub fn in_chunks(body: Vec<u8>, size: usize) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(size).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(tokio_stream::iter(chunks))
}

/// Asserts an error answer: the status, and an `{"error": ...}` body containing `needle`.
pub fn assert_error(actual: &(u16, Value), status: u16, needle: &str) {
    assert_eq!(actual.0, status, "body: {}", actual.1);
    let message = actual.1["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {}", actual.1));
    assert!(
        message.contains(needle),
        "error {message:?} does not contain {needle:?}"
    );
    assert_eq!(
        actual.1.as_object().unwrap().len(),
        1,
        "error body has only `error`: {}",
        actual.1
    );
}

/// Writes a model folder with a model-settings.json and a copy of a bundled model.
pub fn write_model(root: &Path, folder: &str, settings: &Value, model: Option<&str>) -> PathBuf {
    let dir = root.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("model-settings.json"),
        serde_json::to_vec_pretty(settings).unwrap(),
    )
    .unwrap();
    if let Some(model) = model {
        std::fs::copy(bundled_model(model), dir.join("model.onnx")).unwrap();
    }
    dir
}

/// The iris request used throughout: two rows with known answers (labels 0 and 2).
pub fn iris_request() -> Value {
    serde_json::json!({
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                    "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}]
    })
}

/// Compares floats with a tolerance.
pub fn assert_close(actual: &Value, expected: &[f64]) {
    let actual: Vec<f64> = actual
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(actual.len(), expected.len(), "{actual:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < 1e-6, "{actual:?} != {expected:?}");
    }
}

/// The real binary, started as a child process with its listening addresses read from its log; killed on drop.
pub struct Spawned {
    pub child: std::process::Child,
    /// `host:port` of the REST listener.
    pub http: String,
    /// `host:port` of the gRPC listener.
    pub grpc: String,
}

impl Spawned {
    /// Runs `oxinfer ARGS` with `env` added (and no inherited MLSERVER_* variables), and waits for its listeners.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Spawned {
        Spawned::run(Spawned::command(args, env))
    }

    /// The command [`Spawned::start`] runs, for a test to adjust (resource limits) before [`Spawned::run`].
    pub fn command(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_oxinfer"));
        command
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("MLSERVER_")) {
            command.env_remove(key);
        }
        // Metrics on a free port unless the test says otherwise (8082 may be taken by a parallel test).
        command.env("MLSERVER_METRICS_PORT", "0");
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// Starts `command` (made by [`Spawned::command`]) and waits for its listeners.
    pub fn run(mut command: std::process::Command) -> Spawned {
        use std::io::{BufRead, BufReader};
        let mut child = command.spawn().expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                for (kind, marker) in [
                    ("http", "HTTP server listening on "),
                    ("grpc", "gRPC server listening on "),
                ] {
                    if let Some(rest) = line.split(marker).nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send((kind, addr.to_string()));
                    }
                }
                eprintln!("[oxinfer] {line}");
            }
        });
        let mut spawned = Spawned {
            child,
            http: String::new(),
            grpc: String::new(),
        };
        while spawned.http.is_empty() || spawned.grpc.is_empty() {
            let (kind, addr) = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the binary logs its listening addresses");
            if kind == "http" {
                spawned.http = addr;
            } else {
                spawned.grpc = addr;
            }
        }
        spawned
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Polls GET /v2/health/ready until it answers 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(self.url("/v2/health/ready")).await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns true (60 s at most).
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
