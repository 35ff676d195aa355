//! libFuzzer target `vault`: see `rustle_fuzz::vault` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rustle_fuzz::vault(data));
