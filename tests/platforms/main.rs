//! Platform integrations: KServe's and Seldon's folder layouts, settings and agents.

#[path = "../support/mod.rs"]
mod support;

mod kserve_seldon;
mod seldon_agent;
