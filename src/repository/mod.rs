//! The model repository: which model versions exist, their state (loading, ready, unavailable, unloading), and
//! loading them at start-up ([`lifecycle`]: the index, load and unload while running).

pub mod access;
pub mod discovery;
pub mod lifecycle;
pub mod load_config;
pub mod retire;
pub mod roots;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, RwLock};

use crate::config::model_settings::{ModelSettings, TensorSettings};
use crate::error::Error;
use crate::model::batching::BatchPolicy;
use crate::model::onnx::{OnnxBackend, SessionOptions, LABELS};
use crate::model::worker::{BackendFactory, WorkerOptions, Workers};
use crate::model::{Backend, Signature, TensorSpec};
use crate::tensor::{DataType, Parameters};
use discovery::ModelSource;
use ort::session::builder::PrepackedWeights;
use retire::Retiring;
use roots::ModelRoots;

/// Where a model version is in its life.
#[derive(Clone)]
pub enum ModelState {
    Loading,
    Ready(Arc<LoadedModel>),
    /// Failed to load, with the reason.
    Unavailable(String),
    /// Being unloaded: refuses new requests while those in flight finish.
    Unloading,
}

/// A model version whose instances are running.
pub struct LoadedModel {
    pub name: String,
    pub version: Option<String>,
    pub platform: String,
    /// Inputs and outputs from the ONNX file, with model-settings parameters added.
    pub signature: Signature,
    /// Class labels per output (model-settings `outputs[].parameters.labels` or `labels_file`), for classification.
    pub labels: HashMap<String, Vec<String>>,
    /// Parameters that every response output of that name carries: a ZipMap output's keys as `labels`.
    /// Empty for models with tensor outputs only.
    pub output_parameters: HashMap<String, Parameters>,
    /// The instances; handed to the unloader when the last request lets go (see [`retire`]).
    pub workers: Retiring<Workers>,
    pub source: ModelSource,
}

/// One (name, version) entry of the repository.
pub struct Slot {
    pub name: String,
    pub version: Option<String>,
    state: RwLock<ModelState>,
}

impl Slot {
    pub fn state(&self) -> ModelState {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_state(&self, state: ModelState) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// `iris` or `iris (version 2)`, for messages.
    pub fn label(&self) -> String {
        label(&self.name, self.version.as_deref())
    }
}

/// Longest model name accepted from the network, in bytes; a longer one is unknown (404) without any lookup,
/// lock or scan, and is shown cut short in the answer.
pub const MAX_MODEL_NAME_BYTES: usize = 512;

/// How much of an over-long name an error message shows.
const SHOWN_NAME_BYTES: usize = 64;

/// `name` as error messages show it: in full when it is at most [`MAX_MODEL_NAME_BYTES`], else its first
/// bytes (cut on a character boundary) and its length.
pub fn shown_name(name: &str) -> String {
    if name.len() <= MAX_MODEL_NAME_BYTES {
        return name.to_string();
    }
    let mut end = SHOWN_NAME_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &name[..end], name.len())
}

/// Refuses (404) a model name no model can have because it is over [`MAX_MODEL_NAME_BYTES`].
pub fn check_name_length(name: &str) -> Result<(), Error> {
    if name.len() > MAX_MODEL_NAME_BYTES {
        if name.len() >= 1 << 20 {
            // A multi-MB name came in a message decoded into buffers glibc would keep: give them back.
            crate::memory::schedule_trim();
        }
        return Err(Error::ModelNotFound(shown_name(name)));
    }
    Ok(())
}

fn label(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{name} (version {v})"),
        None => name.to_string(),
    }
}

