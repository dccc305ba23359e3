//! REST handlers: decode the transport, call the service, encode the answer. No validation lives here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::binary::{split_body, BinaryOutputs, Body, HEADER_LENGTH};
use super::types::{parse_infer_request, parse_infer_request_with_binary, write_infer_response};
use crate::error::Error;
use crate::model::stats::ModelStatistics;
use crate::service::{ModelMetadata, ServerMetadata, Service};

/// `{name}` and optional `{version}` of a model route.
#[derive(Debug, Deserialize)]
pub struct ModelPath {
    name: String,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Serialize)]
pub struct LiveBody {
    live: bool,
}

#[derive(Serialize)]
pub struct ReadyBody {
    ready: bool,
}

#[derive(Serialize)]
pub struct ModelReadyBody {
    name: String,
    ready: bool,
}

fn ok_or_unavailable(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

pub async fn live(State(service): State<Arc<Service>>) -> (StatusCode, Json<LiveBody>) {
    let live = service.live();
    (ok_or_unavailable(live), Json(LiveBody { live }))
}

pub async fn ready(State(service): State<Arc<Service>>) -> (StatusCode, Json<ReadyBody>) {
    let ready = service.ready();
    (ok_or_unavailable(ready), Json(ReadyBody { ready }))
}

pub async fn server_metadata(State(service): State<Arc<Service>>) -> Json<ServerMetadata> {
    Json(service.server_metadata())
}

pub async fn model_metadata(
    State(service): State<Arc<Service>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<ModelMetadata>, Error> {
    service
        .model_metadata(&path.name, path.version.as_deref())
        .map(Json)
}

pub async fn model_ready(
    State(service): State<Arc<Service>>,
    Path(path): Path<ModelPath>,
) -> Result<(StatusCode, Json<ModelReadyBody>), Error> {
    let ready = service.model_ready(&path.name, path.version.as_deref())?;
    Ok((
        ok_or_unavailable(ready),
        Json(ModelReadyBody {
            name: path.name,
            ready,
        }),
    ))
}

pub async fn infer(
    State(service): State<Arc<Service>>,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let body = body.map_err(|e| body_error(e, service.settings().max_request_body_size))?;
    let version = path.version.as_deref();
    let (request, raw_body) = match split_body(&headers, &body)? {
        Body::Json(json) => (parse_infer_request(json)?, false),
        Body::Mixed { json, binary } => (parse_infer_request_with_binary(json, binary)?, false),
        Body::Raw(bytes) => (service.raw_body_request(&path.name, version, bytes)?, true),
    };
    drop(body);
    let binary = BinaryOutputs::from_request(&request, raw_body);
    let response = service.infer(&path.name, version, request).await?;
    let (bytes, json_len) = write_infer_response(&response, |name| binary.is_binary(name));
    Ok(match json_len {
        None => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Some(len) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (HeaderName::from_static(HEADER_LENGTH), len.to_string()),
            ],
            bytes,
        )
            .into_response(),
    })
}

/// Triton's model configuration.
pub async fn model_config(
    State(service): State<Arc<Service>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<serde_json::Value>, Error> {
    service
        .model_config(&path.name, path.version.as_deref())
        .map(Json)
}

/// Triton's statistics extension body.
#[derive(Serialize)]
pub struct StatisticsBody {
    model_stats: Vec<ModelStatistics>,
}

pub async fn all_statistics(
    State(service): State<Arc<Service>>,
) -> Result<Json<StatisticsBody>, Error> {
    let model_stats = service.statistics(None, None)?;
    Ok(Json(StatisticsBody { model_stats }))
}

pub async fn model_statistics(
    State(service): State<Arc<Service>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<StatisticsBody>, Error> {
    let model_stats = service.statistics(Some(&path.name), path.version.as_deref())?;
    Ok(Json(StatisticsBody { model_stats }))
}

/// Maps a body read failure (too large, aborted) to the server's error shape.
fn body_error(rejection: BytesRejection, limit: usize) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::PayloadTooLarge(format!(
            "request body is larger than the limit of {limit} bytes (max_request_body_size)"
        ))
    } else {
        Error::InvalidInput(format!(
            "cannot read the request body: {}",
            rejection.body_text()
        ))
    }
}

pub async fn not_found(uri: axum::http::Uri) -> Error {
    Error::NotFoundRoute(format!("no route for {}", uri.path()))
}

pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed("method not allowed on this route".into())
}
