//! libFuzzer target `embed`: see `rustle_fuzz::embed` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rustle_fuzz::embed(data));
