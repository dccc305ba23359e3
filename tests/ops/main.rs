//! Operations: metrics, health, CORS, auth, logs, OpenTelemetry traces, the CLI and the binary's signals.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod ops;
mod ops_binary;
mod tracing;
