//! The ONNX Runtime backend: builds a session from a model file and runs it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::{Session, SessionInputValue};
use ort::value::{TensorElementType, ValueType};

use super::onnx_graph::zipmap_keys;
use super::providers::{register, Providers};
use super::zipmap::ZipMapOutput;
use super::{Backend, Signature, TensorSpec, UnservedOutput};
use crate::config::model_extra::{GraphOptimization, ModelExtra};
use crate::error::Error;
use crate::model::ort_values::{datatype_of, from_ort_value, to_ort_value};
use crate::telemetry::Timings;
use crate::tensor::{DataType, Parameters, Tensor};

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
    /// `execution_providers` and `execution_provider_fallback` (`model/providers.rs`).
    pub providers: Providers,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            intra_op_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            inter_op_threads: 1,
            optimization: GraphOptimizationLevel::All,
            cpu_mem_arena: ARENA_DEFAULT,
            mem_pattern: ARENA_DEFAULT,
            providers: Providers::default(),
        }
    }
}

impl SessionOptions {
    /// The options `extra` sets (checked when the settings were read); `instances` sessions share the
    /// machine's cores by default.
    pub fn from_extra(extra: &ModelExtra, instances: usize) -> SessionOptions {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let defaults = SessionOptions::default();
        SessionOptions {
            intra_op_threads: extra
                .intra_op_threads
                .unwrap_or((cores / instances.max(1)).max(1)),
            inter_op_threads: extra.inter_op_threads.unwrap_or(defaults.inter_op_threads),
            optimization: extra
                .graph_optimization_level
                .map_or(defaults.optimization, |level| match level {
                    GraphOptimization::Disable => GraphOptimizationLevel::Disable,
                    GraphOptimization::Basic => GraphOptimizationLevel::Level1,
                    GraphOptimization::Extended => GraphOptimizationLevel::Level2,
                    GraphOptimization::All => GraphOptimizationLevel::All,
                }),
            cpu_mem_arena: extra.enable_cpu_mem_arena.unwrap_or(defaults.cpu_mem_arena),
            mem_pattern: extra.enable_mem_pattern.unwrap_or(defaults.mem_pattern),
            providers: Providers::from_extra(extra),
        }
    }

    /// Whether the session runs on ONNX Runtime's process-wide intra-op pool (`runtime::shared_pool_threads`,
    /// one thread per core, shared by every such session): when it asks for that many intra-op threads (the
    /// default for a model with one instance) and runs operators one after another. Any other setting gets the
    /// session a pool of its own of `intra_op_threads` (that many threads minus the caller's: none for 1), as
    /// ONNX Runtime does without shared pools.
    pub fn on_shared_pool(&self) -> bool {
        self.intra_op_threads == crate::runtime::shared_pool_threads() && self.inter_op_threads <= 1
    }
}

/// A model file loaded into an ONNX Runtime session.
pub struct OnnxBackend {
    session: Session,
    signature: Signature,
    /// Outputs that are sequences of ZipMap maps, returned as `[N, K]` tensors.
    zipmaps: HashMap<String, ZipMapOutput>,
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
            .map_err(|e| fail(e.into()))?;
        builder = register(builder, &options.providers, options.cpu_mem_arena, label)?;
        if !options.on_shared_pool() {
            builder = builder
                .with_independent_thread_pool()
                .map_err(|e| fail(e.into()))?;
        }
        if let Some(weights) = shared {
            builder = builder
                .with_prepacked_weights(weights)
                .map_err(|e| fail(e.into()))?;
        }
        let session = builder
            .commit_from_file(path)
            .map_err(|e| with_hint(fail(e)))?;
        let inputs = session
            .inputs()
            .iter()
            .map(|o| input_spec(o.name(), o.dtype()))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = output_specs(
            session.outputs().iter().map(|o| (o.name(), o.dtype())),
            || std::fs::read(path).map(bytes::Bytes::from),
        )?;
        Ok(OnnxBackend {
            session,
            signature: Signature {
                inputs,
                outputs: outputs.served,
                unserved: outputs.unserved,
            },
            zipmaps: outputs.zipmaps,
            label: label.to_string(),
        })
    }
}

