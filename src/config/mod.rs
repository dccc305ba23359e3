//! Server settings with MLServer's names and defaults: settings.json < `MLSERVER_*` env < CLI flags.

#[cfg(test)]
mod docs_table;
mod fields;
pub mod model_extra;
pub mod model_settings;
pub mod providers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::tensor::limits::Limits;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The server's settings (MLServer's `Settings`, minus what only a Python server needs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Debug logging.
    pub debug: bool,
    /// Default number of instances per model (MLServer's inference worker processes; here: threads with a session each).
    pub parallel_workers: usize,
    /// Root folder searched for `**/model-settings.json`.
    pub model_repository_root: PathBuf,
    /// Load every model found at start-up (Seldon Core sets it to false and loads through the repository API).
    pub load_models_at_startup: bool,
    /// Name returned by `GET /v2`.
    #[serde(deserialize_with = "lenient_string")]
    pub server_name: String,
    /// Version returned by `GET /v2`.
    #[serde(deserialize_with = "lenient_string")]
    pub server_version: String,
    /// Extra protocol extensions to advertise in `GET /v2`.
    pub extensions: Vec<String>,
    /// Address to listen on.
    #[serde(deserialize_with = "lenient_string")]
    pub host: String,
    /// HTTP (REST) port; 0 picks a free one.
    pub http_port: u16,
    /// gRPC port; 0 picks a free one.
    pub grpc_port: u16,
    /// Largest gRPC message, in bytes.
    pub grpc_max_message_length: Option<usize>,
    /// Prefix under which the REST routes are served (behind a proxy).
    #[serde(deserialize_with = "lenient_string")]
    pub root_path: String,
    /// CORS settings (MLServer's fields); absent = no CORS headers at all, as MLServer.
    pub cors_settings: Option<CorsSettings>,
    /// Path of the Prometheus endpoint; null disables metrics.
    pub metrics_endpoint: Option<String>,
    /// Port of the metrics listener.
    pub metrics_port: u16,
    /// Prefix of the REST metrics (`rest_server_requests_total`, ...), as MLServer.
    #[serde(deserialize_with = "lenient_string")]
    pub metrics_rest_server_prefix: String,
    /// Gzip (and deflate) responses when the client accepts them, and accept compressed request bodies.
    pub gzip_enabled: bool,
    /// Largest request body, in bytes (after decompression); larger ones get 413.
    pub max_request_body_size: usize,
    /// Seconds that in-flight requests get to finish after SIGTERM before the server stops anyway.
    pub graceful_shutdown_timeout: f64,
    /// JSON log lines instead of text.
    pub use_structured_logging: bool,
    /// Requests that may wait in each model's queue before new ones get 429.
    pub model_queue_size: usize,
    /// Path of the ONNX Runtime library (`--onnxruntime-lib`).
    pub onnxruntime_lib: Option<PathBuf>,
    // ---- Limits against hostile traffic (docs/security.md). Every byte from the network is untrusted. ----
    /// Server-wide budget of request body bytes and decoded tensor bytes held at once; a request that would go
    /// over it is refused (503) instead of growing memory. `None`: a quarter of the memory available to the
    /// process (cgroup limit or physical memory), at least 256 MiB.
    pub max_bytes_in_flight: Option<usize>,
    /// Most inputs, and most requested outputs, in one inference request.
    pub max_tensors_per_request: usize,
    /// Most elements in one tensor (the product of its shape).
    pub max_tensor_elements: usize,
    /// Most BYTES (string) elements in one request, over all its inputs (each costs far more memory than its
    /// 4-byte length prefix on the wire).
    pub max_bytes_elements: usize,
    /// Largest rank (number of dimensions) of a tensor's shape.
    pub max_shape_rank: usize,
    /// Largest image the image content type decodes or resizes to, in pixels (width x height), declared or
    /// requested.
    pub max_image_pixels: u64,
    /// Seconds a client has to send a request's headers once it has connected or started the next request.
    pub http_header_read_timeout: f64,
    /// Seconds an idle keep-alive connection (REST) is kept open; 0 keeps it until the client closes it.
    pub http_keep_alive_timeout: f64,
    /// Most open client connections per listener (REST and gRPC each); `None`: from the process's open-file
    /// limit.
    pub max_connections: Option<usize>,
    /// Most concurrent HTTP/2 streams one connection may open (gRPC, and REST over h2c).
    pub http2_max_concurrent_streams: u32,
    /// Seconds between HTTP/2 keep-alive pings on gRPC connections; 0 disables them.
    pub grpc_keepalive_time: f64,
    /// Seconds a keep-alive ping may go unanswered before the connection is closed.
    pub grpc_keepalive_timeout: f64,
    /// When gRPC inference answers put outputs in `raw_output_contents` rather than typed `contents`.
    pub grpc_raw_outputs: RawOutputs,
    /// Serve the model repository API (index, load, unload) over REST and gRPC.
    pub repository_api_enabled: bool,
    /// Bearer token the repository API's callers must send (`Authorization: Bearer ...`, or gRPC metadata
    /// `authorization`); `None`: no token. Filled from `repository_api_token_file` at start; never printed.
    pub repository_api_token: Option<Secret>,
    /// File holding the repository API token (a mounted Kubernetes secret); read at start, trimmed.
    pub repository_api_token_file: Option<PathBuf>,
    /// Folders outside the model repository from which model files may be loaded (a model-settings.json
    /// `parameters.uri` pointing elsewhere is refused).
    pub extra_model_roots: Vec<PathBuf>,
    /// OTLP collector that inference traces are exported to over gRPC without TLS, `host:port` (MLServer's
    /// `tracing_server`; Seldon Core sets it); `None` or empty: no tracing at all (src/telemetry.rs).
    #[serde(deserialize_with = "optional_lenient_string")]
    pub tracing_server: Option<String>,
    /// The model built from `MLSERVER_MODEL_*` variables and `--model_name` (KServe's conventions), served when
    /// the repository has no model-settings.json. Not a settings.json key: the CLI fills it.
    #[serde(skip)]
    pub default_model: Option<crate::config::model_settings::ModelSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            debug: false,
            parallel_workers: 1,
            model_repository_root: PathBuf::from("."),
            load_models_at_startup: true,
            server_name: "oxinfer".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            extensions: Vec::new(),
            host: "0.0.0.0".into(),
            http_port: 8080,
            grpc_port: 8081,
            grpc_max_message_length: None,
            root_path: String::new(),
            cors_settings: None,
            metrics_endpoint: Some("/metrics".into()),
            metrics_port: 8082,
            metrics_rest_server_prefix: "rest_server".into(),
            gzip_enabled: true,
            max_request_body_size: 64 * 1024 * 1024,
            graceful_shutdown_timeout: 30.0,
            use_structured_logging: false,
            model_queue_size: 1024,
            onnxruntime_lib: None,
            max_bytes_in_flight: None,
            max_tensors_per_request: 1024,
            max_tensor_elements: 1 << 26,
            max_bytes_elements: 1 << 20,
            max_shape_rank: 16,
            max_image_pixels: 1 << 26,
            http_header_read_timeout: 30.0,
            http_keep_alive_timeout: 75.0,
            max_connections: None,
            http2_max_concurrent_streams: 256,
            grpc_keepalive_time: 60.0,
            grpc_keepalive_timeout: 20.0,
            grpc_raw_outputs: RawOutputs::Auto,
            repository_api_enabled: true,
            repository_api_token: None,
            repository_api_token_file: None,
            extra_model_roots: Vec::new(),
            tracing_server: None,
            default_model: None,
        }
    }
}

