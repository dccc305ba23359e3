//! `parameters.extra.execution_providers`: the ONNX Runtime execution providers a model's sessions use, in order
//! of preference, with their options, as onnxruntime users write them:
//!
//! ```json
//! [{"name": "tensorrt", "options": {"device_id": 0, "trt_fp16_enable": true}},
//!  {"name": "cuda", "options": {"device_id": 0}}, "cpu"]
//! ```
//!
//! A provider is a name (`cuda`, `tensorrt`, `openvino`, `cpu`, or ONNX Runtime's own `CUDAExecutionProvider`,
//! ... in any case), an object `{"name", "options"}`, or a pair `[name, options]` (onnxruntime's Python
//! `providers=[("CUDAExecutionProvider", {...})]` written as JSON). The whole list may also be text (Seldon Core's
//! agent passes `parameters.extra` values as strings): JSON, or names separated by commas. Options are passed to
//! ONNX Runtime as text; the ones whose type is known are checked here so that a wrong one names its field.
//! Registering them on a session is `model/providers.rs`.

use serde_json::{Map, Value};

/// The execution providers oxinfer can register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// NVIDIA TensorRT (`TensorrtExecutionProvider`), from the GPU build of ONNX Runtime.
    TensorRt,
    /// NVIDIA CUDA (`CUDAExecutionProvider`), from the GPU build of ONNX Runtime.
    Cuda,
    /// Intel OpenVINO (`OpenVINOExecutionProvider`), from an OpenVINO build of ONNX Runtime.
    OpenVino,
    /// ONNX Runtime's CPU kernels (`CPUExecutionProvider`): always there, and always last.
    Cpu,
}

impl ProviderKind {
    /// Every provider, as listed in errors.
    pub const ALL: [ProviderKind; 4] = [
        ProviderKind::TensorRt,
        ProviderKind::Cuda,
        ProviderKind::OpenVino,
        ProviderKind::Cpu,
    ];

    /// The short name used in settings and messages (`cuda`).
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::TensorRt => "tensorrt",
            ProviderKind::Cuda => "cuda",
            ProviderKind::OpenVino => "openvino",
            ProviderKind::Cpu => "cpu",
        }
    }

    /// ONNX Runtime's name, as `GetAvailableProviders` reports it (`CUDAExecutionProvider`).
    pub fn ort_name(self) -> &'static str {
        match self {
            ProviderKind::TensorRt => "TensorrtExecutionProvider",
            ProviderKind::Cuda => "CUDAExecutionProvider",
            ProviderKind::OpenVino => "OpenVINOExecutionProvider",
            ProviderKind::Cpu => "CPUExecutionProvider",
        }
    }

    /// Whether the provider runs on an NVIDIA GPU (Triton's `KIND_GPU`).
    pub fn is_gpu(self) -> bool {
        matches!(self, ProviderKind::TensorRt | ProviderKind::Cuda)
    }

    /// Reads a name, short or ONNX Runtime's, in any case.
    pub fn parse(name: &str) -> Option<ProviderKind> {
        let name = name.trim();
        ProviderKind::ALL.into_iter().find(|k| {
            name.eq_ignore_ascii_case(k.name()) || name.eq_ignore_ascii_case(k.ort_name())
        })
    }

    /// The type of a documented option of this provider (others are passed as given).
    fn option_type(self, key: &str) -> OptionType {
        use OptionType::{Flag, Text, UInt};
        match (self, key) {
            (ProviderKind::Cuda | ProviderKind::TensorRt, "device_id") => UInt,
            (
                ProviderKind::Cuda,
                "gpu_mem_limit" | "cudnn_conv_use_max_workspace_size" | "sdpa_kernel",
            ) => UInt,
            (
                ProviderKind::Cuda,
                "cudnn_conv_use_max_workspace"
                | "cudnn_conv1d_pad_to_nc1d"
                | "enable_cuda_graph"
                | "enable_skip_layer_norm_strict_mode"
                | "use_tf32"
                | "prefer_nhwc"
                | "fuse_conv_bias"
                | "do_copy_in_default_stream",
            ) => Flag,
            (
                ProviderKind::TensorRt,
                "trt_max_workspace_size"
                | "trt_min_subgraph_size"
                | "trt_max_partition_iterations"
                | "trt_dla_core"
                | "trt_builder_optimization_level",
            ) => UInt,
            (ProviderKind::TensorRt, key)
                if key.starts_with("trt_")
                    && (key.ends_with("_enable") || FLAG_TRT.contains(&key)) =>
            {
                Flag
            }
            (ProviderKind::OpenVino, "num_of_threads" | "num_streams") => UInt,
            (
                ProviderKind::OpenVino,
                "enable_opencl_throttling" | "enable_qdq_optimizer" | "disable_dynamic_shapes",
            ) => Flag,
            _ => Text,
        }
    }
}

