#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gyrus_fuzz_targets::run("flight_stream", data));
