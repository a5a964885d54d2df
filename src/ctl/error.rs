//! The one place where ferrocdctl's failures become etcdctl's exit codes and
//! its `Error: <message>` line on stderr.

use std::fmt;

/// etcdctl 3.4's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Error = 1,
    BadConnection = 2,
    InvalidInput = 3,
    BadFeature = 4,
    Interrupted = 5,
    Io = 6,
    BadArgs = 128,
}

/// A failed command: what to print after `Error: ` and how to exit.
#[derive(Debug)]
pub struct CtlError {
    pub exit: Exit,
    pub message: String,
    /// Already reported on stderr (as etcdctl does for per-endpoint failures):
    /// exit without printing an `Error:` line.
    pub silent: bool,
}

impl CtlError {
    pub fn new(exit: Exit, message: impl Into<String>) -> CtlError {
        CtlError {
            exit,
            message: message.into(),
            silent: false,
        }
    }

    pub fn bad_args(message: impl Into<String>) -> CtlError {
        CtlError::new(Exit::BadArgs, message)
    }

    pub fn error(message: impl Into<String>) -> CtlError {
        CtlError::new(Exit::Error, message)
    }

    /// Exit with `exit` without another message.
    pub fn silent(exit: Exit) -> CtlError {
        CtlError {
            exit,
            message: String::new(),
            silent: true,
        }
    }

    /// The same error with another exit code.
    pub fn with_exit(self, exit: Exit) -> CtlError {
        CtlError { exit, ..self }
    }

    /// Prefixes the message as etcdctl does for some commands
    /// (`failed to grant lease (<cause>)`).
    pub fn wrap(self, what: &str) -> CtlError {
        let message = format!("{what} ({})", self.message);
        CtlError { message, ..self }
    }

    /// Writes the `Error:` line and returns the process exit code.
    pub fn report(&self) -> i32 {
        if !self.silent {
            eprintln!("Error: {}", self.message);
        }
        self.exit as i32
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CtlError {}

impl From<tonic::Status> for CtlError {
    fn from(status: tonic::Status) -> CtlError {
        CtlError::error(status_message(&status))
    }
}

/// What etcd's Go client shows for a gRPC error: the server's own text for
/// etcd's errors (`etcdserver: ...`), grpc-go's `rpc error: code = ... desc
/// = ...` for anything else.
pub fn status_message(status: &tonic::Status) -> String {
    let message = status.message();
    if message.starts_with("etcdserver: ") {
        return message.to_string();
    }
    format!("rpc error: code = {} desc = {}", code_name(status.code()), message)
}

/// grpc-go's names of the status codes.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Go's `strconv.ParseInt(s, base, 64)` with its error text.
pub fn parse_int(s: &str, base: u32) -> Result<i64, String> {
    i64::from_str_radix(s, base).map_err(|e| strconv_error("ParseInt", s, e.kind()))
}

/// Go's `strconv.ParseUint(s, base, 64)` with its error text.
pub fn parse_uint(s: &str, base: u32) -> Result<u64, String> {
    if s.starts_with('+') {
        return Err(format!("strconv.ParseUint: parsing {}: invalid syntax", go_quote(s)));
    }
    u64::from_str_radix(s, base).map_err(|e| strconv_error("ParseUint", s, e.kind()))
}

fn strconv_error(func: &str, s: &str, kind: &std::num::IntErrorKind) -> String {
    use std::num::IntErrorKind::*;
    let why = match kind {
        PosOverflow | NegOverflow => "value out of range",
        _ => "invalid syntax",
    };
    format!("strconv.{func}: parsing {}: {why}", go_quote(s))
}

/// Go's `%q` of a string: double-quoted with Go's escapes.
pub fn go_quote(s: &str) -> String {
    go_quote_bytes(s.as_bytes())
}

/// Go's `%q` of a byte string (invalid UTF-8 bytes as `\x..`).
pub fn go_quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
                c if c.is_control() => {
                    if (c as u32) < 0x10000 {
                        out.push_str(&format!("\\u{:04x}", c as u32));
                    } else {
                        out.push_str(&format!("\\U{:08x}", c as u32));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_errors_read_as_etcds_go_client_prints_them() {
        let etcd = tonic::Status::failed_precondition("etcdserver: requested lease not found");
        assert_eq!(status_message(&etcd), "etcdserver: requested lease not found");
        let other = tonic::Status::unimplemented("unknown method Foo");
        assert_eq!(
            status_message(&other),
            "rpc error: code = Unimplemented desc = unknown method Foo"
        );
        assert_eq!(code_name(tonic::Code::Cancelled), "Canceled");
    }

    #[test]
    fn number_errors_read_as_gos_strconv() {
        assert_eq!(parse_int("1f", 16), Ok(31));
        assert_eq!(
            parse_int("zz", 16).unwrap_err(),
            "strconv.ParseInt: parsing \"zz\": invalid syntax"
        );
        assert_eq!(
            parse_uint("", 16).unwrap_err(),
            "strconv.ParseUint: parsing \"\": invalid syntax"
        );
        assert_eq!(
            parse_int("99999999999999999999", 10).unwrap_err(),
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
        );
    }

    #[test]
    fn quotes_as_go_does() {
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote_bytes(b"\x01\xff\xc3\xa9"), "\"\\x01\\xffé\"");
    }
}
