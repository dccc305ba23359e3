//! Triton's model configuration and statistics as gRPC messages: the JSON configuration and the statistics
//! structs that the service builds for REST, turned into the proto messages field by field.

use serde::Deserialize;
use serde_json::Value;

use super::pb;
use crate::error::Error;
use crate::model::stats::{Duration64, ModelStatistics};

/// The service's Triton configuration (`Service::model_config`) as a `ModelConfig` message. Fields
/// the message does not carry (e.g. `parameters`) are left out.
pub fn model_config(config: Value) -> Result<pb::ModelConfig, Error> {
    let config: ConfigJson = serde_json::from_value(config).map_err(|e| {
        Error::Internal(format!(
            "the model configuration does not fit ModelConfig: {e}"
        ))
    })?;
    let input = config
        .input
        .into_iter()
        .map(|t| {
            Ok(pb::ModelInput {
                name: t.name,
                data_type: data_type(&t.data_type)?,
                format: pb::model_input::Format::None as i32,
                dims: t.dims,
                reshape: t.reshape.map(reshape),
            })
        })
        .collect::<Result<_, Error>>()?;
    let output = config
        .output
        .into_iter()
        .map(|t| {
            Ok(pb::ModelOutput {
                name: t.name,
                data_type: data_type(&t.data_type)?,
                dims: t.dims,
                reshape: t.reshape.map(reshape),
            })
        })
        .collect::<Result<_, Error>>()?;
    let instance_group = config
        .instance_group
        .into_iter()
        .map(|g| {
            let kind = pb::model_instance_group::Kind::from_str_name(&g.kind).ok_or_else(|| {
                Error::Internal(format!("unknown instance group kind {}", g.kind))
            })?;
            Ok(pb::ModelInstanceGroup {
                name: g.name,
                count: g.count,
                kind: kind as i32,
            })
        })
        .collect::<Result<_, Error>>()?;
    let version_policy =
        config
            .version_policy
            .and_then(|p| p.latest)
            .map(|l| pb::ModelVersionPolicy {
                policy_choice: Some(pb::model_version_policy::PolicyChoice::Latest(
                    pb::model_version_policy::Latest {
                        num_versions: l.num_versions,
                    },
                )),
            });
    Ok(pb::ModelConfig {
        name: config.name,
        platform: config.platform,
        version_policy,
        max_batch_size: config.max_batch_size,
        input,
        output,
        instance_group,
        default_model_filename: config.default_model_filename,
        backend: config.backend,
        dynamic_batching: config
            .dynamic_batching
            .map(|batching| pb::ModelDynamicBatching {
                max_queue_delay_microseconds: batching.max_queue_delay_microseconds,
            }),
    })
}

/// One model version's statistics as a `ModelStatistics` message.
pub fn model_statistics(stats: ModelStatistics) -> pb::ModelStatistics {
    let s = stats.inference_stats;
    pb::ModelStatistics {
        name: stats.name,
        version: stats.version,
        last_inference: stats.last_inference,
        inference_count: stats.inference_count,
        execution_count: stats.execution_count,
        inference_stats: Some(pb::InferStatistics {
            success: Some(duration(s.success)),
            fail: Some(duration(s.fail)),
            queue: Some(duration(s.queue)),
            compute_input: Some(duration(s.compute_input)),
            compute_infer: Some(duration(s.compute_infer)),
            compute_output: Some(duration(s.compute_output)),
            cache_hit: Some(duration(s.cache_hit)),
            cache_miss: Some(duration(s.cache_miss)),
        }),
        batch_stats: stats
            .batch_stats
            .into_iter()
            .filter_map(batch_stats)
            .collect(),
    }
}

fn reshape(r: ReshapeJson) -> pb::ModelTensorReshape {
    pb::ModelTensorReshape { shape: r.shape }
}

fn duration(d: Duration64) -> pb::StatisticDuration {
    pb::StatisticDuration {
        count: d.count,
        ns: d.ns,
    }
}

/// One entry of Triton's JSON `batch_stats` (`batch_size` and the three compute durations).
fn batch_stats(value: Value) -> Option<pb::InferBatchStatistics> {
    let entry: BatchJson = serde_json::from_value(value).ok()?;
    Some(pb::InferBatchStatistics {
        batch_size: entry.batch_size,
        compute_input: entry.compute_input.map(|d| duration(d.into())),
        compute_infer: entry.compute_infer.map(|d| duration(d.into())),
        compute_output: entry.compute_output.map(|d| duration(d.into())),
    })
}

