//! Turning checked settings into a [`Config`]: etcd's start-time readings of the data
//! directory, initial cluster, quota and compaction retention, and URLs as `Url`s.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::problem::{About, Problem};
use super::settings::Settings;
use super::{cluster, go_syntax, logging, tls, AutoCompaction, ClusterState, Config, ConfigError, LogFormat};

/// Backend quota etcd uses when `--quota-backend-bytes` is 0.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The default data directory's warning, when `--data-dir` is not given.
pub fn data_dir_warning(settings: &Settings) -> Option<Problem> {
    settings.text("data-dir").is_empty().then(|| {
        let dir = data_dir(settings.text("name"), "");
        let text = format!("no data-dir provided, using default data-dir ./{}", dir.display());
        Problem::warning(text, About::Flag("data-dir"))
    })
}

/// The configuration the settings describe, without warnings. `journal` says whether stderr
/// goes to systemd's journal.
pub fn config(settings: &Settings, journal: bool) -> Result<Config, Problem> {
    let name = settings.text("name").to_string();
    let about = |flag| move |e: ConfigError| Problem::error(e, About::Flag(flag));
    let urls = |flag| to_urls(&settings.urls(flag)).map_err(about(flag));
    let initial_cluster = cluster::parse(&settings.initial_cluster())
        .map_err(|e| ConfigError::Invalid(format!("error setting up initial cluster: {e}")))
        .map_err(about("initial-cluster"))?;
    let auto_compaction = auto_compaction(
        settings.text("auto-compaction-mode"),
        settings.text("auto-compaction-retention"),
    )
    .map_err(about("auto-compaction-retention"))?;
    let user = Some(settings.text("user").to_string()).filter(|user| !user.is_empty());
    let tls = tls::build(settings)?;
    let listen_client_urls = urls("listen-client-urls")?;
    let listen_peer_urls = urls("listen-peer-urls")?;
    let listen_metrics_urls = urls("listen-metrics-urls")?;
    let refused = tls::listener_problems(&tls, &listen_client_urls, &listen_metrics_urls, &listen_peer_urls);
    if let Some(problem) = refused.into_iter().next() {
        return Err(problem);
    }
    let auth_token = settings.text("auth-token").to_string();
    let auth_token_ttl = Duration::from_secs(settings.uint("auth-token-ttl"));
    crate::auth::TokenConfig::parse(&auth_token, auth_token_ttl)
        .map_err(|e| ConfigError::Invalid(format!("invalid --auth-token: {e:#}")))
        .map_err(about("auth-token"))?;
    let bcrypt_cost = u32::try_from(settings.uint("bcrypt-cost")).unwrap_or(u32::MAX);
    if !(4..=31).contains(&bcrypt_cost) {
        let e = ConfigError::Invalid(format!(
            "invalid --bcrypt-cost {bcrypt_cost}: it must be between 4 and 31"
        ));
        return Err(about("bcrypt-cost")(e));
    }
    Ok(Config {
        data_dir: data_dir(&name, settings.text("data-dir")),
        listen_client_urls,
        advertise_client_urls: urls("advertise-client-urls")?,
        listen_peer_urls,
        listen_metrics_urls,
        metrics_extensive: settings.text("metrics") == "extensive",
        initial_advertise_peer_urls: urls("initial-advertise-peer-urls")?,
        initial_cluster: initial_cluster
            .into_iter()
            .map(|(member, url)| Ok((member, to_url(&url)?)))
            .collect::<Result<_, ConfigError>>()
            .map_err(about("initial-cluster"))?,
        initial_cluster_state: match settings.text("initial-cluster-state") {
            "existing" => ClusterState::Existing,
            _ => ClusterState::New,
        },
        initial_cluster_token: settings.text("initial-cluster-token").to_string(),
        heartbeat_interval: Duration::from_millis(settings.uint("heartbeat-interval")),
        election_timeout: Duration::from_millis(settings.uint("election-timeout")),
        snapshot_count: settings.uint("snapshot-count"),
        quota_backend_bytes: quota(settings.int("quota-backend-bytes")),
        max_request_bytes: to_usize(settings.uint("max-request-bytes")),
        max_txn_ops: to_usize(settings.uint("max-txn-ops")),
        auth_token,
        auth_token_ttl,
        bcrypt_cost,
        auto_compaction,
        watch_progress_notify_interval: settings.duration("experimental-watch-progress-notify-interval"),
        log_level: settings.text("log-level").to_string(),
        force_new_cluster: settings.bool("force-new-cluster"),
        strict_reconfig_check: settings.bool("strict-reconfig-check"),
        enable_v2: settings.bool("enable-v2"),
        worker_threads: to_usize(settings.uint("worker-threads")),
        user,
        log_format: match settings.text("log-format") {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        },
        log_outputs: logging::outputs(settings),
        journal,
        tls,
        warnings: Vec::new(),
        name,
    })
}

