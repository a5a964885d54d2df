//! Process-level concerns: signals, logging setup, and systemd notifications.

pub mod notify;
pub mod signals;
pub mod telemetry;
