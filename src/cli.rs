//! The command line: `oxinfer start [FOLDER]` with flags named after MLServer's settings, KServe's
//! `--model_name`, `--model_dir`, `--http_port`, `--grpc_port` (with or without `start`), `oxinfer health`,
//! `oxinfer openapi` and `oxinfer model-settings` ([`crate::model_settings_cmd`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

use crate::config::model_settings::ModelSettings;
use crate::config::{ConfigError, Layers, Settings};

/// oxinfer: an Open Inference Protocol (KServe V2) server for ONNX models, a drop-in for Seldon MLServer.
#[derive(Debug, Parser)]
#[command(name = "oxinfer", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the models of a model repository (MLServer layout: settings.json + **/model-settings.json).
    Start(Box<StartArgs>),
    /// Ask a running server whether it is ready (GET /v2/health/ready): exit 0 if ready, 1 if not.
    /// For container HEALTHCHECKs in images without a shell or curl.
    Health(HealthArgs),
    /// Print the OpenAPI document of the REST API (the text of openapi/dataplane.json) and exit.
    Openapi,
    /// Write the model-settings.json to upload beside an ONNX file (Seldon Core v2 cannot make one for
    /// `requirements: [onnx]`): name, implementation, parameters.uri, inputs and outputs read from the model.
    ModelSettings(crate::model_settings_cmd::ModelSettingsArgs),
}

/// Where the server to check listens.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Host of the server.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// REST port of the server.
    #[arg(long, env = "MLSERVER_HTTP_PORT", default_value_t = 8080)]
    pub http_port: u16,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

/// Flags override `MLSERVER_*` environment variables, which override FOLDER/settings.json.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Model repository folder: its settings.json is read and it is searched for **/model-settings.json
    /// (Seldon Core sets MLSERVER_MODELS_DIR).
    #[arg(env = "MLSERVER_MODELS_DIR", default_value = "model-repository")]
    pub folder: PathBuf,
    /// Address to listen on [env: MLSERVER_HOST] [default: 0.0.0.0].
    #[arg(long)]
    pub host: Option<String>,
    /// REST port; 0 picks a free port (also spelt --http_port, as KServe passes it) [env: MLSERVER_HTTP_PORT]
    /// [default: 8080].
    #[arg(long, alias = "http_port")]
    pub http_port: Option<u16>,
    /// gRPC port (also --grpc_port) [env: MLSERVER_GRPC_PORT] [default: 8081].
    #[arg(long, alias = "grpc_port")]
    pub grpc_port: Option<u16>,
    /// The model folder, in place of FOLDER (KServe's --model_dir) [default: FOLDER].
    #[arg(long, alias = "model_dir", value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// Name of the model served from a folder without model-settings.json (KServe's --model_name; also names a
    /// model-settings.json without `name` at the folder's top) [env: MLSERVER_MODEL_NAME] [default: the
    /// folder's name].
    #[arg(long, alias = "model_name", value_name = "NAME")]
    pub model_name: Option<String>,
    /// Server name reported by GET /v2 [env: MLSERVER_SERVER_NAME] [default: oxinfer].
    #[arg(long)]
    pub server_name: Option<String>,
    /// Server version reported by GET /v2 [env: MLSERVER_SERVER_VERSION] [default: this version].
    #[arg(long)]
    pub server_version: Option<String>,
    /// Load every model at start-up: true or false [env: MLSERVER_LOAD_MODELS_AT_STARTUP] [default: true].
    #[arg(long)]
    pub load_models_at_startup: Option<bool>,
    /// Instances (threads, one ONNX Runtime session each) per model unless its settings say otherwise
    /// [env: MLSERVER_PARALLEL_WORKERS] [default: 1].
    #[arg(long)]
    pub parallel_workers: Option<usize>,
    /// Requests that may wait in a model's queue before new ones are refused with 429
    /// [env: MLSERVER_MODEL_QUEUE_SIZE] [default: 1024].
    #[arg(long)]
    pub model_queue_size: Option<usize>,
    /// Debug logging [env: MLSERVER_DEBUG].
    #[arg(long)]
    pub debug: bool,
    /// Log JSON lines instead of text [env: MLSERVER_USE_STRUCTURED_LOGGING].
    #[arg(long)]
    pub use_structured_logging: bool,
    /// Port of the Prometheus metrics listener; 0 picks a free port [env: MLSERVER_METRICS_PORT] [default: 8082].
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// Path of the Prometheus endpoint; `null` disables metrics [env: MLSERVER_METRICS_ENDPOINT]
    /// [default: /metrics].
    #[arg(long)]
    pub metrics_endpoint: Option<String>,
    /// Also serve the REST routes under this prefix (behind a proxy) [env: MLSERVER_ROOT_PATH].
    #[arg(long)]
    pub root_path: Option<String>,
    /// Compress responses (gzip, deflate) for clients that accept it and accept compressed request bodies:
    /// true or false [env: MLSERVER_GZIP_ENABLED] [default: true].
    #[arg(long)]
    pub gzip_enabled: Option<bool>,
    /// Largest request body in bytes, after decompression; larger ones get 413
    /// [env: MLSERVER_MAX_REQUEST_BODY_SIZE] [default: 67108864 (64 MiB)].
    #[arg(long)]
    pub max_request_body_size: Option<usize>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT
    /// [env: MLSERVER_GRACEFUL_SHUTDOWN_TIMEOUT] [default: 30].
    #[arg(long)]
    pub graceful_shutdown_timeout: Option<f64>,
    /// Export OpenTelemetry traces of inference requests to this OTLP/gRPC collector, host:port, without TLS
    /// (MLServer's setting) [env: MLSERVER_TRACING_SERVER] [default: none, no tracing].
    #[arg(long)]
    pub tracing_server: Option<String>,
    /// The ONNX Runtime 1.31.1 library (libonnxruntime.so). Else: ORT_DYLIB_PATH, next to the binary,
    /// then the copy provisioned by scripts/provision-ort.sh.
    #[arg(long)]
    pub onnxruntime_lib: Option<PathBuf>,
}

