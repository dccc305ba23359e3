//! libFuzzer entry point for the `grpc_infer` checks in src/lib.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxinfer_fuzz::grpc_infer(data));
