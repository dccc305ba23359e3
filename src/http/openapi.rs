//! The OpenAPI documents: the dataplane document, collected from the handlers' `#[utoipa::path]` attributes
//! (committed as openapi/dataplane.json, printed by `oxinfer openapi`), and per-model documents whose inference
//! schemas name the model's own inputs and outputs, with a request example that the model accepts.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{OpenApi, RefOr, Schema};
use utoipa::OpenApi as _;

use super::schemas::{error_response, schema_ref, TensorData, ERROR_RESPONSES};
use crate::error::ErrorBody;
use crate::model::TensorSpec;
use crate::service::ModelMetadata;
use crate::tensor::DataType;

const DESCRIPTION: &str = "\
The Open Inference Protocol (KServe V2) REST API of oxinfer, generated from its code.

Every model route exists with and without `/versions/{version}`; without it the model's default version \
answers. Errors answer `{\"error\": \"...\"}` with the status of the failure (see the responses under \
components). The binary tensor data extension (`Inference-Header-Content-Length`) and Triton's \
classification, model configuration and statistics extensions are supported.

Each model also has its own document, naming its inputs and outputs with their datatypes and shapes: \
`/v2/models/{name}/docs/dataplane.json`, shown by Swagger UI at `/v2/models/{name}/docs/`.";

/// The document's fixed parts: info, tags and the shared schemas; the paths come from the router.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "oxinfer", description = DESCRIPTION),
    tags(
        (name = "health", description = "Liveness and readiness of the server."),
        (name = "server", description = "Server metadata."),
        (name = "model", description = "Model metadata and readiness."),
        (name = "inference", description = "Inference."),
        (name = "triton", description = "Triton's model configuration and statistics extensions."),
        (name = "repository", description = "The model repository extension: index, load, unload."),
    ),
    components(schemas(ErrorBody, TensorData, crate::service::ParametersSchema, DataType, TensorSpec))
)]
struct ApiDoc;

/// The base the router adds its paths to.
pub fn base() -> OpenApi {
    let mut document = ApiDoc::openapi();
    if let Some(components) = document.components.as_mut() {
        for (_, name, description) in ERROR_RESPONSES {
            components
                .responses
                .insert(name.to_string(), RefOr::T(error_response(description)));
        }
    }
    document
}

/// The dataplane document.
pub fn dataplane() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| super::routes().split_for_parts().1)
}

/// The dataplane document as pretty JSON, ending with a newline (the text of openapi/dataplane.json).
pub fn dataplane_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut json = serde_json::to_string_pretty(dataplane()).expect("the document serialises");
        json.push('\n');
        json
    })
}

/// The document of one model (version): the model's routes with its name (and version) filled in, and
/// inference schemas and an example made from its metadata.
pub fn model_document(metadata: &ModelMetadata, version: Option<&str>) -> OpenApi {
    let mut document = dataplane().clone();
    let prefix = match version {
        Some(v) => format!("/v2/models/{}/versions/{v}", metadata.name),
        None => format!("/v2/models/{}", metadata.name),
    };
    let template = match version {
        Some(_) => "/v2/models/{name}/versions/{version}",
        None => "/v2/models/{name}",
    };
    let paths = std::mem::take(&mut document.paths.paths);
    for (path, mut item) in paths {
        let Some(rest) = path.strip_prefix(template) else {
            continue;
        };
        if rest.starts_with("/versions") || (version.is_none() && path.contains("{version}")) {
            continue;
        }
        for operation in operations(&mut item) {
            if let Some(parameters) = operation.parameters.as_mut() {
                parameters.retain(|p| match p {
                    RefOr::T(p) => p.name != "name" && p.name != "version",
                    RefOr::Ref(_) => true,
                });
            }
        }
        if rest == "/infer" {
            if let Some(operation) = item.post.as_mut() {
                specialise_infer(operation, metadata);
            }
        }
        document.paths.paths.insert(format!("{prefix}{rest}"), item);
    }
    if let Some(components) = document.components.as_mut() {
        model_schemas(metadata, &mut components.schemas);
    }
    document.info.title = match version {
        Some(v) => format!("{} (version {v}) on oxinfer", metadata.name),
        None => format!("{} on oxinfer", metadata.name),
    };
    document.info.description = Some(model_description(metadata));
    document.tags = None;
    document
}

/// The operations of a path item.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [item.get.as_mut(), item.post.as_mut()]
        .into_iter()
        .flatten()
}

