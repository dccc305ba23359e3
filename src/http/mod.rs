//! The REST (V2 HTTP) transport: an axum router of thin handlers over the service, documented with OpenAPI.

pub mod binary;
mod body;
mod docs;
mod handlers;
pub mod hygiene;
mod inflate;
pub mod openapi;
mod repository;
pub mod schemas;
mod swagger;
pub mod types;

use std::sync::Arc;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::Service;

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
        .routes(routes!(repository::index))
        .routes(routes!(repository::load))
        .routes(routes!(repository::unload))
}

/// The whole REST application: the documented routes, the documentation pages and the JSON fallbacks; the
/// body limit, tracing, CORS, compression and metrics are added around it by [`hygiene::wrap`].
pub fn router(service: Arc<Service>) -> Router {
    let (api, _document) = routes().split_for_parts();
    api.merge(docs::routes())
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(service)
}