impl StartArgs {
    /// The model repository folder: --model_dir, else FOLDER.
    pub fn folder(&self) -> &Path {
        self.model_dir.as_deref().unwrap_or(&self.folder)
    }

    /// The flags that were given, as a settings layer.
    fn flag_layer(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                map.insert(key.to_string(), v);
            }
        };
        put(
            "model_repository_root",
            Some(Value::from(self.folder().to_string_lossy().into_owned())),
        );
        put("host", self.host.clone().map(Value::from));
        put("http_port", self.http_port.map(Value::from));
        put("grpc_port", self.grpc_port.map(Value::from));
        put("server_name", self.server_name.clone().map(Value::from));
        put(
            "server_version",
            self.server_version.clone().map(Value::from),
        );
        put(
            "load_models_at_startup",
            self.load_models_at_startup.map(Value::from),
        );
        put("parallel_workers", self.parallel_workers.map(Value::from));
        put("model_queue_size", self.model_queue_size.map(Value::from));
        put("debug", self.debug.then_some(Value::Bool(true)));
        put(
            "use_structured_logging",
            self.use_structured_logging.then_some(Value::Bool(true)),
        );
        put("metrics_port", self.metrics_port.map(Value::from));
        put(
            "metrics_endpoint",
            self.metrics_endpoint.as_deref().map(|e| match e.trim() {
                "" | "null" | "none" | "None" => Value::Null,
                path => Value::from(path),
            }),
        );
        put("root_path", self.root_path.clone().map(Value::from));
        put("gzip_enabled", self.gzip_enabled.map(Value::from));
        put(
            "max_request_body_size",
            self.max_request_body_size.map(Value::from),
        );
        put(
            "graceful_shutdown_timeout",
            self.graceful_shutdown_timeout.map(Value::from),
        );
        put(
            "tracing_server",
            self.tracing_server.clone().map(Value::from),
        );
        put(
            "onnxruntime_lib",
            self.onnxruntime_lib
                .as_ref()
                .map(|p| Value::from(p.to_string_lossy().into_owned())),
        );
        map
    }

    /// Resolves the settings: flags > env > FOLDER/settings.json > defaults.
    /// A missing folder is an error unless models are loaded later through the repository API (Seldon's agent
    /// creates the folder after the server starts).
    pub fn settings(&self) -> Result<(Settings, Vec<String>), ConfigError> {
        let folder = self.folder();
        let mut layers = Layers::read(folder, std::env::vars())?;
        layers.flags = self.flag_layer();
        let mut warnings = std::mem::take(&mut layers.warnings);
        let mut settings = layers.resolve()?;
        settings.default_model = self.default_model(std::env::vars())?;
        if let Some(model) = &settings.default_model {
            warnings.extend(model.parameters.extra.unknown_keys().map(|key| {
                format!("MLSERVER_MODEL_EXTRA: option '{key}' is not read by oxinfer (kept)")
            }));
        }
        if !folder.is_dir() {
            if settings.load_models_at_startup {
                return Err(ConfigError(format!(
                    "model repository folder {} does not exist",
                    folder.display()
                )));
            }
            warnings.push(format!(
                "model repository folder {} does not exist yet",
                folder.display()
            ));
        }
        Ok((settings, warnings))
    }

    /// The model of a folder without model-settings.json: `MLSERVER_MODEL_*` variables, named by --model_name.
    fn default_model(
        &self,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Option<ModelSettings>, ConfigError> {
        let mut model = ModelSettings::from_env(env).map_err(ConfigError)?;
        if let Some(name) = self.model_name.as_ref().filter(|n| !n.is_empty()) {
            model.get_or_insert_with(ModelSettings::default).name = Some(name.clone());
        }
        Ok(model)
    }
}

