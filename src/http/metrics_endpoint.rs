//! The metrics listener's one route, `GET {metrics_endpoint}`: the Prometheus text exposition.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::service::DataPlane;

/// The metrics listener's routes: `GET {metrics_endpoint}`.
pub fn router(service: Arc<DataPlane>, endpoint: &str) -> Router {
    Router::new()
        .route(endpoint, get(scrape))
        .with_state(service)
}

async fn scrape(State(service): State<Arc<DataPlane>>) -> impl IntoResponse {
    let text = service.metrics_text();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
