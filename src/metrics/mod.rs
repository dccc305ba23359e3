//! Prometheus metrics with MLServer's names: the recorder, per-model handles, and the scrape endpoint.
//!
//! Recording is cheap: model handles are looked up once per request in a read-locked map (no allocation),
//! counters are atomics, histogram samples go to lock-free buckets drained at scrape time (and every few
//! seconds by [`Metrics::run_upkeep`], so memory stays bounded when nobody scrapes).
//! Values that already exist elsewhere (Triton's statistics, process figures) are read at scrape time, so they
//! cost nothing on the hot path.
//!
//! - [`rest`]: the REST middleware (`rest_server_*`, labelled by route template).
//! - [`grpc`]: the gRPC layer (`grpc_server_*`, labelled by known service and method).
//! - [`process`]: `process_*` from `/proc`.
//! - [`exposition`]: text written at scrape time (model statistics as summaries).

pub mod exposition;
pub mod grpc;
pub mod process;
pub mod rest;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::config::Settings;
use crate::repository::Repository;

/// Successful inference requests (counter; labels `model`, `version`), as MLServer.
pub const MODEL_INFER_SUCCESS: &str = "model_infer_request_success_total";
/// Failed inference requests (counter; labels `model`, `version`), as MLServer.
pub const MODEL_INFER_FAILURE: &str = "model_infer_request_failure_total";
/// Inference request duration in seconds (histogram; MLServer's is a summary with the same `_sum`/`_count`).
pub const MODEL_INFER_DURATION: &str = "model_infer_request_duration";
/// Requests already waiting for the model's workers when a request arrives (histogram; labels
/// `model_name`, `model_version`).
pub const PARALLEL_REQUEST_QUEUE: &str = "parallel_request_queue";
/// Requests waiting in the adaptive batcher's queue (histogram; labels `model_name`, `model_version`).
pub const BATCH_REQUEST_QUEUE: &str = "batch_request_queue";
/// gRPC calls started (counter; labels `grpc_type`, `grpc_service`, `grpc_method`), as py-grpc-prometheus.
pub const GRPC_STARTED: &str = "grpc_server_started_total";
/// gRPC calls finished (counter; plus label `grpc_code`), as py-grpc-prometheus.
pub const GRPC_HANDLED: &str = "grpc_server_handled_total";
/// gRPC call duration in seconds (histogram), as py-grpc-prometheus's optional handling-time histogram.
pub const GRPC_HANDLING: &str = "grpc_server_handling_seconds";
/// The `app_name` label of the REST metrics (MLServer's value, so its dashboards keep working).
pub const APP_NAME: &str = "mlserver";
/// The `version` label of a model without a version (what MLServer writes for an absent version).
pub const NO_VERSION: &str = "None";

/// Histogram buckets for durations in seconds (Prometheus' defaults, plus sub-millisecond ones).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    7.5, 10.0,
];
/// Histogram buckets for queue depths.
const DEPTH_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The handles of one model version, created on its first request.
pub struct ModelHandles {
    success: Counter,
    failure: Counter,
    duration: Histogram,
    parallel_queue: Histogram,
    batch_queue: Histogram,
}

impl ModelHandles {
    /// Records a finished inference request.
    pub fn record(&self, ok: bool, elapsed: Duration) {
        if ok {
            self.success.increment(1);
        } else {
            self.failure.increment(1);
        }
        self.duration.record(elapsed.as_secs_f64());
    }

    /// Records how many requests were waiting for the workers when a request arrived.
    pub fn record_parallel_queue(&self, depth: usize) {
        self.parallel_queue.record(depth as f64);
    }

    /// Records how many requests were waiting for a batching model when a request arrived.
    pub fn record_batch_queue(&self, depth: usize) {
        self.batch_queue.record(depth as f64);
    }
}

/// The REST metric names (`<prefix>_requests_total`, ...).
pub(crate) struct RestNames {
    pub requests: SharedString,
    pub duration: SharedString,
    pub in_progress: SharedString,
}

/// Model name -> version label -> handles.
type ModelMap = HashMap<String, HashMap<String, Arc<ModelHandles>>>;

/// The server's metrics: one recorder per server (not the process-global one, so servers in one process,
/// as in the tests, keep their own values).
pub struct Metrics {
    /// False when `metrics_endpoint` is null: nothing is recorded.
    enabled: bool,
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// The REST metric names under that prefix.
    pub(crate) rest_names: RestNames,
    /// REST handles registered so far.
    pub(crate) rest_handles: rest::RestHandles,
    models: RwLock<ModelMap>,
}

