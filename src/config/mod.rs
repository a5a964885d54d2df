//! Provisional configuration (replaced by the full etcd flag table).
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState { New, Existing }
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoCompaction { Periodic(Duration), Revision(u64) }
pub struct Config {
    pub name: String, pub data_dir: PathBuf,
    pub listen_client_urls: Vec<Url>, pub advertise_client_urls: Vec<Url>,
    pub listen_peer_urls: Vec<Url>, pub initial_advertise_peer_urls: Vec<Url>,
    pub initial_cluster: Vec<(String, Url)>, pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String, pub heartbeat_interval: Duration, pub election_timeout: Duration,
    pub snapshot_count: u64, pub quota_backend_bytes: u64, pub max_request_bytes: usize, pub max_txn_ops: usize,
    pub auto_compaction: Option<AutoCompaction>, pub log_level: String, pub force_new_cluster: bool,
    pub strict_reconfig_check: bool, pub warnings: Vec<String>,
}
pub enum Loaded { Run(Config), Exit { message: String, code: i32 } }
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);
fn urls(s: &str) -> Vec<Url> { s.split(',').map(|u| Url::parse(u).unwrap()).collect() }
pub fn load(args: Vec<OsString>, _env: &BTreeMap<String, String>) -> Result<Loaded, ConfigError> {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    let args: Vec<String> = args.into_iter().skip(1).map(|a| a.into_string().unwrap()).collect();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].trim_start_matches('-').to_string();
        if let Some((k, v)) = a.split_once('=') { m.insert(k.into(), v.into()); i += 1; }
        else { m.insert(a, args[i + 1].clone()); i += 2; }
    }
    let g = |k: &str, d: &str| m.get(k).cloned().unwrap_or(d.to_string());
    let name = g("name", "default");
    let iapu = g("initial-advertise-peer-urls", "http://localhost:2380");
    let ic = g("initial-cluster", &format!("{name}={iapu}"));
    Ok(Loaded::Run(Config {
        data_dir: PathBuf::from(g("data-dir", &format!("{name}.etcd"))),
        listen_client_urls: urls(&g("listen-client-urls", "http://localhost:2379")),
        advertise_client_urls: urls(&g("advertise-client-urls", "http://localhost:2379")),
        listen_peer_urls: urls(&g("listen-peer-urls", "http://localhost:2380")),
        initial_advertise_peer_urls: urls(&iapu),
        initial_cluster: ic.split(',').map(|p| { let (n, u) = p.split_once('=').unwrap(); (n.to_string(), Url::parse(u).unwrap()) }).collect(),
        initial_cluster_state: if g("initial-cluster-state", "new") == "new" { ClusterState::New } else { ClusterState::Existing },
        initial_cluster_token: g("initial-cluster-token", "etcd-cluster"),
        heartbeat_interval: Duration::from_millis(100), election_timeout: Duration::from_millis(1000),
        snapshot_count: 100000, quota_backend_bytes: 2 << 30, max_request_bytes: 1572864, max_txn_ops: 128,
        auto_compaction: None, log_level: "info".into(), force_new_cluster: false, strict_reconfig_check: true,
        warnings: vec![], name,
    }))
}
