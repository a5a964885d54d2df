//! The table of every etcd 3.4 flag, the clap command generated from it, and Go-style
//! command-line scanning (`-flag`, `--flag=value`, `--flag value`, bare booleans).

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::go_syntax::{self, NumError};
use super::ConfigError;

/// How a flag's value is written and checked, following the Go type etcd gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Go `bool`: `--flag` alone means true.
    Bool,
    /// Go `uint` / `uint64`.
    Uint,
    /// etcd's `uint32` value, whose errors are strconv's own text.
    Uint32,
    /// Go `int` / `int64`.
    Int,
    /// Go `time.Duration`.
    Duration,
    /// Any string.
    Text,
    /// A comma-separated URL list; the given value is also accepted and means "the default".
    Urls(&'static str),
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A flag from etcd 2 that etcd 3.4 still accepts and ignores; it takes no value.
    Legacy,
}

/// One etcd command-line flag.
#[derive(Debug)]
pub struct Flag {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
    /// Whether ferrocd does something with the value; otherwise setting it only warns.
    pub acted: bool,
}

/// A flag value that passed its [`Kind`]'s check.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Uint(u64),
    Int(i64),
    /// Nanoseconds.
    Duration(i64),
    Text(String),
    /// Sorted URLs; empty for a URL list that defaults to none.
    Urls(Vec<String>),
}

const fn flag(name: &'static str, kind: Kind, default: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        kind,
        default,
        help,
        acted: false,
    }
}

const fn acted(name: &'static str, kind: Kind, default: &'static str, help: &'static str) -> Flag {
    Flag {
        acted: true,
        ..flag(name, kind, default, help)
    }
}

const fn legacy(name: &'static str) -> Flag {
    flag(name, Kind::Legacy, "", "")
}

use Kind::{Bool, Choice, Duration, Int, Text, Uint, Uint32, Urls};