/// How gRPC `ModelInfer` answers carry output tensors (`grpc_raw_outputs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawOutputs {
    /// As MLServer: raw when the request came raw (as tritonclient sends it), typed `contents` otherwise
    /// (FP16/BF16 outputs, which have no typed field, always raw).
    Auto,
    /// As Triton: always `raw_output_contents`, also for requests sent with typed `contents` (what Triton's
    /// `grpc_explicit_*_content_client.py` examples read).
    Always,
}

/// MLServer's `cors_settings` (Starlette's CORSMiddleware options), with MLServer's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct CorsSettings {
    /// Origins allowed to make cross-origin requests; `["*"]` allows any.
    #[serde(deserialize_with = "null_is_default")]
    pub allow_origins: Vec<String>,
    /// A regular expression an origin must match in full to be allowed (in addition to `allow_origins`).
    pub allow_origin_regex: Option<String>,
    /// Allow cookies and credentials on cross-origin requests.
    #[serde(deserialize_with = "null_is_default")]
    pub allow_credentials: bool,
    /// Methods allowed on cross-origin requests; `["*"]` allows any.
    #[serde(deserialize_with = "null_is_default")]
    pub allow_methods: Vec<String>,
    /// Request headers allowed on cross-origin requests; `["*"]` allows any.
    #[serde(deserialize_with = "null_is_default")]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may read.
    #[serde(deserialize_with = "null_is_default")]
    pub expose_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer.
    pub max_age: Option<u64>,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings {
            allow_origins: Vec::new(),
            allow_origin_regex: None,
            allow_credentials: false,
            allow_methods: vec!["GET".into()],
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            max_age: Some(600),
        }
    }
}

