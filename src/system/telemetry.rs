//! Logging: etcd's `--log-level` names mapped onto tracing, to stderr, as text or JSON. Under
//! systemd (`JOURNAL_STREAM` set) lines carry no timestamp of their own (the journal adds one)
//! and start with a syslog priority (`<4>`), so `journalctl -p warning` finds warnings.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

pub fn init(log_level: &str, format: LogFormat, journal: bool) {
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
    let ansi = !journal && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let text = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi);
    let layer = match (format, journal) {
        (LogFormat::Text, false) => text.boxed(),
        (LogFormat::Text, true) => text.without_time().map_event_format(Priority).boxed(),
        (LogFormat::Json, false) => text.json().boxed(),
        (LogFormat::Json, true) => text.json().without_time().map_event_format(Priority).boxed(),
    };
    tracing_subscriber::registry().with(layer).with(filter).init();
}

/// Prefixes each event with its syslog priority, which journald reads and strips.
struct Priority<F>(F);

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}
