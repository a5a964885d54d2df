//! Configuration: etcd's flags, `ETCD_*` variables and configuration files, resolved once with
//! etcd 3.4's rules and validated into a [`Config`]; and `ferrocd check-config`.
//!
//! # Layout
//! - `flags`: the table of every etcd flag, the clap command built from it, Go-style scanning.
//! - `file`: `--config-file`: an etcd.conf of `ETCD_*` lines or etcd's YAML file.
//! - `settings`: flag values with where they came from, the environment overlay, validation.
//! - `problem`: errors and warnings, traced to the line of the file that caused them.
//! - `resolve`: the order of it all: command line, file or environment, validation, build.
//! - `build`: turning checked settings into a `Config`.
//! - `logging`: `--log-outputs` and `--logger`, with etcd's checks.
//! - `check`: `ferrocd check-config`: every problem a start would meet, without starting.
//! - `cluster`: `--initial-cluster` parsing and the checks before bootstrapping a member.
//! - `tls`: the client and peer TLS settings and the checks on their files.
//! - `go_syntax`: the Go parsing rules (integers, durations, URLs) etcd's flags inherit.

mod build;
mod check;
mod cluster;
mod file;
mod flags;
mod go_syntax;
mod logging;
mod problem;
mod resolve;
mod settings;
mod tls;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use logging::{open_log_file, LogOutput};
use resolve::{resolve, Checked, Resolved};
pub use tls::{check_key_file, check_readable, TlsConfig, TlsFiles, TlsVersion};

/// etcd's `types.NewURLs`, which member changes apply to peer URLs too.
pub use go_syntax::new_urls;

/// The clap command of ferrocd's flags, which man pages and shell completions are made from.
pub use flags::command;

/// The subcommand that checks the configuration instead of starting.
const CHECK_COMMAND: &str = "check-config";

/// Whether this member bootstraps a new cluster or joins a running one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How much history automatic compaction keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep this much time of history.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(u64),
}

/// The validated configuration of one ferrocd member.
///
/// URLs are normalised by the `url` crate: an explicit default port (`http://a:80`) is dropped,
/// so use `Url::port_or_known_default`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<Url>,
    pub advertise_client_urls: Vec<Url>,
    pub listen_peer_urls: Vec<Url>,
    /// Extra listeners for `/metrics` and `/health` only.
    pub listen_metrics_urls: Vec<Url>,
    /// `--metrics=extensive`: gRPC handling-time histograms too.
    pub metrics_extensive: bool,
    pub initial_advertise_peer_urls: Vec<Url>,
    /// Each member's name with one of its peer URLs, sorted by name then URL.
    pub initial_cluster: Vec<(String, Url)>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_count: u64,
    /// The effective quota: etcd's 2 GiB when the flag is 0, `u64::MAX` when it is negative
    /// (etcd then has no quota).
    pub quota_backend_bytes: u64,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    /// `--auth-token`: `simple` or `jwt,...` (checked here, its key files read at start).
    pub auth_token: String,
    /// How long an unused simple token stays valid (`--auth-token-ttl`).
    pub auth_token_ttl: Duration,
    /// bcrypt cost of stored passwords (`--bcrypt-cost`, 4 to 31).
    pub bcrypt_cost: u32,
    pub auto_compaction: Option<AutoCompaction>,
    /// How often a watch asking for progress notifications gets one while
    /// quiet (`--experimental-watch-progress-notify-interval`).
    pub watch_progress_notify_interval: Duration,
    pub log_level: String,
    pub force_new_cluster: bool,
    pub strict_reconfig_check: bool,
    /// `--enable-v2`: serve etcd's v2 members API on the client port.
    pub enable_v2: bool,
    /// Tokio worker threads; 0 sizes the pool from the CPUs this process may use.
    pub worker_threads: usize,
    /// The user to run as once the data dir and listeners are ready, when started as root.
    pub user: Option<String>,
    pub log_format: LogFormat,
    /// Where log lines go (`--log-outputs`), each once.
    pub log_outputs: Vec<LogOutput>,
    /// Whether stderr goes to systemd's journal (`JOURNAL_STREAM` is set).
    pub journal: bool,
    /// Client and peer TLS.
    pub tls: TlsConfig,
    /// Startup warnings for the operator, in the order they arose.
    pub warnings: Vec<String>,
}