/// Points the infer operation's JSON bodies at the model's schemas and sets the model's example.
fn specialise_infer(operation: &mut Operation, metadata: &ModelMetadata) {
    if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
        if let Some(RefOr::T(content)) = body.content.get_mut("application/json") {
            content.schema = Some(schema_ref("ModelInferenceRequest"));
            content.example = Some(example_request(metadata));
        }
    }
    if let Some(RefOr::T(ok)) = operation.responses.responses.get_mut("200") {
        if let Some(RefOr::T(content)) = ok.content.get_mut("application/json") {
            content.schema = Some(schema_ref("ModelInferenceResponse"));
        }
    }
}

/// A schema name made of safe characters (`^[a-zA-Z0-9._-]+$`).
fn schema_name(kind: &str, tensor: &str) -> String {
    let safe: String = tensor
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{kind}_{safe}")
}

/// `[-1, 4]` written for people.
fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// The content type a model input declares in its settings, if any.
fn content_type(spec: &TensorSpec) -> Option<&str> {
    spec.parameters.as_ref()?.get("content_type")?.as_str()
}

fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
}

/// The schema of one model input.
fn input_schema(spec: &TensorSpec) -> Schema {
    let declared = content_type(spec);
    let mut datatypes = vec![spec.datatype.as_str()];
    if declared.is_some() && spec.datatype != DataType::Bytes {
        datatypes.push(DataType::Bytes.as_str());
    }
    let mut shape = ArrayBuilder::new().items(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0)),
    );
    if declared.is_none() {
        let dims = spec.shape.iter().map(|&d| {
            let dim = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0));
            if d >= 0 {
                dim.enum_values(Some([d]))
            } else {
                dim
            }
        });
        shape = shape
            .prefix_items(dims.map(Schema::from))
            .min_items(Some(spec.shape.len()))
            .max_items(Some(spec.shape.len()));
    }
    let mut description = format!(
        "Input '{}': {}, shape {} (-1 = any size).",
        spec.name,
        spec.datatype,
        shape_text(&spec.shape)
    );
    if let Some(declared) = declared {
        description.push_str(&format!(
            " Its content type is `{declared}`: the codec also accepts other datatypes and shapes (e.g. BYTES)."
        ));
    }
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .property("name", string_enum([spec.name.as_str()]))
        .required("name")
        .property("shape", shape.description(Some(shape_text(&spec.shape))))
        .required("shape")
        .property("datatype", string_enum(datatypes))
        .required("datatype")
        .property("parameters", schema_ref("Parameters"))
        .property("data", schema_ref("TensorData"))
        .build()
        .into()
}

/// The schema of one model output as it comes back.
fn output_schema(spec: &TensorSpec) -> Schema {
    let mut datatypes = vec![spec.datatype.as_str()];
    if spec.datatype != DataType::Bytes {
        datatypes.push(DataType::Bytes.as_str());
    }
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "Output '{}': {}, shape {} (-1 = any size). Classification and content types turn it into BYTES.",
            spec.name,
            spec.datatype,
            shape_text(&spec.shape)
        )))
        .property("name", string_enum([spec.name.as_str()]))
        .required("name")
        .property(
            "shape",
            ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0))),
        )
        .required("shape")
        .property("datatype", string_enum(datatypes))
        .required("datatype")
        .property("parameters", schema_ref("Parameters"))
        .property("data", schema_ref("TensorData"))
        .build()
        .into()
}

/// One schema, or a `oneOf` of several.
fn one_of(refs: Vec<RefOr<Schema>>) -> RefOr<Schema> {
    match <[RefOr<Schema>; 1]>::try_from(refs) {
        Ok([only]) => only,
        Err(refs) => {
            let mut one_of = OneOfBuilder::new();
            for r in refs {
                one_of = one_of.item(r);
            }
            one_of.into()
        }
    }
}

