//! REST handlers of the model repository extension: index, load, unload (the logic is in the repository).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::Error;
use crate::repository::lifecycle::IndexEntry;
use crate::service::Service;
use crate::tensor::Parameters;

/// `POST /v2/repository/index` body; MLServer requires one, Triton's clients may send none. Other fields
/// (Triton's `repository_name`) are ignored: this server has one repository.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IndexRequest {
    /// Only the models ready to serve.
    #[serde(deserialize_with = "null_is_false")]
    ready: bool,
}

/// Body of load and unload (optional): Triton's `parameters`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ModelRequest {
    parameters: Option<Parameters>,
}

pub async fn index(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<IndexEntry>>, Error> {
    let request: IndexRequest = optional_json(body, "repository index")?;
    service.repository.index(request.ready).await.map(Json)
}

pub async fn load(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(), Error> {
    let request: ModelRequest = optional_json(body, "load")?;
    let parameters = request.parameters.unwrap_or_default();
    service
        .repository
        .load_model(&name, parameters.keys().map(String::as_str))
        .await
}

pub async fn unload(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(), Error> {
    let _: ModelRequest = optional_json(body, "unload")?;
    service.repository.unload_model(&name).await
}

/// An empty body (or `null`) is the default request; anything else must be the JSON object.
fn optional_json<T: DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
    what: &str,
) -> Result<T, Error> {
    let body = body.map_err(|e| {
        Error::InvalidInput(format!(
            "cannot read the {what} request body: {}",
            e.body_text()
        ))
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice::<Option<T>>(&body)
        .map(Option::unwrap_or_default)
        .map_err(|e| Error::InvalidInput(format!("invalid {what} request: {e}")))
}

fn null_is_false<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
}
