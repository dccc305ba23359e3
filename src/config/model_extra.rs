//! `parameters.extra` of model-settings.json: the runtime options oxinfer reads, typed, in one place.
//!
//! Every known key is declared once in [`model_extra!`] below with its type, its reader (which gives the error
//! message naming the key) and its doc; the struct, the list of known keys and the merge of a Triton load
//! `config` all come from that declaration. Keys oxinfer does not know are kept as given in
//! [`ModelExtra::other`] (MLServer lets users put anything there) and named in a warning when the file is read.
//!
//! A known key with a value of the wrong type does not stop the file from parsing: the model is still listed,
//! and its load fails with the message ([`ModelExtra::check`]), as it did when the options were read at load.
//!
//! To add an option: add a line to the `model_extra!` invocation (a reader below builds the error text; for a
//! structured value such as a list of execution providers, [`serde_value`] reads any `Deserialize` type).

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::providers::{read_execution_providers, ExecutionProvider};
use crate::tensor::Parameters;

/// Longest default request timeout, in seconds (a day).
pub const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;
/// Most ONNX Runtime threads per session.
pub const MAX_THREADS: u64 = 1024;

/// ONNX Runtime's graph optimization levels (`graph_optimization_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphOptimization {
    /// `disable` (or `none`): no graph optimization.
    Disable,
    /// `basic`: constant folding, redundant node elimination.
    Basic,
    /// `extended`: also complex node fusions.
    Extended,
    /// `all` (the default): also layout optimizations.
    All,
}

