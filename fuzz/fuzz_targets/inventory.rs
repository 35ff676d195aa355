//! libFuzzer target `inventory`: see `rustle_fuzz::inventory` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rustle_fuzz::inventory(data));
