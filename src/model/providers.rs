//! Registers a model's execution providers (`parameters.extra.execution_providers`, read by
//! `config/providers.rs`) on its session builders, in the order listed, then the CPU.
//!
//! A provider missing from the loaded library (the CPU build has none of CUDA, TensorRT, OpenVINO) or failing to
//! register (its shared library or CUDA/cuDNN not found) fails the load with the reason, unless
//! `execution_provider_fallback` is true: then a warning names it and the session goes on with the next one, at
//! last the CPU. Nodes a registered provider cannot run go to the CPU as ONNX Runtime always does.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::sync::{Mutex, OnceLock};

use ort::ep::{self, ArbitrarilyConfigurableExecutionProvider, ExecutionProviderDispatch};
use ort::session::builder::SessionBuilder;

use crate::config::model_extra::ModelExtra;
use crate::config::providers::{ExecutionProvider, ProviderKind};

/// The providers a model's sessions ask for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Providers {
    /// In order of preference; empty: the CPU alone.
    pub list: Vec<ExecutionProvider>,
    /// `execution_provider_fallback`: a provider that cannot be used is skipped with a warning.
    pub fallback: bool,
}

impl Providers {
    /// The providers `extra` lists (checked when the settings were read).
    pub fn from_extra(extra: &ModelExtra) -> Providers {
        Providers {
            list: extra.execution_providers.clone().unwrap_or_default(),
            fallback: extra.execution_provider_fallback.unwrap_or(false),
        }
    }

    /// Whether a GPU provider runs this model: one is listed and it registered, with these options, when a
    /// session was last built with it in this process (so a fallback to the CPU is not counted).
    pub fn uses_gpu(&self) -> bool {
        self.list
            .iter()
            .any(|p| p.kind.is_gpu() && outcomes().lock().is_ok_and(|o| o.get(p) == Some(&true)))
    }
}

/// Whether each provider (with its options) registered the last time a session asked for it.
fn outcomes() -> &'static Mutex<HashMap<ExecutionProvider, bool>> {
    static OUTCOMES: OnceLock<Mutex<HashMap<ExecutionProvider, bool>>> = OnceLock::new();
    OUTCOMES.get_or_init(Mutex::default)
}

fn record(provider: &ExecutionProvider, registered: bool) {
    if let Ok(mut outcomes) = outcomes().lock() {
        outcomes.insert(provider.clone(), registered);
    }
}

/// The execution providers the loaded ONNX Runtime library was built with (`GetAvailableProviders`), read once.
pub fn available() -> &'static [String] {
    static AVAILABLE: OnceLock<Vec<String>> = OnceLock::new();
    AVAILABLE.get_or_init(|| {
        read_available().unwrap_or_else(|e| {
            tracing::warn!("cannot list ONNX Runtime's execution providers: {e}");
            vec![ProviderKind::Cpu.ort_name().to_string()]
        })
    })
}

