//! etcdctl's global flags (endpoints, timeouts, TLS, authentication, output)
//! with their `ETCDCTL_*` variables, and the gRPC connection they describe.
//!
//! As in etcdctl 3.4, a flag and its variable set together is an error, the
//! connection is retried until the command timeout passes (then `context
//! deadline exceeded`), `http://` endpoints are always plain text,
//! `https://` endpoints always TLS, and bare `host:port` endpoints use TLS
//! when a TLS file is given or `--insecure-transport=false`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::error::{go_quote, CtlError, Exit};
use super::output::{Format, Out};
use crate::proto::etcdserverpb::auth_client::AuthClient;
use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::watch_client::WatchClient;
use crate::proto::etcdserverpb::AuthenticateRequest;

/// The global flags that have an `ETCDCTL_*` variable, as (flag, variable).
const WITH_ENV: &[(&str, &str)] = &[
    ("endpoints", "ETCDCTL_ENDPOINTS"),
    ("dial-timeout", "ETCDCTL_DIAL_TIMEOUT"),
    ("command-timeout", "ETCDCTL_COMMAND_TIMEOUT"),
    ("keepalive-time", "ETCDCTL_KEEPALIVE_TIME"),
    ("keepalive-timeout", "ETCDCTL_KEEPALIVE_TIMEOUT"),
    ("insecure-transport", "ETCDCTL_INSECURE_TRANSPORT"),
    ("insecure-skip-tls-verify", "ETCDCTL_INSECURE_SKIP_TLS_VERIFY"),
    ("cert", "ETCDCTL_CERT"),
    ("key", "ETCDCTL_KEY"),
    ("cacert", "ETCDCTL_CACERT"),
    ("user", "ETCDCTL_USER"),
    ("password", "ETCDCTL_PASSWORD"),
    ("write-out", "ETCDCTL_WRITE_OUT"),
    ("hex", "ETCDCTL_HEX"),
];

fn env_of(flag: &str) -> &'static str {
    WITH_ENV
        .iter()
        .find(|(f, _)| *f == flag)
        .map(|(_, e)| *e)
        .expect("flag has a variable")
}

/// A pflag-style boolean: `--flag`, `--flag=true`, `--flag=false`; never
/// takes the next argument as its value.
pub fn bool_flag(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .help(help)
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .default_value("false")
        .value_parser(parse_go_bool)
        .action(ArgAction::Set)
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {}: invalid syntax", go_quote(s))),
    }
}

/// Go's `time.ParseDuration`, for the timeout flags.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(s));
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() || rest.starts_with('-') {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        total += number * nanos;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_nanos(total as u64))
}

/// The global flags, as `etcdctl --help` lists them.
pub fn args() -> Vec<Arg> {
    let text = |name: &'static str, help: &'static str| Arg::new(name).long(name).help(help).global(true);
    vec![
        text("endpoints", "gRPC endpoints")
            .value_delimiter(',')
            .action(ArgAction::Append)
            .default_value("127.0.0.1:2379")
            .env(env_of("endpoints")),
        text("dial-timeout", "dial timeout for client connections")
            .default_value("2s")
            .value_parser(parse_go_duration)
            .env(env_of("dial-timeout")),
        text(
            "command-timeout",
            "timeout for short running command (excluding dial timeout)",
        )
        .default_value("5s")
        .value_parser(parse_go_duration)
        .env(env_of("command-timeout")),
        text("keepalive-time", "keepalive time for client connections")
            .default_value("2s")
            .value_parser(parse_go_duration)
            .env(env_of("keepalive-time")),
        text("keepalive-timeout", "keepalive timeout for client connections")
            .default_value("6s")
            .value_parser(parse_go_duration)
            .env(env_of("keepalive-timeout")),
        bool_flag(
            "insecure-transport",
            "disable transport security for client connections",
        )
        .default_value("true")
        .global(true)
        .env(env_of("insecure-transport")),
        bool_flag(
            "insecure-skip-tls-verify",
            "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",
        )
        .global(true)
        .env(env_of("insecure-skip-tls-verify")),
        text("cert", "identify secure client using this TLS certificate file").env(env_of("cert")),
        text("key", "identify secure client using this TLS key file").env(env_of("key")),
        text(
            "cacert",
            "verify certificates of TLS-enabled secure servers using this CA bundle",
        )
        .env(env_of("cacert")),
        text(
            "user",
            "username[:password] for authentication (prompt if password is not supplied)",
        )
        .env(env_of("user")),
        text(
            "password",
            "password for authentication (if this option is used, --user option shouldn't include password)",
        )
        .env(env_of("password")),
        text("write-out", "set the output format (fields, json, simple, table)")
            .short('w')
            .default_value("simple")
            .env(env_of("write-out")),
        bool_flag("hex", "print byte strings as hex encoded strings")
            .global(true)
            .env(env_of("hex")),
    ]
}

