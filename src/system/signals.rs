//! Shutdown on SIGTERM or SIGINT; a second signal exits at once. SIGHUP reopens the log files
//! and reloads the TLS certificates (its default action, ending the process, is replaced).

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Resolves on the first SIGTERM or SIGINT. After it, another one ends the
/// process immediately, for an operator who does not want to wait.
pub async fn shutdown() {
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(term), Ok(int)) => (term, int),
        _ => {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting without a clean shutdown");
        std::process::exit(1);
    });
}

/// Every SIGHUP from now on; without a handler (which cannot be installed) SIGHUP would end the
/// process, so that is an error.
pub fn hangups() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}
