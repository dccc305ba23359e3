//! REST handlers of the model repository extension: index, load, unload (the logic is in the repository).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::schemas::{RepositoryErrors, RepositoryIndexErrors};
use crate::error::Error;
use crate::repository::lifecycle::IndexEntry;
use crate::repository::load_config::{LoadOptions, LoadParameter};
use crate::service::DataPlane;
use crate::tensor::Parameters;

/// `POST /v2/repository/index` body; MLServer requires one, Triton's clients may send none. Other fields
/// (Triton's `repository_name`) are ignored: this server has one repository.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct IndexRequest {
    /// Only the models ready to serve.
    #[serde(deserialize_with = "null_is_false")]
    #[schema(nullable)]
    ready: bool,
}

/// Body of load and unload (optional): Triton's `parameters`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ModelRequest {
    #[schema(value_type = Option<crate::service::ParametersSchema>)]
    parameters: Option<Parameters>,
}

/// The models in the repository, loaded or only on disk, with their state (repository extension).
#[utoipa::path(post, path = "/v2/repository/index", tag = "repository", operation_id = "repository_index",
    request_body(content = Option<IndexRequest>, description = "Optional; `ready: true` lists only the models ready to serve."),
    responses(
        (status = 200, description = "One entry per model version.", body = Vec<IndexEntry>),
        RepositoryIndexErrors,
    ))]
pub async fn index(
    State(service): State<Arc<DataPlane>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<IndexEntry>>, RepositoryError> {
    service
        .repository_access()
        .authorize(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))?;
    let request: IndexRequest = optional_json(body, "repository index")?;
    Ok(Json(service.repository_index(request.ready).await?))
}

/// Loads (or reloads) a model: its settings are read again from the repository folder.
///
/// Triton's `config` parameter (a string holding a JSON model configuration) overrides them for this load:
/// `max_batch_size`, `dynamic_batching`, `instance_group`, `input`/`output` declarations; other fields are
/// refused (400, naming the field). `file:` uploads are not supported (501).
#[utoipa::path(post, path = "/v2/repository/models/{name}/load", tag = "repository",
    operation_id = "repository_model_load",
    params(("name" = String, Path, description = "The model's name.")),
    request_body(content = Option<ModelRequest>, description = "Optional Triton-style `parameters`."),
    responses((status = 200, description = "Loaded; the body is empty."), RepositoryErrors))]
pub async fn load(
    State(service): State<Arc<DataPlane>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(), RepositoryError> {
    service.repository_access().authorize_mutation(&headers)?;
    let request: ModelRequest = optional_json(body, "load")?;
    let parameters = request.parameters.unwrap_or_default();
    let options = LoadOptions::from_parameters(
        &name,
        parameters.iter().map(|(key, value)| {
            let value = match value {
                serde_json::Value::String(text) => LoadParameter::Text(text),
                _ => LoadParameter::Other,
            };
            (key.as_str(), value)
        }),
    )?;
    Ok(service.load_model(&name, options).await?)
}

/// Unloads a model once its in-flight requests have been answered.
#[utoipa::path(post, path = "/v2/repository/models/{name}/unload", tag = "repository",
    operation_id = "repository_model_unload",
    params(("name" = String, Path, description = "The model's name.")),
    request_body(content = Option<ModelRequest>, description = "Optional Triton-style `parameters`."),
    responses((status = 200, description = "Unloaded; the body is empty."), RepositoryErrors))]
pub async fn unload(
    State(service): State<Arc<DataPlane>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(), RepositoryError> {
    service.repository_access().authorize_mutation(&headers)?;
    let _: ModelRequest = optional_json(body, "unload")?;
    Ok(service.unload_model(&name).await?)
}

/// The error of a repository route: the server's error answer, with `WWW-Authenticate: Bearer` on a 401 (as
/// HTTP requires, so clients know which credentials are asked for).
pub struct RepositoryError(Error);

impl From<Error> for RepositoryError {
    fn from(error: Error) -> RepositoryError {
        RepositoryError(error)
    }
}

impl IntoResponse for RepositoryError {
    fn into_response(self) -> Response {
        let unauthenticated = matches!(self.0, Error::Unauthenticated(_));
        let mut response = self.0.into_response();
        if unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"model repository\""),
            );
        }
        response
    }
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
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return Ok(T::default()),
        // serde reads a struct from a JSON array too (`[]` would pass as an empty request): only an object or null.
        Some(b'{') | Some(b'n') => {}
        Some(_) => {
            return Err(Error::InvalidInput(format!(
                "invalid {what} request: the body must be a JSON object"
            )))
        }
    }
    serde_json::from_slice::<Option<T>>(&body)
        .map(Option::unwrap_or_default)
        .map_err(|e| Error::InvalidInput(format!("invalid {what} request: {e}")))
}

fn null_is_false<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
}