/// Adds the model's request and response schemas to `schemas`.
fn model_schemas(metadata: &ModelMetadata, schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    let mut input_refs = Vec::new();
    for spec in &metadata.inputs {
        let name = schema_name("Input", &spec.name);
        schemas.insert(name.clone(), RefOr::T(input_schema(spec)));
        input_refs.push(schema_ref(&name));
    }
    let mut output_refs = Vec::new();
    for spec in &metadata.outputs {
        let name = schema_name("Output", &spec.name);
        schemas.insert(name.clone(), RefOr::T(output_schema(spec)));
        output_refs.push(schema_ref(&name));
    }
    let output_names = || metadata.outputs.iter().map(|s| s.name.as_str());
    let requested_output = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("name", string_enum(output_names()))
        .required("name")
        .property("parameters", schema_ref("Parameters"));
    let nullable = |t: Type| utoipa::openapi::schema::SchemaType::from_iter([t, Type::Null]);
    let request = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "An inference request for {}: every input once.",
            metadata.name
        )))
        .property(
            "id",
            ObjectBuilder::new().schema_type(nullable(Type::String)),
        )
        .property("parameters", schema_ref("Parameters"))
        .property(
            "inputs",
            ArrayBuilder::new()
                .items(one_of(input_refs))
                .min_items(Some(metadata.inputs.len()))
                .max_items(Some(metadata.inputs.len())),
        )
        .required("inputs")
        .property(
            "outputs",
            ArrayBuilder::new()
                .schema_type(nullable(Type::Array))
                .items(requested_output),
        );
    schemas.insert(
        "ModelInferenceRequest".into(),
        RefOr::T(request.build().into()),
    );
    let response = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!("An inference response of {}.", metadata.name)))
        .property("model_name", string_enum([metadata.name.as_str()]))
        .required("model_name")
        .property(
            "model_version",
            ObjectBuilder::new().schema_type(Type::String),
        )
        .property("id", ObjectBuilder::new().schema_type(Type::String))
        .required("id")
        .property("parameters", schema_ref("Parameters"))
        .property("outputs", ArrayBuilder::new().items(one_of(output_refs)))
        .required("outputs");
    schemas.insert(
        "ModelInferenceResponse".into(),
        RefOr::T(response.build().into()),
    );
}

/// The model's inputs and outputs as a Markdown table.
fn model_description(metadata: &ModelMetadata) -> String {
    let mut text = format!(
        "Open Inference Protocol routes of the model **{}** (platform `{}`, versions: {}).\n\n\
         | | name | datatype | shape |\n|---|---|---|---|\n",
        metadata.name,
        metadata.platform,
        if metadata.versions.is_empty() {
            "none declared".to_string()
        } else {
            metadata.versions.join(", ")
        }
    );
    for (kind, specs) in [("input", &metadata.inputs), ("output", &metadata.outputs)] {
        for spec in specs {
            text.push_str(&format!(
                "| {kind} | `{}` | {} | {} |\n",
                spec.name,
                spec.datatype,
                shape_text(&spec.shape)
            ));
        }
    }
    text.push_str(
        "\n-1 marks a dimension of any size. The example request of the infer route runs as it is.",
    );
    text
}

/// An element that every input of this datatype and content type accepts.
fn example_element(spec: &TensorSpec) -> Value {
    match (spec.datatype, content_type(spec)) {
        (DataType::Bool, _) => json!(false),
        (DataType::Bytes, Some("base64")) => json!("MA=="),
        (DataType::Bytes, Some("datetime")) => json!("2021-08-24T15:01:19"),
        (DataType::Bytes, _) => json!("0"),
        _ => json!(0),
    }
}

/// A request the model runs: each input with its variable dimensions set to 1, filled with zeros.
pub fn example_request(metadata: &ModelMetadata) -> Value {
    let inputs: Vec<Value> = metadata
        .inputs
        .iter()
        .map(|spec| {
            let shape: Vec<u64> = spec
                .shape
                .iter()
                .map(|&d| u64::try_from(d).unwrap_or(1))
                .collect();
            let count = shape.iter().product::<u64>() as usize;
            json!({
                "name": spec.name,
                "shape": shape,
                "datatype": spec.datatype.as_str(),
                "data": vec![example_element(spec); count],
            })
        })
        .collect();
    json!({ "inputs": inputs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_fills_variable_dimensions_with_one() {
        let metadata = ModelMetadata {
            name: "m".into(),
            versions: vec![],
            platform: "onnxruntime_onnx".into(),
            inputs: vec![TensorSpec {
                name: "x".into(),
                datatype: DataType::Bool,
                shape: vec![-1, 3],
                parameters: None,
            }],
            outputs: vec![],
            parameters: None,
        };
        let example = example_request(&metadata);
        assert_eq!(example["inputs"][0]["shape"], json!([1, 3]));
        assert_eq!(example["inputs"][0]["data"], json!([false, false, false]));
    }

    #[test]
    fn schema_names_are_safe() {
        assert_eq!(schema_name("Input", "a b/c:0"), "Input_a_b_c_0");
    }
}
