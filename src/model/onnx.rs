//! The ONNX Runtime backend: builds a session from a model file and runs it.

use std::borrow::Cow;
use std::path::Path;
use std::time::Instant;

use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::{Session, SessionInputValue};
use ort::value::ValueType;

use super::stats::Timings;
use super::{Backend, Signature, TensorSpec};
use crate::error::Error;
use crate::tensor::ort::{datatype_of, from_ort_value, to_ort_value};
use crate::tensor::Tensor;

/// Whether sessions keep ONNX Runtime's CPU arena and memory patterns unless the settings say otherwise.
const ARENA_DEFAULT: bool = true;

/// Session options, read from model-settings `parameters.extra`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOptions {
    /// Threads one operator may use (`intra_op_threads`).
    pub intra_op_threads: usize,
    /// Threads running independent operators in parallel (`inter_op_threads`); 1 = sequential execution.
    pub inter_op_threads: usize,
    /// `graph_optimization_level`: disable, basic, extended or all.
    pub optimization: GraphOptimizationLevel,
    /// `enable_cpu_mem_arena`: ONNX Runtime's CPU arena keeps the largest activations it has seen.
    pub cpu_mem_arena: bool,
    /// `enable_mem_pattern`: pre-plans activation memory from the first run's shapes.
    pub mem_pattern: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            intra_op_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            inter_op_threads: 1,
            optimization: GraphOptimizationLevel::All,
            cpu_mem_arena: ARENA_DEFAULT,
            mem_pattern: ARENA_DEFAULT,
        }
    }
}

impl SessionOptions {
    /// Reads `intra_op_threads`, `inter_op_threads` and `graph_optimization_level` from `extra`;
    /// `instances` sessions share the machine's cores by default.
    pub fn from_extra(
        extra: &crate::tensor::Parameters,
        instances: usize,
    ) -> Result<SessionOptions, String> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut options = SessionOptions {
            intra_op_threads: (cores / instances.max(1)).max(1),
            ..SessionOptions::default()
        };
        let count = |key: &str| -> Result<Option<usize>, String> {
            match extra.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .filter(|&n| n >= 1)
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| {
                        format!("parameters.extra.{key} must be a positive integer, got {v}")
                    }),
            }
        };
        if let Some(n) = count("intra_op_threads")? {
            options.intra_op_threads = n;
        }
        if let Some(n) = count("inter_op_threads")? {
            options.inter_op_threads = n;
        }
        let flag = |key: &str| -> Result<Option<bool>, String> {
            match extra.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v.as_bool().map(Some).ok_or_else(|| {
                    format!("parameters.extra.{key} must be true or false, got {v}")
                }),
            }
        };
        if let Some(on) = flag("enable_cpu_mem_arena")? {
            options.cpu_mem_arena = on;
        }
        if let Some(on) = flag("enable_mem_pattern")? {
            options.mem_pattern = on;
        }
        if let Some(level) = extra.get("graph_optimization_level") {
            options.optimization = match level.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("disable") | Some("none") => GraphOptimizationLevel::Disable,
                Some("basic") => GraphOptimizationLevel::Level1,
                Some("extended") => GraphOptimizationLevel::Level2,
                Some("all") => GraphOptimizationLevel::All,
                _ => {
                    return Err(format!(
                        "parameters.extra.graph_optimization_level must be one of disable, basic, extended, all; got {level}"
                    ))
                }
            };
        }
        Ok(options)
    }
}

/// A model file loaded into an ONNX Runtime session.
pub struct OnnxBackend {
    session: Session,
    signature: Signature,
    label: String,
}

