//! oxinfer: an Open Inference Protocol (KServe V2) server for ONNX models, a drop-in for Seldon MLServer.
//!
//! How a request flows:
//! 1. A transport ([`http`] or [`grpc`]) decodes the wire format into [`service::InferRequest`] with typed [`tensor::Tensor`]s
//!    (codecs at the edge: [`tensor::json`]).
//! 2. [`service::DataPlane`] resolves the model version in the [`repository::Repository`], validates inputs and
//!    requested outputs against the model's signature (once, for every transport), and queues the request.
//! 3. A worker thread ([`model::worker`]) that owns the model's ONNX Runtime session ([`model::onnx`]) runs it and
//!    replies on a oneshot channel; the async runtime never blocks on inference.
//! 4. The transport encodes the [`service::InferResponse`]; errors are one [`error::Error`] mapped once to a status.
//!
//! Modules: [`cli`] and [`config`] (settings with MLServer's names), [`runtime`] (finding ONNX Runtime),
//! [`server`] (listeners and shutdown), [`connections`] (accepting and closing connections: timeouts, the
//! connection cap, HTTP/2 limits), [`metrics`] (Prometheus, MLServer's names), [`telemetry`] (OpenTelemetry
//! traces of inference requests, when `tracing_server` is set), [`model_settings_cmd`] (`oxinfer model-settings`).

pub(crate) mod admission;
pub(crate) mod classification;
pub mod cli;
pub mod config;
pub(crate) mod connections;
pub mod content_types;
pub mod error;
pub mod grpc;
pub(crate) mod healthcheck;
pub mod http;
#[cfg(test)]
mod layering;
pub(crate) mod memory;
pub(crate) mod metrics;
pub mod model;
pub(crate) mod model_settings_cmd;
pub(crate) mod repository;
pub mod runtime;
pub(crate) mod sched;
pub mod server;
pub mod service;
pub(crate) mod telemetry;
pub mod tensor;

pub use error::Error;
