//! KServe's V1 protocol, the default of an InferenceService (`protocolVersion` unset): `GET /` (liveness),
//! `GET /v1/models`, `GET /v1/models/{name}` (readiness), `POST /v1/models/{name}:predict` (`instances` ->
//! `predictions`, see [`crate::http::v1::instances`]) and `POST /v1/models/{name}:explain` (501: no explainer).
//!
//! A compatibility path beside the V2 routes: the body is read, counted and limited as a V2 infer body is
//! ([`InferBody`]), and the request runs through the same core call ([`DataPlane::infer`]: validation, queueing,
//! batching, metrics). Answers follow KServe's model server: 404 for an unknown model, 503 while it is not ready,
//! 400 for a bad request, errors as `{"error": "..."}`.

pub mod instances;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::{Buf, Bytes};
use serde::Serialize;

use crate::admission::{tensor_bytes, OFF_REACTOR_BYTES};
use crate::error::{short, Error};
use crate::http::body::InferBody;
use crate::http::handlers::HeldBytes;
use crate::service::{DataPlane, InferRequest};
use crate::tensor::limits::Limits;

/// The V1 routes (not in the OpenAPI document, which describes the Open Inference Protocol).
pub fn routes() -> Router<Arc<DataPlane>> {
    Router::new()
        .route("/", get(alive))
        .route("/v1/models", get(list))
        .route("/v1/models/{target}", get(model_ready).post(model_verb))
}

/// `GET /` body: KServe's liveness answer, which its V1 client reads.
#[derive(Serialize)]
struct Alive {
    status: &'static str,
}

async fn alive() -> Json<Alive> {
    Json(Alive { status: "alive" })
}

/// `GET /v1/models` body.
#[derive(Serialize)]
struct ModelList {
    /// Every model the repository knows, ready or not, once each.
    models: Vec<String>,
}

async fn list(State(service): State<Arc<DataPlane>>) -> Json<ModelList> {
    let models = service.model_names();
    Json(ModelList { models })
}

/// `GET /v1/models/{name}` body (sent only when ready: not ready is a 503 error, as KServe answers).
#[derive(Serialize)]
struct ModelReady {
    name: String,
    ready: bool,
}

async fn model_ready(
    State(service): State<Arc<DataPlane>>,
    Path(name): Path<String>,
) -> Result<Json<ModelReady>, Error> {
    if !service.model_ready(&name, None)? {
        return Err(Error::ModelNotReady(format!(
            "Model with name {} is not ready.",
            short(&name)
        )));
    }
    Ok(Json(ModelReady { name, ready: true }))
}

/// `POST /v1/models/{name}:predict` and `:explain` (one path segment: the verb follows the last `:`).
async fn model_verb(
    State(service): State<Arc<DataPlane>>,
    Path(target): Path<String>,
    body: InferBody,
) -> Result<Response, Error> {
    match target.rsplit_once(':') {
        Some((name, "predict")) => predict(&service, name, body).await,
        Some((name, "explain")) => {
            service.model_ready(name, None)?;
            Err(Error::Unsupported(format!(
                "{}:explain is not implemented: oxinfer serves no explainer (KServe runs explainers as their own component)",
                short(name)
            )))
        }
        _ => Err(Error::NotFoundRoute(format!(
            "no route for POST /v1/models/{}: use /v1/models/{{name}}:predict",
            short(&target)
        ))),
    }
}

/// Reads the instances into the model's inputs, runs them as a V2 request would run, writes the predictions.
/// Large bodies are decoded and large answers written on a decoding thread; the request's bytes are held against
/// the admission budget until the answer has been sent, as on the V2 route.
async fn predict(service: &Arc<DataPlane>, name: &str, body: InferBody) -> Result<Response, Error> {
    let (body, mut permit) = body.into_parts();
    let inputs = service.model_metadata(name, None)?.inputs;
    let large = body.remaining() >= OFF_REACTOR_BYTES;
    let decode = {
        let (model, limits) = (name.to_string(), Limits::from(service.settings()));
        move || {
            let mut body = body;
            let bytes = body.copy_to_bytes(body.remaining());
            let decoded = instances::decode(&bytes, &model, &inputs, &limits)?;
            let held = tensor_bytes(&decoded.inputs);
            Ok::<_, Error>((decoded, held))
        }
    };
    let (decoded, input_bytes) = if large {
        service.admission().off_reactor(decode).await??
    } else {
        decode()?
    };
    // The body is gone; the decoded inputs are held instead.
    permit.set(input_bytes)?;
    let request = InferRequest {
        inputs: decoded.inputs,
        ..InferRequest::default()
    };
    let response = service.infer(name, None, request).await?;
    let outputs = tensor_bytes(&response.outputs);
    permit.force(outputs);
    let count = decoded.count;
    let encode = move || instances::write_predictions(&response.outputs, count);
    let bytes = if outputs >= OFF_REACTOR_BYTES {
        service.admission().off_reactor(encode).await??
    } else {
        encode()?
    };
    permit.keep(bytes.len());
    let bytes = Bytes::from_owner(HeldBytes {
        bytes,
        _permit: permit,
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}
