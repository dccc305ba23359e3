//! libFuzzer entry point for the `rest_json` checks in src/lib.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxinfer_fuzz::rest_json(data));