/// Every model version known to the server.
pub struct Repository {
    models: RwLock<BTreeMap<String, Vec<Arc<Slot>>>>,
    /// Capacity of each model's queue.
    queue_size: usize,
    /// Instances per model when its settings do not say.
    default_instances: usize,
    /// Set once the start-up loading has finished.
    startup_done: AtomicBool,
    /// The folder searched for models, at start-up and again by every load.
    root: PathBuf,
    /// The model built from `MLSERVER_MODEL_*` / `--model_name`, for a folder without model-settings.json.
    defaults: Option<ModelSettings>,
    /// Where model files may lie (the root and `extra_model_roots`), and how paths are shown to clients.
    roots: ModelRoots,
    /// One lock per model name being loaded or unloaded now: loads and unloads of one model run one after the
    /// other. An entry lives only while someone holds or waits for it ([`lifecycle`]'s `AdminGuard`), so names
    /// sent by clients are not kept.
    admin_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Why a model on disk is not loaded, for the index: "unloaded", or the error of a failed load through the
    /// repository API (such a model is not kept: it is unknown to requests, as in MLServer). Only names found
    /// on disk get an entry; the index drops those no longer there.
    not_loaded: Mutex<HashMap<String, String>>,
}

impl Repository {
    /// An empty repository over the models found in `root` (with `defaults` for a folder without settings files).
    pub fn new(
        queue_size: usize,
        default_instances: usize,
        root: PathBuf,
        defaults: Option<ModelSettings>,
    ) -> Repository {
        Repository {
            models: RwLock::new(BTreeMap::new()),
            queue_size,
            default_instances,
            startup_done: AtomicBool::new(false),
            roots: ModelRoots::new(root.clone(), Vec::new()),
            root,
            defaults,
            admin_locks: Mutex::new(HashMap::new()),
            not_loaded: Mutex::new(HashMap::new()),
        }
    }

    /// Also allows model files under these folders (the `extra_model_roots` setting).
    pub fn with_extra_roots(mut self, extra: Vec<PathBuf>) -> Repository {
        self.roots = ModelRoots::new(self.root.clone(), extra);
        self
    }

    /// Adds the sources as `Loading` slots; a second source with the same name and version is logged and skipped.
    pub fn register(&self, sources: Vec<ModelSource>) -> Vec<(Arc<Slot>, ModelSource)> {
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        let mut added = Vec::new();
        for source in sources {
            let versions = models.entry(source.name.clone()).or_default();
            if versions.iter().any(|s| s.version == source.version) {
                tracing::error!(
                    model = %label(&source.name, source.version.as_deref()),
                    file = %source.settings_path.display(),
                    "a model with this name and version is already registered; skipped"
                );
                continue;
            }
            let slot = Arc::new(Slot {
                name: source.name.clone(),
                version: source.version.clone(),
                state: RwLock::new(ModelState::Loading),
            });
            versions.push(slot.clone());
            added.push((slot, source));
        }
        added
    }

    /// Loads one slot (blocking: call it off the async runtime) and records the outcome.
    pub fn load_slot(&self, slot: &Slot, source: ModelSource) {
        slot.set_state(ModelState::Loading);
        match self.load_source(&slot.label(), source) {
            Ok(model) => slot.set_state(ModelState::Ready(model)),
            Err(reason) => slot.set_state(ModelState::Unavailable(reason)),
        }
    }

    /// Loads a model version (blocking), logging the outcome. The reason returned (shown to clients) has the
    /// host paths of the log line replaced by paths relative to the repository root.
    fn load_source(&self, label: &str, source: ModelSource) -> Result<Arc<LoadedModel>, String> {
        let started = std::time::Instant::now();
        match load(source, &self.roots, self.queue_size, self.default_instances) {
            Ok(model) => {
                tracing::info!(model = %label, ms = started.elapsed().as_millis() as u64, "model loaded");
                Ok(Arc::new(model))
            }
            Err(reason) => {
                tracing::error!(model = %label, %reason, "model failed to load");
                Err(self.roots.without_host_paths(&reason))
            }
        }
    }

