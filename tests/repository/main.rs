//! The model repository: discovery, loading and the repository API (REST and gRPC).

#[path = "../support/mod.rs"]
mod support;

mod providers;
mod repository;
mod repository_api;
