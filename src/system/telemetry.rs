//! Logging: etcd's `--log-level` names mapped onto tracing, to each of `--log-outputs` (stderr,
//! stdout, files), as text or JSON. Under systemd (`JOURNAL_STREAM` set) lines on stderr and
//! stdout carry no timestamp of their own (the journal adds one) and start with a syslog priority
//! (`<4>`), so `journalctl -p warning` finds warnings. Files are appended to, with timestamps;
//! [`reopen_log_files`] (on SIGHUP) opens each again by its path, so after logrotate moved one
//! away new lines go to a new file.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use parking_lot::{RwLock, RwLockReadGuard};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{open_log_file, LogFormat, LogOutput};

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The log files in use, for [`reopen_log_files`].
static FILES: OnceLock<Vec<Arc<LogFile>>> = OnceLock::new();

/// Installs the logger; fails (with etcd's text) when a log file cannot be opened.
pub fn init(log_level: &str, format: LogFormat, journal: bool, outputs: &[LogOutput]) -> Result<(), String> {
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
    let mut layers: Vec<BoxedLayer> = Vec::new();
    let mut files = Vec::new();
    for output in outputs {
        layers.push(match output {
            LogOutput::Stderr => {
                let ansi = !journal && io::IsTerminal::is_terminal(&io::stderr());
                stream_layer(io::stderr, format, journal, ansi)
            }
            LogOutput::Stdout => {
                let ansi = !journal && io::IsTerminal::is_terminal(&io::stdout());
                stream_layer(io::stdout, format, journal, ansi)
            }
            LogOutput::File(path) => {
                let file = Arc::new(LogFile {
                    file: RwLock::new(open_log_file(path)?),
                    path: path.clone(),
                });
                files.push(file.clone());
                let layer = tracing_subscriber::fmt::layer()
                    .with_writer(FileWriter(file))
                    .with_target(false)
                    .with_ansi(false);
                match format {
                    LogFormat::Text => layer.boxed(),
                    LogFormat::Json => layer.json().boxed(),
                }
            }
        });
    }
    let _ = FILES.set(files);
    tracing_subscriber::registry().with(layers).with(filter).init();
    Ok(())
}

/// Lines for stderr or stdout: with priorities and no timestamps for the journal.
fn stream_layer<W>(writer: W, format: LogFormat, journal: bool, ansi: bool) -> BoxedLayer
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let text = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi);
    match (format, journal) {
        (LogFormat::Text, false) => text.boxed(),
        (LogFormat::Text, true) => text.without_time().map_event_format(Priority).boxed(),
        (LogFormat::Json, false) => text.json().boxed(),
        (LogFormat::Json, true) => text.json().without_time().map_event_format(Priority).boxed(),
    }
}

/// Opens every log file again by its path (after logrotate moved it away, a new one is
/// created); a file that cannot be opened keeps the old one, with an error in the log.
pub fn reopen_log_files() {
    for file in FILES.get().into_iter().flatten() {
        match open_log_file(&file.path) {
            Ok(reopened) => {
                *file.file.write() = reopened;
                tracing::info!(path = %file.path.display(), "SIGHUP: log file reopened");
            }
            Err(e) => tracing::error!("SIGHUP: cannot reopen the log file; still writing to the old one: {e}"),
        }
    }
}

/// A log file and the path it is opened again from.
struct LogFile {
    path: PathBuf,
    /// Swapped for a new one on reopening; writers share it meanwhile.
    file: RwLock<File>,
}

/// Hands the formatter a writer onto the current file; each event is one append.
struct FileWriter(Arc<LogFile>);

impl<'a> MakeWriter<'a> for FileWriter {
    type Writer = FileLine<'a>;

    fn make_writer(&'a self) -> FileLine<'a> {
        FileLine(self.0.file.read())
    }
}

struct FileLine<'a>(RwLockReadGuard<'a, File>);

impl Write for FileLine<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