/// Every flag etcd 3.4.23 accepts, in the order of its help text, one per line, then ferrocd's.
#[rustfmt::skip]
pub const FLAGS: &[Flag] = &[
    acted("name", Text, "default", "Human-readable name of this member."),
    acted("data-dir", Text, "", "Data directory; empty means <name>.etcd."),
    flag("wal-dir", Text, "", "Separate directory for the write-ahead log."),
    acted("snapshot-count", Uint, "100000", "Committed transactions between snapshots."),
    acted("heartbeat-interval", Uint, "100", "Heartbeat interval in milliseconds."),
    acted("election-timeout", Uint, "1000", "Election timeout in milliseconds."),
    flag("initial-election-tick-advance", Bool, "true", "Fast-forward election ticks at boot."),
    acted("listen-peer-urls", Urls(""), "http://localhost:2380", "URLs to serve peers on."),
    acted("listen-client-urls", Urls(""), "http://localhost:2379", "URLs to serve clients on."),
    flag("max-snapshots", Uint, "5", "Snapshot files to keep (0 keeps all)."),
    flag("max-wals", Uint, "5", "WAL files to keep (0 keeps all)."),
    acted("quota-backend-bytes", Int, "0", "Backend size that raises an alarm (0: 2 GiB)."),
    flag("backend-batch-interval", Duration, "0s", "Longest wait before a backend commit."),
    flag("backend-batch-limit", Int, "0", "Most operations per backend commit."),
    acted("max-txn-ops", Uint, "128", "Most operations in one transaction."),
    acted("max-request-bytes", Uint, "1572864", "Largest client request in bytes."),
    flag("max-concurrent-streams", Uint32, "4294967295", "Most streams per client connection."),
    flag("grpc-keepalive-min-time", Duration, "5s", "Shortest client ping interval allowed."),
    flag("grpc-keepalive-interval", Duration, "2h", "Server ping interval (0 disables)."),
    flag("grpc-keepalive-timeout", Duration, "20s", "Wait for a ping answer (0 disables)."),
    acted("initial-advertise-peer-urls", Urls(""), "http://localhost:2380", "Peer URLs told to the cluster."),
    acted("initial-cluster", Text, "default=http://localhost:2380", "Bootstrap members: name=url,..."),
    acted("initial-cluster-state", Choice(&["new", "existing"]), "new", "Bootstrap state: new or existing."),
    acted("initial-cluster-token", Text, "etcd-cluster", "Token that tells clusters apart at bootstrap."),
    acted("advertise-client-urls", Urls(""), "http://localhost:2379", "Client URLs told to clients."),
    flag("discovery", Text, "", "Discovery service URL."),
    flag("discovery-fallback", Choice(&["exit", "proxy"]), "proxy", "On discovery failure: exit or proxy."),
    flag("discovery-proxy", Text, "", "HTTP proxy for the discovery service."),
    flag("discovery-srv", Text, "", "DNS SRV domain for discovery."),
    flag("discovery-srv-name", Text, "", "Suffix of the DNS SRV name."),
    acted("strict-reconfig-check", Bool, "true", "Reject membership changes that lose quorum."),
    flag("pre-vote", Bool, "false", "Run the Raft pre-vote phase."),
    acted("auto-compaction-retention", Text, "0", "History kept by auto compaction (0 disables)."),
    acted("auto-compaction-mode", Text, "periodic", "Retention unit: periodic (hours or duration) or revision."),
    acted("enable-v2", Bool, "false", "Serve the v2 members API (/v2/members, /v2/machines)."),
    acted("cert-file", Text, "", "Client TLS certificate."),
    acted("key-file", Text, "", "Client TLS key."),
    acted("client-cert-auth", Bool, "false", "Require client certificates."),
    acted("client-crl-file", Text, "", "Client certificate revocation list."),
    flag("client-cert-allowed-hostname", Text, "", "Hostname required in client certificates."),
    acted("trusted-ca-file", Text, "", "CA for client certificates."),
    acted("auto-tls", Bool, "false", "Client TLS with a generated certificate."),
    acted("peer-cert-file", Text, "", "Peer TLS certificate."),
    acted("peer-key-file", Text, "", "Peer TLS key."),
    acted("peer-client-cert-auth", Bool, "false", "Require peer certificates."),
    acted("peer-trusted-ca-file", Text, "", "CA for peer certificates."),
    acted("peer-cert-allowed-cn", Text, "", "CN required in peer certificates."),
    flag("peer-cert-allowed-hostname", Text, "", "Hostname required in peer certificates."),
    acted("peer-auto-tls", Bool, "false", "Peer TLS with a generated certificate."),
    acted("peer-crl-file", Text, "", "Peer certificate revocation list."),
    acted("cipher-suites", Text, "", "Allowed TLS cipher suites, comma-separated."),
    flag("cors", Urls("*"), "*", "Allowed CORS origins (* allows all)."),
    flag("host-whitelist", Text, "*", "Allowed HTTP Host names (* allows all)."),
    acted("auth-token", Text, "simple", "Auth token type and options."),
    acted("bcrypt-cost", Uint, "10", "bcrypt cost for passwords."),
    acted("auth-token-ttl", Uint, "300", "Auth token lifetime in seconds."),
    flag("enable-pprof", Bool, "false", "Serve /debug/pprof."),
    acted("metrics", Text, "basic", "Metrics detail: basic or extensive."),
    acted("listen-metrics-urls", Urls(""), "", "Extra URLs for metrics and health."),
    acted("logger", Text, "capnslog", "Logger: zap or capnslog (zap allows several outputs and files)."),
    acted("log-outputs", Text, "default", "Log destinations, comma-separated: default, stderr, stdout or (zap) files."),
    acted("log-output", Text, "default", "Old name of --log-outputs."),
    acted("log-level", Text, "info", "debug, info, warn, error, dpanic, panic or fatal."),
    flag("proxy", Choice(&["off", "readonly", "on"]), "off", "v2 proxy mode: off, readonly or on."),
    flag("proxy-failure-wait", Uint, "5000", "v2 proxy: ms an endpoint stays failed."),
    flag("proxy-refresh-interval", Uint, "30000", "v2 proxy: ms between endpoint refreshes."),
    flag("proxy-dial-timeout", Uint, "1000", "v2 proxy: dial timeout in ms."),
    flag("proxy-write-timeout", Uint, "5000", "v2 proxy: write timeout in ms."),
    flag("proxy-read-timeout", Uint, "0", "v2 proxy: read timeout in ms."),
    flag("experimental-initial-corrupt-check", Bool, "false", "Check data before serving."),
    flag("experimental-corrupt-check-time", Duration, "0s", "Interval of corruption checks."),
    flag("experimental-enable-v2v3", Text, "", "Serve v2 from v3 under this prefix."),
    flag("experimental-backend-bbolt-freelist-type", Text, "array", "bbolt freelist: array or map."),
    flag("experimental-enable-lease-checkpoint", Bool, "false", "Checkpoint lease TTLs."),
    flag("experimental-enable-lease-checkpoint-persist", Bool, "false", "Persist lease checkpoints."),
    flag("experimental-compaction-batch-limit", Int, "1000", "Revisions deleted per compaction batch."),
    flag("experimental-peer-skip-client-san-verification", Bool, "false", "Skip SAN checks on peer certificates."),
    acted("experimental-watch-progress-notify-interval", Duration, "10m", "Interval of watch progress notifications."),
    flag("experimental-warning-apply-duration", Duration, "100ms", "Warn when an apply takes longer."),
    flag("enable-grpc-gateway", Bool, "true", "Serve the JSON gateway."),
    flag("unsafe-no-fsync", Bool, "false", "Never fsync (loses data on crashes)."),
    acted("force-new-cluster", Bool, "false", "Restart as a one-member cluster."),
    flag("debug", Bool, "false", "Old way to say --log-level=debug."),
    flag("log-package-levels", Text, "", "Per-package log levels."),
    acted("config-file", Text, "", "etcd's YAML file or an etcd.conf of ETCD_* lines."),
    acted("version", Bool, "false", "Print the version and exit."),
    // ferrocd's own flags.
    acted("worker-threads", Uint, "0", "ferrocd only: worker threads; 0: the CPUs this process may use."),
    acted("user", Text, "", "ferrocd only: started as root, run as this user once listeners are open."),
    acted("log-format", Choice(&["text", "json"]), "text", "ferrocd only: log format, text or json."),
    // etcd 3.5's, which the 3.4 flags above lack.
    acted("tls-min-version", Text, "TLS1.2", "Minimum TLS version: TLS1.2 or TLS1.3 (etcd 3.5's flag)."),
    acted("tls-max-version", Text, "", "Maximum TLS version: TLS1.2 or TLS1.3; empty: TLS1.3 (etcd 3.5's flag)."),
    legacy("cluster-active-size"),
    legacy("cluster-remove-delay"),
    legacy("cluster-sync-interval"),
    legacy("config"),
    legacy("force"),
    legacy("max-result-buffer"),
    legacy("max-retry-attempts"),
    legacy("peer-heartbeat-interval"),
    legacy("peer-election-timeout"),
    legacy("retry-interval"),
    legacy("snapshot"),
    legacy("v"),
    legacy("vv"),
    legacy("test.coverprofile"),
    legacy("test.outputdir"),
];

