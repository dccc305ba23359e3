//! Per-model-version statistics in Triton's shape (counts and nanoseconds), updated lock-free.

use crate::telemetry::Timings;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// A count and the total time spent, in nanoseconds.
#[derive(Debug, Default)]
pub struct Counter {
    count: AtomicU64,
    ns: AtomicU64,
}

impl Counter {
    pub fn add(&self, elapsed: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Duration64 {
        Duration64 {
            count: self.count.load(Ordering::Relaxed),
            ns: self.ns.load(Ordering::Relaxed),
        }
    }
}

/// A counter's values, as Triton reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Duration64 {
    pub count: u64,
    pub ns: u64,
}

/// Statistics of one model version.
#[derive(Debug, Default)]
pub struct ModelStats {
    pub success: Counter,
    pub fail: Counter,
    pub queue: Counter,
    pub compute_input: Counter,
    pub compute_infer: Counter,
    pub compute_output: Counter,
    inference_count: AtomicU64,
    execution_count: AtomicU64,
    last_inference_ms: AtomicU64,
}

impl ModelStats {
    /// Records one model execution covering `inferences` requests.
    pub fn record_execution(&self, inferences: u64, timings: Timings) {
        self.compute_input.add(timings.input);
        self.compute_infer.add(timings.infer);
        self.compute_output.add(timings.output);
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        self.inference_count
            .fetch_add(inferences, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_inference_ms
            .store(now.as_millis() as u64, Ordering::Relaxed);
    }

    /// Records a finished request.
    pub fn record_request(&self, ok: bool, elapsed: Duration) {
        if ok {
            self.success.add(elapsed)
        } else {
            self.fail.add(elapsed)
        }
    }

    pub fn snapshot(&self, name: &str, version: &str) -> ModelStatistics {
        ModelStatistics {
            name: name.to_string(),
            version: version.to_string(),
            last_inference: self.last_inference_ms.load(Ordering::Relaxed),
            inference_count: self.inference_count.load(Ordering::Relaxed),
            execution_count: self.execution_count.load(Ordering::Relaxed),
            inference_stats: InferenceStats {
                success: self.success.snapshot(),
                fail: self.fail.snapshot(),
                queue: self.queue.snapshot(),
                compute_input: self.compute_input.snapshot(),
                compute_infer: self.compute_infer.snapshot(),
                compute_output: self.compute_output.snapshot(),
                cache_hit: Duration64::default(),
                cache_miss: Duration64::default(),
            },
            batch_stats: Vec::new(),
        }
    }
}

/// One entry of Triton's `model_stats`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelStatistics {
    pub name: String,
    pub version: String,
    /// Milliseconds since the epoch of the last execution (0 = never).
    pub last_inference: u64,
    pub inference_count: u64,
    pub execution_count: u64,
    pub inference_stats: InferenceStats,
    #[schema(value_type = Vec<Object>)]
    pub batch_stats: Vec<BatchStatistics>,
}

/// One entry of Triton's `batch_stats`: the compute time of executions of one batch size (none recorded yet:
/// the list is always empty, as for a Triton model without batching).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BatchStatistics {
    pub batch_size: u64,
    pub compute_input: Duration64,
    pub compute_infer: Duration64,
    pub compute_output: Duration64,
}

/// Triton's `inference_stats`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InferenceStats {
    pub success: Duration64,
    pub fail: Duration64,
    pub queue: Duration64,
    pub compute_input: Duration64,
    pub compute_infer: Duration64,
    pub compute_output: Duration64,
    pub cache_hit: Duration64,
    pub cache_miss: Duration64,
}
