//! libFuzzer target `payload`: see `rustle_fuzz::payload` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rustle_fuzz::payload(data));