/// TLS files and switches.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub cacert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub insecure_transport: bool,
    pub skip_verify: bool,
}

/// The resolved global flags.
#[derive(Debug, Clone)]
pub struct Globals {
    pub endpoints: Vec<String>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
    /// Whether `--command-timeout` was given (snapshot save has no timeout
    /// otherwise).
    pub command_timeout_set: bool,
    pub keepalive_time: Duration,
    pub keepalive_timeout: Duration,
    pub tls: TlsOptions,
    pub user: Option<String>,
    pub password: Option<String>,
    pub format: Format,
    pub hex: bool,
}

impl Globals {
    pub fn from_matches(m: &ArgMatches) -> Result<Globals, CtlError> {
        for (flag, env) in WITH_ENV {
            let from_env = std::env::var(env).map(|v| !v.is_empty()).unwrap_or(false);
            if from_env && m.value_source(flag) == Some(ValueSource::CommandLine) {
                return Err(CtlError::error(format!(
                    "conflicting environment variable \"{env}\" is shadowed by corresponding command-line flag \
                     (either unset environment variable or disable flag)"
                )));
            }
        }
        let string = |name: &str| m.get_one::<String>(name).filter(|s| !s.is_empty()).cloned();
        let duration = |name: &str| *m.get_one::<Duration>(name).expect("defaulted");
        let flag = |name: &str| *m.get_one::<bool>(name).expect("defaulted");
        let endpoints: Vec<String> = m
            .get_many::<String>("endpoints")
            .expect("defaulted")
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        Ok(Globals {
            endpoints,
            dial_timeout: duration("dial-timeout"),
            command_timeout: duration("command-timeout"),
            command_timeout_set: m.value_source("command-timeout") != Some(ValueSource::DefaultValue),
            keepalive_time: duration("keepalive-time"),
            keepalive_timeout: duration("keepalive-timeout"),
            tls: TlsOptions {
                cacert: string("cacert"),
                cert: string("cert"),
                key: string("key"),
                insecure_transport: flag("insecure-transport"),
                skip_verify: flag("insecure-skip-tls-verify"),
            },
            user: string("user"),
            password: string("password"),
            format: Format::parse(m.get_one::<String>("write-out").expect("defaulted"))?,
            hex: flag("hex"),
        })
    }

