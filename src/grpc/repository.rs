//! The model repository RPCs (Triton's messages and field numbers) over the repository's index, load and unload,
//! each first checked against the repository API's access rules (enabled, `authorization: Bearer` metadata).

use tonic::metadata::MetadataMap;

use crate::error::Error;
use crate::repository::load_config::{LoadOptions, LoadParameter};
use crate::service::DataPlane;

use super::pb;
use super::pb::repository_index_response::ModelIndex;

/// RepositoryIndex: every model known (or, with `ready`, those ready to serve).
pub async fn index(
    service: &DataPlane,
    request: tonic::Request<pb::RepositoryIndexRequest>,
) -> Result<pb::RepositoryIndexResponse, Error> {
    let request = authorized(service, request)?;
    let entries = service.repository_index(request.ready).await?;
    Ok(pb::RepositoryIndexResponse {
        models: entries
            .into_iter()
            .map(|e| ModelIndex {
                name: e.name,
                version: e.version,
                state: e.state.as_str().to_string(),
                reason: e.reason,
            })
            .collect(),
    })
}

/// RepositoryModelLoad: (re)loads the model from the repository folder, with Triton's `config` override if given.
pub async fn load(
    service: &DataPlane,
    request: tonic::Request<pb::RepositoryModelLoadRequest>,
) -> Result<(), Error> {
    use pb::model_repository_parameter::ParameterChoice;
    let request = authorized(service, request)?;
    let name = required_name(&request.model_name)?;
    let options = LoadOptions::from_parameters(
        name,
        request.parameters.iter().map(|(key, value)| {
            let value = match &value.parameter_choice {
                Some(ParameterChoice::StringParam(text)) => LoadParameter::Text(text),
                _ => LoadParameter::Other,
            };
            (key.as_str(), value)
        }),
    )?;
    service.load_model(name, options).await
}

/// RepositoryModelUnload: unloads the model once its requests in flight are answered. Parameters (Triton's
/// `unload_dependents`) are accepted and have no effect: models have no dependents here.
pub async fn unload(
    service: &DataPlane,
    request: tonic::Request<pb::RepositoryModelUnloadRequest>,
) -> Result<(), Error> {
    let request = authorized(service, request)?;
    let name = required_name(&request.model_name)?;
    service.unload_model(name).await
}

/// The message, once the access rules let the caller in (PERMISSION_DENIED when the API is disabled,
/// UNAUTHENTICATED without the right token). Browsers cannot send gRPC cross-site, so no origin check.
fn authorized<T>(service: &DataPlane, request: tonic::Request<T>) -> Result<T, Error> {
    let metadata: &MetadataMap = request.metadata();
    service
        .repository_access()
        .authorize(metadata.get("authorization").map(|value| value.as_bytes()))?;
    Ok(request.into_inner())
}

fn required_name(name: &str) -> Result<&str, Error> {
    if name.is_empty() {
        return Err(Error::InvalidInput("model_name is required".into()));
    }
    Ok(name)
}