/// The flag called `name`.
pub fn find(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.name == name)
}

impl Flag {
    /// The flag's environment variable: `--my-flag` is `ETCD_MY_FLAG`.
    pub fn env_var(&self) -> String {
        format!("ETCD_{}", self.name.to_uppercase().replace('-', "_"))
    }

    /// Checks a value the way the Go flag's `Set` does; the error is Go's text.
    pub fn parse(&self, raw: &str) -> Result<Value, String> {
        let number = |e: NumError| match e {
            NumError::Syntax => "parse error".to_string(),
            NumError::Range => "value out of range".to_string(),
        };
        match self.kind {
            Kind::Bool => go_syntax::parse_bool(raw)
                .map(Value::Bool)
                .ok_or_else(|| "parse error".to_string()),
            Kind::Uint => go_syntax::parse_uint(raw, 64).map(Value::Uint).map_err(number),
            Kind::Uint32 => go_syntax::parse_uint(raw, 32).map(Value::Uint).map_err(|e| {
                let why = match e {
                    NumError::Syntax => "invalid syntax",
                    NumError::Range => "value out of range",
                };
                format!("strconv.ParseUint: parsing {raw:?}: {why}")
            }),
            Kind::Int => go_syntax::parse_int(raw).map(Value::Int).map_err(number),
            Kind::Duration => go_syntax::parse_duration(raw)
                .map(Value::Duration)
                .map_err(|_| "parse error".to_string()),
            Kind::Urls(keep_default) if raw == keep_default && self.default != raw => self.parse(self.default),
            Kind::Urls(keep_default) if raw == keep_default => Ok(Value::Urls(Vec::new())),
            Kind::Urls(_) => go_syntax::parse_urls(raw).map(Value::Urls),
            Kind::Choice(words) if !words.contains(&raw) => Err("invalid value".to_string()),
            Kind::Choice(_) | Kind::Text | Kind::Legacy => Ok(Value::Text(raw.to_string())),
        }
    }

    /// Whether the flag stands alone on the command line (`--flag` rather than `--flag value`).
    fn is_boolean(&self) -> bool {
        matches!(self.kind, Kind::Bool | Kind::Legacy)
    }