/// TensorRT flags whose name does not end in `_enable`.
const FLAG_TRT: &[&str] = &[
    "trt_int8_use_native_calibration_table",
    "trt_dump_subgraphs",
    "trt_force_sequential_engine_build",
    "trt_layer_norm_fp32_fallback",
    "trt_force_timing_cache",
    "trt_detailed_build_log",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OptionType {
    /// true/false (also "true", "false", "1", "0", 1, 0), passed as "1"/"0".
    Flag,
    /// A non-negative integer (or its digits as text).
    UInt,
    /// Any text, number or flag, passed as its text.
    Text,
}

/// One entry of `execution_providers`: a provider and its options, as the text ONNX Runtime reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExecutionProvider {
    pub kind: ProviderKind,
    pub options: Vec<(String, String)>,
}

/// Reads `execution_providers` (the reader of its `model_extra!` line); `key` names it in errors.
pub fn read_execution_providers(
    key: &'static str,
    value: &Value,
) -> Result<Option<Vec<ExecutionProvider>>, String> {
    let field = format!("parameters.extra.{key}");
    let parsed;
    let value = match value {
        Value::Null => return Ok(None),
        Value::String(text) => {
            let text = text.trim();
            if text.starts_with('[') || text.starts_with('{') {
                parsed = serde_json::from_str::<Value>(text)
                    .map_err(|e| format!("{field} is text that is not valid JSON: {e}"))?;
                &parsed
            } else {
                parsed = Value::Array(
                    text.split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(|n| Value::String(n.into()))
                        .collect(),
                );
                &parsed
            }
        }
        v => v,
    };
    let Value::Array(items) = value else {
        return Err(format!(
            "{field} must be a list of providers (e.g. [\"cuda\", \"cpu\"]), got {value}"
        ));
    };
    let mut providers: Vec<ExecutionProvider> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let provider = read_provider(&at, item)?;
        if providers.iter().any(|p| p.kind == provider.kind) {
            return Err(format!("{at}: {} is listed twice", provider.kind.name()));
        }
        if providers
            .last()
            .is_some_and(|p| p.kind == ProviderKind::Cpu)
        {
            return Err(format!(
                "{at}: cpu must be the last provider (ONNX Runtime gives it every node it is offered, so \
                 {} after it would run nothing)",
                provider.kind.name()
            ));
        }
        providers.push(provider);
    }
    Ok(Some(providers))
}

