//! model-settings.json, as MLServer defines it, and the implementation names that mean ONNX Runtime.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use super::model_extra::{ModelExtra, MAX_THREADS, MAX_TIMEOUT_SECONDS};
use crate::tensor::Parameters;

/// `implementation` values served by the ONNX Runtime backend (case-insensitive). None at all is fine too
/// when the uri is an `.onnx` file or a folder holding one.
pub const ONNX_IMPLEMENTATIONS: &[&str] = &[
    "oxinfer.OnnxModel",
    "oxinfer.onnx",
    "onnx",
    "onnxruntime",
    "mlserver_onnx.OnnxModel",
];

/// One model-settings.json.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ModelSettings {
    /// Model name; defaults to the name of the folder holding the file.
    pub name: Option<String>,
    /// Which runtime serves it; see [`ONNX_IMPLEMENTATIONS`].
    pub implementation: Option<String>,
    /// Platform reported in the metadata (default `onnxruntime_onnx`).
    pub platform: Option<String>,
    /// Versions reported in the metadata besides those found.
    pub versions: Vec<String>,
    /// Declared inputs; checked against the ONNX file, their parameters (content_type) added to the metadata.
    pub inputs: Vec<TensorSettings>,
    /// Declared outputs; as for inputs.
    pub outputs: Vec<TensorSettings>,
    /// Adaptive batching: largest batch (0/1 = off).
    pub max_batch_size: usize,
    /// Adaptive batching: longest wait in seconds.
    pub max_batch_time: f64,
    /// Instances of this model (threads with a session each); the server's `parallel_workers` when absent.
    pub parallel_workers: Option<usize>,
    pub parameters: ModelParameters,
}

/// `parameters` of model-settings.json.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ModelParameters {
    /// The model file, or a folder in which the .onnx file is found; relative to the settings file's folder.
    pub uri: Option<String>,
    /// This copy's version.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub version: Option<String>,
    /// Default request content type (codecs).
    pub content_type: Option<String>,
    pub format: Option<String>,
    /// Runtime options (threads, graph optimization, timeout), typed; see [`ModelExtra`].
    pub extra: ModelExtra,
}

/// An input or output declared in model-settings.json.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TensorSettings {
    pub name: String,
    pub datatype: Option<String>,
    pub shape: Option<Vec<i64>>,
    pub parameters: Option<Parameters>,
}

/// Most instances of one model (as the server-wide `parallel_workers`).
pub const MAX_PARALLEL_WORKERS: usize = 256;
/// Largest adaptive batch.
pub const MAX_BATCH_SIZE: usize = 65_536;
/// Longest adaptive-batching wait, in seconds.
pub const MAX_BATCH_TIME_SECONDS: f64 = 3600.0;

/// MLServer ModelSettings fields with no meaning here; accepted silently (also as `MLSERVER_MODEL_*`).
const MLSERVER_ONLY_FIELDS: &[&str] = &["warm_workers", "cache_enabled"];

/// Top-level fields read without a warning: [`ModelSettings`]'s own (as serde reads them) and MLServer's others.
fn known_field(field: &str) -> bool {
    super::fields::serde_fields::<ModelSettings>().contains(&field)
        || MLSERVER_ONLY_FIELDS.contains(&field)
}

impl ModelSettings {
    /// Parses a model-settings.json; unknown top-level fields are returned for a warning.
    pub fn parse(bytes: &[u8]) -> Result<(ModelSettings, Vec<String>), String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(map) = &value else {
            return Err("must hold a JSON object".into());
        };
        let unknown = map.keys().filter(|k| !known_field(k)).cloned().collect();
        let settings: ModelSettings =
            serde_json::from_value(value).map_err(|e| format!("invalid model settings: {e}"))?;
        Ok((settings, unknown))
    }

    /// Range checks of the numbers, so a model-settings.json can neither start thousands of threads nor make a
    /// deadline overflow: a clear load error naming the field instead. Also the `parameters.extra` options
    /// that could not be read ([`ModelExtra::check`]).
    pub fn check_numbers(&self) -> Result<(), String> {
        if let Some(workers) = self.parallel_workers {
            if workers > MAX_PARALLEL_WORKERS {
                return Err(format!(
                    "parallel_workers must be at most {MAX_PARALLEL_WORKERS}, got {workers}"
                ));
            }
        }
        if self.max_batch_size > MAX_BATCH_SIZE {
            return Err(format!(
                "max_batch_size must be at most {MAX_BATCH_SIZE}, got {}",
                self.max_batch_size
            ));
        }
        if !(0.0..=MAX_BATCH_TIME_SECONDS).contains(&self.max_batch_time) {
            return Err(format!(
                "max_batch_time must be a number of seconds from 0 to {MAX_BATCH_TIME_SECONDS}, got {}",
                self.max_batch_time
            ));
        }
        self.parameters.extra.check()
    }

    /// Whether `implementation` selects the ONNX Runtime backend (`None` is decided by the uri).
    pub fn implementation_is_onnx(&self) -> Option<bool> {
        self.implementation.as_deref().map(|imp| {
            ONNX_IMPLEMENTATIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(imp.trim()))
        })
    }
}

