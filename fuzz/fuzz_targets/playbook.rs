//! libFuzzer target `playbook`: see `rustle_fuzz::playbook` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rustle_fuzz::playbook(data));