    fn value_name(&self) -> &'static str {
        match self.kind {
            Kind::Bool | Kind::Legacy => "BOOL",
            Kind::Uint | Kind::Uint32 | Kind::Int => "N",
            Kind::Duration => "DURATION",
            Kind::Urls(_) => "URLS",
            Kind::Choice(_) | Kind::Text => "TEXT",
        }
    }

    fn arg(&self) -> Arg {
        let help = match self.default {
            "" => self.help.to_string(),
            default => format!("{} [default: {default}]", self.help),
        };
        let arg = Arg::new(self.name)
            .long(self.name)
            .action(ArgAction::Set)
            .value_name(self.value_name())
            .help(help)
            .hide(self.kind == Kind::Legacy);
        if self.is_boolean() {
            arg.num_args(0..=1).require_equals(true).default_missing_value("true")
        } else {
            arg.allow_hyphen_values(true)
        }
    }
}

/// The clap command for ferrocd's flags, generated from [`FLAGS`].
pub fn command() -> Command {
    Command::new("ferrocd")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        .override_usage("ferrocd [flags]\n       ferrocd --version\n       ferrocd -h | --help")
        .about("A Raft-replicated key-value store that speaks etcd's v3 API.")
        .after_help(
            "Every flag may also be written -flag, and set as an environment variable: \
             --my-flag is ETCD_MY_FLAG.",
        )
        .args(FLAGS.iter().map(Flag::arg))
}

/// The usage text printed by `--help`.
pub fn help_text() -> String {
    command().render_help().to_string()
}

/// What the command line asks for.
#[derive(Debug)]
pub enum CommandLine {
    Help,
    Flags(Scanned),
}

/// A command line scanned like Go's `flag.FlagSet.Parse`, values already checked.
#[derive(Debug)]
pub struct Scanned {
    /// Each flag as `--name=value`, in order: what clap parses.
    pub normalised: Vec<String>,
    /// The first argument that is not a flag; etcd refuses it.
    pub positional: Option<String>,
}

/// Scans `args` (without the program name) as Go's flag package does, stopping at `--` or at
/// the first argument that is not a flag, and checks each value as etcd's flag types do.
pub fn scan(args: &[String]) -> Result<CommandLine, ConfigError> {
    let mut normalised = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            return Ok(scanned(normalised, rest.next()));
        }
        let Some(body) = flag_body(arg)? else {
            return Ok(scanned(normalised, Some(arg)));
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let Some(flag) = find(name) else {
            if name == "help" || name == "h" {
                return Ok(CommandLine::Help);
            }
            return Err(ConfigError::Usage(format!("flag provided but not defined: -{name}")));
        };
        let value = match (inline, flag.is_boolean()) {
            (Some(value), _) => value,
            (None, true) => "true",
            (None, false) => rest
                .next()
                .ok_or_else(|| ConfigError::Usage(format!("flag needs an argument: -{name}")))?,
        };
        check_command_line_value(flag, value)?;
        normalised.push(format!("--{name}={value}"));
    }
    Ok(scanned(normalised, None))
}

fn scanned(normalised: Vec<String>, positional: Option<&String>) -> CommandLine {
    let positional = positional.cloned();
    CommandLine::Flags(Scanned { normalised, positional })
}

/// The part of a flag argument after its one or two dashes, or `None` if it is not a flag.
fn flag_body(arg: &str) -> Result<Option<&str>, ConfigError> {
    if arg.len() < 2 || !arg.starts_with('-') {
        return Ok(None);
    }
    let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
    if body.is_empty() || body.starts_with(['-', '=']) {
        return Err(ConfigError::Usage(format!("bad flag syntax: {arg}")));
    }
    Ok(Some(body))
}

fn check_command_line_value(flag: &Flag, value: &str) -> Result<(), ConfigError> {
    flag.parse(value).map(drop).map_err(|why| {
        let name = flag.name;
        ConfigError::Usage(match flag.kind {
            Kind::Bool => format!("invalid boolean value {value:?} for -{name}: {why}"),
            _ => format!("invalid value {value:?} for flag -{name}: {why}"),
        })
    })
}