impl Metrics {
    pub fn new(settings: &Settings) -> Arc<Metrics> {
        let rest_prefix = &settings.metrics_rest_server_prefix;
        let builder = PrometheusBuilder::new()
            .set_buckets(SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(PARALLEL_REQUEST_QUEUE.into()),
                    DEPTH_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(BATCH_REQUEST_QUEUE.into()), DEPTH_BUCKETS)
            })
            .expect("bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics {
            enabled: settings.metrics_endpoint.is_some(),
            recorder,
            handle,
            rest_names: RestNames {
                requests: format!("{rest_prefix}_requests_total").into(),
                duration: format!("{rest_prefix}_request_duration_seconds").into(),
                in_progress: format!("{rest_prefix}_requests_in_progress").into(),
            },
            rest_handles: rest::RestHandles::default(),
            models: RwLock::new(HashMap::new()),
        };
        metrics.describe();
        Arc::new(metrics)
    }

    /// Whether metrics are recorded and served.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn describe(&self) {
        let r = &self.recorder;
        let text = |s: &'static str| SharedString::const_str(s);
        r.describe_counter(
            MODEL_INFER_SUCCESS.into(),
            None,
            text("Model infer request success count"),
        );
        r.describe_counter(
            MODEL_INFER_FAILURE.into(),
            None,
            text("Model infer request failure count"),
        );
        r.describe_histogram(
            MODEL_INFER_DURATION.into(),
            Some(Unit::Seconds),
            text("Model infer request duration, in seconds"),
        );
        r.describe_histogram(
            PARALLEL_REQUEST_QUEUE.into(),
            None,
            text("Requests waiting for the model's workers when a request arrives"),
        );
        r.describe_histogram(
            BATCH_REQUEST_QUEUE.into(),
            None,
            text("Requests waiting in the adaptive batcher's queue"),
        );
        r.describe_counter(
            KeyName::from(self.rest_names.requests.clone()),
            None,
            text("Total HTTP requests"),
        );
        r.describe_histogram(
            KeyName::from(self.rest_names.duration.clone()),
            Some(Unit::Seconds),
            text("HTTP request duration, in seconds"),
        );
        r.describe_gauge(
            KeyName::from(self.rest_names.in_progress.clone()),
            None,
            text("Total HTTP requests currently in progress"),
        );
        r.describe_counter(
            GRPC_STARTED.into(),
            None,
            text("Total number of RPCs started on the server."),
        );
        r.describe_counter(
            GRPC_HANDLED.into(),
            None,
            text("Total number of RPCs completed on the server, regardless of success or failure."),
        );
        r.describe_histogram(
            GRPC_HANDLING.into(),
            Some(Unit::Seconds),
            text("Histogram of response latency (seconds) of gRPC that had been application-level handled by the server."),
        );
    }

    pub(crate) fn counter(&self, name: impl Into<KeyName>, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    pub(crate) fn gauge(&self, name: impl Into<KeyName>, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    pub(crate) fn histogram(&self, name: impl Into<KeyName>, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// The handles of a model version (`None` when metrics are disabled); created on first use.
    pub fn model(&self, name: &str, version: Option<&str>) -> Option<Arc<ModelHandles>> {
        if !self.enabled {
            return None;
        }
        let version = version.unwrap_or(NO_VERSION);
        if let Some(handles) = self
            .models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .and_then(|versions| versions.get(version))
        {
            return Some(handles.clone());
        }
        let labels = |a: &'static str, b: &'static str| {
            vec![
                Label::new(a, name.to_string()),
                Label::new(b, version.to_string()),
            ]
        };
        let handles = Arc::new(ModelHandles {
            success: self.counter(MODEL_INFER_SUCCESS, labels("model", "version")),
            failure: self.counter(MODEL_INFER_FAILURE, labels("model", "version")),
            duration: self.histogram(MODEL_INFER_DURATION, labels("model", "version")),
            parallel_queue: self.histogram(
                PARALLEL_REQUEST_QUEUE,
                labels("model_name", "model_version"),
            ),
            batch_queue: self.histogram(BATCH_REQUEST_QUEUE, labels("model_name", "model_version")),
        });
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        Some(
            models
                .entry(name.to_string())
                .or_default()
                .entry(version.to_string())
                .or_insert(handles)
                .clone(),
        )
    }

    /// Drains recorded histogram samples into their buckets (call every few seconds).
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition: recorded metrics, model statistics, process metrics.
    pub fn render(&self, repository: &Repository) -> String {
        let mut out = self.handle.render();
        exposition::model_statistics(&mut out, repository);
        process::write(&mut out);
        out
    }
}
