//! `oxinfer model-settings MODEL.onnx`: writes the model-settings.json to upload beside an ONNX file.
//!
//! Seldon Core v2's agent only writes a model-settings.json itself for the requirements it knows (sklearn,
//! xgboost, mlflow, ...); a Model whose artifact is a bare `model.onnx` fails there with "Can't create
//! model-settings from requirements". This command loads the file with ONNX Runtime, as the server will, and
//! prints the settings MLServer's layout expects: `name`, `implementation`, `parameters.uri`, and the inputs and
//! outputs as MLServer's MetadataTensor (`name`, `datatype`, `shape`, and for ZipMap outputs their `labels`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use crate::config::model_settings::{MAX_BATCH_SIZE, MAX_BATCH_TIME_SECONDS, MAX_PARALLEL_WORKERS};
use crate::model::batching::batchable;
use crate::model::onnx::{OnnxBackend, SessionOptions};
use crate::model::{Backend, TensorSpec};
use crate::tensor::Parameters;

/// The `implementation` the bundled model-repository uses (one of the names that select ONNX Runtime).
pub const IMPLEMENTATION: &str = "oxinfer.OnnxModel";

/// Arguments of `oxinfer model-settings`.
#[derive(Debug, Args)]
pub struct ModelSettingsArgs {
    /// The ONNX model file; the written `parameters.uri` is `./<its file name>`, so upload the settings file
    /// into the same folder.
    #[arg(value_name = "MODEL.onnx")]
    pub model: PathBuf,
    /// Model name [default: the name of the folder holding the file]. Seldon's agent replaces it with
    /// `<Model name>_<generation>`.
    #[arg(long)]
    pub name: Option<String>,
    /// `parameters.version` (Seldon's agent replaces it with its own).
    #[arg(long)]
    pub version: Option<String>,
    /// Adaptive batching: most requests joined into one run (needs --max-batch-time and a model whose inputs
    /// all have a variable first dimension).
    #[arg(long)]
    pub max_batch_size: Option<usize>,
    /// Adaptive batching: longest wait for more requests, in seconds.
    #[arg(long)]
    pub max_batch_time: Option<f64>,
    /// Instances (threads, one ONNX Runtime session each) of this model.
    #[arg(long)]
    pub parallel_workers: Option<usize>,
    /// Write the settings to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The ONNX Runtime 1.31.1 library (libonnxruntime.so), as for `start`.
    #[arg(long)]
    pub onnxruntime_lib: Option<PathBuf>,
}

/// model-settings.json, in the order people read it; absent values are left out.
#[derive(Debug, Serialize)]
struct Written {
    name: String,
    implementation: &'static str,
    parameters: WrittenParameters,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_batch_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_batch_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_workers: Option<usize>,
}

