//! Adaptive batching through the real server. Its own binary: some tests assert latencies (a lone request answered well within the batch window), which other tests' load would skew.

#[path = "../support/mod.rs"]
mod support;

mod batching;
