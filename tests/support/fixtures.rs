//! Fixtures: the bundled model repository, model folders written from it, and the iris request.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The bundled model repository.
pub fn bundled_repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model-repository")
}

/// A bundled model file, for building fixture repositories.
pub fn bundled_model(name: &str) -> PathBuf {
    bundled_repository().join(name).join("model.onnx")
}

/// A file of the source tree (tests/models/..., k8s/...), by its path from the crate root.
pub fn source_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A model of tests/models/ (`slow_identity`, `seq_output`, `iris_zipmap`...).
pub fn test_model(name: &str) -> PathBuf {
    source_file(&format!("tests/models/{name}.onnx"))
}

/// Writes a model folder with a model-settings.json and a copy of a bundled model.
pub fn write_model(root: &Path, folder: &str, settings: &Value, model: Option<&str>) -> PathBuf {
    let dir = root.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("model-settings.json"),
        serde_json::to_vec_pretty(settings).unwrap(),
    )
    .unwrap();
    if let Some(model) = model {
        std::fs::copy(bundled_model(model), dir.join("model.onnx")).unwrap();
    }
    dir
}

/// The iris request used throughout: two rows with known answers (labels 0 and 2).
pub fn iris_request() -> Value {
    serde_json::json!({
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                    "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}]
    })
}
