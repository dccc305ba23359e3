//! gRPC metrics (py-grpc-prometheus's, as MLServer exposes them): calls started, calls handled by status code,
//! and handling time. Labels are bounded: a service or method this server does not serve is labelled `unknown`.
//! The status comes from the response headers (trailers-only answers, i.e. errors) or from the trailers at
//! the end of the body; a body dropped before its end counts as `CANCELLED`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use metrics::Label;
use tower::{Layer, Service};

use super::{Metrics, GRPC_HANDLED, GRPC_HANDLING, GRPC_STARTED};

/// A served service: its name, unary methods, and streaming methods with their gRPC type.
type KnownService = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// Services and methods served, with their gRPC type (`UNARY`, `SERVER_STREAM`, `BIDI_STREAM`).
const KNOWN: &[KnownService] = &[
    (
        "inference.GRPCInferenceService",
        &[
            "ServerLive",
            "ServerReady",
            "ModelReady",
            "ServerMetadata",
            "ModelMetadata",
            "ModelInfer",
            "ModelConfig",
            "ModelStatistics",
            "RepositoryIndex",
            "RepositoryModelLoad",
            "RepositoryModelUnload",
        ],
        &[("ModelStreamInfer", "BIDI_STREAM")],
    ),
    (
        "inference.model_repository.ModelRepositoryService",
        &[
            "RepositoryIndex",
            "RepositoryModelLoad",
            "RepositoryModelUnload",
        ],
        &[],
    ),
    (
        "grpc.health.v1.Health",
        &["Check"],
        &[("Watch", "SERVER_STREAM")],
    ),
    (
        "grpc.reflection.v1.ServerReflection",
        &[],
        &[("ServerReflectionInfo", "BIDI_STREAM")],
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        &[],
        &[("ServerReflectionInfo", "BIDI_STREAM")],
    ),
];

/// `(grpc_type, grpc_service, grpc_method)` of a request path `/<service>/<method>`.
pub fn call_labels(path: &str) -> (&'static str, &'static str, &'static str) {
    let unknown = ("UNARY", "unknown", "unknown");
    let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
        return unknown;
    };
    for (name, unary, streaming) in KNOWN {
        if *name != service {
            continue;
        }
        if let Some(m) = unary.iter().find(|m| **m == method) {
            return ("UNARY", name, m);
        }
        if let Some((m, kind)) = streaming.iter().find(|(m, _)| *m == method) {
            return (kind, name, m);
        }
        return ("UNARY", name, "unknown");
    }
    unknown
}

/// gRPC status code names, by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn code_name(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get("grpc-status")?;
    let code: usize = value.to_str().ok()?.trim().parse().ok()?;
    Some(CODES.get(code).copied().unwrap_or("UNKNOWN"))
}

/// Layer recording `grpc_server_*` for every call.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    metrics: Arc<Metrics>,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        GrpcMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`GrpcMetricsLayer`].
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// A call in progress: records `grpc_server_handled_total` and the handling time once, when its status is known.
struct Pending {
    metrics: Arc<Metrics>,
    labels: (&'static str, &'static str, &'static str),
    started: Instant,
}

impl Pending {
    fn finish(self, code: &'static str) {
        let (kind, service, method) = self.labels;
        let base = vec![
            Label::from_static_parts("grpc_type", kind),
            Label::from_static_parts("grpc_service", service),
            Label::from_static_parts("grpc_method", method),
        ];
        self.metrics
            .histogram(GRPC_HANDLING, base.clone())
            .record(self.started.elapsed().as_secs_f64());
        let mut labels = base;
        labels.push(Label::from_static_parts("grpc_code", code));
        self.metrics.counter(GRPC_HANDLED, labels).increment(1);
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Unpin + Send + 'static,
{
    type Response = Response<CodeBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Take the service that was polled ready; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !self.metrics.enabled() {
            return Box::pin(async move {
                let response = inner.call(request).await?;
                Ok(response.map(|inner| CodeBody {
                    inner,
                    pending: None,
                }))
            });
        }
        let labels = call_labels(request.uri().path());
        let (kind, service, method) = labels;
        self.metrics
            .counter(
                GRPC_STARTED,
                vec![
                    Label::from_static_parts("grpc_type", kind),
                    Label::from_static_parts("grpc_service", service),
                    Label::from_static_parts("grpc_method", method),
                ],
            )
            .increment(1);
        let pending = Pending {
            metrics: self.metrics.clone(),
            labels,
            started: Instant::now(),
        };
        Box::pin(async move {
            let response = match inner.call(request).await {
                Ok(response) => response,
                Err(e) => {
                    pending.finish("UNKNOWN");
                    return Err(e);
                }
            };
            let pending = match code_name(response.headers()) {
                Some(code) => {
                    pending.finish(code);
                    None
                }
                None => Some(pending),
            };
            Ok(response.map(|inner| CodeBody { inner, pending }))
        })
    }
}

/// A response body that records the call's status from its trailers.
pub struct CodeBody<B> {
    inner: B,
    pending: Option<Pending>,
}

impl<B: Body + Unpin> Body for CodeBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(pending) = this.pending.take() {
                        pending.finish(code_name(trailers).unwrap_or("OK"));
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(pending) = this.pending.take() {
                    pending.finish("INTERNAL");
                }
            }
            Poll::Ready(None) => {
                // A gRPC body always ends with trailers; one without has no status.
                if let Some(pending) = this.pending.take() {
                    pending.finish("UNKNOWN");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for CodeBody<B> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish("CANCELLED");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            call_labels("/inference.GRPCInferenceService/ModelInfer"),
            ("UNARY", "inference.GRPCInferenceService", "ModelInfer")
        );
        assert_eq!(
            call_labels("/inference.GRPCInferenceService/ModelStreamInfer"),
            (
                "BIDI_STREAM",
                "inference.GRPCInferenceService",
                "ModelStreamInfer"
            )
        );
        assert_eq!(
            call_labels("/inference.GRPCInferenceService/Nope123"),
            ("UNARY", "inference.GRPCInferenceService", "unknown")
        );
        assert_eq!(call_labels("/x.Y/Z"), ("UNARY", "unknown", "unknown"));
        assert_eq!(call_labels("garbage"), ("UNARY", "unknown", "unknown"));
    }

    #[test]
    fn status_codes_are_named() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(code_name(&headers), Some("NOT_FOUND"));
        headers.insert("grpc-status", "99".parse().unwrap());
        assert_eq!(code_name(&headers), Some("UNKNOWN"));
    }
}
