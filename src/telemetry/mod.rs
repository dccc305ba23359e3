//! OpenTelemetry traces, as MLServer exports them when `tracing_server` is set: OTLP over gRPC (plaintext) to
//! that `host:port`, batched on a background thread, one server span per inference request.
//!
//! What a request's trace holds:
//! - a server span per inference call, REST (`POST /v2/models/{model_name}/infer`, the name MLServer's FastAPI
//!   instrumentation gives it) and gRPC (`inference.GRPCInferenceService/ModelInfer`, one span per message of a
//!   ModelStreamInfer stream), with `model.name`, `model.version` (the version that ran), `inference.id`, the
//!   HTTP or RPC status, and an error status when the request failed;
//! - two child spans made by the model's worker thread: `queue` (waiting for a worker) and `compute` (the
//!   execution, with `batch.size` and Triton's split `compute.input_ns` / `compute.infer_ns` / `compute.output_ns`).
//!
//! The caller's W3C `traceparent` / `tracestate` (HTTP header or gRPC metadata) is the server span's parent,
//! so the exported span joins the caller's trace; a request without one starts a new trace. The usual parent-based
//! sampling applies: a caller that says "not sampled" (flags `00`) gets no spans.
//!
//! Costs: when `tracing_server` is unset there is no tracer at all (the core's `telemetry()` is
//! `None`): the transports skip the header parsing and span work and jobs carry a `None`. When set, ending a
//! span only queues it (a bounded queue, spans are dropped when it is full); the export runs on the SDK's own
//! thread, so a slow or unreachable collector never holds a request. [`Telemetry::shutdown`] flushes what is
//! queued when the server stops.
//!
//! Why explicit spans rather than the `tracing-opentelemetry` bridge: bridging would turn every `tracing` span
//! of every request (connection, body, codec...) into OTLP spans and run the bridge layer even for spans nobody
//! exports; the spans here are the few that Seldon's and MLServer's traces show, made only when tracing is on.

pub mod request_id;

use std::time::{Duration, Instant, SystemTime};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::{tracing_endpoint_url, Settings};
use crate::error::Error;

/// The time spent in each phase of one execution (recorded on traces and in model statistics).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Turning request tensors into runtime values.
    pub input: Duration,
    /// Running the model.
    pub infer: Duration,
    /// Turning runtime values into response tensors.
    pub output: Duration,
}

/// How long [`Telemetry::shutdown`] waits for the last spans to be exported.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The exporter and tracer of one server (built when `tracing_server` is set).
pub struct Telemetry {
    /// Owns the batch processor and its export thread; shut down to flush.
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// W3C trace context (`traceparent`, `tracestate`).
    propagator: TraceContextPropagator,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Telemetry {
    /// Builds the OTLP exporter when `tracing_server` is set; `None` otherwise. Must run inside the Tokio
    /// runtime (the gRPC channel's connection task lives there). Nothing connects until the first export.
    ///
    /// The span's resource: `service.name` is `OTEL_SERVICE_NAME` when set, else `server_name` (MLServer uses
    /// `server_name`; KServe sets `OTEL_SERVICE_NAME`); `service.version` is `server_version`;
    /// `OTEL_RESOURCE_ATTRIBUTES` adds attributes. The SDK also honours the standard `OTEL_TRACES_SAMPLER`,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_BSP_*` variables; its own errors (a
    /// failed export) are logged through `tracing` (feature `internal-logs`).
    pub fn start(settings: &Settings) -> Result<Option<Telemetry>, Error> {
        let Some(value) = settings.tracing_server.as_deref().filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let url = tracing_endpoint_url(value).map_err(Error::Internal)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(url.clone())
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the OTLP exporter: {e}")))?;
        let service_name = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| settings.server_name.clone());
        let resource = Resource::builder()
            .with_service_name(service_name)
            .with_attribute(KeyValue::new(
                "service.version",
                settings.server_version.clone(),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let scope = InstrumentationScope::builder("oxinfer")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer_with_scope(&provider, scope);
        tracing::info!(endpoint = %url, "exporting OpenTelemetry traces (OTLP/gRPC) to {url}");
        Ok(Some(Telemetry {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
        }))
    }

    /// The server span of a REST inference request; its parent is the caller's `traceparent`, if any.
    pub fn rest_span(
        &self,
        headers: &axum::http::HeaderMap,
        model: &str,
        version: Option<&str>,
    ) -> RequestSpan {
        let parent = self.propagator.extract(&HeaderExtractor(headers));
        let route = match version {
            None => "/v2/models/{model_name}/infer",
            Some(_) => "/v2/models/{model_name}/versions/{model_version}/infer",
        };
        let mut attributes = vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("http.route", route),
            KeyValue::new("url.scheme", "http"),
        ];
        attributes.extend(model_attributes(model, version));
        self.server_span(
            &parent,
            format!("POST {route}"),
            attributes,
            Transport::Rest,
        )
    }

    /// The server span of one gRPC inference (`method`: `ModelInfer` or `ModelStreamInfer`); its parent is the
    /// caller's `traceparent` metadata, if any.
    pub fn grpc_span(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        method: &'static str,
        model: &str,
        version: Option<&str>,
    ) -> RequestSpan {
        let parent = self.propagator.extract(&MetadataExtractor(metadata));
        let mut attributes = vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", "inference.GRPCInferenceService"),
            KeyValue::new("rpc.method", method),
        ];
        attributes.extend(model_attributes(model, version));
        let name = format!("inference.GRPCInferenceService/{method}");
        self.server_span(&parent, name, attributes, Transport::Grpc)
    }

