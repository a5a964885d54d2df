//! Process-level concerns: signals and logging setup.

pub mod signals;
pub mod telemetry;
