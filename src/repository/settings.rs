//! model-settings.json, as MLServer defines it, and the implementation names that mean ONNX Runtime.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

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
    /// Runtime options: intra_op_threads, inter_op_threads, graph_optimization_level.
    pub extra: Parameters,
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

const KNOWN_FIELDS: &[&str] = &[
    "name",
    "implementation",
    "platform",
    "versions",
    "inputs",
    "outputs",
    "max_batch_size",
    "max_batch_time",
    "parallel_workers",
    "parameters",
    "warm_workers",
    "cache_enabled",
];

impl ModelSettings {
    /// Parses a model-settings.json; unknown top-level fields are returned for a warning.
    pub fn parse(bytes: &[u8]) -> Result<(ModelSettings, Vec<String>), String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(map) = &value else {
            return Err("must hold a JSON object".into());
        };
        let unknown = map
            .keys()
            .filter(|k| !KNOWN_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        let settings =
            serde_json::from_value(value).map_err(|e| format!("invalid model settings: {e}"))?;
        Ok((settings, unknown))
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

    #[test]
    fn other_implementations_are_not_onnx() {
        let (s, _) =
            ModelSettings::parse(br#"{"implementation":"mlserver_sklearn.SKLearnModel"}"#).unwrap();
        assert_eq!(s.implementation_is_onnx(), Some(false));
    }
}