    pub fn out<'a>(&self, write: &'a mut (dyn std::io::Write + Send)) -> Out<'a> {
        Out {
            write,
            format: self.format,
            hex: self.hex,
        }
    }

    /// Runs one call under `--command-timeout`.
    pub async fn timed<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CtlError> {
        match tokio::time::timeout(self.command_timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => Err(deadline_exceeded()),
            Ok(Err(status)) => Err(transport_detail(status)),
            Err(_) => Err(deadline_exceeded()),
        }
    }

    /// Connects to the first endpoint of `--endpoints` that answers.
    pub async fn connect(&self) -> Result<Client, CtlError> {
        self.connect_any(&self.endpoints, true).await
    }

    /// Connects without authenticating (etcdctl lists members for
    /// `--cluster` without asking for a password).
    pub async fn connect_unauthenticated(&self) -> Result<Client, CtlError> {
        self.connect_any(&self.endpoints, false).await
    }

    /// Connects to one endpoint, without authenticating when `auth` is false
    /// (etcdctl lists members for `--cluster` without asking for a
    /// password).
    pub async fn connect_to(&self, endpoint: &str, auth: bool) -> Result<Client, CtlError> {
        self.connect_any(&[endpoint.to_string()], auth).await
    }

    async fn connect_any(&self, endpoints: &[String], auth: bool) -> Result<Client, CtlError> {
        if endpoints.is_empty() {
            return Err(CtlError::error("no endpoints given"));
        }
        let endpoints = endpoints
            .iter()
            .map(|e| Ok((e.clone(), self.endpoint(e)?)))
            .collect::<Result<Vec<_>, CtlError>>()?;
        let credentials = if auth { self.credentials()? } else { None };
        let deadline = Instant::now() + self.command_timeout;
        loop {
            let mut last_error = String::new();
            for (name, endpoint) in &endpoints {
                match endpoint.connect().await {
                    Ok(channel) => {
                        let mut client = Client {
                            channel,
                            token: None,
                            endpoint: name.clone(),
                        };
                        if let Some((user, password)) = &credentials {
                            client.authenticate(self, user, password).await?;
                        }
                        return Ok(client);
                    }
                    Err(e) => last_error = format!("{name}: {}", error_chain(&e)),
                }
            }
            if Instant::now() >= deadline {
                eprintln!("ferrocdctl: could not connect ({last_error})");
                return Err(deadline_exceeded());
            }
            tokio::time::sleep(Duration::from_millis(100).min(deadline - Instant::now())).await;
        }
    }

    /// The gRPC endpoint for one `--endpoints` entry.
    fn endpoint(&self, given: &str) -> Result<Endpoint, CtlError> {
        let (use_tls, authority) = match given.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            Some((scheme, _)) => {
                return Err(CtlError::new(
                    Exit::BadArgs,
                    format!("unsupported endpoint scheme {scheme:?} in {given}"),
                ))
            }
            None => {
                let t = &self.tls;
                let any_file = t.cacert.is_some() || t.cert.is_some() || t.key.is_some();
                (any_file || !t.insecure_transport, given)
            }
        };
        let authority = authority.trim_end_matches('/');
        let scheme = if use_tls { "https" } else { "http" };
        let bad = |e: &dyn std::fmt::Display| CtlError::new(Exit::BadArgs, format!("invalid endpoint {given}: {e}"));
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
            .map_err(|e| bad(&e))?
            .connect_timeout(self.dial_timeout)
            .http2_keep_alive_interval(self.keepalive_time)
            .keep_alive_timeout(self.keepalive_timeout)
            .tcp_nodelay(true);
        if use_tls {
            let host = endpoint
                .uri()
                .host()
                .unwrap_or("localhost")
                .trim_matches(['[', ']'])
                .to_string();
            let config = self.tls_config(&host)?;
            endpoint = if self.tls.skip_verify {
                endpoint.tls_config_with_verifier(
                    config,
                    Arc::new(crate::tls::AnyCertificate::new(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))),
                )
            } else {
                endpoint.tls_config(config)
            }
            .map_err(|e| CtlError::new(Exit::BadConnection, error_chain(&e)))?;
        }
        Ok(endpoint)
    }

    fn tls_config(&self, host: &str) -> Result<ClientTlsConfig, CtlError> {
        let read =
            |path: &str| std::fs::read(path).map_err(|e| CtlError::bad_args(format!("open {path}: {}", os_error(&e))));
        let t = &self.tls;
        let mut config = ClientTlsConfig::new().domain_name(host);
        if !t.skip_verify {
            config = match &t.cacert {
                Some(path) => config.ca_certificate(Certificate::from_pem(read(path)?)),
                None => config.with_native_roots(),
            };
        }
        match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => config = config.identity(Identity::from_pem(read(cert)?, read(key)?)),
            (None, None) => {}
            (cert, key) => {
                return Err(CtlError::bad_args(format!(
                    "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                    key.as_deref().unwrap_or(""),
                    cert.as_deref().unwrap_or("")
                )))
            }
        }
        Ok(config)
    }

    /// `--user name[:password]` and `--password`, prompting for a missing
    /// password as etcdctl does. As in clientv3, an empty name or password
    /// means no authentication at all.
    fn credentials(&self) -> Result<Option<(String, String)>, CtlError> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        let (name, password) = match (&self.password, user.split_once(':')) {
            (Some(password), _) => (user.clone(), password.clone()),
            (None, Some((name, password))) => (name.to_string(), password.to_string()),
            (None, None) => (user.clone(), ask_password("Password: ")?),
        };
        Ok((!name.is_empty() && !password.is_empty()).then_some((name, password)))
    }
}

