#![no_main]

// libfuzzer-sys installs a panic hook that aborts at the panic, before any
// `catch_unwind` runs. `gyrus_ingest::read` contains the panics of Parquet
// decoding (parquet-rs asserts on some corrupt pages) and answers a parse
// error, as the server does; under that hook each one stopped the run. So
// this target puts the default hook back (`take_hook`): a contained panic
// prints its message and the run goes on; one that escapes the call still
// aborts (libfuzzer-sys catches it at the edge and aborts), and is a finding.
libfuzzer_sys::fuzz_target!(
    init: {
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| gyrus_fuzz_targets::run("upload", data)
);