/// A URL as Go prints it: no trailing `/` for an empty path.
fn url_text(url: &Url) -> String {
    let text = url.as_str();
    text.strip_suffix('/').unwrap_or(text).to_string()
}

impl Config {
    /// The checks etcd makes before it bootstraps a member that has no data yet: the member
    /// must be in `--initial-cluster`, no peer URL may appear twice, and for a new cluster the
    /// member's URLs there must be the ones in `--initial-advertise-peer-urls`. etcd skips
    /// these (and ignores every `--initial-*` setting) once the data directory holds a member.
    pub fn verify_bootstrap(&self) -> Result<(), ConfigError> {
        let cluster: Vec<cluster::Entry> = self
            .initial_cluster
            .iter()
            .map(|(member, url)| (member.clone(), url_text(url)))
            .collect();
        let checked = match self.initial_cluster_state {
            ClusterState::New => {
                let advertised: Vec<String> = self.initial_advertise_peer_urls.iter().map(url_text).collect();
                cluster::check_new_member(&self.name, &cluster, &advertised)
            }
            ClusterState::Existing => cluster::check_joining_member(&self.name, &cluster),
        };
        checked.map_err(ConfigError::Invalid)
    }
}

/// What the command line asks for.
// Built once at startup and matched at once: boxing the config would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Loaded {
    /// Start the server.
    Run(Config),
    /// Print `message` (`--help`, `--version`; it ends in a newline) on stdout and exit.
    Exit { message: String, code: i32 },
}

/// Why the configuration was refused. Its text is etcd's wherever etcd has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The command line does not parse (etcd prints its usage and exits with status 2).
    #[error("{0}")]
    Usage(String),
    /// An `ETCD_*` variable is also given as a flag on the command line.
    #[error(
        "conflicting environment variable \"{0}\" is shadowed by corresponding command-line flag \
         (either unset environment variable or disable flag)"
    )]
    ShadowedEnv(String),
    /// The flags and variables parse but do not make a valid configuration.
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// The exit status etcd uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Usage(_) => 2,
            ConfigError::ShadowedEnv(_) | ConfigError::Invalid(_) => 1,
        }
    }
}

/// Resolves the configuration from `args` (the program name first, as `std::env::args_os`
/// gives them) and `env` (the process environment), with etcd 3.4's rules: command-line
/// flags, then `ETCD_*` variables for flags not given (and those of an etcd.conf given as
/// `--config-file`), then validation; or etcd's YAML file alone. `check-config` as the first
/// argument checks instead of starting.
///
/// The checks etcd makes only when a member has no data yet are in [`Config::verify_bootstrap`].
pub fn load(args: Vec<OsString>, env: &BTreeMap<String, String>) -> Result<Loaded, ConfigError> {
    let args = utf8_args(args)?;
    if args.first().map(String::as_str) == Some(CHECK_COMMAND) {
        return Ok(check::run(&args[1..], env));
    }
    match resolve(&args, env)? {
        Resolved::Exit(loaded) => Ok(loaded),
        Resolved::Checked(Checked {
            config: Some(config), ..
        }) => Ok(Loaded::Run(config)),
        Resolved::Checked(Checked { problems, .. }) => Err(resolve::first_error(problems)),
    }
}

fn exit(message: String) -> Loaded {
    let message = format!("{}\n", message.trim_end());
    Loaded::Exit { message, code: 0 }
}

fn version_text() -> String {
    format!("ferrocd Version: {}\netcd API Version: 3.4", env!("CARGO_PKG_VERSION"))
}

/// The arguments after the program name, which must be UTF-8.
fn utf8_args(args: Vec<OsString>) -> Result<Vec<String>, ConfigError> {
    args.into_iter()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| ConfigError::Usage(format!("argument is not UTF-8: {:?}", arg.to_string_lossy())))
        })
        .collect()
}

