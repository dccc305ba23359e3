//! Triton's view of a model: its model configuration (what perf_analyzer and Triton tooling read).

use serde::Serialize;

use crate::model::providers::Providers;
use crate::model::TensorSpec;
use crate::repository::LoadedModel;
use crate::tensor::DataType;

/// Triton's model configuration of one model version, as `GET /v2/models/{m}/config` answers it and the
/// `ModelConfig` RPC carries it (fields in alphabetical order: the JSON keeps the order it always had).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TritonModelConfig {
    pub backend: String,
    pub default_model_filename: String,
    /// Present when the model batches adaptively.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_batching: Option<TritonDynamicBatching>,
    pub input: Vec<TritonTensor>,
    pub instance_group: Vec<TritonInstanceGroup>,
    /// 0: no batch dimension (see [`triton_max_batch_size`]).
    pub max_batch_size: i32,
    pub name: String,
    pub output: Vec<TritonTensor>,
    /// Always empty (Triton writes `{}` when a model has none).
    pub parameters: TritonParameters,
    pub platform: String,
    pub version_policy: TritonVersionPolicy,
}

/// Triton's `dynamic_batching`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TritonDynamicBatching {
    pub max_queue_delay_microseconds: u64,
}

/// One tensor of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TritonTensor {
    /// Written as Triton's `TYPE_*` name.
    #[serde(serialize_with = "triton_type")]
    pub data_type: DataType,
    pub dims: Vec<i64>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reshape: Option<TritonReshape>,
}

/// A tensor's `reshape`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TritonReshape {
    pub shape: Vec<i64>,
}

/// One `instance_group` entry: `count` instances, on the CPU or (a CUDA or TensorRT provider active) the GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TritonInstanceGroup {
    pub count: i32,
    pub kind: TritonInstanceKind,
    pub name: String,
}

/// Where an instance group runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TritonInstanceKind {
    #[serde(rename = "KIND_CPU")]
    Cpu,
    /// A GPU execution provider (`parameters.extra.execution_providers`) runs the model.
    #[serde(rename = "KIND_GPU")]
    Gpu,
}

/// The configuration's `parameters`: none.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TritonParameters {}

/// `version_policy`: the latest `num_versions` versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TritonVersionPolicy {
    pub latest: TritonLatest,
}

/// `version_policy.latest`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TritonLatest {
    pub num_versions: u32,
}

/// Triton's `TYPE_*` name of a datatype.
pub fn triton_type_name(datatype: DataType) -> String {
    match datatype {
        DataType::Bytes => "TYPE_STRING".into(),
        other => format!("TYPE_{}", other.as_str()),
    }
}

fn triton_type<S: serde::Serializer>(datatype: &DataType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&triton_type_name(*datatype))
}

/// Triton's `max_batch_size` for a model that can batch but whose settings give no size: what Triton's ONNX
/// Runtime backend fills in for such a model (its `default-max-batch-size`).
pub const TRITON_DEFAULT_MAX_BATCH_SIZE: usize = 4;

/// Triton's `max_batch_size` for a model: 0 (no batch dimension) unless every input and output starts with a
/// variable dimension; then the adaptive batching size, else the model-settings `max_batch_size`, else
/// [`TRITON_DEFAULT_MAX_BATCH_SIZE`]. Advisory, as in MLServer: requests with more rows are not refused.
pub fn triton_max_batch_size(
    signature: &crate::model::Signature,
    batching: Option<usize>,
    settings_size: usize,
) -> usize {
    let batched = !signature.inputs.is_empty()
        && signature
            .inputs
            .iter()
            .chain(&signature.outputs)
            .all(|t| t.shape.first() == Some(&-1));
    match (batched, batching) {
        (false, _) => 0,
        (true, Some(size)) if size > 0 => size,
        (true, _) if settings_size > 0 => settings_size,
        (true, _) => TRITON_DEFAULT_MAX_BATCH_SIZE,
    }
}