fn init_logging(settings: &Settings) {
    use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};
    let default = if settings.debug { "debug" } else { "info" };
    // RUST_LOG takes `level` and `target=level` directives (tracing-subscriber's `Targets`: no regex engine).
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            let directives = format!("{default},ort=warn");
            directives.parse().expect("valid static directives")
        });
    // Colour codes only for a terminal: container logs are files, and colouring each span costs on every request.
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let registry = tracing_subscriber::registry().with(filter);
    if settings.use_structured_logging {
        registry.with(layer.json()).init();
    } else {
        registry.with(layer).init();
    }
}

/// KServe appends its arguments to the image's entrypoint (`oxinfer --model_name=x --model_dir=/mnt/models`):
/// arguments that begin with a flag other than --help/--version mean `start`.
pub fn with_default_command(mut args: Vec<OsString>) -> Vec<OsString> {
    let first = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let global = ["-h", "--help", "-V", "--version"];
    if first.starts_with('-') && !global.contains(&first) {
        args.insert(1, OsString::from("start"));
    }
    args
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse_from(with_default_command(std::env::args_os().collect()));
    match cli.command {
        Command::Start(args) => start(*args),
        Command::Health(args) => health(&args),
        Command::Openapi => {
            print!("{}", crate::http::openapi::dataplane_json());
            ExitCode::SUCCESS
        }
        Command::ModelSettings(args) => crate::model_settings_cmd::run(&args),
    }
}

