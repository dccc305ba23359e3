//! The REST (V2 HTTP) transport: an axum router of thin handlers over the service, documented with OpenAPI.

pub mod binary;
mod docs;
mod handlers;
pub mod openapi;
pub mod schemas;
mod swagger;
pub mod types;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::Service;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The documented V2 routes; every model route exists with and without `/versions/{version}`. The OpenAPI
/// document is collected from the handlers' `#[utoipa::path]` attributes as they are added here.
pub fn routes() -> OpenApiRouter<Arc<Service>> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(handlers::live))
        .routes(routes!(handlers::ready))
        .routes(routes!(handlers::server_metadata))
        .routes(routes!(handlers::model_metadata))
        .routes(routes!(handlers::model_version_metadata))
        .routes(routes!(handlers::model_ready))
        .routes(routes!(handlers::model_version_ready))
        .routes(routes!(handlers::infer))
        .routes(routes!(handlers::version_infer))
        .routes(routes!(handlers::model_config))
        .routes(routes!(handlers::model_version_config))
        .routes(routes!(handlers::all_statistics))
        .routes(routes!(handlers::model_statistics))
        .routes(routes!(handlers::model_version_statistics))
}

/// The whole REST application: the documented routes, the documentation pages, the JSON fallbacks and the
/// layers around them.
pub fn router(service: Arc<Service>) -> Router {
    let (api, _document) = routes().split_for_parts();
    api.merge(docs::routes())
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(service)
}