    /// Discovers the models under the root and loads them all, in parallel, off the async runtime.
    pub async fn load_repository(self: &Arc<Self>) {
        let (root, defaults) = (self.root.clone(), self.defaults.clone());
        let sources =
            tokio::task::spawn_blocking(move || discovery::discover_all(&root, defaults.as_ref()))
                .await
                .unwrap_or_default();
        for source in sources.iter().filter(|s| !s.settings_path.is_file()) {
            tracing::info!(
                model = %source.label(),
                folder = %source.folder().display(),
                "no model-settings.json: serving the model from MLSERVER_MODEL_* or the .onnx file found"
            );
        }
        let pending = self.register(sources);
        // One blocking task per model, as before. Tried: at most cores (or 8) loads at once, on scoped threads or
        // on blocking tasks sharing a queue: tests/hostile's liveness probes during gzip and BYTES attacks then
        // stalled up to 84-108 ms (7-8 ms with this), cause not found (see decision 0020).
        let mut tasks = Vec::new();
        for (slot, source) in pending {
            let repo = self.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                repo.load_slot(&slot, source)
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        self.finish_startup();
    }

    /// Marks start-up loading as finished (readiness may turn true).
    pub fn finish_startup(&self) {
        self.startup_done.store(true, AtomicOrdering::SeqCst);
    }

    /// All slots, by name then version order.
    pub fn slots(&self) -> Vec<Arc<Slot>> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models.values().flat_map(|v| v.iter().cloned()).collect()
    }

    /// Ready when start-up loading is over and every model is ready (models being unloaded do not count);
    /// with `require_one`, at least one model must be.
    pub fn is_ready(&self, require_one: bool) -> bool {
        if !self.startup_done.load(AtomicOrdering::SeqCst) {
            return false;
        }
        let mut count = 0;
        for slot in self.slots() {
            match slot.state() {
                ModelState::Ready(_) => count += 1,
                ModelState::Unloading => {}
                ModelState::Loading | ModelState::Unavailable(_) => return false,
            }
        }
        count > 0 || !require_one
    }

    /// Whether start-up loading has finished.
    pub fn startup_finished(&self) -> bool {
        self.startup_done.load(AtomicOrdering::SeqCst)
    }

    /// The slot for `name` and `version`; with no version, the default one (unversioned, else the highest).
    pub fn resolve(&self, name: &str, version: Option<&str>) -> Result<Arc<Slot>, Error> {
        check_name_length(name)?;
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        let versions = models
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::ModelNotFound(name.to_string()))?;
        match version.filter(|v| !v.is_empty()) {
            Some(wanted) => versions
                .iter()
                .find(|s| s.version.as_deref() == Some(wanted))
                .cloned()
                .ok_or_else(|| Error::VersionNotFound {
                    name: name.to_string(),
                    version: shown_name(wanted),
                }),
            None => Ok(default_version(versions).clone()),
        }
    }

    /// The loaded model for `name`/`version`, or 404 / not-ready errors.
    pub fn ready_model(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<LoadedModel>, Error> {
        let slot = self.resolve(name, version)?;
        match slot.state() {
            ModelState::Ready(model) => Ok(model),
            ModelState::Loading => Err(Error::ModelNotReady(format!(
                "Model {} is loading",
                slot.label()
            ))),
            ModelState::Unavailable(reason) => Err(Error::ModelNotReady(format!(
                "Model {} is not available: {reason}",
                slot.label()
            ))),
            ModelState::Unloading => Err(Error::ModelNotReady(format!(
                "Model {} is unloading",
                slot.label()
            ))),
        }
    }

    /// The versions registered under `name`, sorted.
    pub fn versions(&self, name: &str) -> Vec<String> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        let mut versions: Vec<String> = models
            .get(name)
            .map(|v| v.iter().filter_map(|s| s.version.clone()).collect())
            .unwrap_or_default();
        versions.sort_by(|a, b| compare_versions(a, b));
        versions
    }
}

/// The unversioned slot, else the highest version.
fn default_version(slots: &[Arc<Slot>]) -> &Arc<Slot> {
    slots
        .iter()
        .find(|s| s.version.is_none())
        .unwrap_or_else(|| {
            slots
                .iter()
                .max_by(|a, b| {
                    compare_versions(
                        a.version.as_deref().unwrap_or(""),
                        b.version.as_deref().unwrap_or(""),
                    )
                })
                .expect("slots is not empty")
        })
}

