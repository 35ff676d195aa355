//! libFuzzer target `archive_round_trip`: see `rustle_fuzz::archive_round_trip` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rustle_fuzz::archive_round_trip(data));
