//! Process-level concerns: signals, logging setup, limits, and systemd notifications.

pub mod limits;
pub mod notify;
pub mod signals;
pub mod telemetry;