    fn server_span(
        &self,
        parent: &Context,
        name: String,
        attributes: Vec<KeyValue>,
        transport: Transport,
    ) -> RequestSpan {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, parent);
        RequestSpan {
            cx: Context::new().with_span(span),
            tracer: self.tracer.clone(),
            transport,
        }
    }

    /// Exports what is still queued and stops the export thread, waiting at most [`FLUSH_TIMEOUT`]; called once
    /// the server has drained its requests.
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT))
                .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the last traces may not have been exported"),
            Err(e) => tracing::warn!(error = %e, "the trace exporter did not shut down"),
        }
    }
}

/// `model.name`, and `model.version` when the request names one.
fn model_attributes(model: &str, version: Option<&str>) -> impl Iterator<Item = KeyValue> {
    let name = KeyValue::new("model.name", cut(model));
    let version = version.map(|v| KeyValue::new("model.version", cut(v)));
    std::iter::once(name).chain(version)
}

/// A string from a request as an attribute: cut to 128 bytes, as messages quote names. Queued spans wait for
/// the exporter (up to 2,048 of them while a collector is down): they must not hold clients' megabyte names.
fn cut(text: &str) -> String {
    crate::error::short(text).into_owned()
}

/// Which transport a span serves: decides how its outcome is written.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Rest,
    Grpc,
}

/// One inference request's server span, from the transport's start to its answer.
pub struct RequestSpan {
    /// Holds the span (the parent of the worker's child spans).
    cx: Context,
    tracer: SdkTracer,
    transport: Transport,
}

impl RequestSpan {
    /// What the model's worker needs to add the `queue` and `compute` child spans.
    pub fn job(&self) -> JobTrace {
        JobTrace {
            cx: self.cx.clone(),
            tracer: self.tracer.clone(),
        }
    }

    /// Records the version that served a request that did not name one.
    pub fn resolved_version(&self, version: &str) {
        self.cx
            .span()
            .set_attribute(KeyValue::new("model.version", cut(version)));
    }

    /// Records the id of the answered request (`inference.id`).
    pub fn answered(&self, id: &str) {
        self.cx
            .span()
            .set_attribute(KeyValue::new("inference.id", cut(id)));
    }