/// Integer order when both versions are integers, text order otherwise.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        _ => a.cmp(b),
    }
}

/// Loads a model version: resolves the file, starts its instances, checks the declared inputs/outputs.
fn load(
    source: ModelSource,
    roots: &ModelRoots,
    queue_size: usize,
    default_instances: usize,
) -> Result<LoadedModel, String> {
    source.settings.check_numbers()?;
    let path = source.model_path()?;
    let path = if source.trusted_location {
        path
    } else {
        roots.confine(&source.label(), &path)?
    };
    let instances = source
        .settings
        .parallel_workers
        .unwrap_or(default_instances)
        .max(1);
    let options = SessionOptions::from_extra(&source.settings.parameters.extra, instances);
    let name = label(&source.name, source.version.as_deref());
    let factory_label = name.clone();
    // Instances share one container of pre-packed weights (made on first use, inside the worker's panic guard).
    let shared = std::sync::OnceLock::new();
    let factory: BackendFactory = Arc::new(move || {
        let weights = (instances > 1).then(|| shared.get_or_init(PrepackedWeights::new));
        OnnxBackend::load(&path, &options, &factory_label, weights)
            .map(|b| Box::new(b) as Box<dyn Backend>)
    });
    let settings = &source.settings;
    let worker_options = WorkerOptions {
        instances,
        capacity: queue_size,
        batching: BatchPolicy::from_settings(
            settings.max_batch_size,
            settings.max_batch_time,
            |key| std::env::var(key).ok(),
        )?,
        default_timeout: settings.parameters.extra.timeout,
    };
    let workers = Workers::start(&name, worker_options, factory)?;
    let signature = Signature {
        inputs: merge_declared(
            "input",
            &workers.signature().inputs,
            &source.settings.inputs,
        )?,
        outputs: merge_declared(
            "output",
            &workers.signature().outputs,
            &source.settings.outputs,
        )?,
        unserved: workers.signature().unserved.clone(),
    };
    let mut labels = read_labels(&source, roots)?;
    let mut output_parameters = HashMap::new();
    for (name, keys) in graph_labels(&workers.signature().outputs) {
        // The ZipMap keys name the columns in every answer; model-settings labels, when given, still win
        // for the classification extension.
        output_parameters.insert(
            name.clone(),
            Parameters::from_iter([(LABELS.to_string(), keys.clone())]),
        );
        labels.entry(name).or_insert_with(|| label_texts(&keys));
    }
    Ok(LoadedModel {
        labels,
        output_parameters,
        name: source.name.clone(),
        version: source.version.clone(),
        platform: source
            .settings
            .platform
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "onnxruntime_onnx".into()),
        signature,
        workers: Retiring::new(workers),
        source,
    })
}

