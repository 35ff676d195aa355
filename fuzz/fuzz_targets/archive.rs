//! libFuzzer target `archive`: see `rustle_fuzz::archive` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rustle_fuzz::archive(data));