/// An input as V2 sees it; a model with an input that is not a tensor cannot be fed and is refused.
/// Adds what to do to ONNX Runtime's load errors that users meet on first contact.
fn with_hint(reason: String) -> String {
    if reason.contains("Unsupported model IR version") {
        // onnx >= 1.19 writes a newer IR than this ONNX Runtime reads by default.
        format!(
            "{reason} (the model was saved by a newer onnx package than ONNX Runtime {} reads: save it with an \
             older IR, e.g. `model.ir_version = 10` before `onnx.save`, or export with an older opset)",
            crate::runtime::ORT_VERSION
        )
    } else {
        reason
    }
}

fn input_spec(name: &str, dtype: &ValueType) -> Result<TensorSpec, String> {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => tensor_spec("input", name, *ty, shape),
        other => Err(format!(
            "input '{name}' is {}; oxinfer can only feed tensor inputs",
            onnx_type(other)
        )),
    }
}

fn tensor_spec(
    kind: &str,
    name: &str,
    ty: TensorElementType,
    shape: &[i64],
) -> Result<TensorSpec, String> {
    let datatype = datatype_of(ty)
        .ok_or_else(|| format!("{kind} '{name}' has element type {ty:?}, which V2 cannot carry"))?;
    Ok(TensorSpec {
        name: name.to_string(),
        datatype,
        shape: shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect(),
        parameters: None,
    })
}

/// The model's outputs sorted into the ones served (tensors, ZipMaps as `[N, K]` tensors) and the rest.
#[derive(Debug, Default)]
struct OutputSpecs {
    served: Vec<TensorSpec>,
    unserved: Vec<UnservedOutput>,
    zipmaps: HashMap<String, ZipMapOutput>,
}

/// Sorts `outlets`; `read_model` gives the .onnx file's bytes, read (and its graph decoded) only when an
/// output is a sequence of maps, whose keys only the graph knows. Fails when no output can be served.
fn output_specs<'a>(
    outlets: impl Iterator<Item = (&'a str, &'a ValueType)>,
    read_model: impl FnOnce() -> std::io::Result<bytes::Bytes>,
) -> Result<OutputSpecs, String> {
    let mut specs = OutputSpecs::default();
    // (position in `served`, name, value type) of each ZipMap-style output, completed once the graph is read.
    let mut maps = Vec::new();
    for (name, dtype) in outlets {
        match dtype {
            ValueType::Tensor { ty, shape, .. } => {
                specs.served.push(tensor_spec("output", name, *ty, shape)?)
            }
            ValueType::Sequence(inner) => match inner.as_ref() {
                ValueType::Map {
                    key: TensorElementType::Int64 | TensorElementType::String,
                    value: value @ (TensorElementType::Float32 | TensorElementType::Float64),
                } => {
                    let datatype = if *value == TensorElementType::Float32 {
                        DataType::Fp32
                    } else {
                        DataType::Fp64
                    };
                    maps.push((specs.served.len(), name, dtype, datatype));
                    specs.served.push(TensorSpec {
                        name: name.to_string(),
                        datatype,
                        shape: vec![-1, -1],
                        parameters: None,
                    });
                }
                _ => specs.unserved.push(unserved(name, dtype)),
            },
            _ => specs.unserved.push(unserved(name, dtype)),
        }
    }
    if !maps.is_empty() {
        let model = read_model().map_err(|e| format!("cannot read the model file: {e}"))?;
        let names: Vec<&str> = maps.iter().map(|&(_, name, ..)| name).collect();
        let mut keys = zipmap_keys(model, &names)?;
        // Highest position first, so removing a spec does not move the ones still to visit.
        for &(position, name, dtype, datatype) in maps.iter().rev() {
            match keys.remove(name) {
                Some(Ok(keys)) => {
                    let spec = &mut specs.served[position];
                    spec.shape = vec![-1, keys.len() as i64];
                    spec.parameters = Some(Parameters::from_iter([(
                        LABELS.to_string(),
                        keys.to_json(),
                    )]));
                    specs
                        .zipmaps
                        .insert(name.to_string(), ZipMapOutput { keys, datatype });
                }
                other => {
                    let why = match other {
                        Some(Err(why)) => why,
                        _ => "the graph does not say".to_string(),
                    };
                    specs.served.remove(position);
                    specs.unserved.push(UnservedOutput {
                        name: name.to_string(),
                        reason: format!(
                            "output '{name}' is {} but its keys cannot be read from the graph ({why}); \
                             oxinfer serves a sequence of maps only when a ZipMap node lists the keys",
                            onnx_type(dtype)
                        ),
                    });
                }
            }
        }
    }
    if specs.served.is_empty() {
        let reasons: Vec<&str> = specs.unserved.iter().map(|u| u.reason.as_str()).collect();
        return Err(format!(
            "the model has no output oxinfer can serve: {}",
            reasons.join("; ")
        ));
    }
    Ok(specs)
}

