//! Logging: etcd's `--log-level` names mapped onto tracing, to stderr.

use tracing_subscriber::EnvFilter;

pub fn init(log_level: &str) {
    let level = match log_level {
        "debug" => "debug",
        "warn" => "warn",
        "error" | "panic" | "fatal" => "error",
        _ => "info",
    };
    // openraft is chatty at info; keep it one step quieter than ferrocd.
    let quieter = if level == "debug" { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("FERROCD_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},openraft={quieter}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
