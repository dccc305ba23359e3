//! libFuzzer entry point for the `settings` checks in src/lib.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxinfer_fuzz::settings(data));
