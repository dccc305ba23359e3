//! Finds models as MLServer does: every `**/model-settings.json` under the repository root; without any, one
//! model from `MLSERVER_MODEL_*` (KServe), or the `.onnx` files of a bare folder (KServe's `/mnt/models`, Triton's
//! `<model>/<version>/model.onnx`).
//!
//! With a given name (KServe's `--model_name`, or `MLSERVER_MODEL_NAME`), a folder that holds exactly one model,
//! however deep (`iris-v3/model.onnx` from a tarball, `export/iris/1/model.onnx`, a repository of one folder whose
//! model-settings.json has no `name`), serves it under that name: the InferenceService's. Several models keep
//! their own names (an explicit `name` in a model-settings.json always wins), and a warning says that the given
//! name matches none of them.

use std::path::{Path, PathBuf};

use crate::config::model_settings::{ModelSettings, ONNX_IMPLEMENTATIONS};

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
    /// Built from the server's own settings (`MLSERVER_MODEL_URI`, `--model_name`/`--model_dir`), not from a
    /// file in the repository: its file may lie outside the repository root (KServe's /mnt/models).
    pub trusted_location: bool,
}

impl ModelSource {
    /// Reads one model-settings.json; the name defaults to its folder's name.
    pub fn from_file(path: &Path) -> Result<ModelSource, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        let (settings, unknown) = ModelSettings::parse(&bytes)?;
        for field in unknown {
            tracing::warn!(file = %path.display(), %field, "unknown model setting ignored");
        }
        for key in settings.parameters.extra.unknown_keys() {
            tracing::warn!(
                file = %path.display(),
                field = %format!("parameters.extra.{key}"),
                "parameters.extra option not read by oxinfer (kept)"
            );
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
            trusted_location: false,
        })
    }

    /// `iris` or `iris (version 2)`, for messages.
    pub fn label(&self) -> String {
        super::label(&self.name, self.version.as_deref())
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
    let mut found = onnx_files_under(target);
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

/// Every model under `root`: its model-settings.json files (see [`discover`]); when there are none, the single
/// model of `defaults` (`MLSERVER_MODEL_*` and `--model_name`) or a bare folder's models (see [`discover_bare`]).
/// A root-level model-settings.json without a name takes `defaults`' name (KServe's `--model_name`).
pub fn discover_all(root: &Path, defaults: Option<&ModelSettings>) -> Vec<ModelSource> {
    let given_name = defaults
        .and_then(|d| d.name.clone())
        .filter(|n| !n.is_empty());
    let mut found = discover(root);
    if !found.is_empty() {
        if let Some(name) = given_name {
            let nameless = |s: &ModelSource| s.settings.name.as_deref().unwrap_or("").is_empty();
            // A root-level file without a name, or the only model (all its versions), however deep.
            let only_one = found.iter().all(nameless) && distinct_names(&found) == 1;
            for source in &mut found {
                if nameless(source) && (only_one || source.folder() == root) {
                    source.name = name.clone();
                }
            }
            warn_unmatched(root, &name, &found);
        }
        return found;
    }
    let defaults = defaults.cloned().unwrap_or_default();
    if defaults
        .parameters
        .uri
        .as_deref()
        .is_some_and(|uri| !uri.is_empty())
    {
        // MLSERVER_MODEL_URI: relative to the repository root (KServe gives /mnt/models, absolute); a setting of
        // the server's, so trusted wherever it points.
        let mut source = synthetic(root, root_name(root, given_name), defaults);
        source.trusted_location = true;
        return vec![source];
    }
    let Some(name) = given_name else {
        return discover_bare(root, None, &defaults);
    };
    let mut found = discover_bare(root, Some(name.clone()), &defaults);
    match distinct_names(&found) {
        0 => {
            found = deep_single_onnx(root, &name, &defaults)
                .into_iter()
                .collect()
        }
        1 => found
            .iter_mut()
            .for_each(|source| source.name = name.clone()),
        _ => warn_unmatched(root, &name, &found),
    }
    found
}

/// How many different model names `found` holds (the versions of one model count once).
fn distinct_names(found: &[ModelSource]) -> usize {
    let names: std::collections::BTreeSet<&str> = found.iter().map(|s| s.name.as_str()).collect();
    names.len()
}

/// Says so when a given name (`--model_name`) names none of several models.
fn warn_unmatched(root: &Path, name: &str, found: &[ModelSource]) {
    if !found.iter().any(|s| s.name == name) {
        let names: std::collections::BTreeSet<&str> =
            found.iter().map(|s| s.name.as_str()).collect();
        tracing::warn!(
            folder = %root.display(),
            model_name = name,
            served = ?names,
            "the folder holds several models: each is served under its own name, none as the given model name"
        );
    }
}

/// Every `.onnx` file under `folder` (links followed), sorted.
fn onnx_files_under(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(folder)
        .follow_links(true)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "onnx"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

/// The one `.onnx` file anywhere under `root` (when the usual layouts found none), named `name`; a numeric parent
/// folder below `root` gives its version. Several files: none is served, and the error says why.
fn deep_single_onnx(root: &Path, name: &str, defaults: &ModelSettings) -> Option<ModelSource> {
    let files = onnx_files_under(root);
    match files.as_slice() {
        [] => None,
        [file] => {
            let mut settings = defaults.clone();
            settings.name = None;
            let folder = file.parent().unwrap_or(root);
            let number = (folder != root).then(|| folder_name(folder));
            match number.filter(|n| n.parse::<u64>().is_ok()) {
                Some(version) => Some(versioned(file, name, version, &settings)),
                None => Some(with_file(folder, name.to_string(), settings, file)),
            }
        }
        several => {
            tracing::error!(
                folder = %root.display(),
                files = several.len(),
                "several .onnx files in no layout that names them; add a model-settings.json with parameters.uri"
            );
            None
        }
    }
}

/// The models of a folder without any model-settings.json, each with `defaults` as its settings:
/// - `root/model.onnx`, or the one `*.onnx` in `root`: one model named `name` (else the folder's name);
/// - `root/<version>/model.onnx` (numeric version folders): that model, in those versions;
/// - `root/<model>/model.onnx` (or its one `*.onnx`) and `root/<model>/<version>/model.onnx`: a model per
///   folder named after it (Triton's layout; `config.pbtxt` is ignored).
pub fn discover_bare(
    root: &Path,
    name: Option<String>,
    defaults: &ModelSettings,
) -> Vec<ModelSource> {
    let mut settings = defaults.clone();
    settings.name = None;
    match top_level_onnx(root) {
        Ok(Some(file)) => return vec![with_file(root, root_name(root, name), settings, &file)],
        Ok(None) => {}
        Err(reason) => {
            tracing::error!(folder = %root.display(), %reason, "no model served from this folder");
            return Vec::new();
        }
    }
    let versions = version_folders(root);
    if !versions.is_empty() {
        let name = root_name(root, name);
        return versions
            .into_iter()
            .map(|(version, file)| versioned(&file, &name, version, &settings))
            .collect();
    }
    let mut found = Vec::new();
    for folder in sorted_subfolders(root) {
        let model = folder_name(&folder);
        match top_level_onnx(&folder) {
            Ok(Some(file)) => {
                found.push(with_file(&folder, model, settings.clone(), &file));
                continue;
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::error!(folder = %folder.display(), %reason, "model skipped");
                continue;
            }
        }
        for (version, file) in version_folders(&folder) {
            found.push(versioned(&file, &model, version, &settings));
        }
    }
    found
}

/// A model without a settings file of its own: `uri` and names resolve as if one were in `folder`.
fn synthetic(folder: &Path, name: String, settings: ModelSettings) -> ModelSource {
    ModelSource {
        name,
        version: settings.parameters.version.clone(),
        settings,
        settings_path: folder.join(SETTINGS_FILE),
        trusted_location: false,
    }
}

/// A bare model serving `file` (in `folder`).
fn with_file(folder: &Path, name: String, mut settings: ModelSettings, file: &Path) -> ModelSource {
    settings.parameters.uri = file.file_name().map(|f| f.to_string_lossy().into_owned());
    synthetic(folder, name, settings)
}

/// One version of a bare model: `file` inside its version folder.
fn versioned(file: &Path, name: &str, version: String, settings: &ModelSettings) -> ModelSource {
    let mut settings = settings.clone();
    settings.parameters.version = Some(version);
    let folder = file.parent().unwrap_or(Path::new("."));
    with_file(folder, name.to_string(), settings, file)
}

/// The given name, else the folder's own name.
fn root_name(root: &Path, name: Option<String>) -> String {
    name.unwrap_or_else(|| {
        let absolute = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        folder_name(&absolute)
    })
}

fn folder_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// `folder/model.onnx`, else the single `*.onnx` directly in `folder`; several without a `model.onnx` is an error.
fn top_level_onnx(folder: &Path) -> Result<Option<PathBuf>, String> {
    let preferred = folder.join("model.onnx");
    if preferred.is_file() {
        return Ok(Some(preferred));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    files.sort();
    match files.len() {
        0 => Ok(None),
        1 => Ok(files.pop()),
        n => Err(format!(
            "{n} .onnx files in {} and no model.onnx; name one with MLSERVER_MODEL_URI or a model-settings.json",
            folder.display()
        )),
    }
}

/// Sub-folders with a numeric name holding an .onnx file, as (version, that file), in version order.
fn version_folders(folder: &Path) -> Vec<(String, PathBuf)> {
    let mut versions: Vec<(u64, String, PathBuf)> = sorted_subfolders(folder)
        .into_iter()
        .filter_map(|path| {
            let name = folder_name(&path);
            let number = name.parse::<u64>().ok()?;
            let file = top_level_onnx(&path).ok().flatten()?;
            Some((number, name, file))
        })
        .collect();
    versions.sort();
    versions
        .into_iter()
        .map(|(_, name, path)| (name, path))
        .collect()
}

fn sorted_subfolders(folder: &Path) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    folders
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model_settings::ModelParameters;

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

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    fn summary(found: &[ModelSource]) -> Vec<(String, Option<String>, PathBuf)> {
        found
            .iter()
            .map(|s| (s.name.clone(), s.version.clone(), s.model_path().unwrap()))
            .collect()
    }

    #[test]
    fn bare_folders_are_served_without_settings() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("models");
        touch(&root.join("model.onnx"));
        touch(&root.join("extra/other.onnx"));
        assert_eq!(
            summary(&discover_all(&root, None)),
            vec![("models".into(), None, root.join("model.onnx"))]
        );
        let named = ModelSettings {
            name: Some("iris".into()),
            ..ModelSettings::default()
        };
        assert_eq!(discover_all(&root, Some(&named))[0].name, "iris");

        let single = dir.path().join("single");
        touch(&single.join("net.onnx"));
        assert_eq!(
            summary(&discover_all(&single, Some(&named))),
            vec![("iris".into(), None, single.join("net.onnx"))]
        );
        touch(&single.join("second.onnx"));
        assert!(discover_all(&single, None).is_empty());
    }

    #[test]
    fn triton_layouts_give_versions() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("a/1/model.onnx"));
        touch(&root.join("a/10/model.onnx"));
        touch(&root.join("a/2/model.onnx"));
        touch(&root.join("a/config.pbtxt"));
        touch(&root.join("a/notaversion/model.onnx"));
        touch(&root.join("b/model.onnx"));
        touch(&root.join("empty/readme.txt"));
        let found = summary(&discover_all(root, None));
        let v = |m: &str, v: &str| {
            (
                m.to_string(),
                Some(v.to_string()),
                root.join(format!("{m}/{v}/model.onnx")),
            )
        };
        assert_eq!(
            found,
            vec![
                v("a", "1"),
                v("a", "2"),
                v("a", "10"),
                ("b".into(), None, root.join("b/model.onnx"))
            ]
        );
        // <version>/model.onnx directly in the folder: one model, named as given.
        let one = dir.path().join("one");
        touch(&one.join("3/model.onnx"));
        let named = ModelSettings {
            name: Some("m".into()),
            parallel_workers: Some(2),
            ..ModelSettings::default()
        };
        let found = discover_all(&one, Some(&named));
        assert_eq!(
            summary(&found),
            vec![("m".into(), Some("3".into()), one.join("3/model.onnx"))]
        );
        assert_eq!(found[0].settings.parallel_workers, Some(2));
    }

    #[test]
    fn env_uri_and_settings_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("weights/net.onnx"));
        let env = ModelSettings {
            name: Some("k".into()),
            parameters: ModelParameters {
                uri: Some("weights".into()),
                version: Some("4".into()),
                ..ModelParameters::default()
            },
            ..ModelSettings::default()
        };
        assert_eq!(
            summary(&discover_all(root, Some(&env))),
            vec![("k".into(), Some("4".into()), root.join("weights/net.onnx"))]
        );
        // Once a model-settings.json exists, it alone counts; a nameless one at the top takes the given name.
        std::fs::write(
            root.join(SETTINGS_FILE),
            br#"{"parameters": {"uri": "weights"}}"#,
        )
        .unwrap();
        let found = discover_all(root, Some(&env));
        assert_eq!(
            summary(&found),
            vec![("k".into(), None, root.join("weights/net.onnx"))]
        );
    }

    #[test]
    fn a_given_name_names_the_only_model_however_deep() {
        let named = ModelSettings {
            name: Some("isvc".into()),
            ..ModelSettings::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let serve = |layout: &[&str]| {
            let root = dir
                .path()
                .join(format!("r{}", layout.join("-").replace('/', "_")));
            layout.iter().for_each(|f| touch(&root.join(f)));
            let found = discover_all(&root, Some(&named));
            let summary = found
                .iter()
                .map(|s| (s.name.clone(), s.version.clone(), s.model_path().unwrap()))
                .map(|(n, v, p)| (n, v, p.strip_prefix(&root).unwrap().display().to_string()))
                .collect::<Vec<_>>();
            (summary, discover_all(&root, None).len())
        };
        let one = |v: Option<&str>, p: &str| {
            vec![("isvc".to_string(), v.map(String::from), p.to_string())]
        };
        assert_eq!(serve(&["model.onnx"]).0, one(None, "model.onnx"));
        assert_eq!(
            serve(&["iris-v3/model.onnx"]).0,
            one(None, "iris-v3/model.onnx")
        );
        assert_eq!(
            serve(&["iris-v3/net.onnx", "iris-v3/README"]).0,
            one(None, "iris-v3/net.onnx")
        );
        assert_eq!(
            serve(&["iris/1/model.onnx"]).0,
            one(Some("1"), "iris/1/model.onnx")
        );
        assert_eq!(
            serve(&["export/iris/1/model.onnx"]).0,
            one(Some("1"), "export/iris/1/model.onnx")
        );
        assert_eq!(serve(&["a/b/c/net.onnx"]).0, one(None, "a/b/c/net.onnx"));
        // Without a given name, the folder names it (and a deep file is not found by the usual layouts).
        assert_eq!(serve(&["x/y/z/net.onnx"]).1, 0);
        // Several models keep their names; several loose files serve nothing.
        let (several, _) = serve(&["a/model.onnx", "b/model.onnx"]);
        assert_eq!(
            several.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(serve(&["p/q/one.onnx", "p/r/two.onnx"]).0.is_empty());
        // One nameless model-settings.json anywhere takes the name; an explicit name wins.
        let root = dir.path().join("settings");
        touch(&root.join("iris-v3/model.onnx"));
        std::fs::write(root.join("iris-v3").join(SETTINGS_FILE), b"{}").unwrap();
        assert_eq!(discover_all(&root, Some(&named))[0].name, "isvc");
        std::fs::write(
            root.join("iris-v3").join(SETTINGS_FILE),
            br#"{"name": "own"}"#,
        )
        .unwrap();
        assert_eq!(discover_all(&root, Some(&named))[0].name, "own");
    }

    #[test]
    fn several_onnx_files_need_a_uri() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.onnx"), b"x").unwrap();
        std::fs::write(dir.path().join("b.onnx"), b"x").unwrap();
        assert!(find_onnx(dir.path()).unwrap_err().contains("2 .onnx files"));
    }
}
