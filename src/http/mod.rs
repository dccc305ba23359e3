//! The REST (V2 HTTP) transport: an axum router of thin handlers over the service.

pub mod binary;
mod handlers;
pub mod hygiene;
mod repository;
pub mod types;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::service::Service;

/// The V2 REST routes; every model route exists with and without `/versions/{version}`.
/// The body limit, tracing, CORS, compression and metrics are added by [`hygiene::wrap`].
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/v2/health/live", get(handlers::live))
        .route("/v2/health/ready", get(handlers::ready))
        .route("/v2", get(handlers::server_metadata))
        .route("/v2/models/{name}", get(handlers::model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(handlers::model_metadata),
        )
        .route("/v2/models/{name}/ready", get(handlers::model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(handlers::model_ready),
        )
        .route("/v2/models/{name}/infer", post(handlers::infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(handlers::infer),
        )
        .route("/v2/models/{name}/config", get(handlers::model_config))
        .route(
            "/v2/models/{name}/versions/{version}/config",
            get(handlers::model_config),
        )
        .route("/v2/models/stats", get(handlers::all_statistics))
        .route("/v2/models/{name}/stats", get(handlers::model_statistics))
        .route(
            "/v2/models/{name}/versions/{version}/stats",
            get(handlers::model_statistics),
        )
        .route("/v2/repository/index", post(repository::index))
        .route("/v2/repository/models/{name}/load", post(repository::load))
        .route(
            "/v2/repository/models/{name}/unload",
            post(repository::unload),
        )
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(service)
}
