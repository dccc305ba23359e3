//! The REST (V2 HTTP) transport: an axum router of thin handlers over the service, documented with OpenAPI.

pub mod binary;
mod body;
mod docs;
mod handlers;
mod inflate;
pub mod json;
pub mod metrics_endpoint;
pub mod middleware;
pub mod openapi;
mod repository;
pub mod schemas;
mod swagger;
pub mod types;
mod v1;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::service::DataPlane;

/// The documented V2 routes; every model route exists with and without `/versions/{version}`. The OpenAPI
/// document is collected from the handlers' `#[utoipa::path]` attributes as they are added here.
pub fn routes() -> OpenApiRouter<Arc<DataPlane>> {
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
/// body limit, tracing, CORS, compression and metrics are added around it by [`middleware::wrap`].
pub fn router(service: Arc<DataPlane>) -> Router {
    let (api, _document) = routes().split_for_parts();
    // A path that matches nothing and ends with `/` is tried once more without it, on the documented routes
    // only (the official OpenAPI document spells server metadata `/v2/`); the documentation pages keep their
    // own slash rules (`/v2/docs` redirects to `/v2/docs/`).
    let retry = api
        .clone()
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(service.clone());
    api.merge(docs::routes())
        .merge(v1::routes())
        .fallback(move |request: Request| without_trailing_slash(retry.clone(), request))
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(service)
}

/// Routes `request` on `api` with one trailing `/` taken off its path, or answers 404 when there is none to take.
async fn without_trailing_slash(api: Router, mut request: Request) -> Response {
    let path = request.uri().path();
    let Some(trimmed) = path.strip_suffix('/').filter(|p| !p.is_empty()) else {
        return handlers::not_found(request.uri().clone())
            .await
            .into_response();
    };
    let rewritten = match request.uri().query() {
        Some(query) => format!("{trimmed}?{query}"),
        None => trimmed.to_owned(),
    };
    match rewritten.parse::<Uri>() {
        Ok(uri) => {
            *request.uri_mut() = uri;
            match api.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
        Err(_) => handlers::not_found(request.uri().clone())
            .await
            .into_response(),
    }
}
