//! The core's request and response types, whatever transport a request came on.

use std::borrow::Cow;

use serde::Serialize;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::model::TensorSpec;
use crate::tensor::{Parameters, Tensor};

/// An inference request, whatever transport it came on.
#[derive(Debug, Clone, Default)]
pub struct InferRequest {
    pub id: Option<String>,
    pub parameters: Parameters,
    pub inputs: Vec<Tensor>,
    /// Outputs asked for; empty = all of them.
    pub outputs: Vec<RequestedOutput>,
}

/// One entry of the request's `outputs`.
#[derive(Debug, Clone, Default)]
pub struct RequestedOutput {
    pub name: String,
    pub parameters: Parameters,
}

/// An inference response, before a transport encodes it.
#[derive(Debug, Clone)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: Option<String>,
    pub id: String,
    pub parameters: Parameters,
    pub outputs: Vec<Tensor>,
}

/// `GET /v2`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(description = "Server metadata.")]
pub struct ServerMetadata {
    /// The server's name (settings `server_name`).
    pub name: String,
    /// The server's version (settings `server_version`).
    pub version: String,
    /// The protocol extensions it implements.
    pub extensions: Vec<String>,
}

/// `GET /v2/models/{name}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(description = "Model metadata.")]
pub struct ModelMetadata {
    /// The model's name.
    pub name: String,
    /// Its versions.
    pub versions: Vec<String>,
    /// The platform (`onnxruntime_onnx` unless the settings say otherwise).
    pub platform: String,
    /// The inputs, in the model's order.
    pub inputs: Vec<TensorSpec>,
    /// The outputs, in the model's order.
    pub outputs: Vec<TensorSpec>,
    /// Model parameters (`content_type` from the model settings).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ParametersSchema>)]
    pub parameters: Option<Parameters>,
}

/// Protocol extensions this server implements, as `GET /v2` advertises them.
pub const IMPLEMENTED_EXTENSIONS: &[&str] = &[
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "model_repository",
    "statistics",
];

/// The OpenAPI schema of [`Parameters`] (named `Parameters`): request, response and tensor parameters, a JSON
/// object of mostly strings, numbers and booleans.
pub struct ParametersSchema;

impl PartialSchema for ParametersSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(true)))
            .description(Some(
                "Free-form parameters. Known keys: `content_type` (MLServer codec: np, str, base64, datetime, \
                 pd, pd_json, img), `binary_data_output` (request), `binary_data` and `classification` \
                 (requested output), `binary_data_size` (binary tensor data extension).",
            ))
            .into()
    }
}

impl ToSchema for ParametersSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Parameters")
    }
}