impl CorsSettings {
    /// Checks what serde cannot: origins, methods and headers are valid HTTP values, the regex compiles.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str, value: &str| {
            ConfigError(format!("invalid setting cors_settings.{what}: {value:?}"))
        };
        for origin in &self.allow_origins {
            axum::http::HeaderValue::from_str(origin).map_err(|_| bad("allow_origins", origin))?;
        }
        for method in self.allow_methods.iter().filter(|m| *m != "*") {
            axum::http::Method::from_bytes(method.as_bytes())
                .map_err(|_| bad("allow_methods", method))?;
        }
        for header in self
            .allow_headers
            .iter()
            .chain(&self.expose_headers)
            .filter(|h| *h != "*")
        {
            axum::http::HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| bad("allow_headers/expose_headers", header))?;
        }
        if let Some(regex) = &self.allow_origin_regex {
            regex_lite::Regex::new(regex).map_err(|e| {
                ConfigError(format!(
                    "invalid setting cors_settings.allow_origin_regex {regex:?}: {e}"
                ))
            })?;
        }
        Ok(())
    }
}

/// Setting names oxinfer reads: the fields of [`Settings`] as serde reads them (settings.json keys, and the
/// `MLSERVER_<NAME>` variables), so the list cannot drift from the struct.
pub fn setting_names() -> &'static [&'static str] {
    static KNOWN: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KNOWN.get_or_init(fields::serde_fields::<Settings>)
}

/// MLServer settings that have no meaning here (Python-specific); accepted silently.
const IGNORED: &[&str] = &[
    "environments_dir",
    "parallel_workers_timeout",
    "model_repository_implementation",
    "model_repository_implementation_args",
    "metrics_dir",
    "logging_settings",
    "kafka_enabled",
    "kafka_servers",
    "kafka_topic_input",
    "kafka_topic_output",
    "cache_enabled",
    "cache_size",
];

/// A settings problem that stops the server from starting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The settings layers, lowest first; each is a JSON object of setting name -> value.
pub struct Layers {
    pub file: Map<String, Value>,
    pub env: Map<String, Value>,
    pub flags: Map<String, Value>,
    /// Problems worth a warning (unknown settings), logged once logging is set up.
    pub warnings: Vec<String>,
}

impl Layers {
    /// Reads `folder/settings.json` (if present) and `MLSERVER_*` from `env`.
    pub fn read(
        folder: &Path,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Layers, ConfigError> {
        let path = folder.join("settings.json");
        let file = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(ConfigError(format!(
                        "{} must hold a JSON object",
                        path.display()
                    )))
                }
                Err(e) => {
                    return Err(ConfigError(format!(
                        "{} is not valid JSON: {e}",
                        path.display()
                    )))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(ConfigError(format!("cannot read {}: {e}", path.display()))),
        };
        let warnings = file
            .keys()
            .filter(|key| {
                !setting_names().contains(&key.as_str()) && !IGNORED.contains(&key.as_str())
            })
            .map(|key| format!("{}: unknown setting '{key}' ignored", path.display()))
            .collect();
        Ok(Layers {
            file,
            env: env_layer(env),
            flags: Map::new(),
            warnings,
        })
    }

