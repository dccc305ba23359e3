//! One way to start a server for a test, from the same [`Settings`]: in process on port 0 ([`TestServer`], which
//! waits until start-up loading is over, or [`spawn_server`], on its own thread for the rest of the process), or
//! the real binary as a child process ([`Spawned`], its addresses read from its log; [`oxinfer`] for one-shot
//! commands).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use oxinfer::config::Settings;
use oxinfer::server::RunningServer;

use super::fixtures::bundled_repository;

/// Settings for a test server on 127.0.0.1 with free ports, serving `root`.
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

/// Starts the server in this process (ONNX Runtime first); the only place the tests call the library's start.
async fn start_in_process(settings: Settings) -> RunningServer {
    oxinfer::runtime::init(None).expect("ONNX Runtime (run scripts/provision-ort.sh)");
    oxinfer::server::start(settings)
        .await
        .expect("server starts")
}

/// Whether the repository's start-up loading is over (every model loaded or failed).
fn startup_finished(server: &RunningServer) -> bool {
    server.service.startup_finished()
}

/// A server in the test's own runtime, stopped when the test ends.
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
        let server = start_in_process(settings).await;
        let base = format!("http://{}", server.http_addr);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !startup_finished(&server) {
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
}

/// Where a server started by [`spawn_server`] listens.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
}

impl Addrs {
    pub fn rest_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }
}

/// Starts a server on its own thread and runtime (so it outlives each test's runtime); it runs until the
/// test process exits. It does not wait for the models: clients poll readiness ([`super::grpc::ready_client`]).
pub fn spawn_server(settings: Settings) -> Addrs {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async move {
            let server = start_in_process(settings).await;
            tx.send(Addrs {
                http: server.http_addr,
                grpc: server.grpc_addr,
            })
            .expect("the test is waiting");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("the server thread reports its addresses")
}

/// A server on the bundled repository shared by the tests of one test binary (started by the first to ask).
pub fn shared() -> Addrs {
    static SERVER: OnceLock<Addrs> = OnceLock::new();
    *SERVER.get_or_init(|| spawn_server(test_settings(&bundled_repository())))
}

/// The real binary, as a command to adjust and run (one-shot commands: `--version`, `model-settings`...).
pub fn oxinfer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oxinfer"))
}

/// The real binary, started as a child process with its listening addresses read from its log; killed on drop.
pub struct Spawned {
    pub child: Child,
    /// `host:port` of the REST listener.
    pub http: String,
    /// `host:port` of the gRPC listener.
    pub grpc: String,
    /// `host:port` of the metrics listener, when it was waited for ([`Spawned::run_with_metrics`]).
    pub metrics: Option<String>,
    /// The stderr lines read while waiting for the listeners.
    pub startup: Vec<String>,
    /// Every later stderr line, as it comes.
    pub lines: mpsc::Receiver<String>,
    /// Every line read so far, for [`Spawned::lines_with`].
    seen: Mutex<Vec<String>>,
}

impl Spawned {
    /// Runs `oxinfer ARGS` with `env` added (and no inherited MLSERVER_* variables), and waits for its listeners.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Spawned {
        Spawned::run(Spawned::command(args, env))
    }

    /// The command [`Spawned::start`] runs, for a test to adjust (resource limits) before [`Spawned::run`].
    pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = oxinfer();
        command
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
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

    /// Starts `command` (made by [`Spawned::command`]) and waits for its REST and gRPC listeners.
    pub fn run(command: Command) -> Spawned {
        Spawned::run_until(command, false)
    }

    /// [`Spawned::run`], also waiting for the metrics listener.
    pub fn run_with_metrics(command: Command) -> Spawned {
        Spawned::run_until(command, true)
    }

    fn run_until(mut command: Command, metrics: bool) -> Spawned {
        let mut child = command.spawn().expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[oxinfer] {line}");
                let _ = tx.send(line);
            }
        });
        // The address after `marker` (plain or JSON log lines alike).
        let addr_after = |line: &str, marker: &str| -> Option<String> {
            let rest = line.split(marker).nth(1)?;
            let addr: String = rest
                .chars()
                .take_while(|c| c.is_ascii_hexdigit() || ".:[]".contains(*c))
                .collect();
            (!addr.is_empty()).then_some(addr)
        };
        let (mut http, mut grpc, mut metrics_addr) = (None, None, None);
        let mut startup = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.is_none() || grpc.is_none() || (metrics && metrics_addr.is_none()) {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the binary logs its listening addresses");
            http = http.or_else(|| addr_after(&line, "HTTP server listening on "));
            grpc = grpc.or_else(|| addr_after(&line, "gRPC server listening on "));
            metrics_addr =
                metrics_addr.or_else(|| addr_after(&line, "Metrics server listening on "));
            startup.push(line);
        }
        Spawned {
            child,
            http: http.unwrap(),
            grpc: grpc.unwrap(),
            metrics: metrics_addr,
            seen: Mutex::new(startup.clone()),
            startup,
            lines,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Every stderr line so far (from the start) containing `needle` (reads what [`Spawned::lines`] holds).
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        let mut seen = self.seen.lock().unwrap();
        seen.extend(self.lines.try_iter());
        seen.iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
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

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the process exits (60 s at most).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
