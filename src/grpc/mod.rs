//! The gRPC transport: `inference.GRPCInferenceService`, `grpc.health.v1.Health` and server reflection, served
//! on their own listener over the same [`DataPlane`] as REST.
//!
//! - [`inference`]: the service impl; each RPC decodes ([`convert`]), calls the service, encodes.
//! - [`health`]: health checks driven by server and model readiness.
//! - [`limits`]: the message size limit and its RESOURCE_EXHAUSTED answer.
//! - [`triton`]: Triton's model configuration and statistics as messages.
//! - [`repository`]: the model repository RPCs (index, load, unload).
//! - [`deadline`]: the client's `grpc-timeout`, enforced.
//!
//! Connections are served by [`crate::connections`] (HTTP/2 only, keep-alive pings, stream and connection limits).

pub mod convert;
pub mod deadline;
pub mod health;
pub mod inference;
pub mod limits;
pub mod message_codec;
pub mod repository;
pub mod triton;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::connections::Policy;
use crate::service::DataPlane;

/// The code generated from `proto/grpc_service.proto` (messages, server and client).
pub mod pb {
    tonic::include_proto!("inference");

    /// The encoded file descriptor set of `proto/grpc_service.proto`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("inference_descriptor");
}

/// Serves every gRPC service on `listener` under `policy` (connection cap, keep-alive pings, stream limit)
/// until `stop` turns true; open ModelStreamInfer streams then end with UNAVAILABLE once idle for 2 s.
pub async fn serve(
    listener: TcpListener,
    service: Arc<DataPlane>,
    mut policy: Policy,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let limit = limits::max_message_length(service.settings());
    let metrics = service.metrics().clone();
    let inference = pb::grpc_inference_service_server::GrpcInferenceServiceServer::new(
        inference::Inference::new(service.clone(), limit).ending_streams_on(stop.clone()),
    )
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit);
    let health = tonic_health::pb::health_server::HealthServer::new(health::Health::new(service));
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the descriptor sets built into the binary are valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the descriptor sets built into the binary are valid");
    let request_id = axum::http::HeaderName::from_static(crate::telemetry::request_id::REQUEST_ID);
    // Tensors are large: HTTP/2's 64 KiB default windows would make a client stop for a WINDOW_UPDATE round
    // trip every 64 KiB of a request (about ten per MobileNet image); big frames mean fewer, larger chunks.
    policy.http2.stream_window = Some(8 << 20);
    policy.http2.connection_window = Some(32 << 20);
    policy.http2.max_frame_size = Some(1 << 20);
    let routes = tonic::service::Routes::new(inference)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .prepare();
    // The first layer is the outermost: metrics see the final status code.
    let app = tower::ServiceBuilder::new()
        .layer(crate::metrics::grpc::GrpcMetricsLayer::new(metrics))
        .layer(tower_http::request_id::SetRequestIdLayer::new(
            request_id.clone(),
            crate::telemetry::request_id::RandomRequestId,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_grpc()
                .make_span_with(crate::telemetry::request_id::request_span)
                .on_failure(crate::error::log_grpc_failure),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(
            request_id,
        ))
        .layer(tower::util::MapResponseLayer::new(
            limits::too_large_is_resource_exhausted,
        ))
        .layer(deadline::GrpcTimeoutLayer)
        .service(routes)
        .map_request(|request: axum::http::Request<hyper::body::Incoming>| {
            request.map(tonic::body::Body::new)
        });
    crate::connections::serve(listener, app, policy, stop).await
}