/// Class labels declared for outputs: `parameters.labels` (a list) or `parameters.labels_file` (one per line,
/// relative to the settings file's folder).
fn read_labels(
    source: &ModelSource,
    roots: &ModelRoots,
) -> Result<HashMap<String, Vec<String>>, String> {
    let mut labels = HashMap::new();
    for output in &source.settings.outputs {
        let Some(parameters) = &output.parameters else {
            continue;
        };
        if let Some(list) = parameters.get("labels") {
            // Strings, or numbers (a ZipMap's int64 keys, as `oxinfer model-settings` writes them) as text.
            let texts = list
                .as_array()
                .filter(|l| l.iter().all(|v| v.is_string() || v.is_number()))
                .map(|_| label_texts(list))
                .ok_or_else(|| {
                    format!(
                        "outputs '{}' parameters.labels must be a list of strings or numbers",
                        output.name
                    )
                })?;
            labels.insert(output.name.clone(), texts);
        } else if let Some(file) = parameters.get("labels_file").and_then(|f| f.as_str()) {
            let path = source.folder().join(file);
            let path = if source.trusted_location {
                path
            } else {
                roots.confine(&source.label(), &path)?
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read labels file {}: {e}", path.display()))?;
            labels.insert(
                output.name.clone(),
                text.lines().map(str::to_string).collect(),
            );
        }
    }
    Ok(labels)
}

/// The `labels` the backend found in the graph (a ZipMap's keys), per output.
fn graph_labels(outputs: &[TensorSpec]) -> Vec<(String, serde_json::Value)> {
    outputs
        .iter()
        .filter_map(|o| {
            let keys = o.parameters.as_ref()?.get(LABELS)?;
            Some((o.name.clone(), keys.clone()))
        })
        .collect()
}

/// Class labels as text for the classification extension: strings as they are, numbers in decimal.
fn label_texts(keys: &serde_json::Value) -> Vec<String> {
    keys.as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| match k {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks model-settings inputs/outputs against the ONNX file and adds their parameters to the metadata
/// (after the ones the model itself gives, such as a ZipMap's `labels`).
fn merge_declared(
    kind: &str,
    actual: &[TensorSpec],
    declared: &[TensorSettings],
) -> Result<Vec<TensorSpec>, String> {
    let mut merged = actual.to_vec();
    for d in declared {
        let names = || {
            actual
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let spec = merged
            .iter_mut()
            .find(|a| a.name == d.name)
            .ok_or_else(|| {
                format!(
                    "model-settings {kind} '{}' is not in the ONNX model (it has: {})",
                    d.name,
                    names()
                )
            })?;
        if let Some(datatype) = d.datatype.as_deref() {
            let parsed = DataType::parse(datatype).ok_or_else(|| {
                format!(
                    "model-settings {kind} '{}' has unknown datatype '{datatype}'",
                    d.name
                )
            })?;
            if parsed != spec.datatype {
                return Err(format!(
                    "model-settings {kind} '{}' declares {parsed} but the ONNX model has {}",
                    d.name, spec.datatype
                ));
            }
        }
        if let Some(shape) = &d.shape {
            let compatible = shape.len() == spec.shape.len()
                && shape
                    .iter()
                    .zip(&spec.shape)
                    .all(|(&a, &b)| a < 0 || b < 0 || a == b);
            if !compatible {
                return Err(format!(
                    "model-settings {kind} '{}' declares shape {shape:?} but the ONNX model has {:?}",
                    d.name, spec.shape
                ));
            }
        }
        if let Some(declared) = &d.parameters {
            let mut parameters = spec.parameters.take().unwrap_or_default();
            for (key, value) in declared {
                if key != "labels" && key != "labels_file" {
                    parameters.insert(key.clone(), value.clone());
                }
            }
            spec.parameters = (!parameters.is_empty()).then_some(parameters);
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_integers_when_they_can() {
        assert_eq!(compare_versions("10", "9"), Ordering::Greater);
        assert_eq!(compare_versions("b", "a"), Ordering::Greater);
        assert_eq!(compare_versions("1", "a"), Ordering::Less);
    }

    #[test]
    fn declared_inputs_are_checked() {
        let actual = vec![TensorSpec {
            name: "x".into(),
            datatype: DataType::Fp32,
            shape: vec![-1, 4],
            parameters: None,
        }];
        let ok = TensorSettings {
            name: "x".into(),
            datatype: Some("FP32".into()),
            shape: Some(vec![1, 4]),
            parameters: None,
        };
        assert!(merge_declared("input", &actual, std::slice::from_ref(&ok)).is_ok());
        let wrong_type = TensorSettings {
            datatype: Some("INT32".into()),
            ..ok.clone()
        };
        assert!(merge_declared("input", &actual, &[wrong_type])
            .unwrap_err()
            .contains("INT32"));
        let wrong_shape = TensorSettings {
            shape: Some(vec![-1, 3]),
            ..ok.clone()
        };
        assert!(merge_declared("input", &actual, &[wrong_shape]).is_err());
        let missing = TensorSettings {
            name: "y".into(),
            ..ok
        };
        assert!(merge_declared("input", &actual, &[missing])
            .unwrap_err()
            .contains("it has: x"));
    }
}
