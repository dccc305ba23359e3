//! Triton's `config` load parameter: a JSON model configuration that overrides the model's settings for that
//! load (a later load without it goes back to model-settings.json). The subset with a meaning here is mapped
//! onto model-settings; any other field is refused (400) with its name, as are malformed values.
//!
//! | Triton field | model-settings |
//! |---|---|
//! | `max_batch_size` | `max_batch_size`; with it above 0, `dims` leave out the batch dimension (declared as -1) |
//! | `dynamic_batching.max_queue_delay_microseconds` | `max_batch_time` (0 = what is queued: 1 µs) |
//! | `dynamic_batching.preferred_batch_size` | ignored: batches grow up to `max_batch_size` |
//! | `instance_group[].count` (kind `KIND_CPU`/`KIND_AUTO`) | `parallel_workers` (the counts added up) |
//! | `input[]`/`output[]` `name`, `data_type`, `dims` | `inputs`/`outputs` datatype and shape |
//! | `parameters` `intra_op_thread_count`, `inter_op_thread_count` | `parameters.extra` thread counts |
//! | `name`, `platform`, `backend`, `default_model_filename`, `version_policy` | checked (versions come from the folders) |
//!
//! As in Triton the configuration replaces the model's own: batching and instances not given go back to
//! their defaults. Keys may be snake_case or lowerCamelCase, integers numbers or strings, enums names or
//! numbers (protobuf's JSON mapping, which is what `MessageToJson` of a gRPC `ModelConfig` gives).

use serde_json::Value;

use crate::config::model_settings::{
    ModelExtra, ModelSettings, TensorSettings, MAX_BATCH_SIZE, MAX_PARALLEL_WORKERS, MAX_THREADS,
};
use crate::error::Error;

/// What a load request asks for besides the model's name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Triton's configuration override (`config` parameter).
    pub config: Option<ConfigOverride>,
}

/// A load request parameter's value, as far as the load cares.
pub enum LoadParameter<'a> {
    Text(&'a str),
    Other,
}

impl LoadOptions {
    /// The options of a load of `model` from its request parameters: `config` (a JSON string) is parsed;
    /// `file:` uploads are refused (501); other parameters are ignored.
    pub fn from_parameters<'a>(
        model: &str,
        parameters: impl IntoIterator<Item = (&'a str, LoadParameter<'a>)>,
    ) -> Result<LoadOptions, Error> {
        let mut options = LoadOptions::default();
        for (key, value) in parameters {
            if key.starts_with("file:") {
                return Err(Error::Unsupported(format!(
                    "load parameter '{}' is not supported: put the model and its model-settings.json in the repository folder, then load it by name",
                    crate::error::short(key)
                )));
            }
            if key == "config" {
                let LoadParameter::Text(text) = value else {
                    return Err(refused(
                        model,
                        "the 'config' parameter must be a string holding the JSON model configuration",
                    ));
                };
                options.config = Some(ConfigOverride::parse(model, text)?);
            }
        }
        Ok(options)
    }
}

/// The model-settings fields a configuration override sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigOverride {
    pub platform: Option<String>,
    pub max_batch_size: usize,
    /// Seconds; 0 = no adaptive batching.
    pub max_batch_time: f64,
    /// `None`: the server's `parallel_workers`.
    pub instances: Option<usize>,
    pub inputs: Vec<TensorSettings>,
    pub outputs: Vec<TensorSettings>,
    /// `parameters.extra` options (thread counts).
    pub extra: ModelExtra,
    /// The model file the configuration names; it must be the one the model's settings select.
    pub default_model_filename: Option<String>,
}

impl ConfigOverride {
    /// Refuses a `default_model_filename` other than the file `source` serves (the file is chosen by
    /// model-settings.json, not by a load request).
    pub fn check_model_file(
        &self,
        model: &str,
        source: &super::discovery::ModelSource,
    ) -> Result<(), Error> {
        let Some(wanted) = &self.default_model_filename else {
            return Ok(());
        };
        let actual = source
            .model_path()
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
        if actual.as_deref() == Some(wanted.as_str()) {
            return Ok(());
        }
        Err(refused(
            model,
            &format!(
                "field 'default_model_filename' is '{}' but the model serves {}; choose the file with parameters.uri in model-settings.json",
                crate::error::short(wanted),
                actual.as_deref().unwrap_or("no file")
            ),
        ))
    }
}

