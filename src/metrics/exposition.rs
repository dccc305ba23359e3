//! Metrics written at scrape time from figures the server keeps anyway (no hot-path cost): per model version,
//! the time requests waited for a worker and the time spent computing, from Triton's statistics.

use std::fmt::Write;

use crate::model::stats::Duration64;
use crate::repository::ModelState;
use crate::repository::Repository;

/// Time requests waited in the model's queue, in seconds (summary: `_sum`, `_count`).
pub const QUEUE_DURATION: &str = "model_infer_queue_duration_seconds";
/// Time spent computing, in seconds, by `phase`: `input` (tensors into ONNX Runtime values), `infer` (the
/// session run), `output` (values back into tensors) (summary: `_sum`, `_count`).
pub const COMPUTE_DURATION: &str = "model_infer_compute_duration_seconds";
/// Model executions (one per batch).
pub const EXECUTIONS: &str = "model_infer_executions_total";
/// Inferences (requests) executed; with adaptive batching, more than executions.
pub const INFERENCES: &str = "model_infer_inferences_total";
/// Requests waiting in the model's queue for a worker at scrape time (what an autoscaler can target).
pub const QUEUE_DEPTH: &str = "model_queue_depth";
/// Instances (sessions, each on its own thread) serving the model.
pub const INSTANCES: &str = "model_instances";

/// Escapes a label value for the text format.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn summary(out: &mut String, name: &str, labels: &str, value: Duration64) {
    let _ = writeln!(
        out,
        "{name}_sum{{{labels}}} {}\n{name}_count{{{labels}}} {}",
        value.ns as f64 / 1e9,
        value.count
    );
}

/// Appends the statistics of every ready model version.
pub fn model_statistics(out: &mut String, repository: &Repository) {
    let models: Vec<_> = repository
        .slots()
        .into_iter()
        .filter_map(|slot| match slot.state() {
            ModelState::Ready(model) => Some(model),
            _ => None,
        })
        .collect();
    if models.is_empty() {
        return;
    }
    let mut snapshots: Vec<_> = models
        .iter()
        .map(|m| {
            let version = m.version.as_deref().unwrap_or(super::NO_VERSION);
            let labels = format!(
                "model=\"{}\",version=\"{}\"",
                escape(&m.name),
                escape(version)
            );
            (
                labels,
                m.workers.stats.snapshot(&m.name, version),
                (m.workers.queued(), m.workers.instances()),
            )
        })
        .collect();
    snapshots.sort_by(|a, b| a.0.cmp(&b.0));
    header(
        out,
        QUEUE_DURATION,
        "summary",
        "Time inference requests waited for a model worker, in seconds",
    );
    for (labels, s, _) in &snapshots {
        summary(out, QUEUE_DURATION, labels, s.inference_stats.queue);
    }
    header(
        out,
        COMPUTE_DURATION,
        "summary",
        "Time spent computing, in seconds, by phase (input, infer, output)",
    );
    for (labels, s, _) in &snapshots {
        let stats = &s.inference_stats;
        for (phase, value) in [
            ("input", stats.compute_input),
            ("infer", stats.compute_infer),
            ("output", stats.compute_output),
        ] {
            summary(
                out,
                COMPUTE_DURATION,
                &format!("{labels},phase=\"{phase}\""),
                value,
            );
        }
    }
    header(
        out,
        EXECUTIONS,
        "counter",
        "Model executions (one per batch)",
    );
    for (labels, s, _) in &snapshots {
        let _ = writeln!(out, "{EXECUTIONS}{{{labels}}} {}", s.execution_count);
    }
    header(out, INFERENCES, "counter", "Inference requests executed");
    for (labels, s, _) in &snapshots {
        let _ = writeln!(out, "{INFERENCES}{{{labels}}} {}", s.inference_count);
    }
    header(
        out,
        QUEUE_DEPTH,
        "gauge",
        "Inference requests waiting for a model worker now",
    );
    for (labels, _, (queued, _)) in &snapshots {
        let _ = writeln!(out, "{QUEUE_DEPTH}{{{labels}}} {queued}");
    }
    header(out, INSTANCES, "gauge", "Instances serving the model");
    for (labels, _, (_, instances)) in &snapshots {
        let _ = writeln!(out, "{INSTANCES}{{{labels}}} {instances}");
    }
}