/// Parses the normalised flags with the generated clap command.
pub fn matches(scanned: &Scanned) -> Result<ArgMatches, ConfigError> {
    command()
        .try_get_matches_from(&scanned.normalised)
        .map_err(|e| ConfigError::Usage(e.kind().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn scan_flags(args: &[&str]) -> Scanned {
        match scan(&strings(args)) {
            Ok(CommandLine::Flags(scanned)) => scanned,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn scan_error(args: &[&str]) -> String {
        scan(&strings(args)).unwrap_err().to_string()
    }

    #[test]
    fn table_names_are_unique_and_defaults_are_valid() {
        for (i, flag) in FLAGS.iter().enumerate() {
            assert!(FLAGS[..i].iter().all(|f| f.name != flag.name), "{}", flag.name);
            assert!(flag.parse(flag.default).is_ok(), "{}", flag.name);
        }
        command().debug_assert();
    }

    #[test]
    fn env_var_names_follow_etcd() {
        assert_eq!(
            find("initial-cluster-token").unwrap().env_var(),
            "ETCD_INITIAL_CLUSTER_TOKEN"
        );
        assert_eq!(find("name").unwrap().env_var(), "ETCD_NAME");
    }

    #[test]
    fn go_flag_forms_are_normalised() {
        let scanned = scan_flags(&[
            "-name",
            "a",
            "--data-dir=/d",
            "-force-new-cluster",
            "--strict-reconfig-check=false",
            "--name",
            "--data-dir",
        ]);
        assert_eq!(
            scanned.normalised,
            [
                "--name=a",
                "--data-dir=/d",
                "--force-new-cluster=true",
                "--strict-reconfig-check=false",
                "--name=--data-dir",
            ]
        );
        assert_eq!(scanned.positional, None);
    }

    #[test]
    fn scanning_stops_at_the_first_positional_argument() {
        let scanned = scan_flags(&["--force-new-cluster", "yes", "--nosuch"]);
        assert_eq!(scanned.normalised, ["--force-new-cluster=true"]);
        assert_eq!(scanned.positional.as_deref(), Some("yes"));
        assert_eq!(scan_flags(&["-"]).positional.as_deref(), Some("-"));
        assert_eq!(scan_flags(&["--", "x"]).positional.as_deref(), Some("x"));
        assert_eq!(scan_flags(&["--name=a", "--"]).positional, None);
    }

    #[test]
    fn help_is_recognised_in_every_go_form() {
        for form in ["-h", "--h", "-help", "--help", "--help=zz"] {
            assert!(matches!(scan(&strings(&[form, "x"])), Ok(CommandLine::Help)), "{form}");
        }
        assert!(help_text().contains("--initial-cluster-token <TEXT>"));
        assert!(!help_text().contains("cluster-active-size"));
    }

    #[test]
    fn command_line_errors_use_go_texts() {
        assert_eq!(scan_error(&["--nosuch"]), "flag provided but not defined: -nosuch");
        assert_eq!(scan_error(&["--name"]), "flag needs an argument: -name");
        assert_eq!(scan_error(&["---name", "x"]), "bad flag syntax: ---name");
        assert_eq!(scan_error(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(
            scan_error(&["--heartbeat-interval", "x", "--help"]),
            r#"invalid value "x" for flag -heartbeat-interval: parse error"#
        );
        assert_eq!(
            scan_error(&["--force-new-cluster=yes"]),
            r#"invalid boolean value "yes" for -force-new-cluster: parse error"#
        );
        assert_eq!(
            scan_error(&["--snapshot-count=18446744073709551616"]),
            r#"invalid value "18446744073709551616" for flag -snapshot-count: value out of range"#
        );
        assert_eq!(
            scan_error(&["--max-concurrent-streams=4294967296"]),
            r#"invalid value "4294967296" for flag -max-concurrent-streams: strconv.ParseUint: parsing "4294967296": value out of range"#
        );
        assert_eq!(
            scan_error(&["--initial-cluster-state", "foo"]),
            r#"invalid value "foo" for flag -initial-cluster-state: invalid value"#
        );
        assert_eq!(
            scan_error(&["--grpc-keepalive-min-time=5"]),
            r#"invalid value "5" for flag -grpc-keepalive-min-time: parse error"#
        );
        assert_eq!(
            scan_error(&["--listen-client-urls", "ftp://a:1"]),
            r#"invalid value "ftp://a:1" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: ftp://a:1"#
        );
        assert_eq!(
            scan_error(&["--cors="]),
            r#"invalid value "" for flag -cors: URL scheme must be http, https, unix, or unixs: "#
        );
    }

    #[test]
    fn legacy_flags_take_any_inline_value() {
        let scanned = scan_flags(&["--force=whatever", "-v"]);
        assert_eq!(scanned.normalised, ["--force=whatever", "--v=true"]);
    }

    #[test]
    fn clap_takes_the_last_of_repeated_flags() {
        let value = |args: &[&str], name: &str| {
            let matches = matches(&scan_flags(args)).unwrap();
            matches.get_one::<String>(name).cloned()
        };
        let repeated = ["--name=a", "--name=b", "--name="];
        assert_eq!(value(&repeated, "name").as_deref(), Some(""));
        assert_eq!(
            value(&["--force-new-cluster"], "force-new-cluster").as_deref(),
            Some("true")
        );
        assert_eq!(value(&["--name==x"], "name").as_deref(), Some("=x"));
        assert_eq!(value(&["--data-dir", "-x"], "data-dir").as_deref(), Some("-x"));
        assert_eq!(value(&[], "data-dir"), None);
    }
}
