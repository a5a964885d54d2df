//! Flag values with where each came from: the command line, then `ETCD_*` variables with
//! etcd's precedence and warnings (or etcd's YAML file instead of both), then the validation
//! etcd runs before it starts. Every problem is collected, not only the first.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use clap::parser::ValueSource;
use clap::ArgMatches;

use super::file::Assignment;
use super::flags::{self, Flag, Kind, Value, FLAGS};
use super::problem::{About, Problem};
use super::{go_syntax, ConfigError};

/// etcd's `--initial-cluster` default; when it is left as is and `--name` is not "default",
/// etcd builds the initial cluster from the name and advertised peer URLs instead.
const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";

/// The longest election timeout etcd accepts, in milliseconds.
const MAX_ELECTION_MS: u64 = 50_000;

/// The log levels etcd knows.
const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error", "dpanic", "panic", "fatal"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Default,
    CommandLine,
    Env,
    /// etcd's YAML configuration file.
    Yaml,
}

/// Every flag's value and where it came from.
#[derive(Debug)]
pub struct Settings {
    values: BTreeMap<&'static str, (Value, Source)>,
    /// Whether the values come from etcd's YAML file, which etcd reads without its
    /// command-line conveniences (such as the initial cluster built from `--name`).
    yaml: bool,
}

impl Settings {
    /// The command-line values clap collected, defaults for the rest.
    pub fn from_matches(matches: &ArgMatches) -> Result<Settings, ConfigError> {
        let mut values = BTreeMap::new();
        for flag in FLAGS {
            let given = matches
                .get_one::<String>(flag.name)
                .filter(|_| matches.value_source(flag.name) == Some(ValueSource::CommandLine));
            let (raw, source) = match given {
                Some(raw) => (raw.as_str(), Source::CommandLine),
                None => (flag.default, Source::Default),
            };
            let value = flag
                .parse(raw)
                .map_err(|why| ConfigError::Usage(format!("invalid value {raw:?} for flag -{}: {why}", flag.name)))?;
            values.insert(flag.name, (value, source));
        }
        Ok(Settings { values, yaml: false })
    }

    /// etcd's YAML file in place of the command line and the environment: every flag at its
    /// default, then the file's keys. An unknown key is ignored with a warning.
    pub fn from_yaml(assignments: &[Assignment]) -> (Settings, Vec<Problem>) {
        let values = FLAGS
            .iter()
            .map(|flag| {
                let value = flag.parse(flag.default).expect("defaults are valid");
                (flag.name, (value, Source::Default))
            })
            .collect();
        let mut settings = Settings { values, yaml: true };
        let mut problems = Vec::new();
        for Assignment { key, value, .. } in assignments {
            let about = About::Key(key.clone());
            let flag = flags::find(key).filter(|flag| !matches!(flag.name, "config-file" | "version"));
            let Some(flag) = flag.filter(|flag| flag.kind != Kind::Legacy) else {
                problems.push(Problem::warning(format!("unknown key {key:?} is ignored"), about));
                continue;
            };
            match flag.parse(value) {
                Ok(parsed) => {
                    settings.values.insert(flag.name, (parsed, Source::Yaml));
                }
                Err(why) => problems.push(Problem::invalid(
                    format!("invalid value {value:?} for {key}: {why}"),
                    about,
                )),
            }
        }
        (settings, problems)
    }

