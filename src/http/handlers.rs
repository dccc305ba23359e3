//! REST handlers: decode the transport, call the service, encode the answer. No validation lives here.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{Buf, Bytes};
use serde::{Deserialize, Serialize};

use utoipa::{IntoParams, ToSchema};

use super::binary::{split_body, BinaryOutputs, Body, HEADER_LENGTH};
use super::body::{Chunks, InferBody};
use super::schemas::{BinaryBody, InferErrors, ModelErrors, NotFoundError};
use super::types::{parse_infer_request_with_binary, write_infer_response};
use super::types::{InferRequestJson, InferResponseJson};
use crate::admission::{tensor_bytes, Permit, OFF_REACTOR_BYTES};
use crate::error::Error;
use crate::http::json::rope::Rope;
use crate::model::stats::ModelStatistics;
use crate::service::{DataPlane, InferRequest, ModelMetadata, ServerMetadata, TritonModelConfig};
use crate::telemetry::RequestSpan;
use crate::tensor::limits::Limits;

/// `{name}` of a model route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModelPath {
    /// The model's name.
    #[param(example = "iris")]
    name: String,
}

/// `{name}` and `{version}` of a versioned model route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    /// The model's name.
    #[param(example = "iris")]
    name: String,
    /// The model version.
    #[param(example = "1")]
    version: String,
}

/// Headers of an infer request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct InferHeaders {
    /// Binary tensor data extension: length of the JSON header at the start of the body (0: the whole body is
    /// the raw bytes of a single-input model's input).
    #[serde(rename = "Inference-Header-Content-Length")]
    #[param(required = false, minimum = 0)]
    _length: u64,
}

/// `GET /v2/health/live` body.
#[derive(Serialize, ToSchema)]
pub struct LiveBody {
    /// The server is up.
    live: bool,
}

/// `GET /v2/health/ready` body.
#[derive(Serialize, ToSchema)]
pub struct ReadyBody {
    /// Every model meant to load has loaded.
    ready: bool,
}

/// `GET /v2/models/{name}/ready` body.
#[derive(Serialize, ToSchema)]
pub struct ModelReadyBody {
    /// The model's name.
    name: String,
    /// The model (version) is loaded and can serve.
    ready: bool,
}

fn ok_or_unavailable(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Server liveness.
#[utoipa::path(get, path = "/v2/health/live", tag = "health", operation_id = "server_live",
    responses((status = 200, description = "The server is live.", body = LiveBody)))]
pub async fn live(State(service): State<Arc<DataPlane>>) -> (StatusCode, Json<LiveBody>) {
    let live = service.live();
    (ok_or_unavailable(live), Json(LiveBody { live }))
}

/// Server readiness: ready once every model meant to load at start-up has loaded.
#[utoipa::path(get, path = "/v2/health/ready", tag = "health", operation_id = "server_ready",
    responses(
        (status = 200, description = "Ready to serve.", body = ReadyBody),
        (status = 503, description = "Not ready (models still loading, or one failed).", body = ReadyBody),
    ))]
pub async fn ready(State(service): State<Arc<DataPlane>>) -> (StatusCode, Json<ReadyBody>) {
    let ready = service.ready();
    (ok_or_unavailable(ready), Json(ReadyBody { ready }))
}

/// Server name, version and the protocol extensions it implements.
#[utoipa::path(get, path = "/v2", tag = "server", operation_id = "server_metadata",
    responses((status = 200, description = "Server metadata.", body = ServerMetadata)))]
pub async fn server_metadata(State(service): State<Arc<DataPlane>>) -> Json<ServerMetadata> {
    Json(service.server_metadata())
}

/// Model metadata: its versions, platform, inputs and outputs (the default version).
#[utoipa::path(get, path = "/v2/models/{name}", tag = "model", operation_id = "model_metadata",
    params(ModelPath),
    responses((status = 200, description = "Model metadata.", body = ModelMetadata), ModelErrors))]
pub async fn model_metadata(
    State(service): State<Arc<DataPlane>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<ModelMetadata>, Error> {
    service.model_metadata(&path.name, None).map(Json)
}

/// Metadata of one model version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "model",
    operation_id = "model_version_metadata", params(VersionPath),
    responses((status = 200, description = "Model metadata.", body = ModelMetadata), ModelErrors))]
pub async fn model_version_metadata(
    State(service): State<Arc<DataPlane>>,
    Path(path): Path<VersionPath>,
) -> Result<Json<ModelMetadata>, Error> {
    service
        .model_metadata(&path.name, Some(&path.version))
        .map(Json)
}

async fn model_ready_body(
    service: &DataPlane,
    name: String,
    version: Option<&str>,
) -> Result<(StatusCode, Json<ModelReadyBody>), Error> {
    let ready = service.model_ready(&name, version)?;
    Ok((
        ok_or_unavailable(ready),
        Json(ModelReadyBody { name, ready }),
    ))
}

/// Model readiness (the default version).
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "model", operation_id = "model_ready",
    params(ModelPath),
    responses(
        (status = 200, description = "The model is ready.", body = ModelReadyBody),
        (status = 503, description = "The model is loading, unloading or failed to load.", body = ModelReadyBody),
        NotFoundError,
    ))]
