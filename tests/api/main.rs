//! The REST data plane: inference over JSON, binary and BYTES payloads, content types, the JSON fast path, ZipMap outputs, KServe V1, Triton extras, the OpenAPI document, and the fuzz corpus replayed through the decoders.

#[path = "../support/mod.rs"]
mod support;

mod binary;
mod bytes;
mod codecs;
mod fuzz_corpus;
mod http_api;
mod json_fast_path;
mod kserve_v1;
mod openapi;
mod triton_extras;
mod zipmap;