/// The parameter that names a ZipMap output's columns (the same field model-settings uses for class labels).
pub const LABELS: &str = "labels";

fn unserved(name: &str, dtype: &ValueType) -> UnservedOutput {
    UnservedOutput {
        name: name.to_string(),
        reason: format!(
            "output '{name}' is {}; oxinfer serves tensor outputs and ZipMap-style \
             seq(map(int64|string, float|double)) outputs only",
            onnx_type(dtype)
        ),
    }
}

/// An ONNX value type in ONNX's own notation (`seq(map(int64,tensor(float)))`), after a description.
fn onnx_type(dtype: &ValueType) -> String {
    let kind = match dtype {
        ValueType::Tensor { .. } => "a tensor",
        ValueType::Sequence(inner) if matches!(inner.as_ref(), ValueType::Map { .. }) => {
            "a sequence of maps"
        }
        ValueType::Sequence(_) => "a sequence of tensors",
        ValueType::Map { .. } => "a map",
        ValueType::Optional(_) => "an optional value",
    };
    format!("{kind} ({})", notation(dtype))
}

fn notation(dtype: &ValueType) -> String {
    match dtype {
        ValueType::Tensor { ty, .. } => format!("tensor({})", element(*ty)),
        ValueType::Sequence(inner) => format!("seq({})", notation(inner)),
        ValueType::Map { key, value } => format!("map({},{})", element(*key), element(*value)),
        ValueType::Optional(inner) => format!("optional({})", notation(inner)),
    }
}