pub async fn model_ready(
    State(service): State<Arc<DataPlane>>,
    Path(path): Path<ModelPath>,
) -> Result<(StatusCode, Json<ModelReadyBody>), Error> {
    model_ready_body(&service, path.name, None).await
}

/// Readiness of one model version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "model",
    operation_id = "model_version_ready", params(VersionPath),
    responses(
        (status = 200, description = "The model version is ready.", body = ModelReadyBody),
        (status = 503, description = "The model version is loading, unloading or failed to load.", body = ModelReadyBody),
        NotFoundError,
    ))]
pub async fn model_version_ready(
    State(service): State<Arc<DataPlane>>,
    Path(path): Path<VersionPath>,
) -> Result<(StatusCode, Json<ModelReadyBody>), Error> {
    model_ready_body(&service, path.name, Some(&path.version)).await
}

/// An inference request, in its trace span when tracing is on (see [`crate::telemetry`]).
async fn run_infer(
    service: &Arc<DataPlane>,
    name: &str,
    version: Option<&str>,
    headers: HeaderMap,
    body: InferBody,
) -> Result<Response, Error> {
    let mark = |mut answer: Response| {
        answer
            .extensions_mut()
            .insert(super::middleware::InferAnswer);
        answer
    };
    let Some(telemetry) = service.telemetry() else {
        return infer_body(service, name, version, headers, body, None)
            .await
            .map(mark);
    };
    let span = telemetry.rest_span(&headers, name, version);
    let result = infer_body(service, name, version, headers, body, Some(&span)).await;
    span.end(&result);
    result.map(mark)
}

/// Decodes the body, runs the model, encodes the answer. Large bodies are decoded and large answers encoded on a
/// blocking thread; the request's bytes (body, then decoded inputs, outputs and the encoded answer) are held
/// against the admission budget until the answer has been sent.
async fn infer_body(
    service: &Arc<DataPlane>,
    name: &str,
    version: Option<&str>,
    headers: HeaderMap,
    body: InferBody,
    span: Option<&RequestSpan>,
) -> Result<Response, Error> {
    let (body, mut permit) = body.into_parts();
    let large = body.remaining() >= OFF_REACTOR_BYTES;
    let decode = {
        let (service, name, version) = (
            service.clone(),
            name.to_string(),
            version.map(str::to_string),
        );
        move || {
            let (request, raw) =
                decode_request(&service, &name, version.as_deref(), &headers, body)?;
            let bytes = tensor_bytes(&request.inputs);
            Ok::<_, Error>((request, raw, bytes))
        }
    };
    let (request, raw_body, input_bytes) = if large {
        service.admission().off_reactor(decode).await??
    } else {
        decode()?
    };
    // The body is gone; the decoded inputs are held instead.
    permit.set(input_bytes)?;
    let binary = BinaryOutputs::from_request(&request, raw_body);
    let response = service.infer_traced(name, version, request, span).await?;
    let outputs = tensor_bytes(&response.outputs);
    permit.force(outputs);
    let encode = move || write_infer_response(response, |name| binary.is_binary(name));
    let (json, raw_parts, json_len) = if outputs >= OFF_REACTOR_BYTES {
        service.admission().off_reactor(encode).await?
    } else {
        encode()
    };
    // The outputs are gone (binary ones live on as parts of the answer); the answer is held until the connection
    // has sent it.
    let total = json.len() + raw_parts.iter().map(Bytes::len).sum::<usize>();
    permit.keep(total);
    Ok(match json_len {
        None => {
            let bytes = Bytes::from_owner(HeldBytes {
                bytes: json,
                _permit: permit,
            });
            ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        Some(len) => {
            let mut parts = VecDeque::with_capacity(1 + raw_parts.len());
            parts.push_back(Bytes::from(json));
            parts.extend(raw_parts);
            let body = PartsBody {
                parts,
                left: total as u64,
                _permit: permit,
            };
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (HeaderName::from_static(HEADER_LENGTH), len.to_string()),
                ],
                axum::body::Body::new(body),
            )
                .into_response()
        }
    })
}

/// A binary answer in parts (the JSON, then each binary output's bytes, never copied into one buffer), holding
/// its share of the admission budget until the connection has sent the last part.
struct PartsBody {
    parts: VecDeque<Bytes>,
    left: u64,
    _permit: Permit,
}