/// A `TYPE_*` name as the `DataType` enum.
fn data_type(name: &str) -> Result<i32, Error> {
    pb::DataType::from_str_name(name)
        .map(|t| t as i32)
        .ok_or_else(|| Error::Internal(format!("unknown Triton data type {name}")))
}

#[derive(Deserialize)]
struct ConfigJson {
    name: String,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    backend: String,
    version_policy: Option<VersionPolicyJson>,
    #[serde(default)]
    max_batch_size: i32,
    #[serde(default)]
    input: Vec<TensorJson>,
    #[serde(default)]
    output: Vec<TensorJson>,
    #[serde(default)]
    instance_group: Vec<InstanceGroupJson>,
    #[serde(default)]
    default_model_filename: String,
    dynamic_batching: Option<DynamicBatchingJson>,
}

#[derive(Deserialize)]
struct DynamicBatchingJson {
    max_queue_delay_microseconds: u64,
}

#[derive(Deserialize)]
struct VersionPolicyJson {
    latest: Option<LatestJson>,
}

#[derive(Deserialize)]
struct LatestJson {
    num_versions: u32,
}

#[derive(Deserialize)]
struct TensorJson {
    name: String,
    data_type: String,
    dims: Vec<i64>,
    reshape: Option<ReshapeJson>,
}

#[derive(Deserialize)]
struct ReshapeJson {
    shape: Vec<i64>,
}

#[derive(Deserialize)]
struct InstanceGroupJson {
    #[serde(default)]
    name: String,
    kind: String,
    count: i32,
}

#[derive(Deserialize)]
struct BatchJson {
    batch_size: u64,
    compute_input: Option<DurationJson>,
    compute_infer: Option<DurationJson>,
    compute_output: Option<DurationJson>,
}

#[derive(Deserialize)]
struct DurationJson {
    count: u64,
    ns: u64,
}

impl From<DurationJson> for Duration64 {
    fn from(d: DurationJson) -> Duration64 {
        Duration64 {
            count: d.count,
            ns: d.ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_becomes_the_message() {
        let config = serde_json::json!({
            "name": "simple",
            "platform": "onnxruntime_onnx",
            "backend": "onnxruntime",
            "version_policy": {"latest": {"num_versions": 1}},
            "max_batch_size": 0,
            "input": [{"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [-1, 16]}],
            "output": [{"name": "OUTPUT0", "data_type": "TYPE_STRING", "dims": [-1]}],
            "instance_group": [{"name": "simple", "kind": "KIND_CPU", "count": 2}],
            "default_model_filename": "model.onnx",
            "parameters": {},
        });
        let m = model_config(config).unwrap();
        assert_eq!(m.name, "simple");
        assert_eq!(m.input[0].data_type, pb::DataType::TypeInt32 as i32);
        assert_eq!(m.input[0].dims, vec![-1, 16]);
        assert_eq!(m.output[0].data_type, pb::DataType::TypeString as i32);
        assert_eq!(
            m.instance_group[0].kind,
            pb::model_instance_group::Kind::Cpu as i32
        );
        assert_eq!(m.instance_group[0].count, 2);
        assert_eq!(m.backend, "onnxruntime");
        assert!(m.version_policy.is_some());
        assert!(m.input[0].reshape.is_none());
    }

    #[test]
    fn reshape_is_carried() {
        let config = serde_json::json!({
            "name": "m",
            "max_batch_size": 4,
            "output": [{"name": "y", "data_type": "TYPE_INT64", "dims": [1], "reshape": {"shape": []}}],
        });
        let m = model_config(config).unwrap();
        assert_eq!(m.max_batch_size, 4);
        assert_eq!(m.output[0].reshape.as_ref().map(|r| r.shape.len()), Some(0));
    }

    #[test]
    fn an_unknown_type_is_internal() {
        let config = serde_json::json!({
            "name": "m",
            "input": [{"name": "x", "data_type": "TYPE_NOPE", "dims": [1]}],
        });
        assert!(matches!(model_config(config), Err(Error::Internal(_))));
    }

    #[test]
    fn batch_stats_entries_convert() {
        let entry = serde_json::json!({
            "batch_size": 4,
            "compute_input": {"count": 1, "ns": 10},
            "compute_infer": {"count": 1, "ns": 20},
            "compute_output": {"count": 1, "ns": 30},
        });
        let b = batch_stats(entry).unwrap();
        assert_eq!(b.batch_size, 4);
        assert_eq!(b.compute_infer.unwrap().ns, 20);
    }
}