/// One tensor of Triton's configuration: without the batch dimension when the model batches; a tensor that
/// is only the batch dimension is written as Triton writes it, `dims: [1]` with `reshape: {shape: []}`.
fn triton_tensor(spec: &TensorSpec, batched: bool) -> TritonTensor {
    let (dims, reshape) = match &spec.shape[..] {
        [_, rest @ ..] if batched && !rest.is_empty() => (rest.to_vec(), None),
        _ if batched => (vec![1], Some(TritonReshape { shape: Vec::new() })),
        all => (all.to_vec(), None),
    };
    TritonTensor {
        data_type: spec.datatype,
        dims,
        name: spec.name.clone(),
        reshape,
    }
}

pub(super) fn triton_config(model: &LoadedModel) -> TritonModelConfig {
    let batching = model.workers.batching();
    let max_batch_size = triton_max_batch_size(
        &model.signature,
        batching.map(|p| p.max_batch_size),
        model.source.settings.max_batch_size,
    );
    let batched = max_batch_size > 0;
    let tensors = |specs: &[TensorSpec]| {
        specs
            .iter()
            .map(|s| triton_tensor(s, batched))
            .collect::<Vec<_>>()
    };
    let default_model_filename = model
        .source
        .model_path()
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model.onnx".into());
    TritonModelConfig {
        backend: "onnxruntime".into(),
        default_model_filename,
        dynamic_batching: batching.map(|policy| TritonDynamicBatching {
            max_queue_delay_microseconds: u64::try_from(policy.max_batch_time.as_micros())
                .unwrap_or(u64::MAX),
        }),
        input: tensors(&model.signature.inputs),
        instance_group: vec![TritonInstanceGroup {
            count: i32::try_from(model.workers.instances()).unwrap_or(i32::MAX),
            kind: if Providers::from_extra(&model.source.settings.parameters.extra).uses_gpu() {
                TritonInstanceKind::Gpu
            } else {
                TritonInstanceKind::Cpu
            },
            name: model.name.clone(),
        }],
        max_batch_size: i32::try_from(max_batch_size).unwrap_or(i32::MAX),
        name: model.name.clone(),
        output: tensors(&model.signature.outputs),
        parameters: TritonParameters::default(),
        platform: model.platform.clone(),
        version_policy: TritonVersionPolicy {
            latest: TritonLatest { num_versions: 1 },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Signature;

    fn spec(name: &str, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype: DataType::Int32,
            shape: shape.to_vec(),
            parameters: None,
        }
    }

    #[test]
    fn triton_batching_form_needs_a_variable_first_dimension_everywhere() {
        let batched = Signature {
            inputs: vec![spec("x", &[-1, 16])],
            outputs: vec![spec("y", &[-1])],
            ..Signature::default()
        };
        assert_eq!(
            triton_max_batch_size(&batched, None, 0),
            TRITON_DEFAULT_MAX_BATCH_SIZE
        );
        assert_eq!(triton_max_batch_size(&batched, None, 8), 8);
        assert_eq!(triton_max_batch_size(&batched, Some(16), 8), 16);
        let fixed_output = Signature {
            inputs: vec![spec("x", &[-1, 16])],
            outputs: vec![spec("y", &[1, 16])],
            ..Signature::default()
        };
        assert_eq!(triton_max_batch_size(&fixed_output, Some(16), 8), 0);
        let scalar = Signature {
            inputs: vec![spec("x", &[])],
            outputs: vec![spec("y", &[-1])],
            ..Signature::default()
        };
        assert_eq!(triton_max_batch_size(&scalar, None, 0), 0);
        assert_eq!(triton_max_batch_size(&Signature::default(), None, 0), 0);
    }

    #[test]
    fn triton_tensors_drop_the_batch_dimension() {
        let json = |t| serde_json::to_value(t).unwrap();
        let t = json(triton_tensor(&spec("x", &[-1, 16]), true));
        assert_eq!(t["dims"], serde_json::json!([16]));
        assert!(t.get("reshape").is_none());
        let t = json(triton_tensor(&spec("y", &[-1]), true));
        assert_eq!(t["dims"], serde_json::json!([1]));
        assert_eq!(t["reshape"], serde_json::json!({"shape": []}));
        let t = json(triton_tensor(&spec("x", &[-1, 16]), false));
        assert_eq!(t["dims"], serde_json::json!([-1, 16]));
        assert_eq!(t["data_type"], "TYPE_INT32");
    }
}
