//! The layering rule, checked: a module imports only modules of lower layers, and sibling files import each
//! other one way only. `cargo test` fails when a change crosses a layer by accident.
//!
//! The layers, top to bottom (see docs/architecture.md): the entry points, the transports, the connection
//! handling, the transport-free core, what the core uses (metrics, admission), content types, the model
//! repository, model execution, telemetry, settings, tensors, process-level helpers, errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by layer, highest first. A module may use modules of later rows only; modules of one row
/// do not use each other.
pub const LAYERS: &[&[&str]] = &[
    &["main", "lib", "layering"],
    &["cli"],
    &["healthcheck", "model_settings_cmd", "server"],
    &["http", "grpc"],
    &["connections"],
    &["service"],
    &["metrics", "admission"],
    &["content_types", "classification"],
    &["repository"],
    &["model"],
    &["telemetry"],
    &["config"],
    &["tensor"],
    &["runtime", "sched", "memory"],
    &["error"],
];

/// The layer (row of [`LAYERS`]) of a top-level module.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/http/json/mod.rs` -> `http`, `src/cli.rs` -> `cli`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src/");
    let first = relative.components().next().expect("a path");
    let first = first.as_os_str().to_string_lossy();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

/// The code of a file without comments (doc links may name any layer).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with("//"))
}

/// The path segments that follow each occurrence of `prefix` (e.g. `crate::` -> `["http", "json"]`).
fn paths_after<'a>(line: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    line.match_indices(prefix)
        .filter(|(at, _)| {
            // `crate::` inside an identifier such as `xcrate::` is not a path.
            !line[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, _)| {
            line[at + prefix.len()..]
                .split("::")
                .map(|s| {
                    s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("")
                })
                .take_while(|s| !s.is_empty())
                .collect()
        })
        .collect()
}

/// Layer violations: `(file, module it imports)` where the import goes up or sideways.
pub fn violations(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = BTreeSet::new();
    for file in &files {
        let own = module_of(src, file);
        let own_layer = layer_of(&own).unwrap_or_else(|| panic!("module {own} is in no layer"));
        let text = std::fs::read_to_string(file).expect("readable");
        for line in code_lines(&text) {
            for path in paths_after(line, "crate::") {
                let Some(target) = path.first() else { continue };
                if *target == own {
                    continue;
                }
                // Macros exported at the crate root (`crate::match_number_type!`) belong to their own module.
                let Some(target_layer) = layer_of(target) else {
                    continue;
                };
                if target_layer <= own_layer {
                    let shown = file.strip_prefix(src).unwrap().display().to_string();
                    found.insert((shown, target.to_string()));
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Cycles between sibling files of one folder (`mod.rs` excepted: a parent and its children share items).
pub fn sibling_cycles(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    // folder -> file stem -> stems it uses
    let mut edges: BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        if stem == "mod" || stem == "lib" || stem == "main" {
            continue;
        }
        let folder = file.parent().unwrap().to_path_buf();
        let module_path: Vec<String> = folder
            .strip_prefix(src)
            .unwrap()
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        let text = std::fs::read_to_string(file).expect("readable");
        let mut used = BTreeSet::new();
        for line in code_lines(&text) {
            for path in paths_after(line, "super::") {
                if let Some(first) = path.first() {
                    used.insert(first.to_string());
                }
            }
            for path in paths_after(line, "crate::") {
                let depth = module_path.len();
                let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
                if depth > 0 && path.len() > depth && path[..depth] == module_path[..] {
                    used.insert(path[depth].clone());
                }
            }
        }
        used.remove(&stem);
        edges.entry(folder).or_default().insert(stem, used);
    }
    let mut cycles = Vec::new();
    for (folder, graph) in &edges {
        for (a, uses) in graph {
            for b in uses {
                if a < b && graph.get(b).is_some_and(|back| back.contains(a)) {
                    let folder = folder.strip_prefix(src).unwrap().display().to_string();
                    cycles.push((format!("{folder}/{a}.rs"), format!("{folder}/{b}.rs")));
                }
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    #[test]
    fn no_module_imports_a_higher_or_sibling_layer() {
        let found = violations(&src());
        assert!(
            found.is_empty(),
            "imports that go up (or sideways) the layers in src/layering.rs: {found:#?}"
        );
    }

    #[test]
    fn sibling_files_import_each_other_one_way_only() {
        let found = sibling_cycles(&src());
        assert!(found.is_empty(), "files that import each other: {found:#?}");
    }

    /// Paths the docs name (`src/...`, `tests/...`, and in docs/architecture.md the `dir/file.rs` of src/).
    fn named_paths(text: &str, under_src: bool) -> Vec<String> {
        let mut found = Vec::new();
        for word in text.split(|c: char| c.is_whitespace() || "`()[],;:'\"".contains(c)) {
            let word = word.trim_end_matches('.');
            if !word.ends_with(".rs") || word.contains("..") || word.contains('*') {
                continue;
            }
            if word.starts_with("src/") || word.starts_with("tests/") {
                found.push(word.to_string());
            } else if under_src && word.contains('/') {
                found.push(format!("src/{word}"));
            }
        }
        found
    }

    #[test]
    fn the_docs_name_only_files_that_exist() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut pages = vec![root.join("README.md")];
        for dir in ["docs", "docs/decisions"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "md") {
                    pages.push(path);
                }
            }
        }
        let mut missing = Vec::new();
        for page in &pages {
            let text = std::fs::read_to_string(page).unwrap();
            let under_src = page.ends_with("docs/architecture.md");
            for path in named_paths(&text, under_src) {
                if !root.join(&path).exists() {
                    missing.push(format!(
                        "{}: {path}",
                        page.strip_prefix(root).unwrap().display()
                    ));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "files the docs name that do not exist: {missing:#?}"
        );
    }

    #[test]
    fn the_checker_sees_an_upward_import() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tensor")).unwrap();
        std::fs::write(
            dir.path().join("tensor/mod.rs"),
            "use crate::service::DataPlane;\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("service.rs"),
            "use crate::tensor::Tensor;\n// crate::http\n",
        )
        .unwrap();
        assert_eq!(
            violations(dir.path()),
            vec![("tensor/mod.rs".to_string(), "service".to_string())]
        );
        std::fs::write(dir.path().join("tensor/a.rs"), "use super::b::X;\n").unwrap();
        std::fs::write(dir.path().join("tensor/b.rs"), "use crate::tensor::a::Y;\n").unwrap();
        assert_eq!(
            sibling_cycles(dir.path()),
            vec![("tensor/a.rs".to_string(), "tensor/b.rs".to_string())]
        );
    }
}