/// Asks for a password as etcdctl does (speakeasy): the prompt on stdout, one
/// line of stdin read without echo when it is a terminal, then a newline;
/// the answer without its surrounding white space.
pub fn ask_password(prompt: &str) -> Result<String, CtlError> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    use std::io::{BufRead, Write};
    print!("{prompt}");
    std::io::stdout().flush()?;
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let mut line = Vec::new();
    let read = stdin.lock().read_until(b'\n', &mut line);
    if let Some(saved) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, saved);
    }
    println!();
    read?;
    Ok(String::from_utf8_lossy(&line).trim().to_string())
}

/// A failed call, with the connection's own error when tonic reports only
/// "transport error".
fn transport_detail(status: tonic::Status) -> CtlError {
    let mut error = CtlError::from(status.clone());
    if let Some(source) = std::error::Error::source(&status) {
        error.message = format!("{}: {}", error.message, error_chain(source));
    }
    error
}

pub fn deadline_exceeded() -> CtlError {
    CtlError::error("context deadline exceeded")
}

/// An error with its sources, for connection failures (tonic's own text is
/// only "transport error").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Go's text for an OS error ("no such file or directory").
pub fn os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.split_once(" (os error") {
        Some((message, _)) => message.to_lowercase(),
        None => text,
    }
}

/// The gRPC services over one connection, with the auth token on every call.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    token: Option<AsciiMetadataValue>,
    /// The `--endpoints` entry this connection reached.
    pub endpoint: String,
}

/// Adds the `token` metadata etcd expects once a user authenticated.
#[derive(Clone)]
pub struct Token(Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert("token", token.clone());
        }
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Token>;

/// etcd clients accept responses up to 2 GiB.
const MAX_MESSAGE: usize = i32::MAX as usize;

macro_rules! service {
    ($name:ident, $client:ident) => {
        pub fn $name(&self) -> $client<Authed> {
            $client::with_interceptor(self.channel.clone(), Token(self.token.clone()))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE)
        }
    };
}

impl Client {
    service!(kv, KvClient);
    service!(watch, WatchClient);
    service!(lease, LeaseClient);
    service!(cluster, ClusterClient);
    service!(maintenance, MaintenanceClient);
    service!(auth, AuthClient);

    async fn authenticate(&mut self, globals: &Globals, user: &str, password: &str) -> Result<(), CtlError> {
        let request = AuthenticateRequest {
            name: user.to_string(),
            password: password.to_string(),
        };
        let response = match globals.timed(self.auth().authenticate(request)).await {
            Ok(response) => response,
            // As clientv3 does: credentials for a cluster without auth are no error.
            Err(e) if e.message == "etcdserver: authentication is not enabled" => return Ok(()),
            Err(e) => return Err(e.with_exit(Exit::BadConnection)),
        };
        let token = response
            .token
            .parse()
            .map_err(|_| CtlError::new(Exit::BadConnection, "the server sent an invalid auth token"))?;
        self.token = Some(token);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_does() {
        assert_eq!(parse_go_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("5").unwrap_err(), "time: invalid duration \"5\"");
        assert!(parse_go_duration("bogus").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn booleans_parse_as_go_does() {
        assert_eq!(parse_go_bool("T"), Ok(true));
        assert_eq!(parse_go_bool("0"), Ok(false));
        assert!(parse_go_bool("yes").is_err());
    }
}
