//! docs/configuration.md against the code: its settings table must name exactly the settings [`Settings`]
//! reads, with their `MLSERVER_*` variables and (where the table gives a value) their defaults; its
//! model-settings table must name exactly the `parameters.extra` options [`ModelExtra`] reads.

use serde_json::{Map, Value};

use super::model_extra::ModelExtra;
use super::model_settings::{ModelParameters, ModelSettings};
use super::{fields::serde_fields, setting_names, Settings};

const DOC: &str = include_str!("../../docs/configuration.md");

/// The rows of the first table under `heading`, split into cells (header and separator rows left out).
fn table(heading: &str) -> Vec<Vec<String>> {
    let section = DOC
        .split_once(heading)
        .unwrap_or_else(|| panic!("docs/configuration.md has no {heading:?}"))
        .1;
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The backticked names of a cell: "`a`, `b` (JSON)" -> ["a", "b"].
fn names(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn the_settings_table_matches_settings() {
    let mut documented = Vec::new();
    for row in table("## settings.json (server)") {
        let (fields, envs, default) = (names(&row[0]), names(&row[1]), row[2].as_str());
        assert_eq!(fields.len(), envs.len(), "row {row:?}");
        let defaults: Vec<&str> = default.split(", ").collect();
        for (i, (field, env)) in fields.iter().zip(&envs).enumerate() {
            let wanted = format!("MLSERVER_{}", field.to_ascii_uppercase());
            // `..._TIMEOUT` abbreviates the variable of the name before.
            let ok = match env.strip_prefix("...") {
                Some(suffix) => wanted.ends_with(suffix),
                None => *env == wanted,
            };
            assert!(ok, "{field}: documented variable {env}, read from {wanted}");
            let default = if defaults.len() == fields.len() {
                defaults[i]
            } else {
                default
            };
            if let Some(value) = documented_value(default) {
                let given = Value::Object(Map::from_iter([(field.to_string(), value)]));
                let parsed: Settings = serde_json::from_value(given.clone())
                    .unwrap_or_else(|e| panic!("{field}: documented default {default}: {e}"));
                assert_eq!(
                    parsed,
                    Settings::default(),
                    "{field}: documented default {default} is not the default"
                );
            }
            documented.push(field.to_string());
        }
    }
    let mut read: Vec<String> = setting_names().iter().map(|s| s.to_string()).collect();
    documented.sort();
    read.sort();
    assert_eq!(
        documented, read,
        "docs/configuration.md settings table vs Settings"
    );
}

/// A default cell as the JSON value it spells: `true`, `8080`, `` `/metrics` ``, `` `[]` ``, `—` (none);
/// `None` for prose ("crate version", "¼ of memory ...").
fn documented_value(cell: &str) -> Option<Value> {
    if cell.starts_with('—') {
        return Some(Value::Null);
    }
    if let Some(code) = cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')) {
        return Some(
            serde_json::from_str(code).unwrap_or_else(|_| Value::String(code.to_string())),
        );
    }
    serde_json::from_str::<Value>(cell)
        .ok()
        .filter(|v| v.is_number() || v.is_boolean())
}

#[test]
fn the_model_settings_table_matches_model_settings() {
    let mut extra = Vec::new();
    for row in table("## model-settings.json (one per model version)") {
        for name in names(&row[0]) {
            if let Some(option) = name.strip_prefix("parameters.extra.") {
                extra.push(option.to_string());
            } else if let Some(field) = name.strip_prefix("parameters.") {
                assert!(
                    serde_fields::<ModelParameters>().contains(&field),
                    "documented {name} is not read"
                );
            } else {
                assert!(
                    serde_fields::<ModelSettings>().contains(&name),
                    "documented {name} is not read"
                );
            }
        }
    }
    let mut read: Vec<String> = ModelExtra::KNOWN.iter().map(|s| s.to_string()).collect();
    extra.sort();
    read.sort();
    assert_eq!(
        extra, read,
        "docs/configuration.md parameters.extra rows vs ModelExtra"
    );
}
