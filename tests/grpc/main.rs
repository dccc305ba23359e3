//! The gRPC data plane (KServe V2 over gRPC), against a server shared by the binary's tests.

#[path = "../support/mod.rs"]
mod support;

mod grpc;
