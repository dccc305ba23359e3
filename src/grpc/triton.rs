//! Triton's model configuration and statistics as gRPC messages: the typed configuration and the statistics
//! that the core builds (REST writes them as JSON), turned into the proto messages field by field.

use super::pb;
use crate::model::stats::{BatchStatistics, Duration64, ModelStatistics};
use crate::service::{
    TritonDynamicBatching, TritonInstanceGroup, TritonInstanceKind, TritonLatest,
    TritonModelConfig, TritonParameters, TritonReshape, TritonTensor, TritonVersionPolicy,
};
use crate::tensor::DataType;

/// The core's Triton configuration as a `ModelConfig` message, destructured field by field: a field added to
/// [`TritonModelConfig`] does not compile until it is carried here (or named as left out).
pub fn model_config(config: TritonModelConfig) -> pb::ModelConfig {
    let TritonModelConfig {
        backend,
        default_model_filename,
        dynamic_batching,
        input,
        instance_group,
        max_batch_size,
        name,
        output,
        parameters: TritonParameters {},
        platform,
        version_policy,
    } = config;
    let TritonVersionPolicy {
        latest: TritonLatest { num_versions },
    } = version_policy;
    pb::ModelConfig {
        name,
        platform,
        version_policy: Some(pb::ModelVersionPolicy {
            policy_choice: Some(pb::model_version_policy::PolicyChoice::Latest(
                pb::model_version_policy::Latest { num_versions },
            )),
        }),
        max_batch_size,
        input: input.into_iter().map(model_input).collect(),
        output: output.into_iter().map(model_output).collect(),
        instance_group: instance_group
            .into_iter()
            .map(instance_group_message)
            .collect(),
        default_model_filename,
        backend,
        dynamic_batching: dynamic_batching.map(
            |TritonDynamicBatching {
                 max_queue_delay_microseconds,
             }| pb::ModelDynamicBatching {
                max_queue_delay_microseconds,
            },
        ),
    }
}

fn model_input(tensor: TritonTensor) -> pb::ModelInput {
    let TritonTensor {
        data_type,
        dims,
        name,
        reshape,
    } = tensor;
    pb::ModelInput {
        name,
        data_type: data_type_message(data_type),
        format: pb::model_input::Format::None as i32,
        dims,
        reshape: reshape.map(reshape_message),
    }
}

fn model_output(tensor: TritonTensor) -> pb::ModelOutput {
    let TritonTensor {
        data_type,
        dims,
        name,
        reshape,
    } = tensor;
    pb::ModelOutput {
        name,
        data_type: data_type_message(data_type),
        dims,
        reshape: reshape.map(reshape_message),
    }
}

fn instance_group_message(group: TritonInstanceGroup) -> pb::ModelInstanceGroup {
    let TritonInstanceGroup { count, kind, name } = group;
    let kind = match kind {
        TritonInstanceKind::Cpu => pb::model_instance_group::Kind::Cpu,
        TritonInstanceKind::Gpu => pb::model_instance_group::Kind::Gpu,
    };
    pb::ModelInstanceGroup {
        name,
        count,
        kind: kind as i32,
    }
}

fn reshape_message(TritonReshape { shape }: TritonReshape) -> pb::ModelTensorReshape {
    pb::ModelTensorReshape { shape }
}

/// A datatype as the `DataType` enum.
fn data_type_message(datatype: DataType) -> i32 {
    let message = match datatype {
        DataType::Bool => pb::DataType::TypeBool,
        DataType::Uint8 => pb::DataType::TypeUint8,
        DataType::Uint16 => pb::DataType::TypeUint16,
        DataType::Uint32 => pb::DataType::TypeUint32,
        DataType::Uint64 => pb::DataType::TypeUint64,
        DataType::Int8 => pb::DataType::TypeInt8,
        DataType::Int16 => pb::DataType::TypeInt16,
        DataType::Int32 => pb::DataType::TypeInt32,
        DataType::Int64 => pb::DataType::TypeInt64,
        DataType::Fp16 => pb::DataType::TypeFp16,
        DataType::Fp32 => pb::DataType::TypeFp32,
        DataType::Fp64 => pb::DataType::TypeFp64,
        DataType::Bf16 => pb::DataType::TypeBf16,
        DataType::Bytes => pb::DataType::TypeString,
    };
    message as i32
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
        batch_stats: stats.batch_stats.into_iter().map(batch_stats).collect(),
    }
}

fn duration(d: Duration64) -> pb::StatisticDuration {
    pb::StatisticDuration {
        count: d.count,
        ns: d.ns,
    }
}

/// One `batch_stats` entry as an `InferBatchStatistics` message.
fn batch_stats(entry: BatchStatistics) -> pb::InferBatchStatistics {
    let BatchStatistics {
        batch_size,
        compute_input,
        compute_infer,
        compute_output,
    } = entry;
    pb::InferBatchStatistics {
        batch_size,
        compute_input: Some(duration(compute_input)),
        compute_infer: Some(duration(compute_infer)),
        compute_output: Some(duration(compute_output)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, data_type: DataType, dims: Vec<i64>) -> TritonTensor {
        TritonTensor {
            data_type,
            dims,
            name: name.into(),
            reshape: None,
        }
    }

    fn config() -> TritonModelConfig {
        TritonModelConfig {
            backend: "onnxruntime".into(),
            default_model_filename: "model.onnx".into(),
            dynamic_batching: None,
            input: vec![tensor("INPUT0", DataType::Int32, vec![-1, 16])],
            instance_group: vec![TritonInstanceGroup {
                count: 2,
                kind: TritonInstanceKind::Cpu,
                name: "simple".into(),
            }],
            max_batch_size: 0,
            name: "simple".into(),
            output: vec![tensor("OUTPUT0", DataType::Bytes, vec![-1])],
            parameters: TritonParameters {},
            platform: "onnxruntime_onnx".into(),
            version_policy: TritonVersionPolicy {
                latest: TritonLatest { num_versions: 1 },
            },
        }
    }

    #[test]
    fn the_configuration_becomes_the_message() {
        let m = model_config(config());
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
        assert!(m.dynamic_batching.is_none());
    }

    #[test]
    fn reshape_and_batching_are_carried() {
        let mut c = config();
        c.max_batch_size = 4;
        c.output[0].reshape = Some(TritonReshape { shape: Vec::new() });
        c.dynamic_batching = Some(TritonDynamicBatching {
            max_queue_delay_microseconds: 500,
        });
        let m = model_config(c);
        assert_eq!(m.max_batch_size, 4);
        assert_eq!(m.output[0].reshape.as_ref().map(|r| r.shape.len()), Some(0));
        assert_eq!(
            m.dynamic_batching.unwrap().max_queue_delay_microseconds,
            500
        );
    }

    #[test]
    fn grpc_and_rest_name_every_datatype_alike() {
        for datatype in DataType::ALL {
            let message = pb::DataType::try_from(data_type_message(datatype)).unwrap();
            assert_eq!(
                message.as_str_name(),
                crate::service::triton_type_name(datatype),
                "{datatype}"
            );
        }
    }

    #[test]
    fn batch_stats_entries_convert() {
        let d = |ns| Duration64 { count: 1, ns };
        let b = batch_stats(BatchStatistics {
            batch_size: 4,
            compute_input: d(10),
            compute_infer: d(20),
            compute_output: d(30),
        });
        assert_eq!(b.batch_size, 4);
        assert_eq!(b.compute_infer.unwrap().ns, 20);
    }
}
