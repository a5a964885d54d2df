//! The `ferrocd` server binary: configuration, logging, then the server.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use ferrocd::config::{self, Loaded};
use ferrocd::system::{limits, privilege, signals, telemetry};

fn main() -> ExitCode {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let config = match config::load(std::env::args_os().collect(), &env) {
        Ok(Loaded::Run(config)) => config,
        Ok(Loaded::Exit { message, code }) => {
            if code == 0 {
                print!("{message}");
            } else {
                eprint!("{message}");
            }
            return ExitCode::from(code as u8);
        }
        Err(e) => {
            eprintln!("ferrocd: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    if let Err(e) = telemetry::init(
        &config.log_level,
        config.log_format,
        config.journal,
        &config.log_outputs,
    ) {
        eprintln!("ferrocd: {e}");
        return ExitCode::FAILURE;
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    limits::raise_open_files();
    if let Err(e) = privilege::drop_privileges(&config) {
        tracing::error!("{e:#}");
        eprintln!("ferrocd: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(limits::worker_threads(config.worker_threads))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferrocd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(workers = runtime.metrics().num_workers(), "runtime started");
    let served = runtime.block_on(ferrocd::server::run(config, signals::shutdown()));
    // Tasks still running (connections cut at the drain deadline, a blocking write) do not hold
    // the exit up.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("ferrocd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
