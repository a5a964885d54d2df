//! Where logs go: `--log-outputs` (and its deprecated `--log-output`) with `--logger`, read and
//! checked as etcd 3.4 does. With the default `capnslog` logger there is exactly one output,
//! `default` (stderr), `stderr` or `stdout`; with `zap` there may be several, and any other
//! value is a file, appended to (SIGHUP reopens it, for logrotate).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};

use super::problem::{About, Problem};
use super::settings::Settings;
use super::tls::io_text;

/// One destination of log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    Stderr,
    Stdout,
    /// A file, created when missing, appended to.
    File(PathBuf),
}

const ABOUT: About = About::Flags(&["log-outputs", "log-output", "logger"]);

/// The outputs as etcd reads them: `--log-outputs`, or `--log-output` when only that one is
/// set; each value once, in sorted order (etcd keeps them in a set).
fn values(settings: &Settings) -> Vec<String> {
    let name = if settings.is_set("log-output") && !settings.is_set("log-outputs") {
        "log-output"
    } else {
        "log-outputs"
    };
    let mut values: Vec<String> = settings.text(name).split(',').map(str::to_string).collect();
    values.sort();
    values.dedup();
    values
}

/// The outputs of checked settings.
pub fn outputs(settings: &Settings) -> Vec<LogOutput> {
    values(settings)
        .into_iter()
        .map(|value| match value.as_str() {
            "default" | "stderr" => LogOutput::Stderr,
            "stdout" => LogOutput::Stdout,
            _ => LogOutput::File(PathBuf::from(value)),
        })
        .collect()
}

/// etcd's warning for the deprecated flag, and its errors for outputs it would refuse.
pub fn problems(settings: &Settings) -> Vec<Problem> {
    let mut problems = Vec::new();
    if settings.is_set("log-output") {
        let text = format!(
            "Deprecated '--log-output' flag is set to {}; use '--log-outputs'",
            go_quoted(&[settings.text("log-output").to_string()])
        );
        problems.push(Problem::warning(text, About::Flag("log-output")));
    }
    if let Err(e) = check(settings.text("logger"), &values(settings)) {
        problems.push(Problem::invalid(e, ABOUT));
    }
    problems
}

fn check(logger: &str, values: &[String]) -> Result<(), String> {
    match logger {
        "capnslog" => {
            let [value] = values else {
                return Err(format!(
                    "--logger=capnslog supports only 1 value in '--log-outputs', got {}",
                    go_quoted(values)
                ));
            };
            match value.as_str() {
                "default" | "stderr" | "stdout" => Ok(()),
                _ => Err(format!(
                    "unknown log-output {value:?} (only supports \"default\", \"stderr\", \"stdout\")"
                )),
            }
        }
        "zap" => {
            if values.len() > 1 && values.iter().any(|value| value == "default") {
                return Err("multi logoutput for \"default\" is not supported yet".to_string());
            }
            values
                .iter()
                .filter(|value| !matches!(value.as_str(), "default" | "stderr" | "stdout"))
                .try_for_each(|path| could_open(path))
        }
        _ => Err(format!("unknown logger option {logger:?}")),
    }
}

/// Whether `path` could be opened for appending, without creating it: an existing file must be
/// writable, a missing one needs a writable directory.
fn could_open(path: &str) -> Result<(), String> {
    let refused = |why: String| format!("open sink {path:?}: open {path}: {why}");
    let file = Path::new(path);
    if file.exists() {
        return OpenOptions::new()
            .append(true)
            .open(file)
            .map(drop)
            .map_err(|e| refused(io_text(&e)));
    }
    let dir = match file.parent() {
        Some(dir) if file.file_name().is_some() => {
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }
        }
        _ => return Err(refused("no such file or directory".to_string())),
    };
    match std::fs::metadata(dir) {
        Err(e) => Err(refused(io_text(&e))),
        Ok(metadata) if !metadata.is_dir() => Err(refused("not a directory".to_string())),
        Ok(_) => access(dir, AccessFlags::W_OK).map_err(|e| refused(io_text(&std::io::Error::from(e)))),
    }
}

/// Opens a log file for appending, creating it when missing, with etcd's error text.
pub fn open_log_file(path: &Path) -> Result<File, String> {
    OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
        format!(
            "open sink {:?}: open {}: {}",
            path.display().to_string(),
            path.display(),
            io_text(&e)
        )
    })
}

/// A list of strings as Go's `%q` prints it: `["a" "b"]`.
fn go_quoted(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|value| format!("{value:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn capnslog_takes_one_stream() {
        assert_eq!(check("capnslog", &strings(&["default"])), Ok(()));
        assert_eq!(check("capnslog", &strings(&["stdout"])), Ok(()));
        assert_eq!(
            check("capnslog", &strings(&["stderr", "stdout"])),
            Err(r#"--logger=capnslog supports only 1 value in '--log-outputs', got ["stderr" "stdout"]"#.into())
        );
        assert_eq!(
            check("capnslog", &strings(&["/tmp/a.log"])),
            Err(r#"unknown log-output "/tmp/a.log" (only supports "default", "stderr", "stdout")"#.into())
        );
        assert_eq!(
            check("bogus", &strings(&["default"])),
            Err(r#"unknown logger option "bogus""#.into())
        );
    }

    #[test]
    fn zap_takes_streams_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("etcd.log");
        let file = file.to_str().unwrap();
        assert_eq!(check("zap", &strings(&["stderr", "stdout", file])), Ok(()));
        assert!(!Path::new(file).exists(), "checking created the file");
        assert_eq!(
            check("zap", &strings(&["default", "stderr"])),
            Err(r#"multi logoutput for "default" is not supported yet"#.into())
        );
        assert_eq!(
            check("zap", &strings(&["/nonexistent/dir/x.log"])),
            Err(r#"open sink "/nonexistent/dir/x.log": open /nonexistent/dir/x.log: no such file or directory"#.into())
        );
        assert_eq!(
            check("zap", &strings(&[""])),
            Err(r#"open sink "": open : no such file or directory"#.into())
        );
    }
}
