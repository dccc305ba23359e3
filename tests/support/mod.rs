//! The one test harness of the integration tests (tests/*/main.rs each include it with `#[path]`):
//!
//! - [`server`]: one way to start a server, in process ([`TestServer`], [`spawn_server`]) or as the real binary
//!   ([`Spawned`], [`oxinfer`]), from the same settings ([`test_settings`]);
//! - [`http`]: REST helpers (requests on a [`TestServer`], error and float assertions);
//! - [`grpc`]: gRPC clients and test-side builders/readers of tensors, written independently of the server's
//!   converters;
//! - [`fixtures`]: the bundled repository, model folders, the iris request;
//! - [`hostile`]: liveness and memory probes, and the lock that keeps measuring tests alone.
//!
//! The library's internals that the tests name are re-exported here (below), so a rename in src/ is followed in
//! this one place.

#![allow(dead_code, unused_imports)]

pub mod fixtures;
pub mod grpc;
pub mod hostile;
pub mod http;
pub mod server;

pub use fixtures::*;
pub use http::*;
pub use server::*;

// The library API the tests use (one place to follow renames in src/).
pub use oxinfer::config::model_settings::ModelSettings;
pub use oxinfer::config::Settings;
pub use oxinfer::grpc::pb;
pub use oxinfer::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
pub use oxinfer::service::{IMPLEMENTED_EXTENSIONS, TRITON_DEFAULT_MAX_BATCH_SIZE};