    /// Merges the layers (flags > env > file > defaults) into validated settings.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
        let mut merged = Map::new();
        for layer in [self.file, self.env, self.flags] {
            for (key, value) in layer {
                if setting_names().contains(&key.as_str()) {
                    merged.insert(key, value);
                }
            }
        }
        for (key, value) in &merged {
            let mut single = Map::new();
            single.insert(key.clone(), value.clone());
            if let Err(e) = serde_json::from_value::<Settings>(Value::Object(single)) {
                if key == "repository_api_token" {
                    return Err(ConfigError(format!("invalid setting {key}: {e}")));
                }
                return Err(ConfigError(format!("invalid setting {key} = {value}: {e}")));
            }
        }
        let mut settings: Settings = serde_json::from_value(Value::Object(merged))
            .map_err(|e| ConfigError(format!("invalid setting: {e}")))?;
        validate(&settings)?;
        settings.repository_api_token = read_token(&settings)?;
        Ok(settings)
    }
}

/// A secret setting (the repository API token): compared and used, never printed (`Debug` shows
/// `[redacted]`), so settings can be logged and errors formatted without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret itself, for comparing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        // An env value of digits reads as a number: take it as text, as other string settings do. The error
        // does not quote the value.
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(Secret(s)),
            Value::Number(n) => Ok(Secret(n.to_string())),
            _ => Err(serde::de::Error::custom("expected a string")),
        }
    }
}

/// Longest duration setting, in seconds (a day): far below where `Duration` or `Instant` arithmetic could
/// overflow.
pub const MAX_DURATION_SECONDS: f64 = 86_400.0;
/// Most instances per model (threads with an ONNX Runtime session each).
pub const MAX_PARALLEL_WORKERS: usize = 256;
/// Largest per-model queue (its slots are allocated when the model loads).
pub const MAX_MODEL_QUEUE_SIZE: usize = 1 << 20;
/// Largest request body or message size setting: 16 GiB.
pub const MAX_SIZE_BYTES: usize = 1 << 34;
/// Most inputs or outputs per request.
pub const MAX_TENSORS_PER_REQUEST: usize = 1 << 20;
/// Largest tensor rank setting.
pub const MAX_SHAPE_RANK: usize = 64;
/// Most connections per listener.
pub const MAX_CONNECTIONS: usize = 1 << 20;

/// `seconds` as a `Duration`, never panicking: clamped to 0..=[`MAX_DURATION_SECONDS`] (NaN is 0). Settings
/// are validated at start; this is the belt to those braces wherever a setting becomes a duration.
pub fn duration(seconds: f64) -> Duration {
    let seconds = if seconds.is_nan() {
        0.0
    } else {
        seconds.clamp(0.0, MAX_DURATION_SECONDS)
    };
    Duration::try_from_secs_f64(seconds).unwrap_or_default()
}