fn read_available() -> Result<Vec<String>, ort::Error> {
    let api = ort::api();
    let mut names: *mut *mut c_char = std::ptr::null_mut();
    let mut count: c_int = 0;
    // SAFETY: both out-pointers are valid places; the status is owned (and released) by the `ort::Error`.
    unsafe { ort::Error::result_from_status((api.GetAvailableProviders)(&mut names, &mut count)) }?;
    if names.is_null() {
        return Ok(Vec::new());
    }
    let list = (0..usize::try_from(count).unwrap_or(0))
        // SAFETY: ONNX Runtime returned `count` NUL-terminated names at `names`, alive until released below.
        .map(|i| {
            unsafe { CStr::from_ptr(*names.add(i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // SAFETY: `names` and `count` are what GetAvailableProviders gave, released once.
    let _ =
        unsafe { ort::Error::result_from_status((api.ReleaseAvailableProviders)(names, count)) };
    Ok(list)
}

/// Registers `providers` on `builder`, then the CPU (with or without its arena); the error is the load's reason.
pub fn register(
    mut builder: SessionBuilder,
    providers: &Providers,
    cpu_arena: bool,
    label: &str,
) -> Result<SessionBuilder, String> {
    let mut active = Vec::new();
    for provider in providers
        .list
        .iter()
        .filter(|p| p.kind != ProviderKind::Cpu)
    {
        let name = provider.kind.name();
        if !available().iter().any(|a| a == provider.kind.ort_name()) {
            let why = unavailable(provider.kind);
            if !providers.fallback {
                return Err(format!(
                    "{why}; or set parameters.extra.execution_provider_fallback to true to run without it"
                ));
            }
            tracing::warn!(model = %label, "{why}; falling back (execution_provider_fallback)");
            continue;
        }
        match builder.with_execution_providers([dispatch(provider)]) {
            Ok(registered) => {
                builder = registered;
                record(provider, true);
                active.push(name);
            }
            Err(e) => {
                record(provider, false);
                let needs = match provider.kind {
                    ProviderKind::TensorRt => "TensorRT 10, CUDA 13 and cuDNN 9",
                    ProviderKind::Cuda => "CUDA 13 and cuDNN 9",
                    _ => "its runtime",
                };
                let why = format!(
                    "execution provider {name} could not be registered: {} ({needs} must be on the library path, \
                     see docs/deployment.md)",
                    e.message().trim_end()
                );
                if !providers.fallback {
                    return Err(format!(
                        "{why}; or set parameters.extra.execution_provider_fallback to true to run without it"
                    ));
                }
                tracing::warn!(model = %label, "{why}; falling back (execution_provider_fallback)");
                builder = e.recover();
            }
        }
    }
    active.push(ProviderKind::Cpu.name());
    if !providers.list.is_empty() {
        tracing::info!(model = %label, providers = %active.join(", "), "execution providers registered");
    }
    builder
        .with_execution_providers([ep::CPU::default().with_arena_allocator(cpu_arena).build()])
        .map_err(|e| {
            format!(
                "cannot register the CPU execution provider: {}",
                e.message()
            )
        })
}

/// The provider with its options, failing the registration when ONNX Runtime refuses it.
fn dispatch(provider: &ExecutionProvider) -> ExecutionProviderDispatch {
    fn configured<E: ArbitrarilyConfigurableExecutionProvider>(
        mut ep: E,
        options: &[(String, String)],
    ) -> E {
        for (key, value) in options {
            ep = ep.with_arbitrary_config(key, value);
        }
        ep
    }
    let options = &provider.options;
    let dispatch = match provider.kind {
        ProviderKind::TensorRt => configured(ep::TensorRT::default(), options).build(),
        ProviderKind::Cuda => configured(ep::CUDA::default(), options).build(),
        ProviderKind::OpenVino => configured(ep::OpenVINO::default(), options).build(),
        ProviderKind::Cpu => ep::CPU::default().build(),
    };
    dispatch.error_on_failure()
}

/// Why `kind` cannot be used with the loaded library, and what to install instead.
fn unavailable(kind: ProviderKind) -> String {
    let library = crate::runtime::library_path()
        .map_or_else(|| "libonnxruntime".to_string(), |p| p.display().to_string());
    let install = match kind {
        ProviderKind::OpenVino => {
            "use an ONNX Runtime library built with OpenVINO (the onnxruntime-openvino wheel's, with OpenVINO's \
             runtime) through --onnxruntime-lib or ORT_DYLIB_PATH"
                .to_string()
        }
        _ => format!(
            "install the GPU build: `OXINFER_ORT_FLAVOUR=gpu scripts/provision-ort.sh` fetches onnxruntime-gpu {} \
             (CUDA 13, cuDNN 9) into .ort/gpu/; point --onnxruntime-lib or ORT_DYLIB_PATH at its {}",
            crate::runtime::ORT_VERSION,
            crate::runtime::ORT_LIB_NAME
        ),
    };
    format!(
        "execution provider {} ({}) is not available in this ONNX Runtime build ({library} has {}); {install}",
        kind.name(),
        kind.ort_name(),
        available().join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::providers::read_execution_providers;
    use ort::session::Session;

    fn providers(list: serde_json::Value, fallback: bool) -> Providers {
        Providers {
            list: read_execution_providers("execution_providers", &list)
                .unwrap()
                .unwrap(),
            fallback,
        }
    }

    fn builder() -> SessionBuilder {
        let env = crate::runtime::init(None).expect("ONNX Runtime (run scripts/provision-ort.sh)");
        Session::builder(env).unwrap()
    }

    #[test]
    fn the_cpu_library_has_no_gpu_provider_and_says_what_to_install() {
        builder();
        assert!(available().iter().any(|a| a == "CPUExecutionProvider"));
        assert!(!available().iter().any(|a| a == "CUDAExecutionProvider"));
        let why = unavailable(ProviderKind::Cuda);
        assert!(
            why.starts_with(
                "execution provider cuda (CUDAExecutionProvider) is not available in this ONNX Runtime build ("
            ),
            "{why}"
        );
        assert!(why.contains("OXINFER_ORT_FLAVOUR=gpu"), "{why}");
        assert!(unavailable(ProviderKind::OpenVino).contains("onnxruntime-openvino"));
        assert!(!providers(serde_json::json!(["cuda", "cpu"]), true).uses_gpu());
    }

    #[test]
    fn fallback_skips_what_the_library_lacks() {
        let gpu = serde_json::json!([{"name": "tensorrt"}, {"name": "cuda", "options": {"device_id": 0}}, "openvino", "cpu"]);
        assert!(register(builder(), &providers(gpu.clone(), true), true, "m").is_ok());
        let error = register(builder(), &providers(gpu, false), true, "m")
            .err()
            .unwrap();
        assert!(error.starts_with("execution provider tensorrt"), "{error}");
        assert!(error.ends_with(
            "or set parameters.extra.execution_provider_fallback to true to run without it"
        ));
        assert!(register(
            builder(),
            &providers(serde_json::json!(["cpu"]), false),
            false,
            "m"
        )
        .is_ok());
        assert!(register(builder(), &Providers::default(), true, "m").is_ok());
    }
}