impl OnnxBackend {
    /// Loads `path` with `options`; the error is the reason, for logs and the repository index. Instances of
    /// one model pass the same `shared` container, so ONNX Runtime keeps one copy of their pre-packed weights.
    pub fn load(
        path: &Path,
        options: &SessionOptions,
        label: &str,
        shared: Option<&PrepackedWeights>,
    ) -> Result<OnnxBackend, String> {
        let env = crate::runtime::environment().map_err(|e| e.to_string())?;
        let fail = |e: ort::Error| format!("cannot load {}: {e}", path.display());
        let mut builder = Session::builder(env).map_err(fail)?;
        builder = builder
            .with_intra_threads(options.intra_op_threads)
            .map_err(|e| fail(e.into()))?
            .with_inter_threads(options.inter_op_threads)
            .map_err(|e| fail(e.into()))?
            .with_parallel_execution(options.inter_op_threads > 1)
            .map_err(|e| fail(e.into()))?
            .with_optimization_level(options.optimization)
            .map_err(|e| fail(e.into()))?
            .with_memory_pattern(options.mem_pattern)
            .map_err(|e| fail(e.into()))?
            .with_execution_providers([ort::ep::CPU::default()
                .with_arena_allocator(options.cpu_mem_arena)
                .build()])
            .map_err(|e| fail(e.into()))?;
        if let Some(weights) = shared {
            builder = builder
                .with_prepacked_weights(weights)
                .map_err(|e| fail(e.into()))?;
        }
        let session = builder.commit_from_file(path).map_err(fail)?;
        let signature = Signature {
            inputs: specs(
                session.inputs().iter().map(|o| (o.name(), o.dtype())),
                "input",
            )?,
            outputs: specs(
                session.outputs().iter().map(|o| (o.name(), o.dtype())),
                "output",
            )?,
        };
        Ok(OnnxBackend {
            session,
            signature,
            label: label.to_string(),
        })
    }
}

fn specs<'a>(
    outlets: impl Iterator<Item = (&'a str, &'a ValueType)>,
    kind: &str,
) -> Result<Vec<TensorSpec>, String> {
    outlets
        .map(|(name, dtype)| match dtype {
            ValueType::Tensor { ty, shape, .. } => {
                let datatype = datatype_of(*ty).ok_or_else(|| {
                    format!("{kind} '{name}' has element type {ty:?}, which V2 cannot carry")
                })?;
                Ok(TensorSpec {
                    name: name.to_string(),
                    datatype,
                    shape: shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect(),
                    parameters: None,
                })
            }
            other => Err(format!(
                "{kind} '{name}' is a {other:?}; only tensors are supported"
            )),
        })
        .collect()
}

impl Backend for OnnxBackend {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn run(
        &mut self,
        inputs: Vec<Tensor>,
        outputs: Option<&[String]>,
    ) -> Result<(Vec<Tensor>, Timings), Error> {
        let started = Instant::now();
        let mut values: Vec<(Cow<'static, str>, SessionInputValue<'static>)> =
            Vec::with_capacity(inputs.len());
        for tensor in inputs {
            let value = to_ort_value(&tensor.name, &tensor.shape, tensor.data)?;
            values.push((Cow::Owned(tensor.name), value.into()));
        }
        let converted = Instant::now();
        let label = &self.label;
        let results = self.session.run(values).map_err(|e| {
            Error::InvalidInput(format!("model {label} could not run on this input: {e}"))
        })?;
        let ran = Instant::now();
        let wanted: Vec<&str> = match outputs {
            Some(names) => names.iter().map(String::as_str).collect(),
            None => self
                .signature
                .outputs
                .iter()
                .map(|o| o.name.as_str())
                .collect(),
        };
        let tensors = wanted
            .into_iter()
            .map(|name| {
                let value = results.get(name).ok_or_else(|| {
                    Error::Internal(format!("model {label} produced no output '{name}'"))
                })?;
                let (shape, data) = from_ort_value(name, value)?;
                Tensor::new(name, shape, data)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let timings = Timings {
            input: converted - started,
            infer: ran - converted,
            output: ran.elapsed(),
        };
        Ok((tensors, timings))
    }
}
