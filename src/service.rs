//! The transport-free core: health, metadata and inference, validated once here for REST and gRPC alike.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::admission::Admission;
use crate::classification;
use crate::codec;
use crate::config::Settings;
use crate::error::{shape_text, short, Error};
use crate::metrics::Metrics;
use crate::model::stats::ModelStatistics;
use crate::model::worker::parse_timeout;
use crate::model::TensorSpec;
use crate::repository::access::RepositoryAccess;
use crate::repository::ModelState;
use crate::repository::{LoadedModel, Repository};
use crate::telemetry::{JobTrace, RequestSpan, Telemetry};
use crate::tensor::binary::{count_bytes_elements, decode_raw};
use crate::tensor::limits::Limits;
use crate::tensor::lookup::NameIndex;
use crate::tensor::{DataType, Parameters, Tensor};

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
    #[schema(value_type = Option<crate::http::schemas::Parameters>)]
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

/// The server's state and operations.
pub struct Service {
    pub repository: Arc<Repository>,
    /// Who may use the repository API (enabled, token, cross-site rules).
    pub repository_access: RepositoryAccess,
    settings: Settings,
    /// Prometheus metrics (recorded here for models, by the transports' layers for requests).
    metrics: Arc<Metrics>,
    /// The budget of bytes in flight and the bound on off-runtime decoding, shared by both transports.
    admission: Admission,
    /// The OpenTelemetry exporter when `tracing_server` is set; `None`: no tracing work at all.
    telemetry: Option<Telemetry>,
}

impl Service {
    pub fn new(settings: Settings) -> Arc<Service> {
        Self::with_telemetry(settings, None)
    }