    /// The flags given on the command line.
    pub fn command_line_flags(&self) -> Vec<&'static str> {
        FLAGS
            .iter()
            .filter(|flag| self.source(flag.name) == Source::CommandLine)
            .map(|flag| flag.name)
            .collect()
    }

    /// etcd's `SetFlagsFromEnv`: each flag not given on the command line takes its non-empty
    /// `ETCD_*` variable. A variable for a flag that is on the command line is fatal, even
    /// when empty; any other unused `ETCD_*` variable (an empty one included) only warns.
    /// Of several bad values, the last flag's in name order comes first: etcd reports that one.
    pub fn overlay_env(&mut self, env: &BTreeMap<String, String>) -> Vec<Problem> {
        let on_command_line: BTreeSet<String> = FLAGS
            .iter()
            .filter(|flag| self.source(flag.name) == Source::CommandLine)
            .map(Flag::env_var)
            .collect();
        let mut by_name: Vec<&Flag> = FLAGS.iter().collect();
        by_name.sort_by_key(|flag| flag.name);
        let mut warnings = Vec::new();
        let mut errors = Vec::new();
        for flag in by_name {
            let var = flag.env_var();
            let Some(raw) = env.get(&var).filter(|raw| !raw.is_empty()) else {
                continue;
            };
            if on_command_line.contains(&var) {
                continue;
            }
            match flag.parse(raw) {
                Ok(value) => {
                    warnings.extend(legacy_warning(flag));
                    self.values.insert(flag.name, (value, Source::Env));
                }
                Err(why) => {
                    let message = format!("invalid value {raw:?} for {var}: {why}");
                    errors.insert(0, Problem::invalid(message, About::Key(var)));
                }
            }
        }
        let mut problems = unused_env_problems(env, &on_command_line);
        problems.extend(errors);
        problems.extend(warnings);
        problems
    }

    /// etcd's warnings for the etcd 2 flags given on the command line.
    pub fn legacy_warnings(&self) -> Vec<Problem> {
        self.set_flags().filter_map(legacy_warning).collect()
    }

    /// A warning for each flag that was set but that ferrocd does not act on.
    pub fn unacted_warnings(&self) -> Vec<Problem> {
        self.set_flags()
            .filter(|flag| !flag.acted && flag.kind != Kind::Legacy)
            .map(|flag| {
                let text = format!(
                    "flag --{} is accepted for compatibility but ferrocd does not act on it",
                    flag.name
                );
                Problem::warning(text, About::Flag(flag.name))
            })
            .collect()
    }

    /// Advertised URLs on an unspecified address (`0.0.0.0`, `[::]`): etcd accepts them, but a
    /// client or peer told to dial them reaches itself.
    pub fn unspecified_address_warnings(&self) -> Vec<Problem> {
        ["advertise-client-urls", "initial-advertise-peer-urls"]
            .into_iter()
            .flat_map(|name| self.urls(name).into_iter().map(move |url| (name, url)))
            .filter(|(_, url)| {
                let host = go_syntax::url_host(url).trim_start_matches('[').trim_end_matches(']');
                host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
            })
            .map(|(name, url)| {
                let text = format!(
                    "--{name} has {url}, which clients cannot use: it is the address to listen on \
                     every interface, not one to connect to; advertise this host's address"
                );
                Problem::warning(text, About::Flag(name))
            })
            .collect()
    }

    fn set_flags(&self) -> impl Iterator<Item = &'static Flag> + '_ {
        FLAGS.iter().filter(|flag| self.source(flag.name) != Source::Default)
    }

    /// The checks of etcd's `Config.Validate`, in its order; etcd stops at the first error.
    pub fn validate(&self) -> Vec<Problem> {
        type Check = fn(&Settings) -> Result<(), String>;
        let checks: [(&'static [&'static str], Check); 7] = [
            (&["log-level"], Settings::check_log_level),
            (
                &["listen-peer-urls", "listen-client-urls", "listen-metrics-urls"],
                Settings::check_bind_urls,
            ),
            (
                &["initial-advertise-peer-urls", "advertise-client-urls"],
                Settings::check_advertised_urls,
            ),
            (
                &["initial-cluster", "discovery", "discovery-srv"],
                Settings::check_bootstrap_flags,
            ),
            (&["election-timeout", "heartbeat-interval"], Settings::check_timing),
            (&["listen-client-urls"], Settings::check_advertise_client_urls_given),
            (&["auto-compaction-mode"], Settings::check_compaction_mode),
        ];
        checks
            .into_iter()
            .filter_map(|(flags, check)| check(self).err().map(|e| Problem::invalid(e, About::Flags(flags))))
            .collect()
    }

    fn check_log_level(&self) -> Result<(), String> {
        let level = self.text("log-level");
        if LOG_LEVELS.contains(&level) {
            Ok(())
        } else {
            Err(format!("unknown level {level:?}"))
        }
    }

    /// Listening URLs must name an IP address or "localhost".
    fn check_bind_urls(&self) -> Result<(), String> {
        for name in ["listen-peer-urls", "listen-client-urls", "listen-metrics-urls"] {
            for url in self.urls(name) {
                let host = go_syntax::url_host(&url);
                let unix = url.starts_with("unix://") || url.starts_with("unixs://");
                if !unix && host != "localhost" && host.parse::<IpAddr>().is_err() {
                    return Err(format!("expected IP in URL for binding ({url})"));
                }
            }
        }
        Ok(())
    }

    /// Advertised URLs must have a host.
    fn check_advertised_urls(&self) -> Result<(), String> {
        for name in ["initial-advertise-peer-urls", "advertise-client-urls"] {
            let urls = self.urls(name);
            let hostless = urls.iter().find(|url| go_syntax::url_host(url).is_empty());
            if let Some(url) = hostless {
                return Err(format!(
                    "--{name} {:?} must be \"host:port\" (unexpected empty host ({url}))",
                    urls.join(",")
                ));
            }
        }
        Ok(())
    }

    fn check_bootstrap_flags(&self) -> Result<(), String> {
        let initial_cluster = self.initial_cluster();
        let ways = [self.text("discovery"), &initial_cluster, self.text("discovery-srv")];
        if ways.iter().filter(|way| !way.is_empty()).count() > 1 {
            return Err("multiple discovery or bootstrap flags are set. Choose one of \
                        \"initial-cluster\", \"discovery\" or \"discovery-srv\""
                .to_string());
        }
        Ok(())
    }

    fn check_timing(&self) -> Result<(), String> {
        let tick = self.uint("heartbeat-interval");
        let election = self.uint("election-timeout");
        if tick == 0 {
            return Err(format!("--heartbeat-interval must be >0 (set to {tick}ms)"));
        }
        if election == 0 {
            return Err(format!("--election-timeout must be >0 (set to {election}ms)"));
        }
        if tick.saturating_mul(5) > election {
            return Err(format!(
                "--election-timeout[{election}ms] should be at least as 5 times as \
                 --heartbeat-interval[{tick}ms]"
            ));
        }
        if election > MAX_ELECTION_MS {
            return Err(format!(
                "--election-timeout[{election}ms] is too long, and should be set less than \
                 {MAX_ELECTION_MS}ms"
            ));
        }
        Ok(())
    }

    /// Listening on chosen client URLs requires saying which to advertise (unless a v2 proxy).
    fn check_advertise_client_urls_given(&self) -> Result<(), String> {
        let from_flags = |name| matches!(self.source(name), Source::CommandLine | Source::Env);
        let listens = from_flags("listen-client-urls");
        let advertises = self.source("advertise-client-urls") != Source::Default;
        if listens && !advertises && self.text("proxy") == "off" {
            return Err("--advertise-client-urls is required when --listen-client-urls is set explicitly".to_string());
        }
        Ok(())
    }

    fn check_compaction_mode(&self) -> Result<(), String> {
        match self.text("auto-compaction-mode") {
            "" | "periodic" | "revision" => Ok(()),
            mode => Err(format!("unknown auto-compaction-mode {mode:?}")),
        }
    }

    /// `--initial-cluster` as etcd uses it: emptied by discovery flags when not given, and
    /// built from `--name` and the advertised peer URLs when left at its default.
    pub fn initial_cluster(&self) -> String {
        let given = self.text("initial-cluster");
        let discovery = ["discovery", "discovery-srv", "discovery-srv-name"]
            .iter()
            .any(|name| !self.text(name).is_empty());
        if discovery && self.source("initial-cluster") == Source::Default {
            return String::new();
        }
        let name = self.text("name");
        if self.yaml || name == "default" || given != DEFAULT_INITIAL_CLUSTER {
            return given.to_string();
        }
        let member = if name.is_empty() { "default" } else { name };
        let pairs: Vec<String> = self
            .urls("initial-advertise-peer-urls")
            .iter()
            .map(|url| format!("{member}={url}"))
            .collect();
        pairs.join(",")
    }

    fn source(&self, name: &str) -> Source {
        self.values[name].1
    }

    fn value(&self, name: &str) -> &Value {
        &self.values[name].0
    }

    /// Whether `name` was set (command line, environment or file) rather than left at its default.
    pub fn is_set(&self, name: &str) -> bool {
        self.source(name) != Source::Default
    }

    pub fn text(&self, name: &str) -> &str {
        match self.value(name) {
            Value::Text(text) => text,
            other => unreachable!("--{name} is not text: {other:?}"),
        }
    }

    pub fn uint(&self, name: &str) -> u64 {
        match self.value(name) {
            Value::Uint(n) => *n,
            other => unreachable!("--{name} is not unsigned: {other:?}"),
        }
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.value(name) {
            Value::Int(n) => *n,
            other => unreachable!("--{name} is not an integer: {other:?}"),
        }
    }

    pub fn duration(&self, name: &str) -> std::time::Duration {
        match self.value(name) {
            Value::Duration(nanos) => std::time::Duration::from_nanos((*nanos).max(0) as u64),
            other => unreachable!("--{name} is not a duration: {other:?}"),
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        match self.value(name) {
            Value::Bool(b) => *b,
            other => unreachable!("--{name} is not a boolean: {other:?}"),
        }
    }

    pub fn urls(&self, name: &str) -> Vec<String> {
        match self.value(name) {
            Value::Urls(urls) => urls.clone(),
            other => unreachable!("--{name} is not a URL list: {other:?}"),
        }
    }
}