/// Checks every number against its range, and the settings that exclude each other; the error names the
/// setting and the range.
pub fn validate(s: &Settings) -> Result<(), ConfigError> {
    let range = |name: &str, value: String, range: &str| {
        ConfigError(format!("setting {name} must be {range} (got {value})"))
    };
    let seconds = |name: &str, value: f64, zero_ok: bool| {
        let low_ok = if zero_ok { value >= 0.0 } else { value > 0.0 };
        if value.is_finite() && low_ok && value <= MAX_DURATION_SECONDS {
            return Ok(());
        }
        let low = if zero_ok { "from 0" } else { "more than 0 and" };
        Err(range(
            name,
            format!("{value:?}"),
            &format!("a number of seconds {low} up to {MAX_DURATION_SECONDS}"),
        ))
    };
    let count = |name: &str, value: usize, low: usize, high: usize| {
        if (low..=high).contains(&value) {
            return Ok(());
        }
        Err(range(
            name,
            value.to_string(),
            &format!("from {low} to {high}"),
        ))
    };
    seconds(
        "graceful_shutdown_timeout",
        s.graceful_shutdown_timeout,
        true,
    )?;
    seconds(
        "http_header_read_timeout",
        s.http_header_read_timeout,
        false,
    )?;
    seconds("http_keep_alive_timeout", s.http_keep_alive_timeout, true)?;
    seconds("grpc_keepalive_time", s.grpc_keepalive_time, true)?;
    seconds("grpc_keepalive_timeout", s.grpc_keepalive_timeout, false)?;
    count(
        "parallel_workers",
        s.parallel_workers,
        0,
        MAX_PARALLEL_WORKERS,
    )?;
    count(
        "model_queue_size",
        s.model_queue_size,
        1,
        MAX_MODEL_QUEUE_SIZE,
    )?;
    count(
        "max_request_body_size",
        s.max_request_body_size,
        1,
        MAX_SIZE_BYTES,
    )?;
    if let Some(n) = s.grpc_max_message_length {
        count("grpc_max_message_length", n, 1, MAX_SIZE_BYTES)?;
    }
    if let Some(n) = s.max_bytes_in_flight {
        count("max_bytes_in_flight", n, 1, usize::MAX)?;
    }
    count(
        "max_tensors_per_request",
        s.max_tensors_per_request,
        1,
        MAX_TENSORS_PER_REQUEST,
    )?;
    count("max_tensor_elements", s.max_tensor_elements, 1, usize::MAX)?;
    count("max_bytes_elements", s.max_bytes_elements, 1, usize::MAX)?;
    count("max_shape_rank", s.max_shape_rank, 1, MAX_SHAPE_RANK)?;
    if s.max_image_pixels == 0 {
        return Err(range("max_image_pixels", "0".into(), "at least 1"));
    }
    if let Some(n) = s.max_connections {
        count("max_connections", n, 1, MAX_CONNECTIONS)?;
    }
    if s.http2_max_concurrent_streams == 0 {
        return Err(range(
            "http2_max_concurrent_streams",
            "0".into(),
            "at least 1",
        ));
    }
    if let Some(cors) = &s.cors_settings {
        cors.validate()?;
    }
    if let Some(endpoint) = &s.metrics_endpoint {
        if !endpoint.starts_with('/') {
            return Err(ConfigError(format!(
                "metrics_endpoint must start with '/' (got {endpoint:?})"
            )));
        }
    }
    if !s.root_path.is_empty() && !s.root_path.starts_with('/') {
        return Err(ConfigError(format!(
            "root_path must be empty or start with '/' (got {:?})",
            s.root_path
        )));
    }
    if s.repository_api_token.is_some() && s.repository_api_token_file.is_some() {
        return Err(ConfigError(
            "set repository_api_token or repository_api_token_file, not both".into(),
        ));
    }
    if s.repository_api_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        return Err(ConfigError(
            "setting repository_api_token must not be empty".into(),
        ));
    }
    if let Some(endpoint) = &s.tracing_server {
        tracing_endpoint_url(endpoint).map_err(ConfigError)?;
    }
    for folder in &s.extra_model_roots {
        if !folder.is_dir() {
            return Err(ConfigError(format!(
                "setting extra_model_roots: {} is not a folder",
                folder.display()
            )));
        }
    }
    Ok(())
}

/// The repository API token: `repository_api_token`, else the trimmed content of `repository_api_token_file`
/// (a mounted secret), which must not be empty.
fn read_token(s: &Settings) -> Result<Option<Secret>, ConfigError> {
    let Some(path) = &s.repository_api_token_file else {
        return Ok(s
            .repository_api_token
            .as_ref()
            .map(|t| Secret(t.expose().trim().to_string())));
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "setting repository_api_token_file: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ConfigError(format!(
            "setting repository_api_token_file: {} is empty",
            path.display()
        )));
    }
    Ok(Some(Secret(token.to_string())))
}

