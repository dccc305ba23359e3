//! OpenAPI schemas of the V2 wire types that are not derived on a struct: tensor data, parameters, datatypes,
//! tensor metadata, and the error responses each route can answer.

use std::borrow::Cow;
use std::collections::BTreeMap;

use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

use crate::model::TensorSpec;
use crate::tensor::DataType;

/// A reference to a schema under `#/components/schemas/`.
pub fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// Tensor `data`: row-major, flat or nested to the shape; numbers, strings (BYTES, and `"NaN"`/`"Infinity"`/`"-Infinity"` for floats), booleans, `null` (NaN).
pub struct TensorData;

impl PartialSchema for TensorData {
    fn schema() -> RefOr<Schema> {
        let element = AnyOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(ObjectBuilder::new().schema_type(Type::Null))
            // A nested row; not a reference back to TensorData, which generated clients cannot follow.
            .item(ArrayBuilder::new().description(Some("A nested row.")));
        ArrayBuilder::new()
            .items(element)
            .description(Some(
                "The tensor's elements in row-major order, flat (`[1, 2, 3, 4]`) or nested to the shape \
                 (`[[1, 2], [3, 4]]` for shape [2, 2]); the element count must equal the product of the shape. \
                 Numbers for numeric datatypes, booleans for BOOL, one string per element for BYTES (any bytes: \
                 NUL as `\\u0000`; bytes that are not UTF-8 base64-encoded, with `parameters.content_type` \
                 `base64` on the tensor, both ways). Float datatypes write NaN and infinities as the strings \
                 `\"NaN\"`, `\"Infinity\"`, `\"-Infinity\"` and read those (and `null` = NaN); a finite number \
                 beyond the datatype's range is refused. Absent when the tensor travels as binary data \
                 (`binary_data_size`).",
            ))
            .into()
    }
}

impl ToSchema for TensorData {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TensorData")
    }
}

/// A binary tensor data body: a JSON header of `Inference-Header-Content-Length` bytes, then the tensors' bytes.
pub struct BinaryBody;

impl PartialSchema for BinaryBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .content_media_type("application/octet-stream")
            .description(Some(
                "Binary tensor data extension: the JSON header (its length in the \
                 `Inference-Header-Content-Length` header), then the raw little-endian bytes of each tensor that \
                 has a `binary_data_size` parameter, in order.",
            ))
            .into()
    }
}

impl ToSchema for BinaryBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("BinaryBody")
    }
}

impl PartialSchema for DataType {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(DataType::ALL.iter().map(|d| d.as_str())))
            .description(Some("A tensor datatype of the Open Inference Protocol."))
            .into()
    }
}

impl ToSchema for DataType {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Datatype")
    }
}

impl PartialSchema for TensorSpec {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("name", ObjectBuilder::new().schema_type(Type::String))
            .required("name")
            .property("datatype", schema_ref("Datatype"))
            .required("datatype")
            .property(
                "shape",
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("The dimensions; -1 marks a variable one.")),
            )
            .required("shape")
            .property("parameters", schema_ref("Parameters"))
            .description(Some("An input or output as the model declares it."))
            .into()
    }
}

impl ToSchema for TensorSpec {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("MetadataTensor")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("Datatype".into(), DataType::schema()));
        schemas.push((
            "Parameters".into(),
            crate::service::ParametersSchema::schema(),
        ));
    }
}

/// Every error response: its status, the name under `#/components/responses/`, and when it happens.
pub const ERROR_RESPONSES: [(u16, &str, &str); 11] = [
    (400, "BadRequest", "The request is malformed or does not fit the model; the message names the tensor or field."),
    (401, "Unauthorized", "The model repository API needs `Authorization: Bearer <token>` (repository_api_token) and it is missing or wrong."),
    (403, "Forbidden", "The model repository API is disabled (repository_api_enabled), or the request looks cross-site (an Origin not allowed by cors_settings, a text/plain or form body)."),
    (404, "NotFound", "No such model, model version, or route."),
    (405, "MethodNotAllowed", "The route exists, not with this method (any route)."),
    (413, "PayloadTooLarge", "The request body is larger than the server's limit."),
    (429, "TooManyRequests", "The model's queue is full; retry later."),
    (500, "InternalError", "A failure inside the server or ONNX Runtime."),
    (501, "NotImplemented", "The model uses a tensor type this server cannot run."),
    (503, "Unavailable", "The model is loading, unloading, or failed to load (the message gives the reason)."),
    (504, "Timeout", "The request ran out of its time."),
];

/// The `{"error": "..."}` response for one of [`ERROR_RESPONSES`].
pub fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(schema_ref("ErrorBody")))
                .build(),
        )
        .build()
}

/// References to the error responses with the given statuses.
fn error_refs(statuses: &[u16]) -> BTreeMap<String, RefOr<Response>> {
    ERROR_RESPONSES
        .iter()
        .filter(|(status, _, _)| statuses.contains(status))
        .map(|(status, name, _)| {
            (
                status.to_string(),
                RefOr::Ref(Ref::from_response_name(*name)),
            )
        })
        .collect()
}

/// Errors of the model routes that only read (metadata, readiness, configuration, statistics).
pub struct ModelErrors;

impl IntoResponses for ModelErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_refs(&[404, 503])
    }
}

/// A model route that answers only 404 as an error (readiness answers 503 with its own body).
pub struct NotFoundError;

impl IntoResponses for NotFoundError {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_refs(&[404])
    }
}

/// Errors of inference.
pub struct InferErrors;

impl IntoResponses for InferErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_refs(&[400, 404, 413, 429, 500, 501, 503, 504])
    }
}

/// Errors of the repository extension's load and unload.
pub struct RepositoryErrors;

impl IntoResponses for RepositoryErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_refs(&[400, 401, 403, 404, 501])
    }
}

/// Errors of the repository index: a malformed body, or the repository API's access rules.
pub struct RepositoryIndexErrors;

impl IntoResponses for RepositoryIndexErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_refs(&[400, 401, 403])
    }
}

/// A route whose only error is a malformed body.
pub struct BadRequestError;

impl IntoResponses for BadRequestError {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_refs(&[400])
    }
}
