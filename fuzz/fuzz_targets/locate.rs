//! libFuzzer target `locate`: see `rustle_fuzz::locate` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rustle_fuzz::locate(data));
