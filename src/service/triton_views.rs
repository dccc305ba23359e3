//! Triton's view of a model: its model configuration (what perf_analyzer and Triton tooling read).

use crate::model::TensorSpec;
use crate::repository::LoadedModel;
use crate::tensor::DataType;

/// Triton's `TYPE_*` name of a datatype.
fn triton_type(datatype: DataType) -> String {
    match datatype {
        DataType::Bytes => "TYPE_STRING".into(),
        other => format!("TYPE_{}", other.as_str()),
    }
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
fn triton_tensor(spec: &TensorSpec, batched: bool) -> serde_json::Value {
    let mut tensor = serde_json::json!({
        "name": spec.name,
        "data_type": triton_type(spec.datatype),
        "dims": spec.shape,
    });
    if batched {
        let dims = &spec.shape[1.min(spec.shape.len())..];
        if dims.is_empty() {
            tensor["dims"] = serde_json::json!([1]);
            tensor["reshape"] = serde_json::json!({"shape": []});
        } else {
            tensor["dims"] = serde_json::json!(dims);
        }
    }
    tensor
}

pub(super) fn triton_config(model: &LoadedModel) -> serde_json::Value {
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
    let file = model
        .source
        .model_path()
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model.onnx".into());
    let mut config = serde_json::json!({
        "name": model.name,
        "platform": model.platform,
        "backend": "onnxruntime",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": max_batch_size.min(i32::MAX as usize),
        "input": tensors(&model.signature.inputs),
        "output": tensors(&model.signature.outputs),
        "instance_group": [{"name": model.name, "kind": "KIND_CPU", "count": model.workers.instances()}],
        "default_model_filename": file,
        "parameters": {},
    });
    if let Some(policy) = batching {
        config["dynamic_batching"] = serde_json::json!({
            "max_queue_delay_microseconds": u64::try_from(policy.max_batch_time.as_micros()).unwrap_or(u64::MAX),
        });
    }
    config
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
        let t = triton_tensor(&spec("x", &[-1, 16]), true);
        assert_eq!(t["dims"], serde_json::json!([16]));
        assert!(t.get("reshape").is_none());
        let t = triton_tensor(&spec("y", &[-1]), true);
        assert_eq!(t["dims"], serde_json::json!([1]));
        assert_eq!(t["reshape"], serde_json::json!({"shape": []}));
        let t = triton_tensor(&spec("x", &[-1, 16]), false);
        assert_eq!(t["dims"], serde_json::json!([-1, 16]));
    }
}