/// Declares the known `parameters.extra` keys: `/// doc` then `name: Type = reader;` where the reader is a
/// `fn(&'static str, &Value) -> Result<Option<Type>, String>` (`Ok(None)`: as if absent).
macro_rules! model_extra {
    ($( $(#[doc = $doc:literal])* $field:ident : $ty:ty = $read:path; )*) => {
        /// `parameters.extra` of model-settings.json, read once when the file is parsed.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct ModelExtra {
            $( $(#[doc = $doc])* pub $field: Option<$ty>, )*
            /// Keys oxinfer does not read, kept as given.
            pub other: Parameters,
            /// Known keys whose value could not be read, with the error; reported by [`ModelExtra::check`].
            invalid: Vec<(&'static str, String)>,
        }

        impl ModelExtra {
            /// The keys oxinfer reads.
            pub const KNOWN: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Reads one entry: a known key into its field (or its error), any other into `other`.
            fn set(&mut self, key: String, value: Value) {
                match key.as_str() {
                    $(stringify!($field) => {
                        let name = stringify!($field);
                        self.invalid.retain(|(k, _)| *k != name);
                        self.$field = $read(name, &value).unwrap_or_else(|e| {
                            self.invalid.push((name, e));
                            None
                        });
                    })*
                    _ => {
                        self.other.insert(key, value);
                    }
                }
            }

            /// Takes every option `over` sets (a Triton load `config`), replacing this one's value or error.
            pub fn override_with(&mut self, over: &ModelExtra) {
                $(if over.$field.is_some() {
                    self.invalid.retain(|(k, _)| *k != stringify!($field));
                    self.$field = over.$field.clone();
                })*
                for (key, value) in &over.other {
                    self.other.insert(key.clone(), value.clone());
                }
            }
        }
    };
}

model_extra! {
    /// Seconds a request may take when it does not say (answered 504 / DEADLINE_EXCEEDED past it); a positive
    /// number up to [`MAX_TIMEOUT_SECONDS`].
    timeout: Duration = read_timeout;
    /// ONNX Runtime threads one operator may use (default: cores / instances); 1 to [`MAX_THREADS`].
    intra_op_threads: usize = read_threads;
    /// Threads running independent operators in parallel (default 1 = sequential); 1 to [`MAX_THREADS`].
    inter_op_threads: usize = read_threads;
    /// `disable` (or `none`), `basic`, `extended` or `all` (the default), any case.
    graph_optimization_level: GraphOptimization = read_optimization;
    /// ONNX Runtime's CPU arena, which keeps the largest activations it has seen (default true).
    enable_cpu_mem_arena: bool = read_flag;
    /// Pre-plans activation memory from the first run's shapes (default true).
    enable_mem_pattern: bool = read_flag;
    /// ONNX Runtime execution providers in order of preference, with their options (`config/providers.rs`);
    /// default: the CPU alone.
    execution_providers: Vec<ExecutionProvider> = read_execution_providers;
    /// When a listed provider is missing from the library or fails to register: false (the default) fails the
    /// load; true logs a warning and goes on with the next one, at last the CPU.
    execution_provider_fallback: bool = read_flag;
}

impl ModelExtra {
    /// Reads a `parameters.extra` object; never fails (see [`ModelExtra::check`]).
    pub fn from_map(map: Parameters) -> ModelExtra {
        let mut extra = ModelExtra::default();
        for (key, value) in map {
            extra.set(key, value);
        }
        extra
    }

    /// The first known option whose value could not be read, as the load error naming it.
    pub fn check(&self) -> Result<(), String> {
        match self.invalid.first() {
            Some((_, error)) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// The keys oxinfer does not read (for a warning; they are kept).
    pub fn unknown_keys(&self) -> impl Iterator<Item = &str> {
        self.other.keys().map(String::as_str)
    }
}

impl<'de> Deserialize<'de> for ModelExtra {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ModelExtra, D::Error> {
        Parameters::deserialize(deserializer).map(ModelExtra::from_map)
    }
}

/// Reads a timeout in seconds (a positive number); `what` names where it came from, for the error.
pub fn parse_timeout(value: &Value, what: &str) -> Result<Duration, String> {
    value
        .as_f64()
        .filter(|&t| t > 0.0)
        .and_then(|t| Duration::try_from_secs_f64(t).ok())
        .ok_or_else(|| format!("{what} must be a positive number of seconds, got {value}"))
}

/// Seldon Core v2's agent copies a Model's `spec.parameters` into `parameters.extra` as strings
/// (`{"name": "intra_op_threads", "value": "2"}` becomes `"intra_op_threads": "2"`): the numeric and boolean
/// options read such text as the number or flag it spells; anything else is left for the usual error.
fn seldon_text(value: &Value) -> Value {
    if let Value::String(text) = value {
        let parsed = serde_json::from_str::<Value>(text.trim()).ok();
        if let Some(typed) = parsed.filter(|v| v.is_number() || v.is_boolean()) {
            return typed;
        }
    }
    value.clone()
}

fn read_timeout(key: &'static str, value: &Value) -> Result<Option<Duration>, String> {
    let value = seldon_text(value);
    if let Some(timeout) = value.as_f64() {
        if timeout > MAX_TIMEOUT_SECONDS {
            return Err(format!(
                "parameters.extra.{key} must be at most {MAX_TIMEOUT_SECONDS} seconds, got {timeout}"
            ));
        }
    }
    match value {
        Value::Null => Ok(None),
        v => parse_timeout(&v, &format!("parameters.extra.{key}")).map(Some),
    }
}

fn read_threads(key: &'static str, value: &Value) -> Result<Option<usize>, String> {
    let value = seldon_text(value);
    if let Some(n) = value.as_u64() {
        if n > MAX_THREADS {
            return Err(format!(
                "parameters.extra.{key} must be at most {MAX_THREADS}, got {n}"
            ));
        }
    }
    match value {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .filter(|&n| n >= 1)
            .map(|n| Some(n as usize))
            .ok_or_else(|| format!("parameters.extra.{key} must be a positive integer, got {v}")),
    }
}

fn read_flag(key: &'static str, value: &Value) -> Result<Option<bool>, String> {
    match seldon_text(value) {
        Value::Null => Ok(None),
        v => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("parameters.extra.{key} must be true or false, got {v}")),
    }
}

fn read_optimization(
    key: &'static str,
    level: &Value,
) -> Result<Option<GraphOptimization>, String> {
    match level.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("disable") | Some("none") => Ok(Some(GraphOptimization::Disable)),
        Some("basic") => Ok(Some(GraphOptimization::Basic)),
        Some("extended") => Ok(Some(GraphOptimization::Extended)),
        Some("all") => Ok(Some(GraphOptimization::All)),
        _ => Err(format!(
            "parameters.extra.{key} must be one of disable, basic, extended, all; got {level}"
        )),
    }
}

/// A reader for any `Deserialize` option (null = absent); the error names the key. For structured options
/// (a list of execution providers with their options, ...): `providers: Vec<Provider> = serde_value;`.
#[cfg_attr(not(test), allow(dead_code))]
fn serde_value<T: serde::de::DeserializeOwned>(
    key: &'static str,
    value: &Value,
) -> Result<Option<T>, String> {
    match value {
        Value::Null => Ok(None),
        v => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("parameters.extra.{key}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn extra(value: Value) -> ModelExtra {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn known_keys_are_typed_and_others_kept() {
        let e = extra(
            json!({"intra_op_threads": 2, "graph_optimization_level": "Basic",
                             "timeout": 0.5, "enable_mem_pattern": false, "mine": {"a": 1}}),
        );
        assert_eq!(e.intra_op_threads, Some(2));
        assert_eq!(e.graph_optimization_level, Some(GraphOptimization::Basic));
        assert_eq!(e.timeout, Some(Duration::from_millis(500)));
        assert_eq!(e.enable_mem_pattern, Some(false));
        assert_eq!(e.enable_cpu_mem_arena, None);
        assert_eq!(e.other["mine"], json!({"a": 1}));
        assert_eq!(e.unknown_keys().collect::<Vec<_>>(), ["mine"]);
        assert!(e.check().is_ok());
        assert!(ModelExtra::KNOWN.contains(&"inter_op_threads"));
    }

    #[test]
    fn wrong_values_are_load_errors_naming_the_key() {
        for (value, message) in [
            (
                json!({"intra_op_threads": 0}),
                "parameters.extra.intra_op_threads must be a positive integer, got 0",
            ),
            (
                json!({"inter_op_threads": "two"}),
                "parameters.extra.inter_op_threads must be a positive integer, got \"two\"",
            ),
            (
                json!({"enable_mem_pattern": "yes"}),
                "parameters.extra.enable_mem_pattern must be true or false, got \"yes\"",
            ),
            (
                json!({"graph_optimization_level": null}),
                "parameters.extra.graph_optimization_level must be one of disable, basic, extended, all; got null",
            ),
            (
                json!({"timeout": -1}),
                "parameters.extra.timeout must be a positive number of seconds, got -1",
            ),
            (
                json!({"timeout": 1e6}),
                "parameters.extra.timeout must be at most 86400 seconds, got 1000000",
            ),
        ] {
            assert_eq!(extra(value.clone()).check().unwrap_err(), message, "{value}");
        }
        assert!(extra(json!({"intra_op_threads": null, "timeout": null}))
            .check()
            .is_ok());
    }

    #[test]
    fn an_override_replaces_values_and_errors() {
        let mut e = extra(json!({"intra_op_threads": "two", "inter_op_threads": 3}));
        assert!(e.check().is_err());
        let over = ModelExtra {
            intra_op_threads: Some(2),
            ..ModelExtra::default()
        };
        e.override_with(&over);
        assert!(e.check().is_ok());
        assert_eq!((e.intra_op_threads, e.inter_op_threads), (Some(2), Some(3)));
    }

    #[test]
    fn serde_readers_name_the_key() {
        let read = |v: Value| serde_value::<Vec<String>>("providers", &v);
        assert_eq!(read(json!(["cpu"])).unwrap(), Some(vec!["cpu".to_string()]));
        assert_eq!(read(Value::Null).unwrap(), None);
        assert!(read(json!(1))
            .unwrap_err()
            .starts_with("parameters.extra.providers: "));
    }
}
