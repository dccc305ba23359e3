//! Hostile traffic against the real server: admission, connections, control plane, decoding limits. Tests that measure liveness, memory or descriptors hold support::hostile::alone(); the others support::hostile::alongside().

#[path = "../support/mod.rs"]
mod support;

mod admission;
mod connections;
mod control;
mod limits;