    /// Ends the span with the request's outcome: the status code, and on failure an error status with the
    /// message the client got (at most 2 KiB, see [`crate::error::MAX_MESSAGE_BYTES`]).
    pub fn end<T>(self, result: &Result<T, Error>) {
        let span = self.cx.span();
        match (self.transport, result) {
            (Transport::Rest, Ok(_)) => {
                span.set_attribute(KeyValue::new("http.response.status_code", 200i64))
            }
            (Transport::Grpc, Ok(_)) => {
                span.set_attribute(KeyValue::new("rpc.grpc.status_code", 0i64))
            }
            (transport, Err(error)) => {
                let code = match transport {
                    Transport::Rest => {
                        let status = error.http_status().as_u16();
                        span.set_attribute(KeyValue::new(
                            "http.response.status_code",
                            status as i64,
                        ));
                        status.to_string()
                    }
                    Transport::Grpc => {
                        let code = error.grpc_code();
                        span.set_attribute(KeyValue::new("rpc.grpc.status_code", code as i64));
                        format!("{code:?}")
                    }
                };
                span.set_attribute(KeyValue::new("error.type", code));
                span.set_status(Status::error(error.message()));
            }
        }
        span.end();
    }
}

/// The request span as seen from the model's worker thread, carried by the queued job.
#[derive(Clone)]
pub struct JobTrace {
    cx: Context,
    tracer: SdkTracer,
}

impl std::fmt::Debug for JobTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobTrace")
    }
}

impl JobTrace {
    /// Adds the `queue` span (from `enqueued` to `started`) and the `compute` span (from `started` to now) under
    /// the request's span. `batch`: requests executed together; `timings`: the execution's phases when it
    /// succeeded; `error`: why it failed otherwise.
    pub fn record(
        &self,
        enqueued: Instant,
        started: Instant,
        batch: usize,
        outcome: Result<&Timings, &Error>,
    ) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let at = |instant: Instant| {
            wall.checked_sub(now.saturating_duration_since(instant))
                .unwrap_or(wall)
        };
        let queue = self
            .tracer
            .span_builder("queue")
            .with_kind(SpanKind::Internal)
            .with_start_time(at(enqueued))
            .start_with_context(&self.tracer, &self.cx);
        let mut queue = queue;
        queue.end_with_timestamp(at(started));
        let mut attributes = vec![KeyValue::new("batch.size", batch as i64)];
        if let Ok(timings) = outcome {
            let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
            attributes.extend([
                KeyValue::new("compute.input_ns", ns(timings.input)),
                KeyValue::new("compute.infer_ns", ns(timings.infer)),
                KeyValue::new("compute.output_ns", ns(timings.output)),
            ]);
        }
        let mut compute = self
            .tracer
            .span_builder("compute")
            .with_kind(SpanKind::Internal)
            .with_start_time(at(started))
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &self.cx);
        if let Err(error) = outcome {
            compute.set_status(Status::error(error.message()));
        }
        compute.end_with_timestamp(wall);
    }
}

/// Reads `traceparent` / `tracestate` from HTTP headers.
struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Reads `traceparent` / `tracestate` from gRPC metadata.
struct MetadataExtractor<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => k.as_str(),
                tonic::metadata::KeyRef::Binary(k) => k.as_str(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_host_and_port_without_tls() {
        for (value, url) in [
            ("collector:4317", "http://collector:4317"),
            ("http://collector:4317", "http://collector:4317"),
            ("http://collector:4317/", "http://collector:4317"),
            ("grpc://10.0.0.1:4317", "http://10.0.0.1:4317"),
            ("[::1]:4317", "http://[::1]:4317"),
            (
                "seldon-collector.seldon-mesh:4317",
                "http://seldon-collector.seldon-mesh:4317",
            ),
        ] {
            assert_eq!(tracing_endpoint_url(value).as_deref(), Ok(url), "{value}");
        }
        for (value, why) in [
            ("https://collector:4317", "TLS"),
            ("collector", "port"),
            ("collector:0", "port"),
            ("collector:70000", "port"),
            (":4317", "host"),
            ("collector:4317/v1/traces", "host:port"),
            ("ftp://collector:21", "host:port"),
            ("user@collector:4317", "host:port"),
            ("collector :4317", "host:port"),
            ("http://", "host:port"),
        ] {
            let err = tracing_endpoint_url(value).unwrap_err();
            assert!(
                err.contains("tracing_server") && err.contains(why),
                "{value}: {err}"
            );
        }
    }

    #[test]
    fn unset_means_no_tracer() {
        assert!(Telemetry::start(&Settings::default()).unwrap().is_none());
        let empty = Settings {
            tracing_server: Some(String::new()),
            ..Settings::default()
        };
        assert!(Telemetry::start(&empty).unwrap().is_none());
    }
}
