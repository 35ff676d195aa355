//! libFuzzer target `ssh_config`: see `rustle_fuzz::ssh_config` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rustle_fuzz::ssh_config(data));