/// Longest batching wait a configuration may ask for, in microseconds (model-settings' bound).
const MAX_QUEUE_DELAY_US: i64 =
    crate::config::model_settings::MAX_BATCH_TIME_SECONDS as i64 * 1_000_000;

/// Largest configuration accepted, in bytes (Triton's are a few KB; this bounds the parse on the runtime).
const MAX_CONFIG_BYTES: usize = 1 << 20;

/// Longest tensor rank accepted in `dims`.
const MAX_DIMS: usize = 64;

impl ConfigOverride {
    /// Parses the JSON configuration given to a load of `model` (400 naming the field on anything refused).
    pub fn parse(model: &str, text: &str) -> Result<ConfigOverride, Error> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(refused(
                model,
                &format!(
                    "the configuration is {} bytes; at most {MAX_CONFIG_BYTES}",
                    text.len()
                ),
            ));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| refused(model, &format!("the configuration is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(refused(model, "the configuration must be a JSON object"));
        }
        let fail = |message: String| refused(model, &message);
        let mut config = ConfigOverride::default();
        let mut dynamic_batching = None;
        let mut inputs = None;
        let mut outputs = None;
        for (key, value) in object_fields(&value, "").map_err(fail)? {
            match key.as_str() {
                "name" => {
                    let name = text_field(value, "name").map_err(fail)?;
                    if !name.is_empty() && name != model {
                        return Err(fail(format!(
                            "field 'name' is '{}' but the model loaded is '{model}'",
                            crate::error::short(name)
                        )));
                    }
                }
                "platform" | "backend" => {
                    let named = text_field(value, &key).map_err(fail)?;
                    let accepted: &[&str] = if key == "platform" {
                        &["", "onnxruntime_onnx"]
                    } else {
                        &["", "onnxruntime"]
                    };
                    if !accepted.contains(&named) {
                        return Err(fail(format!(
                            "field '{key}' is '{}'; this server runs ONNX models only ({})",
                            crate::error::short(named),
                            accepted[1]
                        )));
                    }
                    if key == "platform" && !named.is_empty() {
                        config.platform = Some(named.to_string());
                    }
                }
                "max_batch_size" => {
                    config.max_batch_size =
                        integer(value, "max_batch_size", 0, MAX_BATCH_SIZE as i64).map_err(fail)?
                            as usize;
                }
                "dynamic_batching" => dynamic_batching = Some(value),
                "instance_group" => config.instances = instances(value).map_err(fail)?,
                "input" => inputs = Some(value),
                "output" => outputs = Some(value),
                "parameters" => config.extra = parameters(value).map_err(fail)?,
                "default_model_filename" => {
                    let file = text_field(value, &key).map_err(fail)?;
                    config.default_model_filename = (!file.is_empty()).then(|| file.to_string());
                }
                "version_policy" => {
                    for (policy, _) in object_fields(value, "version_policy").map_err(fail)? {
                        if !["latest", "all", "specific"].contains(&policy.as_str()) {
                            return Err(fail(unsupported(&format!("version_policy.{policy}"))));
                        }
                    }
                }
                other => return Err(fail(unsupported(other))),
            }
        }
        if let Some(batching) = dynamic_batching {
            if config.max_batch_size == 0 {
                return Err(fail(
                    "field 'dynamic_batching' needs a max_batch_size above 0".into(),
                ));
            }
            config.max_batch_time = queue_delay(batching).map_err(fail)?;
        }
        let batch = config.max_batch_size > 0;
        if let Some(inputs) = inputs {
            config.inputs = tensors(inputs, "input", batch).map_err(fail)?;
        }
        if let Some(outputs) = outputs {
            config.outputs = tensors(outputs, "output", batch).map_err(fail)?;
        }
        Ok(config)
    }

