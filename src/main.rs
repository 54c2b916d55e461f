//! `gyrus`: the command line of the Gyrus analytics and prediction engine.

mod allocation;
mod commands;
mod connectors;
mod lifecycle;
mod output;
mod training;

// Flags and settings live in the library target (the fuzz targets parse
// `gyrus.toml` through it); the modules here reach them as `crate::cli`.
use gyrus::{cli, settings};

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::cli::{Cli, LogFormat};
use crate::settings::Settings;

/// mimalloc rather than the system allocator: see the note in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for input that was refused (validation, unreadable files): EX_DATAERR.
const EXIT_DATA: u8 = 65;

/// A bare level (`info`) applies to Gyrus's own crates; dependencies stay at `warn`.
/// A full filter (`gyrus_engine=debug,deltalake_core=info`) is used as given.
fn log_filter(level: &str) -> EnvFilter {
    let spec = if level.contains('=') || level.contains(',') {
        level.to_string()
    } else {
        [
            "gyrus",
            "gyrus_engine",
            "gyrus_datasets",
            "gyrus_ingest",
            "gyrus_models",
            "gyrus_api",
            "gyrus_flight",
        ]
        .iter()
        .map(|krate| format!("{krate}={level}"))
        .chain(["warn".to_string()])
        .collect::<Vec<_>>()
        .join(",")
    };
    EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("warn"))
}

fn init_logging(settings: &Settings) {
    let filter = log_filter(&settings.log_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::CLOSE);
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    use gyrus_engine::EngineError;
    let data_error = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<EngineError>(),
            Some(EngineError::Validation(_) | EngineError::InvalidSlice(_))
        ) || cause.downcast_ref::<gyrus_ingest::IngestError>().is_some()
    });
    if data_error { EXIT_DATA } else { 1 }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::resolve(&cli.global) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
    // Deep stacks as a second line behind the SQL depth bounds (query work
    // itself runs on the engine's query runtime, whose stacks are deeper).
    // Blocking threads (Delta log reads and commits on local disk) bounded
    // as the query runtimes' are: each keeps memory of its own.
    let cores = gyrus_engine::exec::cores();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(16 << 20)
        .max_blocking_threads(2 * cores * gyrus_engine::exec::BLOCKING_THREADS_PER_CORE)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command, &settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// `gyrus sql ... | head` closing the pipe early is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