/// etcd's `verifyEnv`: a variable repeating a command-line flag is fatal; an `ETCD_*`
/// variable that set no flag is only reported. The fatal ones come first.
fn unused_env_problems(env: &BTreeMap<String, String>, on_command_line: &BTreeSet<String>) -> Vec<Problem> {
    let flag_vars: BTreeSet<String> = FLAGS.iter().map(Flag::env_var).collect();
    let mut problems = Vec::new();
    for (var, value) in env {
        let about = About::Key(var.clone());
        if on_command_line.contains(var) {
            problems.insert(0, Problem::error(ConfigError::ShadowedEnv(var.clone()), about));
            continue;
        }
        let used = flag_vars.contains(var) && !value.is_empty();
        if !used && var.starts_with("ETCD_") {
            problems.push(Problem::warning(
                format!("unrecognized environment variable {var}={value}"),
                about,
            ));
        }
    }
    problems
}

/// etcd's warning when an etcd 2 flag is set.
fn legacy_warning(flag: &Flag) -> Option<Problem> {
    (flag.kind == Kind::Legacy).then(|| {
        let text = format!("flag \"-{}\" is no longer supported - ignoring.", flag.name);
        Problem::warning(text, About::Flag(flag.name))
    })
}

#[cfg(test)]
mod tests {
    use super::super::flags;
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let flags::CommandLine::Flags(scanned) = flags::scan(&args).unwrap() else {
            panic!("help requested");
        };
        Settings::from_matches(&flags::matches(&scanned).unwrap()).unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The warnings, or the first error.
    fn outcome(problems: Vec<Problem>) -> Result<Vec<String>, ConfigError> {
        match problems.iter().find_map(|p| match &p.severity {
            super::super::problem::Severity::Error(e) => Some(e.clone()),
            _ => None,
        }) {
            Some(error) => Err(error),
            None => Ok(problems.iter().map(Problem::text).collect()),
        }
    }

