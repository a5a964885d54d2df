//! A problem found while resolving the configuration: an error that stops a start or a
//! warning, with what it is about so it can be traced to a line of the configuration file.

use std::fmt;

use super::ConfigError;

/// What a problem is about, to find the line of the configuration file that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum About {
    /// A flag, by name (`data-dir`), whichever way it was set.
    Flag(&'static str),
    /// Whichever of these flags the file sets first.
    Flags(&'static [&'static str]),
    /// A key of the configuration file or an environment variable, as written.
    Key(String),
    /// Nothing in particular.
    Nothing,
}

/// Where in a configuration file a problem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Severity {
    /// ferrocd would refuse to start, with this error.
    Error(ConfigError),
    Warning(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub about: About,
    pub at: Option<Location>,
}

impl Problem {
    pub fn error(error: ConfigError, about: About) -> Problem {
        Problem {
            severity: Severity::Error(error),
            about,
            at: None,
        }
    }

    pub fn invalid(message: impl Into<String>, about: About) -> Problem {
        Problem::error(ConfigError::Invalid(message.into()), about)
    }

    pub fn warning(message: impl Into<String>, about: About) -> Problem {
        Problem {
            severity: Severity::Warning(message.into()),
            about,
            at: None,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self.severity, Severity::Error(_))
    }

    /// The text without its location.
    pub fn text(&self) -> String {
        match &self.severity {
            Severity::Error(error) => error.to_string(),
            Severity::Warning(text) => text.clone(),
        }
    }

    /// The text, after `path:line: ` when it comes from a file.
    pub fn located_text(&self) -> String {
        match &self.at {
            Some(at) => format!("{}:{}: {}", at.path, at.line, self.text()),
            None => self.text(),
        }
    }
}

/// As `check-config` prints it: `path:line: error: text`.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{}:{}: ", at.path, at.line)?;
        }
        let level = if self.is_error() { "error" } else { "warning" };
        write!(f, "{level}: {}", self.text())
    }
}