    /// Sets the fields of `settings` this configuration governs. Declarations of tensors the configuration
    /// does not name, and the parameters (content_type, labels) of those it does, stay as model-settings says.
    pub fn apply(&self, settings: &mut ModelSettings) {
        if self.platform.is_some() {
            settings.platform = self.platform.clone();
        }
        settings.max_batch_size = self.max_batch_size;
        settings.max_batch_time = self.max_batch_time;
        settings.parallel_workers = self.instances;
        settings.parameters.extra.override_with(&self.extra);
        merge_tensors(&mut settings.inputs, &self.inputs);
        merge_tensors(&mut settings.outputs, &self.outputs);
    }
}

/// The error of a refused configuration: 400, worded so that Triton's clients recognise a failed load.
fn refused(model: &str, message: &str) -> Error {
    Error::InvalidInput(format!(
        "failed to load '{}': load config: {message}",
        super::shown_name(model)
    ))
}

fn unsupported(field: &str) -> String {
    format!("field '{}' is not supported", crate::error::short(field))
}

/// The fields of an object with snake_case keys (protobuf's JSON also allows lowerCamelCase); a key given
/// twice (in both spellings) is refused.
fn object_fields<'v>(value: &'v Value, path: &str) -> Result<Vec<(String, &'v Value)>, String> {
    let Value::Object(map) = value else {
        return Err(format!("field '{path}' must be an object"));
    };
    let mut fields: Vec<(String, &Value)> = Vec::with_capacity(map.len());
    for (key, value) in map {
        let key = snake_case(key);
        if fields.iter().any(|(k, _)| *k == key) {
            let at = if path.is_empty() {
                key
            } else {
                format!("{path}.{key}")
            };
            return Err(format!(
                "field '{}' is given twice",
                crate::error::short(&at)
            ));
        }
        fields.push((key, value));
    }
    Ok(fields)
}

/// `maxBatchSize` -> `max_batch_size`; snake_case keys are unchanged.
fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn text_field<'v>(value: &'v Value, path: &str) -> Result<&'v str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("field '{path}' must be a string"))
}

/// An integer from `min` to `max`: a JSON integer, or a string of one (protobuf's JSON writes 64-bit integers
/// as strings).
fn integer(value: &Value, path: &str, min: i64, max: i64) -> Result<i64, String> {
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    parsed
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("field '{path}' must be an integer from {min} to {max}"))
}

/// `false` (or absent): flags whose other value this server does not support.
fn false_flag(value: &Value, path: &str) -> Result<(), String> {
    match value {
        Value::Bool(false) => Ok(()),
        Value::Bool(true) => Err(unsupported(path)),
        _ => Err(format!("field '{path}' must be true or false")),
    }
}

/// An enum given by name or number, as one of `accepted` (name, number) pairs.
fn enum_value(value: &Value, path: &str, accepted: &[(&str, i64)]) -> Result<usize, String> {
    let found = match value {
        Value::String(name) => accepted.iter().position(|(n, _)| n == name),
        Value::Number(number) => number
            .as_i64()
            .and_then(|number| accepted.iter().position(|(_, v)| *v == number)),
        _ => None,
    };
    found.ok_or_else(|| {
        let names: Vec<&str> = accepted.iter().map(|(n, _)| *n).collect();
        format!(
            "field '{path}' must be one of {}; got {}",
            names.join(", "),
            crate::error::short(&value.to_string())
        )
    })
}

/// `dynamic_batching`: the queue delay in seconds (0 becomes 1 µs: batch what is queued, do not wait).
fn queue_delay(value: &Value) -> Result<f64, String> {
    let mut delay_us = 0;
    for (key, value) in object_fields(value, "dynamic_batching")? {
        match key.as_str() {
            "max_queue_delay_microseconds" => {
                delay_us = integer(
                    value,
                    "dynamic_batching.max_queue_delay_microseconds",
                    0,
                    MAX_QUEUE_DELAY_US,
                )?;
            }
            "preferred_batch_size" => {
                let Value::Array(sizes) = value else {
                    return Err(
                        "field 'dynamic_batching.preferred_batch_size' must be a list".into(),
                    );
                };
                for size in sizes {
                    integer(
                        size,
                        "dynamic_batching.preferred_batch_size",
                        1,
                        MAX_BATCH_SIZE as i64,
                    )?;
                }
                if !sizes.is_empty() {
                    tracing::info!("load config: dynamic_batching.preferred_batch_size is ignored; batches grow up to max_batch_size");
                }
            }
            other => return Err(unsupported(&format!("dynamic_batching.{other}"))),
        }
    }
    Ok(delay_us.max(1) as f64 / 1e6)
}