    #[test]
    fn env_fills_flags_not_on_the_command_line() {
        let mut s = settings(&["--name=cli"]);
        let warnings = s.overlay_env(&env(&[("ETCD_DATA_DIR", "/d"), ("ETCD_SNAPSHOT_COUNT", "7")]));
        assert_eq!(warnings, []);
        assert_eq!((s.text("name"), s.text("data-dir")), ("cli", "/d"));
        assert_eq!(s.uint("snapshot-count"), 7);
    }

    #[test]
    fn env_repeating_a_command_line_flag_is_fatal_even_when_empty() {
        for value in ["a", ""] {
            let result = outcome(settings(&["--name=b"]).overlay_env(&env(&[("ETCD_NAME", value)])));
            assert_eq!(result, Err(ConfigError::ShadowedEnv("ETCD_NAME".into())));
        }
    }

    #[test]
    fn unknown_and_empty_variables_warn() {
        let vars = env(&[
            ("ETCD_FOO", "bar"),
            ("ETCD_DATA_DIR", ""),
            ("ETCD_UNSUPPORTED_ARCH", "arm"),
            ("ETCDCTL_API", "3"),
            ("PATH", "/bin"),
        ]);
        let mut s = settings(&[]);
        assert_eq!(
            outcome(s.overlay_env(&vars)).unwrap(),
            [
                "unrecognized environment variable ETCD_DATA_DIR=",
                "unrecognized environment variable ETCD_FOO=bar",
                "unrecognized environment variable ETCD_UNSUPPORTED_ARCH=arm",
            ]
        );
        assert_eq!(s.source("data-dir"), Source::Default);
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let cases = [
            ("ETCD_HEARTBEAT_INTERVAL", "abc", "parse error"),
            ("ETCD_FORCE_NEW_CLUSTER", "yes", "parse error"),
            ("ETCD_VERSION", "3.4", "parse error"),
            ("ETCD_INITIAL_CLUSTER_STATE", "foo", "invalid value"),
            (
                "ETCD_LISTEN_CLIENT_URLS",
                "ftp://a:1",
                "URL scheme must be http, https, unix, or unixs: ftp://a:1",
            ),
        ];
        for (var, value, why) in cases {
            let result = outcome(settings(&[]).overlay_env(&env(&[(var, value)])));
            let message = format!("invalid value {value:?} for {var}: {why}");
            assert_eq!(result, Err(ConfigError::Invalid(message)));
        }
    }