/// `MLSERVER_<NAME>` variables for the settings oxinfer knows; values are read as JSON when they parse, else as text.
fn env_layer(env: impl Iterator<Item = (String, String)>) -> Map<String, Value> {
    let mut map = Map::new();
    for (key, value) in env {
        let Some(name) = key.strip_prefix("MLSERVER_") else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if setting_names().contains(&name.as_str()) {
            map.insert(name, env_value(&value));
        }
    }
    map
}

/// An env value as JSON: `8080` -> number, `true` -> bool, `["a"]` -> array, anything else -> string.
pub fn env_value(value: &str) -> Value {
    serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
}

/// Reads `null` as the type's default (MLServer's optional CORS fields may be written as null).
fn null_is_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An optional string, lenient as [`lenient_string`]; null and the empty string are `None` (MLServer reads an
/// empty `tracing_server` as unset).
fn optional_lenient_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        value => lenient_string(value)
            .map(|s| Some(s).filter(|s| !s.is_empty()))
            .map_err(serde::de::Error::custom),
    }
}

/// Accepts a string, or a number/bool written where a string belongs (as env values often are).
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string, got {other}"
        ))),
    }
}

/// Checks a `tracing_server` value and returns the URL the exporter connects to: `host:port` or
/// `http://host:port` (a collector reached without TLS, as MLServer's `insecure=True` exporter does).
pub fn tracing_endpoint_url(value: &str) -> Result<String, String> {
    let bad = |why: &str| format!("setting tracing_server {value:?}: {why}");
    let rest = match value.split_once("://") {
        None => value,
        Some(("http" | "grpc", rest)) => rest,
        Some(("https", _)) => {
            return Err(bad(
                "TLS is not supported; give host:port of a collector reached without TLS",
            ))
        }
        Some(_) => return Err(bad("expected host:port or http://host:port")),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace)
    {
        return Err(bad("expected host:port or http://host:port"));
    }
    let url = format!("http://{rest}");
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|_| bad("expected host:port or http://host:port"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("the host is missing"));
    }
    match uri.port_u16() {
        Some(port) if port > 0 => Ok(url),
        _ => Err(bad("needs a port from 1 to 65535, e.g. collector:4317")),
    }
}

/// The per-request limits the settings give (see [`crate::tensor::limits`]).
impl From<&Settings> for Limits {
    fn from(s: &Settings) -> Limits {
        Limits {
            max_tensors: s.max_tensors_per_request,
            max_elements: s.max_tensor_elements,
            max_bytes_elements: s.max_bytes_elements,
            max_rank: s.max_shape_rank,
            max_image_pixels: s.max_image_pixels,
        }
    }
}

