//! libFuzzer entry point for the `codecs` checks in src/lib.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxinfer_fuzz::codecs(data));