/// etcd's data directory: `--data-dir`, or `<name>.etcd` when it is empty.
fn data_dir(name: &str, dir: &str) -> PathBuf {
    if dir.is_empty() {
        PathBuf::from(format!("{name}.etcd"))
    } else {
        PathBuf::from(dir)
    }
}

/// The effective quota: 0 means etcd's default, a negative value means none.
fn quota(bytes: i64) -> u64 {
    match u64::try_from(bytes) {
        Ok(0) => DEFAULT_QUOTA_BYTES,
        Ok(bytes) => bytes,
        Err(_) => u64::MAX,
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// etcd's reading of `--auto-compaction-retention`: a non-negative integer counts hours (or
/// revisions); anything else must be a Go duration (etcd takes its nanoseconds as a revision
/// count in revision mode). "0" turns compaction off.
fn auto_compaction(mode: &str, retention: &str) -> Result<Option<AutoCompaction>, ConfigError> {
    let retention = if retention.is_empty() { "0" } else { retention };
    let invalid = |why: String| ConfigError::Invalid(format!("error parsing CompactionRetention: {why}"));
    let integer = retention.parse::<i64>().ok().filter(|&n| n >= 0);
    let amount = match integer {
        Some(n) => n,
        None => go_syntax::parse_duration(retention).map_err(invalid)?,
    };
    let amount = u64::try_from(amount).map_err(|_| invalid(format!("negative retention {retention:?}")))?;
    Ok(match (mode, amount, integer.is_some()) {
        (_, 0, _) => None,
        ("periodic", hours, true) => Some(AutoCompaction::Periodic(Duration::from_secs(
            hours.saturating_mul(3600),
        ))),
        ("periodic", nanos, false) => Some(AutoCompaction::Periodic(Duration::from_nanos(nanos))),
        ("revision", revisions, _) => Some(AutoCompaction::Revision(revisions)),
        _ => None,
    })
}

fn to_urls(urls: &[String]) -> Result<Vec<Url>, ConfigError> {
    urls.iter().map(|url| to_url(url)).collect()
}

/// A URL etcd accepted, as a `Url`; ferrocd serves only http and https.
fn to_url(text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| ConfigError::Invalid(format!("parse {text:?}: {e}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        _ => Err(ConfigError::Invalid(format!(
            "ferrocd serves only http and https URLs: {text}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn error(mode: &str, retention: &str) -> String {
        auto_compaction(mode, retention).unwrap_err().to_string()
    }

    #[test]
    fn periodic_retention_is_hours_or_a_duration() {
        let periodic = |retention| auto_compaction("periodic", retention).unwrap();
        assert_eq!(periodic("1h"), Some(AutoCompaction::Periodic(HOUR)));
        assert_eq!(periodic("5"), Some(AutoCompaction::Periodic(5 * HOUR)));
        assert_eq!(periodic("30m"), Some(AutoCompaction::Periodic(HOUR / 2)));
        assert_eq!(periodic("0"), None);
        assert_eq!(periodic(""), None);
    }

    #[test]
    fn revision_retention_counts_revisions() {
        let revision = |retention| auto_compaction("revision", retention).unwrap();
        assert_eq!(revision("1000"), Some(AutoCompaction::Revision(1000)));
        assert_eq!(revision("0"), None);
    }

    #[test]
    fn bad_retention_uses_etcds_text() {
        let prefix = "error parsing CompactionRetention: time:";
        assert_eq!(error("periodic", "abc"), format!(r#"{prefix} invalid duration "abc""#));
        assert_eq!(
            error("periodic", "-1"),
            format!(r#"{prefix} missing unit in duration "-1""#)
        );
        assert_eq!(
            error("revision", "1.5"),
            format!(r#"{prefix} missing unit in duration "1.5""#)
        );
        assert_eq!(
            error("periodic", "-1h"),
            r#"error parsing CompactionRetention: negative retention "-1h""#
        );
    }

    #[test]
    fn quota_zero_means_the_default_and_negative_means_none() {
        assert_eq!(quota(0), DEFAULT_QUOTA_BYTES);
        assert_eq!(quota(1024), 1024);
        assert_eq!(quota(-1), u64::MAX);
    }

    #[test]
    fn urls_must_be_http_or_https() {
        assert_eq!(to_url("https://[::1]:2379").unwrap().port(), Some(2379));
        assert_eq!(
            to_url("unix://localhost:1").unwrap_err().to_string(),
            "ferrocd serves only http and https URLs: unix://localhost:1"
        );
    }

    #[test]
    fn data_dir_defaults_to_the_name() {
        assert_eq!(data_dir("m1", ""), PathBuf::from("m1.etcd"));
        assert_eq!(data_dir("m1", "/d"), PathBuf::from("/d"));
    }
}