impl Default for Limits {
    /// The limits of the default settings.
    fn default() -> Limits {
        Limits::from(&Settings::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layers(file: Value, env: &[(&str, &str)], flags: Value) -> Layers {
        Layers {
            file: file.as_object().unwrap().clone(),
            env: env_layer(env.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
            flags: flags.as_object().unwrap().clone(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn defaults_deserialize_from_nothing() {
        let s = layers(json!({}), &[], json!({})).resolve().unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.http_port, 8080);
        assert_eq!(s.grpc_port, 8081);
        assert_eq!(s.metrics_port, 8082);
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let s = layers(
            json!({"http_port": 1, "grpc_port": 2, "host": "10.0.0.1", "server_name": "file"}),
            &[
                ("MLSERVER_HTTP_PORT", "3"),
                ("MLSERVER_GRPC_PORT", "4"),
                ("MLSERVER_SERVER_VERSION", "7"),
            ],
            json!({"http_port": 5}),
        )
        .resolve()
        .unwrap();
        assert_eq!(s.http_port, 5);
        assert_eq!(s.grpc_port, 4);
        assert_eq!(s.host, "10.0.0.1");
        assert_eq!(s.server_name, "file");
        assert_eq!(s.server_version, "7");
    }

    #[test]
    fn invalid_values_are_errors_naming_the_problem() {
        let err = layers(json!({"http_port": "eighty"}), &[], json!({}))
            .resolve()
            .unwrap_err();
        assert!(
            err.to_string().contains("invalid setting http_port"),
            "{err}"
        );
        let err = layers(json!({}), &[("MLSERVER_HTTP_PORT", "70000")], json!({}))
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("invalid"), "{err}");
    }

    #[test]
    fn env_booleans_parse() {
        let s = layers(
            json!({}),
            &[("MLSERVER_LOAD_MODELS_AT_STARTUP", "false")],
            json!({}),
        )
        .resolve()
        .unwrap();
        assert!(!s.load_models_at_startup);
    }

    fn error_of(file: Value) -> String {
        layers(file, &[], json!({}))
            .resolve()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn durations_are_finite_and_bounded() {
        for key in [
            "graceful_shutdown_timeout",
            "http_header_read_timeout",
            "http_keep_alive_timeout",
            "grpc_keepalive_time",
            "grpc_keepalive_timeout",
        ] {
            for bad in [json!(1e308), json!(-1), json!(86_401)] {
                let err = error_of(json!({ key: bad }));
                assert!(
                    err.contains(key) && err.contains("seconds") && err.contains("86400"),
                    "{key} = {bad}: {err}"
                );
            }
            assert!(layers(json!({ key: 5.5 }), &[], json!({}))
                .resolve()
                .is_ok());
        }
        // Zero is allowed where it means "off", refused where it would make every request fail.
        assert!(layers(
            json!({"http_keep_alive_timeout": 0, "grpc_keepalive_time": 0}),
            &[],
            json!({})
        )
        .resolve()
        .is_ok());
        assert!(error_of(json!({"http_header_read_timeout": 0})).contains("more than 0"));
        assert!(error_of(json!({"grpc_keepalive_timeout": 0})).contains("more than 0"));
        let from_env = layers(
            json!({}),
            &[("MLSERVER_GRACEFUL_SHUTDOWN_TIMEOUT", "1e308")],
            json!({}),
        )
        .resolve()
        .unwrap_err();
        assert!(from_env.to_string().contains("graceful_shutdown_timeout"));
    }

    #[test]
    fn grpc_raw_outputs_is_auto_or_always() {
        assert_eq!(Settings::default().grpc_raw_outputs, RawOutputs::Auto);
        let set = layers(
            json!({"grpc_raw_outputs": "auto"}),
            &[("MLSERVER_GRPC_RAW_OUTPUTS", "always")],
            json!({}),
        )
        .resolve()
        .unwrap();
        assert_eq!(set.grpc_raw_outputs, RawOutputs::Always);
        let err = error_of(json!({"grpc_raw_outputs": "sometimes"}));
        assert!(
            err.contains("grpc_raw_outputs") && err.contains("always"),
            "{err}"
        );
    }

    #[test]
    fn durations_never_panic() {
        assert_eq!(duration(f64::NAN), Duration::ZERO);
        assert_eq!(duration(-3.0), Duration::ZERO);
        assert_eq!(duration(1e308), Duration::from_secs(86_400));
        assert_eq!(duration(f64::INFINITY), Duration::from_secs(86_400));
        assert_eq!(duration(1.5), Duration::from_millis(1500));
    }

    #[test]
    fn sizes_and_counts_are_range_checked() {
        for (key, bad, range) in [
            ("parallel_workers", json!(257), "from 0 to 256"),
            ("model_queue_size", json!(0), "from 1 to"),
            ("model_queue_size", json!(1u64 << 40), "from 1 to"),
            ("max_request_body_size", json!(0), "from 1 to"),
            ("max_request_body_size", json!(1u64 << 40), "from 1 to"),
            ("grpc_max_message_length", json!(0), "from 1 to"),
            ("max_bytes_in_flight", json!(0), "from 1 to"),
            ("max_tensors_per_request", json!(0), "from 1 to"),
            ("max_tensors_per_request", json!(1u64 << 30), "from 1 to"),
            ("max_tensor_elements", json!(0), "from 1 to"),
            ("max_bytes_elements", json!(0), "from 1 to"),
            ("max_shape_rank", json!(0), "from 1 to 64"),
            ("max_shape_rank", json!(65), "from 1 to 64"),
            ("max_image_pixels", json!(0), "at least 1"),
            ("max_connections", json!(0), "from 1 to"),
            ("http2_max_concurrent_streams", json!(0), "at least 1"),
        ] {
            let err = error_of(json!({ key: bad }));
            assert!(
                err.contains(key) && err.contains(range),
                "{key} = {bad}: {err}"
            );
        }
        let fine = layers(
            json!({"max_bytes_in_flight": 1 << 30, "max_connections": 100, "max_shape_rank": 8,
                   "max_tensors_per_request": 10, "max_image_pixels": 1000, "grpc_max_message_length": 1024}),
            &[],
            json!({}),
        )
        .resolve()
        .unwrap();
        assert_eq!(fine.max_connections, Some(100));
        // Negative numbers and overflowing ones are refused by the types, naming the setting.
        assert!(error_of(json!({"max_connections": -1})).contains("max_connections"));
        assert!(
            error_of(json!({"http2_max_concurrent_streams": 1u64 << 33}))
                .contains("http2_max_concurrent_streams")
        );
    }

    #[test]
    fn the_token_comes_from_one_place_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  s3cret-token\n").unwrap();
        let s = layers(json!({"repository_api_token_file": file}), &[], json!({}))
            .resolve()
            .unwrap();
        assert_eq!(
            s.repository_api_token.as_ref().unwrap().expose(),
            "s3cret-token"
        );
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "Debug shows the token"
        );
        let both =
            error_of(json!({"repository_api_token": "x", "repository_api_token_file": file}));
        assert!(both.contains("not both"), "{both}");
        let missing = error_of(json!({"repository_api_token_file": dir.path().join("none")}));
        assert!(missing.contains("repository_api_token_file"), "{missing}");
        std::fs::write(&file, " \n").unwrap();
        assert!(error_of(json!({"repository_api_token_file": file})).contains("empty"));
        assert!(error_of(json!({"repository_api_token": " "})).contains("must not be empty"));
        let bad_type = error_of(json!({"repository_api_token": ["hunter2"]}));
        assert!(!bad_type.contains("hunter2"), "{bad_type}");
        let digits = layers(
            json!({}),
            &[("MLSERVER_REPOSITORY_API_TOKEN", "12345")],
            json!({}),
        )
        .resolve()
        .unwrap();
        assert_eq!(digits.repository_api_token.unwrap().expose(), "12345");
    }

    #[test]
    fn tracing_server_is_host_and_port() {
        let s = layers(
            json!({}),
            &[(
                "MLSERVER_TRACING_SERVER",
                "seldon-collector.seldon-mesh:4317",
            )],
            json!({}),
        )
        .resolve()
        .unwrap();
        assert_eq!(
            s.tracing_server.as_deref(),
            Some("seldon-collector.seldon-mesh:4317")
        );
        for off in [json!(null), json!("")] {
            let s = layers(json!({ "tracing_server": off }), &[], json!({}))
                .resolve()
                .unwrap();
            assert_eq!(s.tracing_server, None);
        }
        for bad in ["collector", "https://collector:4317", "collector:99999"] {
            let err = error_of(json!({ "tracing_server": bad }));
            assert!(err.contains("tracing_server"), "{bad}: {err}");
        }
        assert!(error_of(json!({"tracing_server": ["x"]})).contains("tracing_server"));
    }

    #[test]
    fn extra_model_roots_must_be_folders() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            layers(json!({"extra_model_roots": [dir.path()]}), &[], json!({}))
                .resolve()
                .is_ok()
        );
        let err = error_of(json!({"extra_model_roots": [dir.path().join("nope")]}));
        assert!(err.contains("extra_model_roots"), "{err}");
    }
}