/// Fields whose env value is text even when it looks like JSON (a name `123` stays a string).
const ENV_TEXT_FIELDS: &[&str] = &[
    "name",
    "implementation",
    "platform",
    "uri",
    "version",
    "content_type",
    "format",
];

impl ModelSettings {
    /// The model MLServer builds from `MLSERVER_MODEL_*` variables (used when the repository has no
    /// model-settings.json); `None` when no such variable is set. Lists, objects and numbers are read as JSON,
    /// as pydantic-settings does; a bad value is an error naming the variable.
    pub fn from_env(
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Option<ModelSettings>, String> {
        let mut top = serde_json::Map::new();
        let mut parameters = serde_json::Map::new();
        let mut names = Vec::new();
        for (key, value) in env {
            let Some(field) = key.strip_prefix("MLSERVER_MODEL_") else {
                continue;
            };
            let field = field.to_ascii_lowercase();
            // MLServer's ModelParameters fields share the prefix with ModelSettings' own.
            let in_parameters =
                super::fields::serde_fields::<ModelParameters>().contains(&field.as_str());
            if !in_parameters && (field == "parameters" || !known_field(&field)) {
                continue; // e.g. MLSERVER_MODEL_QUEUE_SIZE, a server setting
            }
            let parsed = if ENV_TEXT_FIELDS.contains(&field.as_str()) {
                Value::String(value)
            } else {
                serde_json::from_str(&value).unwrap_or(Value::String(value))
            };
            // Checked alone first, so that the error names the variable.
            let alone = serde_json::json!({ field.as_str(): parsed.clone() });
            let alone = if in_parameters {
                serde_json::json!({ "parameters": alone })
            } else {
                alone
            };
            serde_json::from_value::<ModelSettings>(alone)
                .map_err(|e| format!("invalid {key}: {e}"))?;
            if in_parameters {
                parameters.insert(field, parsed);
            } else {
                top.insert(field, parsed);
            }
            names.push(key);
        }
        if names.is_empty() {
            return Ok(None);
        }
        if !parameters.is_empty() {
            top.insert("parameters".into(), Value::Object(parameters));
        }
        serde_json::from_value(Value::Object(top))
            .map(Some)
            .map_err(|e| {
                format!(
                    "invalid MLSERVER_MODEL_* settings ({}): {e}",
                    names.join(", ")
                )
            })
    }
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a string, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seldon_spec_parameters_given_as_text_are_typed() {
        let (s, _) = ModelSettings::parse(
            br#"{"parameters":{"extra":{"intra_op_threads":"2","timeout":" 1.5 ","enable_mem_pattern":"false","inter_op_threads":"two","infer_uri":"7"}}}"#,
        )
        .unwrap();
        let extra = &s.parameters.extra;
        assert_eq!(extra.intra_op_threads, Some(2));
        assert_eq!(extra.timeout, Some(std::time::Duration::from_secs_f64(1.5)));
        assert_eq!(extra.enable_mem_pattern, Some(false));
        assert_eq!(
            s.check_numbers().unwrap_err(),
            "parameters.extra.inter_op_threads must be a positive integer, got \"two\"",
            "left for the loader's error"
        );
        assert_eq!(extra.other["infer_uri"], "7", "only the known options");
        let (s, _) =
            ModelSettings::parse(br#"{"parameters":{"extra":{"intra_op_threads":"100000"}}}"#)
                .unwrap();
        assert!(s.check_numbers().unwrap_err().contains("intra_op_threads"));
    }

    #[test]
    fn numbers_are_range_checked() {
        let parse = |text: &str| ModelSettings::parse(text.as_bytes()).unwrap().0;
        assert!(
            parse(r#"{"max_batch_size": 8, "max_batch_time": 0.5, "parallel_workers": 2}"#)
                .check_numbers()
                .is_ok()
        );
        for (text, field) in [
            (r#"{"parallel_workers": 100000}"#, "parallel_workers"),
            (r#"{"max_batch_size": 10000000}"#, "max_batch_size"),
            (r#"{"max_batch_time": 1e300}"#, "max_batch_time"),
            (r#"{"max_batch_time": -1}"#, "max_batch_time"),
            (
                r#"{"parameters": {"extra": {"timeout": 1e300}}}"#,
                "timeout",
            ),
            (
                r#"{"parameters": {"extra": {"intra_op_threads": 100000}}}"#,
                "intra_op_threads",
            ),
        ] {
            let err = parse(text).check_numbers().unwrap_err();
            assert!(err.contains(field), "{text}: {err}");
        }
    }

    #[test]
    fn parses_mlserver_settings() {
        let (s, unknown) = ModelSettings::parse(
            br#"{"name":"m","implementation":"mlserver_onnx.OnnxModel","parameters":{"uri":"./m.onnx","version":3,"extra":{"intra_op_threads":2}},"bogus":1}"#,
        )
        .unwrap();
        assert_eq!(s.name.as_deref(), Some("m"));
        assert_eq!(s.parameters.version.as_deref(), Some("3"));
        assert_eq!(s.implementation_is_onnx(), Some(true));
        assert_eq!(unknown, vec!["bogus".to_string()]);
    }

    fn env(vars: &[(&str, &str)]) -> Result<Option<ModelSettings>, String> {
        ModelSettings::from_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn mlserver_model_env_builds_a_model() {
        let s = env(&[
            ("MLSERVER_MODEL_NAME", "123"),
            ("MLSERVER_MODEL_URI", "/mnt/models"),
            ("MLSERVER_MODEL_VERSION", "7"),
            ("MLSERVER_MODEL_IMPLEMENTATION", "mlserver_onnx.OnnxModel"),
            ("MLSERVER_MODEL_MAX_BATCH_SIZE", "8"),
            ("MLSERVER_MODEL_MAX_BATCH_TIME", "0.5"),
            ("MLSERVER_MODEL_PARALLEL_WORKERS", "2"),
            ("MLSERVER_MODEL_EXTRA", r#"{"intra_op_threads": 1}"#),
            (
                "MLSERVER_MODEL_INPUTS",
                r#"[{"name": "x", "datatype": "FP32"}]"#,
            ),
            ("MLSERVER_MODEL_QUEUE_SIZE", "5"),
            ("MLSERVER_HTTP_PORT", "1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.name.as_deref(), Some("123"));
        assert_eq!(s.parameters.uri.as_deref(), Some("/mnt/models"));
        assert_eq!(s.parameters.version.as_deref(), Some("7"));
        assert_eq!(s.implementation_is_onnx(), Some(true));
        assert_eq!((s.max_batch_size, s.max_batch_time), (8, 0.5));
        assert_eq!(s.parallel_workers, Some(2));
        assert_eq!(s.parameters.extra.intra_op_threads, Some(1));
        assert_eq!(s.inputs[0].name, "x");
        assert_eq!(env(&[("MLSERVER_MODEL_QUEUE_SIZE", "5")]).unwrap(), None);
    }

    #[test]
    fn bad_model_env_names_the_variable() {
        let err = env(&[("MLSERVER_MODEL_MAX_BATCH_SIZE", "lots")]).unwrap_err();
        assert!(err.contains("MLSERVER_MODEL_MAX_BATCH_SIZE"), "{err}");
        let err = env(&[("MLSERVER_MODEL_EXTRA", "[1]")]).unwrap_err();
        assert!(err.contains("MLSERVER_MODEL_EXTRA"), "{err}");
    }

    #[test]
    fn env_text_fields_are_fields() {
        let parameters = super::super::fields::serde_fields::<ModelParameters>();
        for field in ENV_TEXT_FIELDS {
            assert!(known_field(field) || parameters.contains(field), "{field}");
        }
    }

    #[test]
    fn other_implementations_are_not_onnx() {
        let (s, _) =
            ModelSettings::parse(br#"{"implementation":"mlserver_sklearn.SKLearnModel"}"#).unwrap();
        assert_eq!(s.implementation_is_onnx(), Some(false));
    }
}