/// ONNX's name of an element type (`float`, `int64`, `string`, ...).
fn element(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Float32 => "float".into(),
        TensorElementType::Float64 => "double".into(),
        TensorElementType::Float16 => "float16".into(),
        TensorElementType::Bfloat16 => "bfloat16".into(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
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
            let (name, shape, data, _) = tensor.into_parts();
            let value = to_ort_value(&name, &shape, data)?;
            values.push((Cow::Owned(name), value.into()));
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
                let (shape, data) = match self.zipmaps.get(name) {
                    Some(zipmap) => zipmap.extract(name, value)?,
                    None => from_ort_value(name, value)?,
                };
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

#[cfg(test)]
mod tests {
    use super::*;
    use ort::value::{Shape, SymbolicDimensions};

    fn tensor(ty: TensorElementType, dims: &[i64]) -> ValueType {
        ValueType::Tensor {
            ty,
            shape: Shape::new(dims.iter().copied()),
            dimension_symbols: SymbolicDimensions::empty(dims.len()),
        }
    }

    fn zipmap(key: TensorElementType) -> ValueType {
        ValueType::Sequence(Box::new(ValueType::Map {
            key,
            value: TensorElementType::Float32,
        }))
    }

    fn fixture(name: &str) -> std::io::Result<bytes::Bytes> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/models")
            .join(name);
        std::fs::read(path).map(bytes::Bytes::from)
    }

    #[test]
    fn tensor_outputs_never_read_the_file() {
        let y = tensor(TensorElementType::Float32, &[-1, 2]);
        let specs = output_specs([("y", &y)].into_iter(), || panic!("read")).unwrap();
        assert_eq!(specs.served.len(), 1);
        assert!(specs.unserved.is_empty() && specs.zipmaps.is_empty());
    }

    #[test]
    fn zipmap_outputs_become_tensors_with_labels() {
        let label = tensor(TensorElementType::Int64, &[-1]);
        let probs = zipmap(TensorElementType::Int64);
        let outlets = [("output_label", &label), ("output_probability", &probs)];
        let specs = output_specs(outlets.into_iter(), || fixture("iris_zipmap.onnx")).unwrap();
        assert_eq!(specs.served[0].name, "output_label");
        let spec = &specs.served[1];
        assert_eq!(
            (spec.datatype, spec.shape.as_slice()),
            (DataType::Fp32, &[-1, 3][..])
        );
        assert_eq!(
            spec.parameters.as_ref().unwrap()[LABELS],
            serde_json::json!([0, 1, 2])
        );
        assert_eq!(
            specs.zipmaps["output_probability"],
            ZipMapOutput {
                keys: crate::model::onnx_graph::MapKeys::Int64(vec![0, 1, 2]),
                datatype: DataType::Fp32
            }
        );
    }

    #[test]
    fn other_outputs_are_unserved_with_their_onnx_type() {
        let y = tensor(TensorElementType::Float32, &[-1]);
        let seq = ValueType::Sequence(Box::new(tensor(TensorElementType::Float32, &[-1])));
        let optional = ValueType::Optional(Box::new(tensor(TensorElementType::Int64, &[])));
        let map = ValueType::Map {
            key: TensorElementType::String,
            value: TensorElementType::Float64,
        };
        let int_map = ValueType::Sequence(Box::new(ValueType::Map {
            key: TensorElementType::Int64,
            value: TensorElementType::Int64,
        }));
        // A sequence of maps whose keys no ZipMap lists (here: no such node in the graph).
        let orphan = zipmap(TensorElementType::String);
        let outlets = [
            ("y", &y),
            ("s", &seq),
            ("o", &optional),
            ("m", &map),
            ("im", &int_map),
            ("z", &orphan),
        ];
        let specs = output_specs(outlets.into_iter(), || fixture("iris_zipmap.onnx")).unwrap();
        assert_eq!(specs.served.len(), 1);
        let reasons: Vec<&str> = specs.unserved.iter().map(|u| u.reason.as_str()).collect();
        assert_eq!(
            reasons[..4],
            [
                "output 's' is a sequence of tensors (seq(tensor(float))); oxinfer serves tensor outputs and \
                 ZipMap-style seq(map(int64|string, float|double)) outputs only",
                "output 'o' is an optional value (optional(tensor(int64))); oxinfer serves tensor outputs and \
                 ZipMap-style seq(map(int64|string, float|double)) outputs only",
                "output 'm' is a map (map(string,double)); oxinfer serves tensor outputs and \
                 ZipMap-style seq(map(int64|string, float|double)) outputs only",
                "output 'im' is a sequence of maps (seq(map(int64,int64))); oxinfer serves tensor outputs and \
                 ZipMap-style seq(map(int64|string, float|double)) outputs only",
            ]
        );
        assert_eq!(specs.unserved[4].name, "z");
        assert!(
            reasons[4].starts_with("output 'z' is a sequence of maps (seq(map(string,float))) but its keys cannot be read from the graph (no node of the graph produces 'z')"),
            "{}",
            reasons[4]
        );
    }

    #[test]
    fn a_model_with_nothing_to_serve_is_refused_and_so_is_a_non_tensor_input() {
        let seq = ValueType::Sequence(Box::new(tensor(TensorElementType::Float32, &[-1])));
        let e = output_specs([("s", &seq)].into_iter(), || panic!("read")).unwrap_err();
        assert!(
            e.starts_with("the model has no output oxinfer can serve: output 's' is a sequence"),
            "{e}"
        );
        let e = input_spec("x", &seq).unwrap_err();
        assert_eq!(
            e,
            "input 'x' is a sequence of tensors (seq(tensor(float))); oxinfer can only feed tensor inputs"
        );
    }
}