fn read_provider(at: &str, item: &Value) -> Result<ExecutionProvider, String> {
    let empty = Map::new();
    let (name, options) = match item {
        Value::String(name) => (name.as_str(), &empty),
        Value::Object(entry) => {
            if let Some(other) = entry.keys().find(|k| *k != "name" && *k != "options") {
                return Err(format!(
                    "{at} has an unknown key {other:?} (a provider is {{\"name\": ..., \"options\": {{...}}}})"
                ));
            }
            let name = entry.get("name").and_then(Value::as_str).ok_or_else(|| {
                format!(
                    "{at}.name must be a provider name, got {}",
                    shown(entry.get("name"))
                )
            })?;
            let options = match entry.get("options") {
                None | Some(Value::Null) => &empty,
                Some(Value::Object(options)) => options,
                Some(other) => {
                    return Err(format!("{at}.options must be an object, got {other}"));
                }
            };
            (name, options)
        }
        Value::Array(pair) => match pair.as_slice() {
            [Value::String(name)] => (name.as_str(), &empty),
            [Value::String(name), Value::Object(options)] => (name.as_str(), options),
            _ => {
                return Err(format!(
                "{at} must be a name, {{\"name\", \"options\"}} or [name, {{options}}], got {item}"
            ))
            }
        },
        other => {
            return Err(format!(
                "{at} must be a name, {{\"name\", \"options\"}} or [name, {{options}}], got {other}"
            ))
        }
    };
    let kind = ProviderKind::parse(name).ok_or_else(|| {
        let known: Vec<String> = ProviderKind::ALL
            .iter()
            .map(|k| format!("{} ({})", k.name(), k.ort_name()))
            .collect();
        format!(
            "{at}: unknown execution provider {name:?}; oxinfer knows {}",
            known.join(", ")
        )
    })?;
    if kind == ProviderKind::Cpu && !options.is_empty() {
        return Err(format!(
            "{at}: cpu takes no options (its arena is parameters.extra.enable_cpu_mem_arena, its threads \
             parameters.extra.intra_op_threads)"
        ));
    }
    let options = options
        .iter()
        .map(|(key, value)| {
            read_option(kind.option_type(key), value)
                .map(|text| (key.clone(), text))
                .map_err(|wanted| format!("{at}.options.{key} must be {wanted}, got {value}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(ExecutionProvider { kind, options })
}

/// An option's value as the text ONNX Runtime reads, or what it should have been.
fn read_option(ty: OptionType, value: &Value) -> Result<String, &'static str> {
    let text = match value {
        Value::String(s) => Some(s.trim()),
        _ => None,
    };
    match ty {
        OptionType::Flag => match (value, text) {
            (Value::Bool(b), _) => Some(*b),
            (Value::Number(n), _) => match n.as_u64() {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => None,
            },
            (_, Some(t)) if t.eq_ignore_ascii_case("true") || t == "1" => Some(true),
            (_, Some(t)) if t.eq_ignore_ascii_case("false") || t == "0" => Some(false),
            _ => None,
        }
        .map(|b| (if b { "1" } else { "0" }).to_string())
        .ok_or("true or false"),
        OptionType::UInt => match (value, text) {
            (Value::Number(n), _) => n.as_u64().map(|n| n.to_string()),
            (_, Some(t)) => t.parse::<u64>().ok().map(|n| n.to_string()),
            _ => None,
        }
        .ok_or("a non-negative integer"),
        OptionType::Text => match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err("text, a number or a flag"),
        },
    }
}

fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "nothing".to_string(), Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: Value) -> Result<Option<Vec<ExecutionProvider>>, String> {
        read_execution_providers("execution_providers", &value)
    }

    fn kinds(value: Value) -> Vec<ProviderKind> {
        read(value)
            .unwrap()
            .unwrap()
            .iter()
            .map(|p| p.kind)
            .collect()
    }

    /// `list` in the order the options come out (serde_json's map is sorted by key).
    fn options(list: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut list: Vec<(String, String)> = list
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        list.sort();
        list
    }

    #[test]
    fn names_short_and_onnx_runtimes_in_any_case() {
        use ProviderKind::*;
        assert_eq!(
            kinds(json!([
                "TensorrtExecutionProvider",
                "cudaexecutionprovider",
                "OpenVINO",
                "CPU"
            ])),
            [TensorRt, Cuda, OpenVino, Cpu]
        );
        assert_eq!(
            kinds(json!([{"name": "CUDAExecutionProvider"}, ["cpu"]])),
            [Cuda, Cpu]
        );
        assert_eq!(kinds(json!([])), []);
        assert_eq!(read(Value::Null).unwrap(), None);
    }

    #[test]
    fn options_become_the_text_onnx_runtime_reads() {
        let list = read(json!([
            {"name": "tensorrt", "options": {"device_id": 0, "trt_fp16_enable": true,
                                             "trt_engine_cache_path": "/cache", "trt_dump_subgraphs": "False"}},
            ["CUDAExecutionProvider", {"device_id": "1", "gpu_mem_limit": 2147483648_u64,
                                       "arena_extend_strategy": "kSameAsRequested", "use_tf32": 0}],
            {"name": "openvino", "options": {"device_type": "CPU", "num_of_threads": 4}},
            {"name": "cpu", "options": {}}
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            list[0].options,
            options(&[
                ("device_id", "0"),
                ("trt_fp16_enable", "1"),
                ("trt_engine_cache_path", "/cache"),
                ("trt_dump_subgraphs", "0"),
            ])
        );
        assert_eq!(
            list[1].options,
            options(&[
                ("device_id", "1"),
                ("gpu_mem_limit", "2147483648"),
                ("arena_extend_strategy", "kSameAsRequested"),
                ("use_tf32", "0"),
            ])
        );
        assert_eq!(
            list[2].options,
            options(&[("device_type", "CPU"), ("num_of_threads", "4")])
        );
        assert!(list[3].options.is_empty());
    }

    #[test]
    fn seldon_text_is_json_or_names_separated_by_commas() {
        use ProviderKind::*;
        let list = read(json!(
            "[{\"name\": \"cuda\", \"options\": {\"device_id\": 0}}, {\"name\": \"cpu\"}]"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(list[0].kind, Cuda);
        assert_eq!(list[0].options, options(&[("device_id", "0")]));
        assert_eq!(
            kinds(json!("CUDAExecutionProvider, CPUExecutionProvider")),
            [Cuda, Cpu]
        );
        assert_eq!(kinds(json!("cpu")), [Cpu]);
    }

    #[test]
    fn errors_name_the_field() {
        for (value, message) in [
            (
                json!([{"name": "cuda", "options": {"device_id": "zero"}}]),
                "parameters.extra.execution_providers[0].options.device_id must be a non-negative integer, got \"zero\"",
            ),
            (
                json!(["cuda", {"name": "tensorrt", "options": {"trt_fp16_enable": "yes"}}]),
                "parameters.extra.execution_providers[1].options.trt_fp16_enable must be true or false, got \"yes\"",
            ),
            (
                json!([{"name": "cuda", "options": {"device_id": -1}}]),
                "parameters.extra.execution_providers[0].options.device_id must be a non-negative integer, got -1",
            ),
            (
                json!([{"name": "cuda", "options": {"arena_extend_strategy": [1]}}]),
                "parameters.extra.execution_providers[0].options.arena_extend_strategy must be text, a number or a flag, got [1]",
            ),
            (
                json!([{"name": "cuda", "options": [1]}]),
                "parameters.extra.execution_providers[0].options must be an object, got [1]",
            ),
            (
                json!(["rocm"]),
                "parameters.extra.execution_providers[0]: unknown execution provider \"rocm\"; oxinfer knows \
                 tensorrt (TensorrtExecutionProvider), cuda (CUDAExecutionProvider), openvino \
                 (OpenVINOExecutionProvider), cpu (CPUExecutionProvider)",
            ),
            (
                json!([{"provider": "cuda"}]),
                "parameters.extra.execution_providers[0] has an unknown key \"provider\"",
            ),
            (
                json!([{"options": {}}]),
                "parameters.extra.execution_providers[0].name must be a provider name, got nothing",
            ),
            (
                json!(["cpu", "cuda"]),
                "parameters.extra.execution_providers[1]: cpu must be the last provider",
            ),
            (
                json!(["cuda", "CUDAExecutionProvider"]),
                "parameters.extra.execution_providers[1]: cuda is listed twice",
            ),
            (
                json!([{"name": "cpu", "options": {"use_arena": true}}]),
                "parameters.extra.execution_providers[0]: cpu takes no options",
            ),
            (
                json!({"name": "cuda"}),
                "parameters.extra.execution_providers must be a list of providers",
            ),
            (
                json!("[{\"name\": "),
                "parameters.extra.execution_providers is text that is not valid JSON",
            ),
            (json!([7]), "parameters.extra.execution_providers[0] must be a name"),
        ] {
            let error = read(value.clone()).unwrap_err();
            assert!(error.starts_with(message), "{value}: {error}");
        }
    }
}