impl http_body::Body for PartsBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let part = self.parts.pop_front();
        if let Some(part) = &part {
            self.left -= part.len() as u64;
        }
        std::task::Poll::Ready(part.map(|part| Ok(http_body::Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

/// The request of an infer body: JSON, JSON with binary tensors, or a raw body.
fn decode_request(
    service: &DataPlane,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Chunks,
) -> Result<(InferRequest, bool), Error> {
    let limits = Limits::from(service.settings());
    Ok(match split_body(headers, body)? {
        Body::Json(json) => (
            parse_infer_request_with_binary(&Rope::new(json.parts()), Bytes::new(), &limits)?,
            false,
        ),
        Body::Mixed { json, binary } => (
            parse_infer_request_with_binary(&Rope::new([&json[..]]), binary, &limits)?,
            false,
        ),
        Body::Raw(bytes) => (
            super::binary::raw_body_request(service, name, version, bytes)?,
            true,
        ),
    })
}

/// Response bytes that keep their share of the admission budget until the server has sent (and dropped) them.
pub(super) struct HeldBytes {
    pub(super) bytes: Vec<u8>,
    pub(super) _permit: Permit,
}

impl AsRef<[u8]> for HeldBytes {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// The two infer routes (default version, one version): the same documentation, request and answers.
macro_rules! infer_route {
    ($(#[doc = $doc:literal])* $handler:ident, $path:literal, $operation:literal, $params:ident,
     |$p:ident| $version:expr) => {
        $(#[doc = $doc])*
        #[utoipa::path(post, path = $path, tag = "inference", operation_id = $operation,
            params($params, InferHeaders),
            request_body(description = "The inference request.", content(
                (InferRequestJson = "application/json", example = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]})),
                (BinaryBody = "application/octet-stream"),
            )),
            responses(
                (status = 200, description = "The outputs.", content(
                    (InferResponseJson = "application/json"),
                    (BinaryBody = "application/octet-stream"),
                ), headers(("Inference-Header-Content-Length" = u64,
                    description = "Set when outputs travel as binary data: length of the JSON header."))),
                InferErrors,
            ))]
        pub async fn $handler(
            State(service): State<Arc<DataPlane>>,
            Path($p): Path<$params>,
            headers: HeaderMap,
            body: InferBody,
        ) -> Result<Response, Error> {
            run_infer(&service, &$p.name, $version, headers, body).await
        }
    };
}

infer_route!(
    /// Inference on the model's default version.
    ///
    /// The body is JSON, or (binary tensor data extension) a JSON header of `Inference-Header-Content-Length`
    /// bytes followed by the inputs' raw bytes; the response is binary the same way when an output asks for it.
    infer, "/v2/models/{name}/infer", "model_infer", ModelPath, |path| None
);

infer_route!(
    /// Inference on one model version.
    version_infer, "/v2/models/{name}/versions/{version}/infer", "model_version_infer", VersionPath,
    |path| Some(&path.version)
);

/// Triton's model configuration of the default version (perf_analyzer reads it).
#[utoipa::path(get, path = "/v2/models/{name}/config", tag = "triton", operation_id = "model_config",
    params(ModelPath),
    responses((status = 200, description = "Triton model configuration.", body = Object), ModelErrors))]
pub async fn model_config(
    State(service): State<Arc<DataPlane>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<TritonModelConfig>, Error> {
    service.model_config(&path.name, None).map(Json)
}

/// Triton's model configuration of one version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/config", tag = "triton",
    operation_id = "model_version_config", params(VersionPath),
    responses((status = 200, description = "Triton model configuration.", body = Object), ModelErrors))]
pub async fn model_version_config(
    State(service): State<Arc<DataPlane>>,
    Path(path): Path<VersionPath>,
) -> Result<Json<TritonModelConfig>, Error> {
    service
        .model_config(&path.name, Some(&path.version))
        .map(Json)
}

/// Triton's statistics extension body.
#[derive(Serialize, ToSchema)]
pub struct StatisticsBody {
    /// One entry per ready model version.
    model_stats: Vec<ModelStatistics>,
}

/// Triton statistics of every ready model version.
#[utoipa::path(get, path = "/v2/models/stats", tag = "triton", operation_id = "all_statistics",
    responses((status = 200, description = "Statistics.", body = StatisticsBody)))]
pub async fn all_statistics(
    State(service): State<Arc<DataPlane>>,
) -> Result<Json<StatisticsBody>, Error> {
    let model_stats = service.statistics(None, None)?;
    Ok(Json(StatisticsBody { model_stats }))
}

/// Triton statistics of a model's default version.
#[utoipa::path(get, path = "/v2/models/{name}/stats", tag = "triton", operation_id = "model_statistics",
    params(ModelPath),
    responses((status = 200, description = "Statistics.", body = StatisticsBody), ModelErrors))]
pub async fn model_statistics(
    State(service): State<Arc<DataPlane>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<StatisticsBody>, Error> {
    let model_stats = service.statistics(Some(&path.name), None)?;
    Ok(Json(StatisticsBody { model_stats }))
}

/// Triton statistics of one model version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/stats", tag = "triton",
    operation_id = "model_version_statistics", params(VersionPath),
    responses((status = 200, description = "Statistics.", body = StatisticsBody), ModelErrors))]
pub async fn model_version_statistics(
    State(service): State<Arc<DataPlane>>,
    Path(path): Path<VersionPath>,
) -> Result<Json<StatisticsBody>, Error> {
    let model_stats = service.statistics(Some(&path.name), Some(&path.version))?;
    Ok(Json(StatisticsBody { model_stats }))
}

pub async fn not_found(uri: axum::http::Uri) -> Error {
    Error::NotFoundRoute(format!("no route for {}", uri.path()))
}

pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed("method not allowed on this route".into())
}