fn start(args: StartArgs) -> ExitCode {
    let (settings, warnings) = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    // Before any thread starts: the runtime's, ONNX Runtime's and the model threads inherit it.
    crate::sched::mark_batch();
    if let Err(e) = crate::runtime::init(settings.onnxruntime_lib.as_deref()) {
        tracing::error!("{e}");
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let server = match crate::server::start(settings).await {
            Ok(server) => server,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        wait_for_signal().await;
        let grace = crate::config::duration(server.service.settings().graceful_shutdown_timeout);
        tracing::info!(
            "shutting down: no new connections; waiting up to {grace:?} for in-flight requests"
        );
        if server.shutdown(grace).await {
            tracing::info!("all in-flight requests finished; exiting");
        }
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `oxinfer health`: a tiny HTTP/1.1 GET of `/v2/health/ready`; 0 when it answers 200, 1 otherwise.
fn health(args: &HealthArgs) -> ExitCode {
    match crate::healthcheck::ready(
        &args.host,
        args.http_port,
        crate::config::duration(args.timeout).max(Duration::from_millis(1)),
    ) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("not ready");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> StartArgs {
        let args = with_default_command(args.iter().map(OsString::from).collect());
        #[allow(unreachable_patterns)]
        match Cli::try_parse_from(args).unwrap().command {
            Command::Start(start) => *start,
            other => panic!("not start: {other:?}"),
        }
    }

    #[test]
    fn start_flags_are_settings_with_their_variable_and_default() {
        let command = <StartArgs as clap::Args>::augment_args(clap::Command::new("start"));
        let mut checked = 0;
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if ["folder", "model_dir", "model_name"].contains(&id) {
                continue; // not settings: the folder, and the model served without model-settings.json
            }
            assert!(
                crate::config::setting_names().contains(&id),
                "--{id} is no setting"
            );
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
            if let Some((_, rest)) = help.split_once("[env: ") {
                let env = rest.split(']').next().unwrap();
                assert_eq!(
                    env,
                    format!("MLSERVER_{}", id.to_ascii_uppercase()),
                    "--{id}"
                );
            }
            let Some((_, rest)) = help.split_once("[default: ") else {
                continue;
            };
            let shown = rest.split(']').next().unwrap();
            let shown = shown.split(" (").next().unwrap();
            if shown.contains(' ') {
                continue; // prose: "this version"
            }
            let value = serde_json::from_str::<Value>(shown)
                .unwrap_or_else(|_| Value::String(shown.to_string()));
            let given: Settings = serde_json::from_value(serde_json::json!({ id: value })).unwrap();
            assert_eq!(
                given,
                Settings::default(),
                "--{id} help says [default: {shown}]"
            );
            checked += 1;
        }
        assert!(checked > 5, "{checked} defaults checked");
    }

    #[test]
    fn kserve_arguments_work_without_the_subcommand() {
        let args = parse(&[
            "oxinfer",
            "--model_name=iris",
            "--model_dir=/mnt/models",
            "--http_port=8080",
            "--grpc_port",
            "9000",
        ]);
        assert_eq!(args.folder(), Path::new("/mnt/models"));
        assert_eq!(args.model_name.as_deref(), Some("iris"));
        assert_eq!((args.http_port, args.grpc_port), (Some(8080), Some(9000)));
        let layer = args.flag_layer();
        assert_eq!(layer["model_repository_root"], "/mnt/models");
        assert_eq!(layer["http_port"], 8080);
    }

    #[test]
    fn start_takes_both_spellings_and_model_dir_beats_folder() {
        let args = parse(&[
            "oxinfer",
            "start",
            "/data",
            "--model-dir",
            "/mnt/models",
            "--http-port=1",
        ]);
        assert_eq!(args.folder(), Path::new("/mnt/models"));
        assert_eq!(args.http_port, Some(1));
        assert_eq!(
            parse(&["oxinfer", "start", "/data"]).folder(),
            Path::new("/data")
        );
        let help = with_default_command(vec!["oxinfer".into(), "--help".into()]);
        assert_eq!(help.len(), 2);
    }

    #[test]
    fn model_name_names_the_env_model() {
        let env = || {
            [
                ("MLSERVER_MODEL_NAME", "from-env"),
                ("MLSERVER_MODEL_PARALLEL_WORKERS", "2"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
        };
        let model = parse(&["oxinfer", "--model_name=flag"])
            .default_model(env())
            .unwrap()
            .unwrap();
        assert_eq!(model.name.as_deref(), Some("flag"));
        assert_eq!(model.parallel_workers, Some(2));
        let model = parse(&["oxinfer", "start"])
            .default_model(env())
            .unwrap()
            .unwrap();
        assert_eq!(model.name.as_deref(), Some("from-env"));
        assert_eq!(
            parse(&["oxinfer", "start"])
                .default_model(std::iter::empty())
                .unwrap(),
            None
        );
    }
}
