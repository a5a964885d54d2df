//! Process-level concerns: signals, logging setup, limits, privilege drop, and systemd
//! notifications.

pub mod limits;
pub mod notify;
pub mod privilege;
pub mod signals;
pub mod telemetry;