#[derive(Debug, Serialize)]
struct WrittenParameters {
    uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

/// Runs the command: 0 when the file was written, 1 on an error (printed), 2 on bad arguments.
pub fn run(args: &ModelSettingsArgs) -> ExitCode {
    if let Err(e) = check_arguments(args) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match settings_json(args).and_then(|text| write(args.output.as_deref(), &text)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The same limits the server applies when it loads the file, so that what is written loads.
fn check_arguments(args: &ModelSettingsArgs) -> Result<(), String> {
    if let Some(size) = args.max_batch_size {
        if size > MAX_BATCH_SIZE {
            return Err(format!(
                "--max-batch-size must be at most {MAX_BATCH_SIZE}, got {size}"
            ));
        }
    }
    if let Some(time) = args.max_batch_time {
        if !(0.0..=MAX_BATCH_TIME_SECONDS).contains(&time) {
            return Err(format!(
                "--max-batch-time must be a number of seconds from 0 to {MAX_BATCH_TIME_SECONDS}, got {time}"
            ));
        }
    }
    let batching_size = args.max_batch_size.is_some_and(|s| s > 1);
    let batching_time = args.max_batch_time.is_some_and(|t| t > 0.0);
    if batching_size != batching_time {
        return Err(
            "adaptive batching needs both --max-batch-size (above 1) and --max-batch-time (above 0)"
                .into(),
        );
    }
    if let Some(workers) = args.parallel_workers {
        if !(1..=MAX_PARALLEL_WORKERS).contains(&workers) {
            return Err(format!(
                "--parallel-workers must be from 1 to {MAX_PARALLEL_WORKERS}, got {workers}"
            ));
        }
    }
    if args.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err("--name must not be empty".into());
    }
    Ok(())
}

/// Loads the model and renders its model-settings.json (pretty-printed, with a final newline).
fn settings_json(args: &ModelSettingsArgs) -> Result<String, String> {
    let path = &args.model;
    if !path.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{} has no file name in UTF-8", path.display()))?;
    crate::runtime::init(args.onnxruntime_lib.as_deref()).map_err(|e| e.to_string())?;
    // One thread is enough to read the signature; the server sizes its own sessions.
    let options = SessionOptions {
        intra_op_threads: 1,
        ..SessionOptions::default()
    };
    let backend = OnnxBackend::load(path, &options, file_name, None)?;
    let signature = backend.signature();
    for unserved in &signature.unserved {
        eprintln!("note: {}", unserved.reason);
    }
    if args.max_batch_size.is_some_and(|s| s > 1) {
        batchable(signature).map_err(|why| format!("adaptive batching would stay off: {why}"))?;
    }
    let written = Written {
        name: args.name.clone().unwrap_or_else(|| default_name(path)),
        implementation: IMPLEMENTATION,
        parameters: WrittenParameters {
            uri: format!("./{file_name}"),
            version: args.version.clone(),
        },
        inputs: signature.inputs.iter().map(metadata_tensor).collect(),
        outputs: signature.outputs.iter().map(metadata_tensor).collect(),
        max_batch_size: args.max_batch_size,
        max_batch_time: args.max_batch_time,
        parallel_workers: args.parallel_workers,
    };
    let mut text = serde_json::to_string_pretty(&written)
        .map_err(|e| format!("cannot render the settings: {e}"))?;
    text.push('\n');
    Ok(text)
}

/// A tensor as MLServer's MetadataTensor: only the `labels` parameter (a ZipMap's keys) is kept.
fn metadata_tensor(spec: &TensorSpec) -> TensorSpec {
    let labels = spec
        .parameters
        .as_ref()
        .and_then(|p| p.get(crate::model::onnx::LABELS))
        .map(|labels| {
            Parameters::from_iter([(crate::model::onnx::LABELS.to_string(), labels.clone())])
        });
    TensorSpec {
        parameters: labels,
        ..spec.clone()
    }
}

/// The model's name when none is given: its folder's name (as the server names a model-settings.json without
/// `name`), else the file's stem.
fn default_name(path: &Path) -> String {
    let folder = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().and_then(|f| f.file_name()).map(|n| n.to_owned()));
    folder
        .or_else(|| path.file_stem().map(|s| s.to_owned()))
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

fn write(output: Option<&Path>, text: &str) -> Result<(), String> {
    match output {
        Some(file) => {
            std::fs::write(file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))
        }
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|e| format!("cannot write to standard output: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ModelSettingsArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ModelSettingsArgs,
        }
        let mut all = vec!["x", "m.onnx"];
        all.extend_from_slice(extra);
        Wrapper::try_parse_from(all).map(|w| w.args).unwrap()
    }

    #[test]
    fn batching_needs_both_values_within_the_servers_limits() {
        assert!(check_arguments(&args(&[])).is_ok());
        assert!(check_arguments(&args(&[
            "--max-batch-size",
            "8",
            "--max-batch-time",
            "0.01"
        ]))
        .is_ok());
        let half = check_arguments(&args(&["--max-batch-size", "8"])).unwrap_err();
        assert!(half.contains("--max-batch-time"), "{half}");
        let big = check_arguments(&args(&[
            "--max-batch-size",
            "1000000",
            "--max-batch-time",
            "1",
        ]));
        assert!(big.unwrap_err().contains("at most"));
        let negative = check_arguments(&args(&["--max-batch-time=-1"]));
        assert!(negative.unwrap_err().contains("--max-batch-time"));
        assert!(check_arguments(&args(&["--parallel-workers", "0"])).is_err());
        assert!(check_arguments(&args(&["--name", " "])).is_err());
    }

    #[test]
    fn the_default_name_is_the_folder_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("iris");
        std::fs::create_dir(&folder).unwrap();
        let file = folder.join("model.onnx");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(default_name(&file), "iris");
        assert_eq!(default_name(Path::new("/nonexistent/x.onnx")), "x");
    }

    #[test]
    fn only_labels_survive_in_the_metadata_tensors() {
        let spec = TensorSpec {
            name: "p".into(),
            datatype: crate::tensor::DataType::Fp32,
            shape: vec![-1, 3],
            parameters: Some(Parameters::from_iter([
                ("labels".to_string(), serde_json::json!([0, 1, 2])),
                ("other".to_string(), serde_json::json!(1)),
            ])),
        };
        let out = serde_json::to_value(metadata_tensor(&spec)).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"name": "p", "datatype": "FP32", "shape": [-1, 3], "parameters": {"labels": [0, 1, 2]}})
        );
    }
}
