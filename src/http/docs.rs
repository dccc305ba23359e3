//! The documentation routes: Swagger UI and the OpenAPI documents, for the whole dataplane (`/v2/docs`) and for
//! one model (`/v2/models/{name}[/versions/{version}]/docs`). They are not part of the documented API.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{openapi, swagger};
use crate::error::Error;
use crate::service::Service;

/// `{name}`, optional `{version}` and optional `{file}` of a documentation route.
#[derive(Debug, Deserialize)]
struct DocsPath {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    file: Option<String>,
}

/// The documentation routes, for the dataplane and for each model (with and without a version).
pub fn routes() -> Router<Arc<Service>> {
    let mut router = Router::new();
    for base in [
        "/v2/docs",
        "/v2/models/{name}/docs",
        "/v2/models/{name}/versions/{version}/docs",
    ] {
        router = router
            .route(base, get(|| async { swagger::to_folder() }))
            .route(&format!("{base}/"), get(|| async { swagger::index() }))
            .route(&format!("{base}/{{file}}"), get(file));
    }
    router.route("/v2/docs/dataplane.json", get(dataplane))
}

async fn dataplane() -> Response {
    json_response(openapi::dataplane_json().to_owned())
}

/// A file of a docs folder: the model's document, or a Swagger UI asset.
async fn file(
    State(service): State<Arc<Service>>,
    Path(path): Path<DocsPath>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let file = path.file.unwrap_or_default();
    if let Some(asset) = swagger::asset(&file, &headers) {
        return Ok(asset);
    }
    match (file.as_str(), path.name) {
        ("dataplane.json", Some(name)) => {
            let metadata = service.model_metadata(&name, path.version.as_deref())?;
            let document = openapi::model_document(&metadata, path.version.as_deref());
            let json = serde_json::to_string_pretty(&document)
                .map_err(|e| Error::Internal(format!("cannot write the document: {e}")))?;
            Ok(json_response(json))
        }
        _ => Err(Error::NotFoundRoute(format!(
            "no documentation file {file}"
        ))),
    }
}

fn json_response(json: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}
