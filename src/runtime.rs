//! Finds and loads the ONNX Runtime shared library, and holds the process-wide ONNX Runtime environment.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::{Environment, GlobalThreadPoolOptions};

use crate::error::Error;

/// The ONNX Runtime version oxinfer is built and tested against.
pub const ORT_VERSION: &str = "1.31.1";
/// The library's file name, as shipped in the onnxruntime wheel.
pub const ORT_LIB_NAME: &str = "libonnxruntime.so.1.31.1";

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static LIBRARY: OnceLock<PathBuf> = OnceLock::new();

/// Where the library was looked for, in order, with what was found there.
fn candidates(flag: Option<&Path>) -> Vec<(String, Option<PathBuf>)> {
    let mut places = Vec::new();
    places.push(("--onnxruntime-lib".to_string(), flag.map(Path::to_path_buf)));
    places.push((
        "ORT_DYLIB_PATH".to_string(),
        std::env::var_os("ORT_DYLIB_PATH")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    ));
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        for name in [ORT_LIB_NAME, "libonnxruntime.so"] {
            let path = dir.join(name);
            places.push((path.display().to_string(), Some(path)));
        }
    }
    let provisioned = provisioned_path();
    places.push((provisioned.display().to_string(), Some(provisioned)));
    places
}

/// The copy that `scripts/provision-ort.sh` places in the source tree.
pub fn provisioned_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".ort")
        .join(ORT_LIB_NAME)
}

/// Resolves the library path: the flag, then `ORT_DYLIB_PATH`, then next to the binary, then the provisioned copy.
/// A path given explicitly (flag or env) must exist; otherwise one error names every place looked at.
pub fn locate(flag: Option<&Path>) -> Result<PathBuf, Error> {
    let places = candidates(flag);
    for (source, path) in places.iter().take(2) {
        if let Some(path) = path {
            if path.is_file() {
                return Ok(path.clone());
            }
            return Err(Error::Internal(format!(
                "ONNX Runtime library given by {source} does not exist: {}",
                path.display()
            )));
        }
    }
    for (_, path) in places.iter().skip(2) {
        if let Some(path) = path.as_ref().filter(|p| p.is_file()) {
            return Ok(path.clone());
        }
    }
    let looked: Vec<String> = places
        .iter()
        .map(
            |(source, path)| match (path, source.starts_with('-') || source == "ORT_DYLIB_PATH") {
                (None, _) => format!("  {source} (not set)"),
                (Some(p), true) => format!("  {source} = {}", p.display()),
                (Some(_), false) => format!("  {source}"),
            },
        )
        .collect();
    Err(Error::Internal(format!(
        "ONNX Runtime {ORT_VERSION} library not found. Looked in:\n{}\nRun scripts/provision-ort.sh, or pass --onnxruntime-lib PATH.",
        looked.join("\n")
    )))
}

/// ONNX Runtime 1.29+ on Linux starts a telemetry uploader when its environment is created (a device id and an
/// event cache under ~/.cache/Microsoft, an upload to Microsoft): a server must not phone home, and the set-up
/// costs start-up time. These variables, read before the environment exists, turn all of it off.
const TELEMETRY_OPT_OUT: [&str; 2] = ["ORT_DISABLE_TELEMETRY", "ORT_TELEMETRY_DISABLED"];

fn opt_out_of_telemetry() {
    for var in TELEMETRY_OPT_OUT {
        if std::env::var_os(var).is_none() {
            // Called before the library is loaded and, from the CLI, before any other thread exists.
            std::env::set_var(var, "1");
        }
    }
}

/// Threads of ONNX Runtime's process-wide intra-op pool, which sessions share unless their settings ask for
/// something else (`SessionOptions::on_shared_pool` in `model/onnx.rs`): one per core, counting the thread that
/// calls `run`, so cores - 1 pool threads, however many models are loaded.
pub fn shared_pool_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Loads the library and creates the environment (once per process; later calls return the first result).
pub fn init(flag: Option<&Path>) -> Result<&'static Environment, Error> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let path = locate(flag)?;
    opt_out_of_telemetry();
    let builder = ort::init_from(&path).map_err(|e| {
        Error::Internal(format!(
            "cannot load ONNX Runtime from {}: {e}",
            path.display()
        ))
    })?;
    // Process-wide pools: with a pool per session, each model held its own intra-op threads (200 small models,
    // 200 more threads); sessions that ask for a pool of another size still get their own.
    let pools = GlobalThreadPoolOptions::default()
        .with_intra_threads(shared_pool_threads())
        .and_then(|pools| pools.with_inter_threads(1))
        .map_err(|e| Error::Internal(format!("cannot set ONNX Runtime's thread pools: {e}")))?;
    let env = builder
        .with_name("oxinfer")
        .with_telemetry(false)
        .with_global_thread_pool(pools)
        .build()
        .map_err(|e| Error::Internal(format!("cannot create the ONNX Runtime environment: {e}")))?;
    tracing::info!(library = %path.display(), "ONNX Runtime loaded");
    let _ = LIBRARY.set(path);
    Ok(ENVIRONMENT.get_or_init(|| env))
}

/// The library [`init`] loaded.
pub fn library_path() -> Option<&'static Path> {
    LIBRARY.get().map(PathBuf::as_path)
}

/// The environment created by [`init`].
pub fn environment() -> Result<&'static Environment, Error> {
    ENVIRONMENT
        .get()
        .ok_or_else(|| Error::Internal("ONNX Runtime is not initialised".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_path_is_named() {
        let err = locate(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        assert!(err.to_string().contains("--onnxruntime-lib"), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/libonnxruntime.so"),
            "{err}"
        );
    }
}