    #[test]
    fn a_shadowed_variable_wins_over_a_bad_value() {
        let vars = env(&[("ETCD_NAME", "a"), ("ETCD_SNAPSHOT_COUNT", "x")]);
        let result = outcome(settings(&["-name", "b"]).overlay_env(&vars));
        assert_eq!(result, Err(ConfigError::ShadowedEnv("ETCD_NAME".into())));
    }

    #[test]
    fn legacy_and_unacted_flags_warn() {
        let mut s = settings(&["--force", "--pre-vote"]);
        let env_warnings = outcome(s.overlay_env(&env(&[("ETCD_V", "x"), ("ETCD_CORS", "*")]))).unwrap();
        assert_eq!(env_warnings, ["flag \"-v\" is no longer supported - ignoring."]);
        assert_eq!(s.legacy_warnings().len(), 2);
        assert_eq!(
            outcome(s.unacted_warnings()).unwrap(),
            [
                "flag --pre-vote is accepted for compatibility but ferrocd does not act on it",
                "flag --cors is accepted for compatibility but ferrocd does not act on it",
            ]
        );
    }

    #[test]
    fn empty_url_flag_keeps_the_default() {
        assert_eq!(
            settings(&["--listen-client-urls="]).urls("listen-client-urls"),
            ["http://localhost:2379"]
        );
        assert_eq!(settings(&[]).urls("listen-metrics-urls"), Vec::<String>::new());
    }

    #[test]
    fn initial_cluster_follows_name_and_discovery() {
        let peer = "--initial-advertise-peer-urls=http://10.0.0.1:2380,http://10.0.0.2:2380";
        assert_eq!(
            settings(&["--name=m1", peer]).initial_cluster(),
            "m1=http://10.0.0.1:2380,m1=http://10.0.0.2:2380"
        );
        assert_eq!(settings(&[peer]).initial_cluster(), DEFAULT_INITIAL_CLUSTER);
        assert_eq!(
            settings(&["--name=m1", "--initial-cluster=m1=http://a:1"]).initial_cluster(),
            "m1=http://a:1"
        );
        assert_eq!(settings(&["--discovery-srv=example.com"]).initial_cluster(), "");
    }
}
