//! OpenTelemetry traces end to end: a real OTLP/gRPC receiver (the official `TraceService`, from the
//! opentelemetry-proto definitions) gets the spans of REST and gRPC inference requests, parented on the
//! caller's W3C `traceparent`, with the worker's `queue` and `compute` spans under them.

use crate::support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use support::pb;
use support::GrpcInferenceServiceClient;
use support::Settings;
use support::{bundled_repository, iris_request, test_settings, TestServer};

/// A received span with its resource's attributes.
type Exported = (Vec<KeyValue>, Span);

/// What the receiver got: every span.
#[derive(Default, Clone)]
struct Received(Arc<Mutex<Vec<Exported>>>);

impl Received {
    fn spans(&self) -> Vec<Exported> {
        self.0.lock().unwrap().clone()
    }

    /// The server span whose `inference.id` is `id`.
    fn request(&self, id: &str) -> Option<Exported> {
        self.spans().into_iter().find(|(_, s)| {
            s.kind == 2 && attr(s, "inference.id") == Some(Any::StringValue(id.into()))
        })
    }

    /// The spans whose parent is `span`.
    fn children(&self, span: &Span) -> Vec<Span> {
        self.spans()
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| s.parent_span_id == span.span_id)
            .collect()
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (resource.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts an OTLP trace receiver on a free port.
async fn receiver() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let service = TraceServiceServer::new(received.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (addr, received)
}

fn traced_settings(collector: &str) -> Settings {
    Settings {
        tracing_server: Some(collector.to_string()),
        ..test_settings(&bundled_repository())
    }
}

fn attr(span: &Span, key: &str) -> Option<Any> {
    find(&span.attributes, key)
}

fn find(attributes: &[KeyValue], key: &str) -> Option<Any> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn string(value: &str) -> Option<Any> {
    Some(Any::StringValue(value.into()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A REST inference of iris with the request id `id` and extra headers.
async fn rest_infer(server: &TestServer, model: &str, id: &str, headers: &[(&str, &str)]) -> u16 {
    let mut body = iris_request();
    body["id"] = id.into();
    let mut request = server
        .client
        .post(server.url(&format!("/v2/models/{model}/infer")))
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("POST").status().as_u16()
}

fn grpc_request(id: &str) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: "iris".into(),
        id: id.into(),
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, 4],
            contents: Some(pb::InferTensorContents {
                fp32_contents: vec![5.1, 3.5, 1.4, 0.2],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Waits until `check` holds, polling the receiver; the batch exporter sends every 5 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "no spans for {what} within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A request's server span and its `queue` and `compute` children, checked for shape and timing.
fn assert_request_span(received: &Received, id: &str, name: &str) -> Span {
    let (resource, span) = received.request(id).expect("the request's span");
    assert_eq!(span.name, name);
    assert_eq!(attr(&span, "model.name"), string("iris"), "{span:?}");
    let expected_service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "oxinfer".into());
    assert_eq!(find(&resource, "service.name"), string(&expected_service));
    let children = received.children(&span);
    let child = |name: &str| {
        children
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} span under {id}: {children:?}"))
            .clone()
    };
    let (queue, compute) = (child("queue"), child("compute"));
    for c in [&queue, &compute] {
        assert_eq!(c.trace_id, span.trace_id);
        assert!(c.start_time_unix_nano <= c.end_time_unix_nano);
        assert!(
            span.start_time_unix_nano <= c.start_time_unix_nano,
            "{c:?} starts before {span:?}"
        );
        assert!(
            c.end_time_unix_nano <= span.end_time_unix_nano,
            "{c:?} ends after {span:?}"
        );
    }
    assert!(queue.end_time_unix_nano <= compute.start_time_unix_nano);
    assert_eq!(attr(&compute, "batch.size"), Some(Any::IntValue(1)));
    for key in ["compute.input_ns", "compute.infer_ns", "compute.output_ns"] {
        assert!(
            matches!(attr(&compute, key), Some(Any::IntValue(n)) if n >= 0),
            "{key}: {compute:?}"
        );
    }
    span
}

#[tokio::test]
async fn inference_spans_join_the_callers_trace() {
    let (collector, received) = receiver().await;
    let server = TestServer::start_with(traced_settings(&collector.to_string())).await;
    let (rest_trace, rest_parent) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let traceparent = format!("00-{rest_trace}-{rest_parent}-01");
    let headers = [
        ("traceparent", traceparent.as_str()),
        ("tracestate", "vendor=abc"),
    ];
    assert_eq!(rest_infer(&server, "iris", "rest-1", &headers).await, 200);
    assert_eq!(rest_infer(&server, "iris", "root-1", &[]).await, 200);
    assert_eq!(
        rest_infer(&server, "nope", "missing-1", &headers).await,
        404
    );

    let (grpc_trace, grpc_parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let grpc_traceparent = format!("00-{grpc_trace}-{grpc_parent}-01");
    let mut client =
        GrpcInferenceServiceClient::connect(format!("http://{}", server.server.grpc_addr))
            .await
            .unwrap();
    let mut request = tonic::Request::new(grpc_request("grpc-1"));
    request
        .metadata_mut()
        .insert("traceparent", grpc_traceparent.parse().unwrap());
    let response = client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(response.id, "grpc-1");
    let mut stream = tonic::Request::new(tokio_stream::iter([grpc_request("stream-1")]));
    stream
        .metadata_mut()
        .insert("traceparent", grpc_traceparent.parse().unwrap());
    let mut replies = client
        .model_stream_infer(stream)
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    assert_eq!(reply.error_message, "");

    eventually("every request", || {
        ["rest-1", "root-1", "grpc-1", "stream-1"].iter().all(|id| {
            received
                .request(id)
                .is_some_and(|(_, s)| received.children(&s).len() == 2)
        }) && received.spans().iter().any(|(_, s)| {
            s.kind == 2
                && s.status
                    .as_ref()
                    .is_some_and(|st| st.code == StatusCode::Error as i32)
        })
    })
    .await;

    // REST with a traceparent: the caller's trace and parent, its tracestate, HTTP attributes.
    let rest = assert_request_span(&received, "rest-1", "POST /v2/models/{model_name}/infer");
    assert_eq!(hex(&rest.trace_id), rest_trace);
    assert_eq!(hex(&rest.parent_span_id), rest_parent);
    assert_eq!(rest.trace_state, "vendor=abc");
    assert_eq!(
        attr(&rest, "http.route"),
        string("/v2/models/{model_name}/infer")
    );
    assert_eq!(
        attr(&rest, "http.response.status_code"),
        Some(Any::IntValue(200))
    );

    // Without a traceparent: a root span of a new trace.
    let root = assert_request_span(&received, "root-1", "POST /v2/models/{model_name}/infer");
    assert!(root.parent_span_id.is_empty(), "{root:?}");
    assert_eq!(root.trace_id.len(), 16);
    assert_ne!(hex(&root.trace_id), rest_trace);
    assert_ne!(root.trace_id, vec![0; 16]);

    // gRPC ModelInfer and ModelStreamInfer: the metadata's trace and parent, RPC attributes.
    for (id, method) in [("grpc-1", "ModelInfer"), ("stream-1", "ModelStreamInfer")] {
        let span = assert_request_span(
            &received,
            id,
            &format!("inference.GRPCInferenceService/{method}"),
        );
        assert_eq!(hex(&span.trace_id), grpc_trace);
        assert_eq!(hex(&span.parent_span_id), grpc_parent);
        assert_eq!(attr(&span, "rpc.system"), string("grpc"));
        assert_eq!(attr(&span, "rpc.method"), string(method));
        assert_eq!(attr(&span, "rpc.grpc.status_code"), Some(Any::IntValue(0)));
    }

    // A failed request: an error span with the status the client got, in the caller's trace, nothing under it.
    let spans = received.spans();
    let (_, failed) = spans
        .iter()
        .find(|(_, s)| attr(s, "model.name") == string("nope"))
        .expect("the failed request's span");
    assert_eq!(hex(&failed.trace_id), rest_trace);
    assert_eq!(
        attr(failed, "http.response.status_code"),
        Some(Any::IntValue(404))
    );
    let status = failed.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert!(status.message.contains("nope"), "{status:?}");
    assert!(received.children(failed).is_empty());
}

#[tokio::test]
async fn shutdown_exports_the_last_spans() {
    let (collector, received) = receiver().await;
    let server = TestServer::start_with(traced_settings(&collector.to_string())).await;
    assert_eq!(rest_infer(&server, "iris", "last-1", &[]).await, 200);
    let long_id = "x".repeat(10_000);
    assert_eq!(rest_infer(&server, "iris", &long_id, &[]).await, 200);
    // Well before the batch exporter's 5 s schedule: only the shutdown's flush can have sent it.
    let started = Instant::now();
    assert!(server.server.shutdown(Duration::from_secs(5)).await);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        received.request("last-1").is_some(),
        "{:?}",
        received.spans()
    );
    // Strings from clients are cut before they wait in the exporter's queue.
    let long = received
        .spans()
        .into_iter()
        .find_map(|(_, s)| match attr(&s, "inference.id") {
            Some(Any::StringValue(id)) if id.starts_with("xxx") => Some(id),
            _ => None,
        })
        .expect("the long id's span");
    assert!(long.len() <= 131, "{} bytes", long.len());
}

#[tokio::test]
async fn an_unreachable_collector_holds_no_request() {
    // A port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let server = TestServer::start_with(traced_settings(&closed.to_string())).await;
    for i in 0..20 {
        assert_eq!(
            rest_infer(&server, "iris", &format!("r{i}"), &[]).await,
            200
        );
    }
    // The flush fails (connection refused) and the shutdown still ends within its bound.
    let started = Instant::now();
    assert!(server.server.shutdown(Duration::from_secs(5)).await);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