    /// A service that traces its inference requests with `telemetry` (see [`crate::telemetry`]).
    pub fn with_telemetry(settings: Settings, telemetry: Option<Telemetry>) -> Arc<Service> {
        Arc::new(Service {
            telemetry,
            admission: Admission::new(&settings),
            repository: Arc::new(
                Repository::new(
                    settings.model_queue_size,
                    settings.parallel_workers,
                    settings.model_repository_root.clone(),
                    settings.default_model.clone(),
                )
                .with_extra_roots(settings.extra_model_roots.clone()),
            ),
            repository_access: RepositoryAccess::from_settings(&settings),
            metrics: Metrics::new(&settings),
            settings,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The trace exporter, when `tracing_server` is set.
    pub fn telemetry(&self) -> Option<&Telemetry> {
        self.telemetry.as_ref()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The server-wide budget of bytes in flight and the pool for heavy decoding (see [`crate::admission`]).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Discovers and loads the repository's models, unless `load_models_at_startup` is off.
    pub async fn load_at_startup(&self) {
        if self.settings.load_models_at_startup {
            self.repository.load_repository().await;
        } else {
            self.repository.finish_startup();
        }
    }

    /// The process is up.
    pub fn live(&self) -> bool {
        true
    }

    /// Every model meant to load has loaded (and at least one has, unless start-up loading is off); none is
    /// loading.
    pub fn ready(&self) -> bool {
        self.repository
            .is_ready(self.settings.load_models_at_startup)
    }

    pub fn server_metadata(&self) -> ServerMetadata {
        let mut extensions: Vec<String> = IMPLEMENTED_EXTENSIONS
            .iter()
            .filter(|e| **e != "model_repository" || self.repository_access.enabled())
            .map(|e| e.to_string())
            .collect();
        for extension in &self.settings.extensions {
            if !extensions.contains(extension) {
                extensions.push(extension.clone());
            }
        }
        ServerMetadata {
            name: self.settings.server_name.clone(),
            version: self.settings.server_version.clone(),
            extensions,
        }
    }

    pub fn model_metadata(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<ModelMetadata, Error> {
        let model = self.repository.ready_model(name, version)?;
        let parameters = model
            .source
            .settings
            .parameters
            .content_type
            .as_ref()
            .map(|ct| {
                Parameters::from_iter([(
                    "content_type".to_string(),
                    serde_json::Value::from(ct.clone()),
                )])
            });
        let mut versions = self.repository.versions(name);
        for v in &model.source.settings.versions {
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
        Ok(ModelMetadata {
            name: model.name.clone(),
            versions,
            platform: model.platform.clone(),
            inputs: model.signature.inputs.clone(),
            outputs: model.signature.outputs.clone(),
            parameters,
        })
    }

    /// Whether the model version is ready; unknown models are an error (404).
    pub fn model_ready(&self, name: &str, version: Option<&str>) -> Result<bool, Error> {
        let slot = self.repository.resolve(name, version)?;
        Ok(matches!(
            slot.state(),
            crate::repository::ModelState::Ready(_)
        ))
    }

    /// Builds the request for a raw body (binary extension, `Inference-Header-Content-Length: 0`): the bytes are
    /// the model's single input, batch 1; one other variable dimension is inferred from the byte count.
    pub fn raw_body_request(
        &self,
        name: &str,
        version: Option<&str>,
        mut bytes: impl bytes::Buf,
    ) -> Result<InferRequest, Error> {
        let model = self.repository.ready_model(name, version)?;
        let [spec] = model.signature.inputs.as_slice() else {
            return Err(Error::InvalidInput(format!(
                "a raw request body (Inference-Header-Content-Length: 0) needs a single-input model; {name} has {} inputs",
                model.signature.inputs.len()
            )));
        };
        let mut shape: Vec<Option<usize>> = spec
            .shape
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect();
        if let Some(first) = shape.first_mut().filter(|d| d.is_none()) {
            *first = Some(1);
        }
        let known: usize = shape.iter().flatten().product();
        let length = bytes.remaining();
        // BYTES elements are counted before decoding: those are read from one contiguous buffer.
        let mut strings = None;
        let elements = match spec.datatype.element_size() {
            Some(size) => length / size,
            None => {
                let contiguous = bytes.copy_to_bytes(length);
                let n = count_bytes_elements(&contiguous).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "input '{}' raw BYTES body has a length prefix running past the end",
                        spec.name
                    ))
                })?;
                strings = Some(contiguous);
                n
            }
        };
        let unknown = shape.iter().filter(|d| d.is_none()).count();
        match unknown {
            0 => {}
            1 if known > 0 && elements % known == 0 => {
                let fill = elements / known;
                shape
                    .iter_mut()
                    .filter(|d| d.is_none())
                    .for_each(|d| *d = Some(fill));
            }
            _ => {
                return Err(Error::InvalidInput(format!(
                    "cannot infer the shape of input '{}' ({:?}) from a raw body of {} bytes",
                    spec.name, spec.shape, length
                )))
            }
        }
        let shape: Vec<usize> = shape.into_iter().map(|d| d.unwrap_or(0)).collect();
        let count = crate::tensor::element_count(&spec.name, &shape)?;
        let limits = Limits::from(&self.settings);
        limits.check_elements(&spec.name, &shape, count)?;
        if strings.is_some() {
            limits.bytes_budget().take(&spec.name, count)?;
        }
        let data = match strings {
            Some(strings) => decode_raw(&spec.name, spec.datatype, count, strings)?,
            None => decode_raw(&spec.name, spec.datatype, count, bytes)?,
        };
        Ok(InferRequest {
            inputs: vec![Tensor::new(spec.name.clone(), shape, data)?],
            ..InferRequest::default()
        })
    }

    /// Validates the request against the model and runs it.
    pub async fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        request: InferRequest,
    ) -> Result<InferResponse, Error> {
        self.infer_traced(name, version, request, None).await
    }

    /// [`Service::infer`], recording the model version that ran, the request id and the worker's `queue` and
    /// `compute` spans on the request's `span` (when tracing is on).
    pub async fn infer_traced(
        &self,
        name: &str,
        version: Option<&str>,
        request: InferRequest,
        span: Option<&RequestSpan>,
    ) -> Result<InferResponse, Error> {
        let model = self.repository.ready_model(name, version)?;
        if let (Some(span), None, Some(resolved)) = (span, version, &model.version) {
            span.resolved_version(resolved);
        }
        let metrics = self.metrics.model(&model.name, model.version.as_deref());
        if let Some(m) = &metrics {
            let queued = model.workers.queued();
            m.record_parallel_queue(queued);
            if model.workers.batching().is_some() {
                m.record_batch_queue(queued);
            }
        }
        let started = Instant::now();
        let trace = span.map(RequestSpan::job);
        let limits = Limits::from(&self.settings);
        let result = run(&model, request, started, &limits, trace).await;
        if let (Some(span), Ok(response)) = (span, &result) {
            span.answered(&response.id);
        }
        let elapsed = started.elapsed();
        model.workers.stats.record_request(result.is_ok(), elapsed);
        if let Some(m) = &metrics {
            m.record(result.is_ok(), elapsed);
        }
        result
    }

    /// Triton's statistics for every ready model version, or those of `name` (and `version`).
    pub fn statistics(
        &self,
        name: Option<&str>,
        version: Option<&str>,
    ) -> Result<Vec<ModelStatistics>, Error> {
        let models: Vec<Arc<LoadedModel>> = match name {
            Some(name) => vec![self.repository.ready_model(name, version)?],
            None => self
                .repository
                .slots()
                .iter()
                .filter_map(|slot| match slot.state() {
                    ModelState::Ready(model) => Some(model),
                    _ => None,
                })
                .collect(),
        };
        Ok(models
            .iter()
            .map(|m| {
                m.workers
                    .stats
                    .snapshot(&m.name, m.version.as_deref().unwrap_or("1"))
            })
            .collect())
    }

    /// Triton's model configuration (what perf_analyzer and Triton tooling read before sending load).
    pub fn model_config(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<serde_json::Value, Error> {
        let model = self.repository.ready_model(name, version)?;
        Ok(triton_config(&model))
    }
}

/// Runs a validated request and shapes the response (requested-output parameters, classification).
async fn run(
    model: &Arc<LoadedModel>,
    mut request: InferRequest,
    started: Instant,
    limits: &Limits,
    trace: Option<JobTrace>,
) -> Result<InferResponse, Error> {
    let deadline = deadline(model, &request, started)?;
    let model_ct = model.source.settings.parameters.content_type.as_deref();
    let request_ct = codec::request_content_type(&request, model_ct);
    if codec::needs_blocking(&request, &model.signature.inputs, request_ct) {
        // Image decoding is CPU-heavy: keep it off the async runtime.
        let m = model.clone();
        let limits = *limits;
        request = tokio::task::spawn_blocking(move || {
            codec::decode_inputs(&mut request, &m.signature.inputs, request_ct, &limits)
                .map(|()| request)
        })
        .await
        .map_err(|e| Error::Internal(format!("decoding failed: {e}")))??;
    } else {
        codec::decode_inputs(&mut request, &model.signature.inputs, request_ct, limits)?;
    }
    let outputs = validate(model, &request)?;
    let id = request
        .id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut results = model
        .workers
        .infer_traced(request.inputs, outputs, deadline, trace)
        .await?;
    // Outputs turned into class strings do not also get the model's own output parameters.
    let mut classified = Vec::new();
    for (tensor, requested) in results.iter_mut().zip(&request.outputs) {
        debug_assert_eq!(tensor.name, requested.name);
        if let Some(n) = classification::requested(&requested.parameters, &requested.name)? {
            let labels = model.labels.get(&tensor.name).map(Vec::as_slice);
            classification::classify(tensor, n, labels)?;
            classified.push(tensor.name.clone());
        }
        tensor.parameters = requested.parameters.clone();
    }
    if !model.output_parameters.is_empty() {
        for tensor in results.iter_mut() {
            let Some(extra) = model.output_parameters.get(&tensor.name) else {
                continue;
            };
            if !classified.contains(&tensor.name) {
                for (key, value) in extra {
                    tensor.parameters.insert(key.clone(), value.clone());
                }
            }
        }
    }
    let mut response = InferResponse {
        model_name: model.name.clone(),
        model_version: model.version.clone(),
        id,
        parameters: Parameters::new(),
        outputs: results,
    };
    codec::encode_outputs(&mut response, &model.signature.outputs)?;
    Ok(response)
}

/// When the request must be answered by: its `timeout` parameter (seconds), else the model's default.
fn deadline(
    model: &LoadedModel,
    request: &InferRequest,
    started: Instant,
) -> Result<Option<Instant>, Error> {
    let timeout = match request.parameters.get("timeout") {
        None | Some(serde_json::Value::Null) => model.workers.default_timeout(),
        Some(value) => {
            Some(parse_timeout(value, "request parameter 'timeout'").map_err(Error::InvalidInput)?)
        }
    };
    Ok(timeout.and_then(|t| started.checked_add(t)))
}

/// Triton's `TYPE_*` name of a datatype.
fn triton_type(datatype: DataType) -> String {
    match datatype {
        DataType::Bytes => "TYPE_STRING".into(),
        other => format!("TYPE_{}", other.as_str()),
    }
}

/// Triton's `max_batch_size` for a model that can batch but whose settings give no size: what Triton's ONNX
/// Runtime backend fills in for such a model (its `default-max-batch-size`).
pub const TRITON_DEFAULT_MAX_BATCH_SIZE: usize = 4;

/// Triton's `max_batch_size` for a model: 0 (no batch dimension) unless every input and output starts with a
/// variable dimension; then the adaptive batching size, else the model-settings `max_batch_size`, else
/// [`TRITON_DEFAULT_MAX_BATCH_SIZE`]. Advisory, as in MLServer: requests with more rows are not refused.
pub fn triton_max_batch_size(
    signature: &crate::model::Signature,
    batching: Option<usize>,
    settings_size: usize,
) -> usize {
    let batched = !signature.inputs.is_empty()
        && signature
            .inputs
            .iter()
            .chain(&signature.outputs)
            .all(|t| t.shape.first() == Some(&-1));
    match (batched, batching) {
        (false, _) => 0,
        (true, Some(size)) if size > 0 => size,
        (true, _) if settings_size > 0 => settings_size,
        (true, _) => TRITON_DEFAULT_MAX_BATCH_SIZE,
    }
}

/// One tensor of Triton's configuration: without the batch dimension when the model batches; a tensor that
/// is only the batch dimension is written as Triton writes it, `dims: [1]` with `reshape: {shape: []}`.
fn triton_tensor(spec: &TensorSpec, batched: bool) -> serde_json::Value {
    let mut tensor = serde_json::json!({
        "name": spec.name,
        "data_type": triton_type(spec.datatype),
        "dims": spec.shape,
    });
    if batched {
        let dims = &spec.shape[1.min(spec.shape.len())..];
        if dims.is_empty() {
            tensor["dims"] = serde_json::json!([1]);
            tensor["reshape"] = serde_json::json!({"shape": []});
        } else {
            tensor["dims"] = serde_json::json!(dims);
        }
    }
    tensor
}

fn triton_config(model: &LoadedModel) -> serde_json::Value {
    let batching = model.workers.batching();
    let max_batch_size = triton_max_batch_size(
        &model.signature,
        batching.map(|p| p.max_batch_size),
        model.source.settings.max_batch_size,
    );
    let batched = max_batch_size > 0;
    let tensors = |specs: &[TensorSpec]| {
        specs
            .iter()
            .map(|s| triton_tensor(s, batched))
            .collect::<Vec<_>>()
    };
    let file = model
        .source
        .model_path()
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model.onnx".into());
    let mut config = serde_json::json!({
        "name": model.name,
        "platform": model.platform,
        "backend": "onnxruntime",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": max_batch_size.min(i32::MAX as usize),
        "input": tensors(&model.signature.inputs),
        "output": tensors(&model.signature.outputs),
        "instance_group": [{"name": model.name, "kind": "KIND_CPU", "count": model.workers.instances()}],
        "default_model_filename": file,
        "parameters": {},
    });
    if let Some(policy) = batching {
        config["dynamic_batching"] = serde_json::json!({
            "max_queue_delay_microseconds": u64::try_from(policy.max_batch_time.as_micros()).unwrap_or(u64::MAX),
        });
    }
    config
}

/// Checks inputs (names, datatypes, ranks, fixed dimensions) and requested outputs; returns the output names
/// to compute (`None` = all). Linear in the request's tensors: names are looked up in indexes, not searched.
fn validate(model: &LoadedModel, request: &InferRequest) -> Result<Option<Vec<String>>, Error> {
    let label = match &model.version {
        Some(v) => format!("{} (version {v})", model.name),
        None => model.name.clone(),
    };
    let names = |specs: &[TensorSpec]| {
        let listed = specs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        short(&listed).into_owned()
    };
    let input_specs = NameIndex::new(&model.signature.inputs, |s| s.name.as_str());
    let mut seen = HashSet::with_capacity(request.inputs.len());
    for input in &request.inputs {
        let shown = short(&input.name);
        if !seen.insert(input.name.as_str()) {
            return Err(Error::InvalidInput(format!(
                "input '{shown}' is given more than once"
            )));
        }
        let spec = input_specs.get(&input.name).ok_or_else(|| {
            Error::InvalidInput(format!(
                "unexpected input '{shown}' for model {label}; its inputs are: {}",
                names(&model.signature.inputs)
            ))
        })?;
        if input.datatype() != spec.datatype {
            return Err(Error::InvalidInput(format!(
                "input '{shown}' has datatype {} but model {label} expects {}",
                input.datatype(),
                spec.datatype
            )));
        }
        let fits = input.shape.len() == spec.shape.len()
            && input
                .shape
                .iter()
                .zip(&spec.shape)
                .all(|(&got, &want)| want < 0 || got as i64 == want);
        if !fits {
            return Err(Error::InvalidInput(format!(
                "input '{shown}' has shape {} but model {label} expects {} (-1 = any size)",
                shape_text(&input.shape),
                shape_text(&spec.shape)
            )));
        }
    }
    if let Some(missing) = model
        .signature
        .inputs
        .iter()
        .find(|s| !seen.contains(s.name.as_str()))
    {
        return Err(Error::InvalidInput(format!(
            "missing input '{}' for model {label}",
            missing.name
        )));
    }
    if request.outputs.is_empty() {
        return Ok(None);
    }
    let output_specs = NameIndex::new(&model.signature.outputs, |s| s.name.as_str());
    let mut wanted = Vec::with_capacity(request.outputs.len());
    let mut wanted_names = HashSet::with_capacity(request.outputs.len());
    for output in &request.outputs {
        let shown = short(&output.name);
        let Some(spec) = output_specs.get(&output.name) else {
            if let Some(unserved) = model
                .signature
                .unserved
                .iter()
                .find(|u| u.name == output.name)
            {
                return Err(Error::Unsupported(unserved.reason.clone()));
            }
            return Err(Error::InvalidInput(format!(
                "unknown output '{shown}' requested from model {label}; its outputs are: {}",
                names(&model.signature.outputs)
            )));
        };
        if classification::requested(&output.parameters, &output.name)?.is_some()
            && spec.datatype == DataType::Bytes
        {
            return Err(Error::InvalidInput(format!(
                "output '{shown}' is BYTES and cannot be classified"
            )));
        }
        if !wanted_names.insert(output.name.as_str()) {
            return Err(Error::InvalidInput(format!(
                "output '{shown}' is requested more than once"
            )));
        }
        wanted.push(output.name.clone());
    }
    Ok(Some(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Signature;

    fn spec(name: &str, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype: DataType::Int32,
            shape: shape.to_vec(),
            parameters: None,
        }
    }

    #[test]
    fn triton_batching_form_needs_a_variable_first_dimension_everywhere() {
        let batched = Signature {
            inputs: vec![spec("x", &[-1, 16])],
            outputs: vec![spec("y", &[-1])],
            ..Signature::default()
        };
        assert_eq!(
            triton_max_batch_size(&batched, None, 0),
            TRITON_DEFAULT_MAX_BATCH_SIZE
        );
        assert_eq!(triton_max_batch_size(&batched, None, 8), 8);
        assert_eq!(triton_max_batch_size(&batched, Some(16), 8), 16);
        let fixed_output = Signature {
            inputs: vec![spec("x", &[-1, 16])],
            outputs: vec![spec("y", &[1, 16])],
            ..Signature::default()
        };
        assert_eq!(triton_max_batch_size(&fixed_output, Some(16), 8), 0);
        let scalar = Signature {
            inputs: vec![spec("x", &[])],
            outputs: vec![spec("y", &[-1])],
            ..Signature::default()
        };
        assert_eq!(triton_max_batch_size(&scalar, None, 0), 0);
        assert_eq!(triton_max_batch_size(&Signature::default(), None, 0), 0);
    }

    #[test]
    fn triton_tensors_drop_the_batch_dimension() {
        let t = triton_tensor(&spec("x", &[-1, 16]), true);
        assert_eq!(t["dims"], serde_json::json!([16]));
        assert!(t.get("reshape").is_none());
        let t = triton_tensor(&spec("y", &[-1]), true);
        assert_eq!(t["dims"], serde_json::json!([1]));
        assert_eq!(t["reshape"], serde_json::json!({"shape": []}));
        let t = triton_tensor(&spec("x", &[-1, 16]), false);
        assert_eq!(t["dims"], serde_json::json!([-1, 16]));
    }
}