/// `instance_group`: the instances of all groups (CPU or AUTO), `None` when the list is empty.
fn instances(value: &Value) -> Result<Option<usize>, String> {
    let Value::Array(groups) = value else {
        return Err("field 'instance_group' must be a list".into());
    };
    let mut total: Option<usize> = None;
    for (i, group) in groups.iter().enumerate() {
        let at = |field: &str| format!("instance_group[{i}].{field}");
        let mut count = 1;
        for (key, value) in object_fields(group, &format!("instance_group[{i}]"))? {
            match key.as_str() {
                "name" => {
                    text_field(value, &at("name"))?;
                }
                "kind" => {
                    let accepted = [("KIND_AUTO", 0), ("KIND_CPU", 2)];
                    enum_value(value, &at("kind"), &accepted)
                        .map_err(|e| format!("{e} (this server runs models on the CPU)"))?;
                }
                "count" => {
                    count = integer(value, &at("count"), 1, MAX_PARALLEL_WORKERS as i64)? as usize;
                }
                "gpus" if value.as_array().is_some_and(Vec::is_empty) => {}
                other => return Err(unsupported(&at(other))),
            }
        }
        let sum = total.unwrap_or(0) + count;
        if sum > MAX_PARALLEL_WORKERS {
            return Err(format!(
                "field 'instance_group' asks for {sum} instances; at most {MAX_PARALLEL_WORKERS}"
            ));
        }
        total = Some(sum);
    }
    Ok(total)
}

/// `parameters`: the ONNX Runtime backend's thread counts, `{"string_value": "4"}` each.
fn parameters(value: &Value) -> Result<ModelExtra, String> {
    let mut extra = ModelExtra::default();
    for (key, value) in object_fields(value, "parameters")? {
        let target = match key.as_str() {
            "intra_op_thread_count" => &mut extra.intra_op_threads,
            "inter_op_thread_count" => &mut extra.inter_op_threads,
            other => return Err(unsupported(&format!("parameters.{other}"))),
        };
        let path = format!("parameters.{key}.string_value");
        let fields = object_fields(value, &format!("parameters.{key}"))?;
        let [(field, text)] = fields.as_slice() else {
            return Err(format!(
                "field 'parameters.{key}' must be {{\"string_value\": \"<n>\"}}"
            ));
        };
        if field != "string_value" {
            return Err(unsupported(&format!("parameters.{key}.{field}")));
        }
        *target = Some(integer(text, &path, 1, MAX_THREADS as i64)? as usize);
    }
    Ok(extra)
}

/// Triton's `TYPE_*` names (and enum numbers) with their V2 datatype.
const DATA_TYPES: [(&str, i64, &str); 14] = [
    ("TYPE_BOOL", 1, "BOOL"),
    ("TYPE_UINT8", 2, "UINT8"),
    ("TYPE_UINT16", 3, "UINT16"),
    ("TYPE_UINT32", 4, "UINT32"),
    ("TYPE_UINT64", 5, "UINT64"),
    ("TYPE_INT8", 6, "INT8"),
    ("TYPE_INT16", 7, "INT16"),
    ("TYPE_INT32", 8, "INT32"),
    ("TYPE_INT64", 9, "INT64"),
    ("TYPE_FP16", 10, "FP16"),
    ("TYPE_FP32", 11, "FP32"),
    ("TYPE_FP64", 12, "FP64"),
    ("TYPE_STRING", 13, "BYTES"),
    ("TYPE_BF16", 14, "BF16"),
];