#[cfg(test)]
mod file_tests;
#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "http://127.0.0.1:32380";
    const CLIENT: &str = "http://127.0.0.1:32379";

    fn load_with(args: &[&str], env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        let args = std::iter::once("ferrocd").chain(args.iter().copied());
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        load(args.map(OsString::from).collect(), &env)
    }

    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match load_with(args, env) {
            Ok(Loaded::Run(config)) => config,
            other => panic!("{args:?} {env:?}: {other:?}"),
        }
    }

    fn error(args: &[&str], env: &[(&str, &str)]) -> String {
        load_with(args, env).unwrap_err().to_string()
    }

    fn urls(list: &[&str]) -> Vec<Url> {
        list.iter().map(|u| Url::parse(u).unwrap()).collect()
    }

    #[test]
    fn defaults_match_etcd() {
        let c = config(&[], &[]);
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
        assert_eq!(c.listen_client_urls, urls(&["http://localhost:2379"]));
        assert_eq!(c.advertise_client_urls, urls(&["http://localhost:2379"]));
        assert_eq!(c.listen_peer_urls, urls(&["http://localhost:2380"]));
        assert_eq!(c.initial_advertise_peer_urls, urls(&["http://localhost:2380"]));
        let default_member = ("default".to_string(), urls(&["http://localhost:2380"])[0].clone());
        assert_eq!(c.initial_cluster, vec![default_member]);
        assert_eq!(c.initial_cluster_state, ClusterState::New);
        assert_eq!(c.initial_cluster_token, "etcd-cluster");
        assert_eq!(c.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(c.election_timeout, Duration::from_millis(1000));
        assert_eq!(c.snapshot_count, 100_000);
        assert_eq!(c.quota_backend_bytes, build::DEFAULT_QUOTA_BYTES);
        assert_eq!((c.max_request_bytes, c.max_txn_ops), (1_572_864, 128));
        assert_eq!(c.auto_compaction, None);
        assert_eq!(c.log_level, "info");
        assert!(!c.force_new_cluster && c.strict_reconfig_check);
        assert_eq!(
            (c.worker_threads, c.user.as_deref(), c.log_format),
            (0, None, LogFormat::Text)
        );
        assert!(!c.journal);
        assert_eq!(
            c.warnings,
            ["no data-dir provided, using default data-dir ./default.etcd"]
        );
        assert_eq!(c.verify_bootstrap(), Ok(()));
    }

    #[test]
    fn a_cluster_member_from_flags() {
        let own = config(
            &["--worker-threads=4", "--user", "etcd", "--log-format=json"],
            &[("JOURNAL_STREAM", "8:1")],
        );
        assert_eq!((own.worker_threads, own.user.as_deref()), (4, Some("etcd")));
        assert_eq!((own.log_format, own.journal), (LogFormat::Json, true));
        let c = config(
            &[
                "-name",
                "m1",
                "--data-dir=/var/lib/m1",
                "--listen-client-urls",
                CLIENT,
                "--advertise-client-urls",
                CLIENT,
                "--listen-peer-urls",
                PEER,
                "--initial-advertise-peer-urls",
                PEER,
                "--initial-cluster",
                "m2=http://127.0.0.1:32381,m1=http://127.0.0.1:32380",
                "--initial-cluster-state=existing",
                "--initial-cluster-token",
                "t",
                "--heartbeat-interval=50",
                "--election-timeout=500",
                "--snapshot-count=0x10",
                "--quota-backend-bytes=1024",
                "--max-request-bytes=10",
                "--max-txn-ops=5",
                "--log-level=debug",
                "--force-new-cluster",
                "--strict-reconfig-check=false",
            ],
            &[],
        );
        assert_eq!((c.name.as_str(), c.data_dir.to_str()), ("m1", Some("/var/lib/m1")));
        assert_eq!(c.listen_client_urls, urls(&[CLIENT]));
        assert_eq!(c.initial_cluster[0].0, "m1");
        assert_eq!(c.initial_cluster[1].1, urls(&["http://127.0.0.1:32381"])[0]);
        assert_eq!(c.initial_cluster_state, ClusterState::Existing);
        assert_eq!(c.initial_cluster_token, "t");
        assert_eq!(c.heartbeat_interval, Duration::from_millis(50));
        assert_eq!(c.election_timeout, Duration::from_millis(500));
        assert_eq!((c.snapshot_count, c.quota_backend_bytes), (16, 1024));
        assert_eq!((c.max_request_bytes, c.max_txn_ops), (10, 5));
        assert_eq!(c.log_level, "debug");
        assert!(c.force_new_cluster && !c.strict_reconfig_check);
        assert_eq!(c.verify_bootstrap(), Ok(()));
    }

    #[test]
    fn a_cluster_member_from_env_only() {
        let c = config(
            &[],
            &[
                ("ETCD_NAME", "node1"),
                ("ETCD_DATA_DIR", "/tmp/node1.data"),
                ("ETCD_LISTEN_CLIENT_URLS", CLIENT),
                ("ETCD_ADVERTISE_CLIENT_URLS", CLIENT),
                ("ETCD_LISTEN_PEER_URLS", PEER),
                ("ETCD_INITIAL_ADVERTISE_PEER_URLS", PEER),
                (
                    "ETCD_INITIAL_CLUSTER",
                    "node1=http://127.0.0.1:32380,node2=http://127.0.0.1:32382",
                ),
                ("ETCD_INITIAL_CLUSTER_STATE", "new"),
                ("ETCD_INITIAL_CLUSTER_TOKEN", "tok"),
            ],
        );
        assert_eq!(c.name, "node1");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/node1.data"));
        assert_eq!(c.advertise_client_urls, urls(&[CLIENT]));
        assert_eq!(c.initial_cluster.len(), 2);
        assert_eq!(c.initial_cluster_token, "tok");
        assert!(c.warnings.is_empty());
        assert_eq!(c.verify_bootstrap(), Ok(()));
    }

    #[test]
    fn help_and_version_exit() {
        let Ok(Loaded::Exit { message, code: 0 }) = load_with(&["-h"], &[]) else {
            panic!("no help");
        };
        assert!(message.contains("--heartbeat-interval <N>") && message.contains("--version"));
        let Ok(Loaded::Exit { message, code: 0 }) = load_with(&["--version"], &[("ETCD_NAME", "x")]) else {
            panic!("no version");
        };
        let expected = format!(
            "ferrocd Version: {}\netcd API Version: 3.4\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(message, expected);
        assert_eq!(error(&["--version", "extra"], &[]), "'extra' is not a valid flag");
    }

    #[test]
    fn command_line_errors_and_exit_codes() {
        let unknown = load_with(&["--foo"], &[]).unwrap_err();
        assert_eq!(unknown.to_string(), "flag provided but not defined: -foo");
        assert_eq!(unknown.exit_code(), 2);
        let positional = load_with(&["--name=a", "foo", "--bar"], &[]).unwrap_err();
        assert_eq!(positional, ConfigError::Invalid("'foo' is not a valid flag".into()));
        assert_eq!(positional.exit_code(), 1);
        assert_eq!(
            error(&["-heartbeat-interval", "x"], &[]),
            r#"invalid value "x" for flag -heartbeat-interval: parse error"#
        );
    }

    #[test]
    fn env_conflicts_with_the_command_line() {
        let e = load_with(&["--name", "b"], &[("ETCD_NAME", "a")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding \
             command-line flag (either unset environment variable or disable flag)"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn warnings_for_env_and_flags_ferrocd_ignores() {
        let c = config(
            &["--cluster-active-size=3", "--data-dir=d"],
            &[("ETCD_FOO", "bar"), ("ETCD_ENABLE_PPROF", "true")],
        );
        assert_eq!(
            c.warnings,
            [
                "flag \"-cluster-active-size\" is no longer supported - ignoring.",
                "unrecognized environment variable ETCD_FOO=bar",
                "flag --enable-pprof is accepted for compatibility but ferrocd does not act on it",
            ]
        );
    }

    #[test]
    fn validation_errors_use_etcds_texts() {
        let cases: &[(&[&str], &str)] = &[
            (&["--log-level=WARN"], r#"unknown level "WARN""#),
            (
                &["--listen-peer-urls=http://foo:1"],
                "expected IP in URL for binding (http://foo:1)",
            ),
            (
                &["--listen-metrics-urls=http://:1"],
                "expected IP in URL for binding (http://:1)",
            ),
            (
                &["--initial-advertise-peer-urls=http://:1"],
                r#"--initial-advertise-peer-urls "http://:1" must be "host:port" (unexpected empty host (http://:1))"#,
            ),
            (
                &["--discovery=http://d", "--discovery-srv=example.com"],
                r#"multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv""#,
            ),
            (
                &["--heartbeat-interval=0"],
                "--heartbeat-interval must be >0 (set to 0ms)",
            ),
            (&["--election-timeout=0"], "--election-timeout must be >0 (set to 0ms)"),
            (
                &["--election-timeout=499"],
                "--election-timeout[499ms] should be at least as 5 times as --heartbeat-interval[100ms]",
            ),
            (
                &["--election-timeout=60000", "--heartbeat-interval=1000"],
                "--election-timeout[60000ms] is too long, and should be set less than 50000ms",
            ),
            (
                &["--listen-client-urls=http://localhost:2379"],
                "--advertise-client-urls is required when --listen-client-urls is set explicitly",
            ),
            (&["--auto-compaction-mode=foo"], r#"unknown auto-compaction-mode "foo""#),
        ];
        for (args, message) in cases {
            assert_eq!(error(args, &[]), *message, "{args:?}");
        }
    }

    #[test]
    fn advertise_client_urls_rule_counts_env_and_spares_proxies() {
        assert_eq!(
            error(&[], &[("ETCD_LISTEN_CLIENT_URLS", CLIENT)]),
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
        );
        let c = config(&["--listen-client-urls", CLIENT, "--proxy=on"], &[]);
        assert_eq!(c.listen_client_urls, urls(&[CLIENT]));
    }

    #[test]
    fn initial_cluster_defaults_from_name_and_advertised_urls() {
        let c = config(&["--name", "x", "--initial-advertise-peer-urls", PEER], &[]);
        assert_eq!(c.initial_cluster, vec![("x".to_string(), urls(&[PEER])[0].clone())]);
        assert_eq!(c.data_dir, PathBuf::from("x.etcd"));
        assert_eq!(c.warnings, ["no data-dir provided, using default data-dir ./x.etcd"]);
        assert_eq!(c.verify_bootstrap(), Ok(()));
    }

    #[test]
    fn initial_cluster_errors() {
        assert_eq!(
            error(&["--initial-cluster=default=http://localhost:2380,b=ftp://x"], &[]),
            "error setting up initial cluster: URL scheme must be http, https, unix, or unixs: ftp://x"
        );
        assert_eq!(
            error(&["--listen-peer-urls=unix://localhost:1"], &[]),
            "ferrocd serves only http and https URLs: unix://localhost:1"
        );
    }

    #[test]
    fn bootstrap_checks_name_urls_and_duplicates() {
        let name_missing = config(&["--name=b", "--initial-cluster", "a=http://localhost:2380"], &[]);
        assert_eq!(
            name_missing.verify_bootstrap().unwrap_err().to_string(),
            r#"couldn't find local name "b" in the initial cluster configuration"#
        );
        let mismatch = config(&["--initial-advertise-peer-urls", PEER], &[]);
        assert_eq!(
            mismatch.verify_bootstrap().unwrap_err().to_string(),
            format!(
                "--initial-cluster has default=http://localhost:2380 but missing from \
                 --initial-advertise-peer-urls={PEER} (resolved urls: \"{PEER}\" != \"http://localhost:2380\")"
            )
        );
        let spec = format!("default={PEER},b={PEER}");
        let joining = config(
            &[
                "--initial-advertise-peer-urls",
                PEER,
                "--initial-cluster",
                &spec,
                "--initial-cluster-state",
                "existing",
            ],
            &[],
        );
        assert_eq!(
            joining.verify_bootstrap().unwrap_err().to_string(),
            format!("initial cluster b={PEER},default={PEER} has duplicate url")
        );
    }
}
