//! The transport-free core: health, metadata and inference, validated once here for REST and gRPC alike.

mod triton_views;
mod types;
mod validation;

use std::sync::Arc;
use std::time::Instant;

use crate::admission::Admission;
use crate::classification;
use crate::config::Settings;
use crate::content_types;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::model::stats::ModelStatistics;
use crate::repository::access::RepositoryAccess;
use crate::repository::lifecycle::IndexEntry;
use crate::repository::load_config::LoadOptions;
use crate::repository::ModelState;
use crate::repository::{LoadedModel, Repository};
use crate::telemetry::{JobTrace, RequestSpan, Telemetry};
use crate::tensor::limits::Limits;
use crate::tensor::Parameters;

pub use triton_views::*;
pub use types::{
    InferRequest, InferResponse, ModelMetadata, ParametersSchema, RequestedOutput, ServerMetadata,
    IMPLEMENTED_EXTENSIONS,
};
use validation::{deadline, validate};

/// The server's state and operations.
pub struct DataPlane {
    repository: Arc<Repository>,
    /// Who may use the repository API (enabled, token, cross-site rules).
    repository_access: RepositoryAccess,
    settings: Settings,
    /// Prometheus metrics (recorded here for models, by the transports' layers for requests).
    metrics: Arc<Metrics>,
    /// The budget of bytes in flight and the bound on off-runtime decoding, shared by both transports.
    admission: Admission,
    /// The OpenTelemetry exporter when `tracing_server` is set; `None`: no tracing work at all.
    telemetry: Option<Telemetry>,
}

impl DataPlane {
    pub fn new(settings: Settings) -> Arc<DataPlane> {
        Self::with_telemetry(settings, None)
    }

    /// A service that traces its inference requests with `telemetry` (see [`crate::telemetry`]).
    pub fn with_telemetry(settings: Settings, telemetry: Option<Telemetry>) -> Arc<DataPlane> {
        Arc::new(DataPlane {
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

    /// Who may use the repository API (enabled, token, cross-site rules).
    pub fn repository_access(&self) -> &RepositoryAccess {
        &self.repository_access
    }

    /// The ready model version `name` (`version`: the latest when `None`); 404/503 errors otherwise.
    pub fn ready_model(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<LoadedModel>, Error> {
        self.repository.ready_model(name, version)
    }

    /// Every model name the repository knows, ready or not, sorted, once each.
    pub fn model_names(&self) -> Vec<String> {
        let mut models: Vec<String> = self
            .repository
            .slots()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        models.sort();
        models.dedup();
        models
    }

    /// Start-up loading is over (every model found at start has loaded or failed).
    pub fn startup_finished(&self) -> bool {
        self.repository.startup_finished()
    }

    /// The repository index (`ready_only`: ready versions only).
    pub async fn repository_index(&self, ready_only: bool) -> Result<Vec<IndexEntry>, Error> {
        self.repository.index(ready_only).await
    }

    /// Loads (or reloads) model `name` with the repository API's options.
    pub async fn load_model(&self, name: &str, options: LoadOptions) -> Result<(), Error> {
        self.repository.load_model(name, options).await
    }

    /// Unloads model `name`.
    pub async fn unload_model(&self, name: &str) -> Result<(), Error> {
        self.repository.unload_model(name).await
    }

    /// The Prometheus text exposition of the metrics listener.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(&self.repository)
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

    /// Validates the request against the model and runs it.
    pub async fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        request: InferRequest,
    ) -> Result<InferResponse, Error> {
        self.infer_traced(name, version, request, None).await
    }

    /// [`DataPlane::infer`], recording the model version that ran, the request id and the worker's `queue` and
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
    ) -> Result<TritonModelConfig, Error> {
        let model = self.repository.ready_model(name, version)?;
        Ok(triton_views::triton_config(&model))
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
    let request_ct = content_types::request_content_type(&request.parameters, model_ct);
    if content_types::needs_blocking(&request.inputs, &model.signature.inputs, request_ct) {
        // Image decoding is CPU-heavy: keep it off the async runtime.
        let m = model.clone();
        let limits = *limits;
        request = tokio::task::spawn_blocking(move || {
            content_types::decode_inputs(
                &mut request.inputs,
                &m.signature.inputs,
                request_ct,
                &limits,
            )
            .map(|()| request)
        })
        .await
        .map_err(|e| Error::Internal(format!("decoding failed: {e}")))??;
    } else {
        content_types::decode_inputs(
            &mut request.inputs,
            &model.signature.inputs,
            request_ct,
            limits,
        )?;
    }
    let outputs = validate(model, &request)?;
    let id = request
        .id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| crate::telemetry::request_id::random_uuid().to_string());
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
    content_types::encode_outputs(&mut response.outputs, &model.signature.outputs)?;
    Ok(response)
}
