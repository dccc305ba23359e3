//! Where model files may lie (the repository root, and the `extra_model_roots` setting), and error reasons
//! with host paths turned into paths relative to those folders, so clients learn model names, not the host's
//! filesystem.

use std::path::{Path, PathBuf};

/// The folders model files may be loaded from.
#[derive(Debug, Clone)]
pub struct ModelRoots {
    /// The repository root, as configured (it may not exist yet: Seldon's agent creates it later).
    root: PathBuf,
    /// `extra_model_roots`, as configured.
    extra: Vec<PathBuf>,
}

impl ModelRoots {
    pub fn new(root: PathBuf, extra: Vec<PathBuf>) -> ModelRoots {
        ModelRoots { root, extra }
    }

    /// `file` with its symlinks resolved, when that lies under the repository root or an extra root; else an
    /// error naming the model and the settings concerned (not the path). Blocking (file system).
    pub fn confine(&self, model: &str, file: &Path) -> Result<PathBuf, String> {
        let real = file.canonicalize().map_err(|e| {
            format!(
                "model {model}: file {} cannot be opened: {}",
                self.shown(file),
                e.kind()
            )
        })?;
        let inside = |folder: &PathBuf| {
            folder
                .canonicalize()
                .is_ok_and(|folder| real.starts_with(folder))
        };
        if inside(&self.root) || self.extra.iter().any(inside) {
            return Ok(real);
        }
        tracing::warn!(model, file = %real.display(), "model file outside the model repository refused");
        Err(format!(
            "model {model}: its file lies outside the model repository (model_repository_root); \
             list its folder in the extra_model_roots setting to allow it"
        ))
    }

    /// `text` with every host path of a root replaced: the repository root's by nothing (paths become relative
    /// to it), an extra root's by `extra_model_roots[i]`.
    pub fn without_host_paths(&self, text: &str) -> String {
        let mut prefixes: Vec<(String, String)> = Vec::new();
        let mut add = |folder: &Path, shown: String| {
            let absolute = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
            let forms = [
                folder.canonicalize().ok(),
                Some(absolute),
                Some(folder.to_path_buf()),
            ];
            for form in forms.into_iter().flatten() {
                let form = form.to_string_lossy().trim_end_matches('/').to_string();
                if !form.is_empty() && form != "." {
                    prefixes.push((format!("{form}/"), shown.clone()));
                }
            }
        };
        add(&self.root, String::new());
        for (i, folder) in self.extra.iter().enumerate() {
            add(folder, format!("extra_model_roots[{i}]/"));
        }
        // Longest first: a root's canonical form may contain another form of it.
        prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        let mut text = text.to_string();
        for (prefix, shown) in prefixes {
            if text.contains(&prefix) {
                text = text.replace(&prefix, &shown);
            }
        }
        text
    }

    /// A path as clients may see it: relative to a root when under one, else only its file name.
    fn shown(&self, path: &Path) -> String {
        let text = path.to_string_lossy();
        let relative = self.without_host_paths(&text);
        if relative != text || path.is_relative() {
            return relative;
        }
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_under_the_roots_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let outside = dir.path().join("elsewhere");
        std::fs::create_dir_all(root.join("m")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("m/model.onnx"), b"x").unwrap();
        std::fs::write(outside.join("model.onnx"), b"x").unwrap();
        let roots = ModelRoots::new(root.clone(), Vec::new());
        assert!(roots.confine("m", &root.join("m/model.onnx")).is_ok());
        let escaped = roots
            .confine("m", &root.join("m/../../elsewhere/model.onnx"))
            .unwrap_err();
        assert!(escaped.contains("model m") && escaped.contains("extra_model_roots"));
        assert!(!escaped.contains(&dir.path().to_string_lossy().to_string()));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outside.join("model.onnx"), root.join("m/link.onnx"))
                .unwrap();
            assert!(roots.confine("m", &root.join("m/link.onnx")).is_err());
        }
        let allowed = ModelRoots::new(root.clone(), vec![outside.clone()]);
        assert!(allowed.confine("m", &outside.join("model.onnx")).is_ok());
        let missing = roots.confine("m", &root.join("m/none.onnx")).unwrap_err();
        assert!(missing.contains("m/none.onnx"), "{missing}");
        assert!(!missing.contains(&dir.path().to_string_lossy().to_string()));
    }

    #[test]
    fn host_paths_become_relative() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        let extra = dir.path().join("more");
        let roots = ModelRoots::new(root.clone(), vec![extra.clone()]);
        let text = format!(
            "cannot load {}/iris/model.onnx; see {}/x.onnx",
            root.display(),
            extra.display()
        );
        assert_eq!(
            roots.without_host_paths(&text),
            "cannot load iris/model.onnx; see extra_model_roots[0]/x.onnx"
        );
    }
}
