//! libFuzzer target `template`: see `rustle_fuzz::template` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rustle_fuzz::template(data));
