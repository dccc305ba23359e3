//! The command line: `oxinfer start [FOLDER]` with flags named after MLServer's settings, and `oxinfer openapi`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

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
    Start(StartArgs),
    /// Print the OpenAPI document of the REST API (the text of openapi/dataplane.json) and exit.
    Openapi,
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
    /// REST port; 0 picks a free port [env: MLSERVER_HTTP_PORT] [default: 8080].
    #[arg(long)]
    pub http_port: Option<u16>,
    /// gRPC port [env: MLSERVER_GRPC_PORT] [default: 8081].
    #[arg(long)]
    pub grpc_port: Option<u16>,
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
    /// The ONNX Runtime 1.31.1 library (libonnxruntime.so). Else: ORT_DYLIB_PATH, next to the binary,
    /// then the copy provisioned by scripts/provision-ort.sh.
    #[arg(long)]
    pub onnxruntime_lib: Option<PathBuf>,
}

impl StartArgs {
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
            Some(Value::from(self.folder.to_string_lossy().into_owned())),
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
        let mut layers = Layers::read(&self.folder, std::env::vars())?;
        layers.flags = self.flag_layer();
        let mut warnings = std::mem::take(&mut layers.warnings);
        let settings = layers.resolve()?;
        if !self.folder.is_dir() {
            if settings.load_models_at_startup {
                return Err(ConfigError(format!(
                    "model repository folder {} does not exist",
                    self.folder.display()
                )));
            }
            warnings.push(format!(
                "model repository folder {} does not exist yet",
                self.folder.display()
            ));
        }
        Ok((settings, warnings))
    }
}

fn init_logging(settings: &Settings) {
    let default = if settings.debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},ort=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.use_structured_logging {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Start(args) => start(args),
        Command::Openapi => {
            print!("{}", crate::http::openapi::dataplane_json());
            ExitCode::SUCCESS
        }
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
        tracing::info!("shutting down");
        server.shutdown(Duration::from_secs(30)).await;
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
