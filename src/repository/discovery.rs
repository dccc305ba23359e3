//! Finds models as MLServer does: every `**/model-settings.json` under the repository root.

use std::path::{Path, PathBuf};

use super::settings::{ModelSettings, ONNX_IMPLEMENTATIONS};

/// The file name that marks a model folder.
pub const SETTINGS_FILE: &str = "model-settings.json";

/// A model version found on disk, before it is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSource {
    pub name: String,
    pub version: Option<String>,
    pub settings: ModelSettings,
    /// The model-settings.json it came from; `uri` is relative to its folder.
    pub settings_path: PathBuf,
}

impl ModelSource {
    /// Reads one model-settings.json; the name defaults to its folder's name.
    pub fn from_file(path: &Path) -> Result<ModelSource, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        let (settings, unknown) = ModelSettings::parse(&bytes)?;
        for field in unknown {
            tracing::warn!(file = %path.display(), %field, "unknown model setting ignored");
        }
        let folder_name = path
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = settings
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or(folder_name);
        if name.is_empty() {
            return Err("the model has no name and its folder gives none".into());
        }
        Ok(ModelSource {
            name,
            version: settings.parameters.version.clone(),
            settings,
            settings_path: path.to_path_buf(),
        })
    }

    /// The folder holding the settings file.
    pub fn folder(&self) -> &Path {
        self.settings_path.parent().unwrap_or(Path::new("."))
    }

    /// The .onnx file to load: `parameters.uri` (a file, or a folder searched for one), else the settings folder.
    /// Also checks that `implementation` means ONNX Runtime.
    pub fn model_path(&self) -> Result<PathBuf, String> {
        if self.settings.implementation_is_onnx() == Some(false) {
            return Err(format!(
                "implementation '{}' is not served by oxinfer; use one of {} (or none with an .onnx uri)",
                self.settings.implementation.as_deref().unwrap_or_default(),
                ONNX_IMPLEMENTATIONS.join(", ")
            ));
        }
        let target = match self.settings.parameters.uri.as_deref() {
            Some(uri) if !uri.is_empty() => {
                let uri = uri.strip_prefix("file://").unwrap_or(uri);
                self.folder().join(uri)
            }
            _ => self.folder().to_path_buf(),
        };
        find_onnx(&target)
    }
}

/// `target` itself if it is a file, else the .onnx file inside the folder (`model.onnx` first).
pub fn find_onnx(target: &Path) -> Result<PathBuf, String> {
    if target.is_file() {
        return Ok(target.to_path_buf());
    }
    if !target.is_dir() {
        return Err(format!("model file {} does not exist", target.display()));
    }
    let preferred = target.join("model.onnx");
    if preferred.is_file() {
        return Ok(preferred);
    }
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(target)
        .follow_links(true)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "onnx"))
        .map(|e| e.into_path())
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!("no .onnx file in {}", target.display())),
        n => Err(format!(
            "{n} .onnx files in {}; set parameters.uri to the one to serve",
            target.display()
        )),
    }
}

/// Every parsable model-settings.json under `root`, sorted by path; a file that fails to parse is logged and skipped.
pub fn discover(root: &Path) -> Vec<ModelSource> {
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .follow_links(true)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name() == SETTINGS_FILE)
        .map(|e| e.into_path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| match ModelSource::from_file(&path) {
            Ok(source) => Some(source),
            Err(reason) => {
                tracing::error!(file = %path.display(), %reason, "model settings skipped");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_defaults_to_folder_and_uri_is_relative() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("mymodel");
        std::fs::create_dir_all(m.join("files")).unwrap();
        std::fs::write(m.join("files/net.onnx"), b"x").unwrap();
        std::fs::write(
            m.join(SETTINGS_FILE),
            br#"{"parameters":{"uri":"./files"}}"#,
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("broken")).unwrap();
        std::fs::write(dir.path().join("broken").join(SETTINGS_FILE), b"{nope").unwrap();
        let found = discover(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "mymodel");
        assert_eq!(found[0].model_path().unwrap(), m.join("files/net.onnx"));
    }

    #[test]
    fn several_onnx_files_need_a_uri() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.onnx"), b"x").unwrap();
        std::fs::write(dir.path().join("b.onnx"), b"x").unwrap();
        assert!(find_onnx(dir.path()).unwrap_err().contains("2 .onnx files"));
    }
}
