//! The gRPC transport: `inference.GRPCInferenceService`, `grpc.health.v1.Health` and server reflection, served
//! on their own listener over the same [`Service`] as REST.
//!
//! - [`inference`]: the service impl; each RPC decodes ([`convert`]), calls the service, encodes.
//! - [`health`]: health checks driven by server and model readiness.
//! - [`limits`]: the message size limit and its RESOURCE_EXHAUSTED answer.
//! - [`triton`]: Triton's model configuration and statistics as messages.
//! - [`repository`]: the model repository RPCs (index, load, unload).

pub mod convert;
pub mod health;
pub mod inference;
pub mod limits;
pub mod repository;
pub mod triton;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::service::Service;

/// The code generated from `proto/grpc_service.proto` (messages, server and client).
pub mod pb {
    tonic::include_proto!("inference");

    /// The encoded file descriptor set of `proto/grpc_service.proto`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("inference_descriptor");
}

/// Serves every gRPC service on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let limit = limits::max_message_length(service.settings());
    let metrics = service.metrics().clone();
    let inference = pb::grpc_inference_service_server::GrpcInferenceServiceServer::new(
        inference::Inference::new(service.clone(), limit),
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
    let request_id = axum::http::HeaderName::from_static(crate::http::hygiene::REQUEST_ID);
    const STREAM_WINDOW: u32 = 8 << 20;
    const CONNECTION_WINDOW: u32 = 32 << 20;
    const MAX_FRAME: u32 = 1 << 20;
    // The first layer is the outermost: metrics see the final status code.
    Server::builder()
        // Tensors are large: HTTP/2's 64 KiB default windows would make a client stop for a WINDOW_UPDATE round
        // trip every 64 KiB of a request (about ten per MobileNet image); big frames mean fewer, larger chunks.
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .max_frame_size(Some(MAX_FRAME))
        .layer(crate::metrics::grpc::GrpcMetricsLayer::new(metrics))
        .layer(tower_http::request_id::SetRequestIdLayer::new(
            request_id.clone(),
            crate::http::hygiene::RandomRequestId,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_grpc()
                .make_span_with(crate::http::hygiene::request_span)
                .on_failure(crate::error::log_grpc_failure),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(
            request_id,
        ))
        .layer(tower::util::MapResponseLayer::new(
            limits::too_large_is_resource_exhausted,
        ))
        .add_service(inference)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        // TCP_NODELAY: without it a small response waits for the client's delayed ACK (~40 ms per call at c=1).
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