/// `input` or `output`: declarations with a datatype and a shape (`[-1] + dims` when the model batches).
fn tensors(value: &Value, kind: &str, batch: bool) -> Result<Vec<TensorSettings>, String> {
    let Value::Array(list) = value else {
        return Err(format!("field '{kind}' must be a list"));
    };
    let mut declared: Vec<TensorSettings> = Vec::with_capacity(list.len());
    for (i, tensor) in list.iter().enumerate() {
        let at = |field: &str| format!("{kind}[{i}].{field}");
        let mut settings = TensorSettings::default();
        for (key, value) in object_fields(tensor, &format!("{kind}[{i}]"))? {
            match key.as_str() {
                "name" => settings.name = text_field(value, &at("name"))?.to_string(),
                "data_type" => {
                    let accepted: Vec<(&str, i64)> =
                        DATA_TYPES.iter().map(|(n, v, _)| (*n, *v)).collect();
                    let index = enum_value(value, &at("data_type"), &accepted)?;
                    settings.datatype = Some(DATA_TYPES[index].2.to_string());
                }
                "dims" => {
                    let Value::Array(dims) = value else {
                        return Err(format!("field '{}' must be a list", at("dims")));
                    };
                    if dims.len() > MAX_DIMS {
                        return Err(format!(
                            "field '{}' has more than {MAX_DIMS} dimensions",
                            at("dims")
                        ));
                    }
                    let mut shape = Vec::with_capacity(dims.len() + 1);
                    if batch {
                        shape.push(-1);
                    }
                    for dim in dims {
                        shape.push(integer(dim, &at("dims"), -1, i64::from(i32::MAX))?);
                    }
                    settings.shape = Some(shape);
                }
                "format" if kind == "input" => {
                    enum_value(value, &at("format"), &[("FORMAT_NONE", 0)])?;
                }
                "is_shape_tensor" | "is_non_linear_format_io" => false_flag(value, &at(&key))?,
                "optional" | "allow_ragged_batch" if kind == "input" => {
                    false_flag(value, &at(&key))?
                }
                other => return Err(unsupported(&at(other))),
            }
        }
        if settings.name.is_empty() {
            return Err(format!("field '{}' is required", at("name")));
        }
        if declared.iter().any(|d| d.name == settings.name) {
            return Err(format!(
                "{kind} '{}' is declared twice",
                crate::error::short(&settings.name)
            ));
        }
        declared.push(settings);
    }
    Ok(declared)
}

/// Sets datatype and shape of the declarations named in `given`, adding the others.
fn merge_tensors(declared: &mut Vec<TensorSettings>, given: &[TensorSettings]) {
    for tensor in given {
        match declared.iter_mut().find(|d| d.name == tensor.name) {
            Some(existing) => {
                existing.datatype = tensor.datatype.clone();
                existing.shape = tensor.shape.clone();
            }
            None => declared.push(tensor.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn parse(text: &str) -> Result<ConfigOverride, String> {
        ConfigOverride::parse("simple", text).map_err(|e| {
            assert_eq!(e.http_status(), axum::http::StatusCode::BAD_REQUEST);
            let message = e.to_string();
            assert!(
                message.starts_with("failed to load 'simple': load config: "),
                "{message}"
            );
            message
        })
    }

    #[test]
    fn tritons_fields_map_onto_model_settings() {
        let config = parse(
            r#"{"name": "simple", "platform": "onnxruntime_onnx", "backend": "onnxruntime",
                "max_batch_size": 8,
                "dynamic_batching": {"max_queue_delay_microseconds": 500, "preferred_batch_size": [4]},
                "instance_group": [{"name": "g", "kind": "KIND_CPU", "count": 2}, {"count": "1"}],
                "input": [{"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [16]}],
                "output": [{"name": "OUTPUT0", "data_type": "TYPE_STRING", "dims": ["16"]}],
                "parameters": {"intra_op_thread_count": {"string_value": "2"}},
                "version_policy": {"latest": {"num_versions": 1}}}"#,
        )
        .unwrap();
        let mut settings = ModelSettings {
            max_batch_size: 64,
            max_batch_time: 1.0,
            parallel_workers: Some(7),
            inputs: vec![TensorSettings {
                name: "INPUT0".into(),
                parameters: Some(Map::from_iter([("content_type".into(), "np".into())])),
                ..TensorSettings::default()
            }],
            ..ModelSettings::default()
        };
        config.apply(&mut settings);
        assert_eq!(settings.max_batch_size, 8);
        assert_eq!(settings.max_batch_time, 0.0005);
        assert_eq!(settings.parallel_workers, Some(3));
        assert_eq!(settings.platform.as_deref(), Some("onnxruntime_onnx"));
        assert_eq!(settings.inputs.len(), 1);
        assert_eq!(settings.inputs[0].datatype.as_deref(), Some("INT32"));
        assert_eq!(settings.inputs[0].shape, Some(vec![-1, 16]));
        assert!(settings.inputs[0].parameters.is_some(), "content_type kept");
        assert_eq!(settings.outputs[0].datatype.as_deref(), Some("BYTES"));
        assert_eq!(settings.outputs[0].shape, Some(vec![-1, 16]));
        assert_eq!(settings.parameters.extra.intra_op_threads, Some(2));
        assert!(settings.check_numbers().is_ok());
    }

    #[test]
    fn camel_case_strings_and_enum_numbers_as_protobuf_json_writes_them() {
        let config = parse(
            r#"{"maxBatchSize": "16", "dynamicBatching": {"maxQueueDelayMicroseconds": "100"},
                "instanceGroup": [{"kind": 2, "count": 4}],
                "input": [{"name": "x", "dataType": 11, "dims": ["-1", "4"], "format": "FORMAT_NONE",
                           "isShapeTensor": false}]}"#,
        )
        .unwrap();
        assert_eq!(config.max_batch_size, 16);
        assert_eq!(config.max_batch_time, 0.0001);
        assert_eq!(config.instances, Some(4));
        assert_eq!(config.inputs[0].datatype.as_deref(), Some("FP32"));
        assert_eq!(config.inputs[0].shape, Some(vec![-1, -1, 4]));
    }

    #[test]
    fn the_configuration_replaces_the_settings_it_governs() {
        let config = parse(r#"{"max_batch_size": "16"}"#).unwrap();
        let mut settings = ModelSettings {
            max_batch_size: 4,
            max_batch_time: 0.1,
            parallel_workers: Some(2),
            ..ModelSettings::default()
        };
        config.apply(&mut settings);
        assert_eq!(
            (settings.max_batch_size, settings.max_batch_time),
            (16, 0.0)
        );
        assert_eq!(settings.parallel_workers, None);
        let unbatched =
            parse(r#"{"input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [2, 4]}]}"#)
                .unwrap();
        assert_eq!(unbatched.inputs[0].shape, Some(vec![2, 4]));
        assert_eq!(parse("{}").unwrap(), ConfigOverride::default());
        let no_delay = parse(r#"{"max_batch_size": 4, "dynamic_batching": {}}"#).unwrap();
        assert_eq!(no_delay.max_batch_time, 0.000001);
    }

    #[test]
    fn everything_else_is_refused_naming_the_field() {
        for (config, needle) in [
            (
                r#"{"ensemble_scheduling": {}}"#,
                "field 'ensemble_scheduling' is not supported",
            ),
            (
                r#"{"sequenceBatching": {}}"#,
                "field 'sequence_batching' is not supported",
            ),
            (
                r#"{"optimization": {"graph": {"level": 1}}}"#,
                "field 'optimization'",
            ),
            (r#"{"model_warmup": []}"#, "field 'model_warmup'"),
            (
                r#"{"max_batch_size": 4, "dynamic_batching": {"priority_levels": 2}}"#,
                "'dynamic_batching.priority_levels'",
            ),
            (
                r#"{"dynamic_batching": {}}"#,
                "needs a max_batch_size above 0",
            ),
            (
                r#"{"instance_group": [{"kind": "KIND_GPU"}]}"#,
                "'instance_group[0].kind'",
            ),
            (
                r#"{"instance_group": [{"count": 2, "gpus": [0]}]}"#,
                "'instance_group[0].gpus'",
            ),
            (
                r#"{"instance_group": [{"count": 0}]}"#,
                "'instance_group[0].count' must be an integer from 1",
            ),
            (
                r#"{"instance_group": [{"count": 200}, {"count": 100}]}"#,
                "at most 256",
            ),
            (
                r#"{"input": [{"name": "x", "reshape": {"shape": [1]}}]}"#,
                "'input[0].reshape'",
            ),
            (
                r#"{"input": [{"name": "x", "optional": true}]}"#,
                "'input[0].optional'",
            ),
            (
                r#"{"output": [{"name": "y", "label_filename": "l.txt"}]}"#,
                "'output[0].label_filename'",
            ),
            (
                r#"{"output": [{"name": "y", "format": "FORMAT_NONE"}]}"#,
                "'output[0].format'",
            ),
            (
                r#"{"input": [{"data_type": "TYPE_FP32"}]}"#,
                "'input[0].name' is required",
            ),
            (
                r#"{"input": [{"name": "x"}, {"name": "x"}]}"#,
                "input 'x' is declared twice",
            ),
            (
                r#"{"input": [{"name": "x", "data_type": "TYPE_COMPLEX"}]}"#,
                "'input[0].data_type' must be one of",
            ),
            (
                r#"{"input": [{"name": "x", "dims": [-2]}]}"#,
                "'input[0].dims' must be an integer from -1",
            ),
            (
                r#"{"input": {"name": "x"}}"#,
                "field 'input' must be a list",
            ),
            (
                r#"{"max_batch_size": 1e300}"#,
                "'max_batch_size' must be an integer from 0 to 65536",
            ),
            (
                r#"{"max_batch_size": 99999999999999999999999}"#,
                "'max_batch_size' must be an integer",
            ),
            (
                r#"{"max_batch_size": -1}"#,
                "'max_batch_size' must be an integer",
            ),
            (
                r#"{"max_batch_size": 2.5}"#,
                "'max_batch_size' must be an integer",
            ),
            (
                r#"{"max_batch_size": 4, "maxBatchSize": 8}"#,
                "'max_batch_size' is given twice",
            ),
            (
                r#"{"max_batch_size": 4, "dynamic_batching": {"max_queue_delay_microseconds": "36000000000000"}}"#,
                "max_queue_delay_microseconds' must be an integer",
            ),
            (
                r#"{"platform": "tensorflow_savedmodel"}"#,
                "field 'platform' is 'tensorflow_savedmodel'",
            ),
            (r#"{"backend": "python"}"#, "field 'backend' is 'python'"),
            (r#"{"name": "other"}"#, "field 'name' is 'other'"),
            (
                r#"{"parameters": {"execution_mode": {"string_value": "1"}}}"#,
                "'parameters.execution_mode'",
            ),
            (
                r#"{"parameters": {"intra_op_thread_count": {"string_value": "x"}}}"#,
                "intra_op_thread_count.string_value",
            ),
            (
                r#"{"version_policy": {"newest": {}}}"#,
                "'version_policy.newest'",
            ),
            (
                r#""parameters": {"config": {{"max_batch_size": "16"}}}"#,
                "not valid JSON",
            ),
            ("[1]", "must be a JSON object"),
        ] {
            let message = parse(config).unwrap_err();
            assert!(message.contains(needle), "{config}: {message}");
        }
        // Deep nesting is a JSON error (serde_json's recursion limit), not a stack overflow.
        let deep = format!(
            "{{\"optimization\": {}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(parse(&deep).unwrap_err().contains("not valid JSON"));
        let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(MAX_CONFIG_BYTES));
        assert!(parse(&huge).unwrap_err().contains("at most 1048576"));
    }

    #[test]
    fn load_parameters() {
        let options = LoadOptions::from_parameters(
            "simple",
            [
                ("config", LoadParameter::Text(r#"{"max_batch_size": 2}"#)),
                ("other", LoadParameter::Other),
            ],
        )
        .unwrap();
        assert_eq!(options.config.unwrap().max_batch_size, 2);
        let file = LoadOptions::from_parameters(
            "simple",
            [("file:1/model.onnx", LoadParameter::Text(""))],
        );
        assert_eq!(
            file.unwrap_err().http_status(),
            axum::http::StatusCode::NOT_IMPLEMENTED
        );
        let not_text = LoadOptions::from_parameters("simple", [("config", LoadParameter::Other)]);
        assert!(not_text
            .unwrap_err()
            .to_string()
            .contains("must be a string"));
        assert_eq!(
            LoadOptions::from_parameters("simple", []).unwrap(),
            LoadOptions::default()
        );
    }
}
