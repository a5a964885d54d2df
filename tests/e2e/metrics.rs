//! `/metrics` with etcd's names: it parses as Prometheus text, every v3
//! series etcd's alert rules and dashboard query exists (with etcd's type
//! and help text), the series move (proposals and fsyncs after writes,
//! leader changes after a leader is killed), `--metrics=extensive` adds
//! gRPC handling times, `--listen-metrics-urls` serves a separate port, and
//! the standard gRPC health service answers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{ctl_ok, free_port, http_get, reference_etcd, wait_until, Cluster, Flavor};

/// The series etcd's `etcd3_alert.rules.yml` and `grafana.json` query
/// (v3 only; `etcd_http_*` is v2).
const QUERIED: &[&str] = &[
    "etcd_server_has_leader",
    "etcd_server_leader_changes_seen_total",
    "grpc_server_handled_total",
    "grpc_server_started_total",
    "etcd_network_peer_round_trip_time_seconds",
    "etcd_server_proposals_failed_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_committed_total",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_mvcc_db_total_size_in_bytes",
    "process_resident_memory_bytes",
    "etcd_network_client_grpc_received_bytes_total",
    "etcd_network_client_grpc_sent_bytes_total",
    "etcd_network_peer_received_bytes_total",
    "etcd_network_peer_sent_bytes_total",
];

struct Scrape {
    samples: Vec<prometheus_parse::Sample>,
    /// Family name -> (type line, help text), from the raw text.
    families: BTreeMap<String, (String, String)>,
}

fn scrape_port(port: u16) -> Scrape {
    let (status, text) = http_get(port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let mut families: BTreeMap<String, (String, String)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.to_string()).or_default().1 = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.to_string()).or_default().0 = kind.to_string();
        }
    }
    Scrape {
        samples: parsed.samples,
        families,
    }
}

impl Scrape {
    /// The sum of every sample named `name` (all label sets).
    fn total(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref buckets) => buckets.last().map_or(0.0, |b| b.count),
                _ => 0.0,
            })
            .sum()
    }

    fn has(&self, family: &str) -> bool {
        self.families.contains_key(family)
    }
}

fn scrape(cluster: &Cluster, member: usize) -> Scrape {
    scrape_port(cluster.members[member].spec.client_port)
}

#[test]
fn queried_series_exist_and_move() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let before = scrape(&cluster, leader);
    for name in QUERIED {
        assert!(before.has(name), "{name} is missing from /metrics");
    }
    assert_eq!(before.total("etcd_server_has_leader"), 1.0);
    assert_eq!(before.total("etcd_server_is_leader"), 1.0);
    for i in 0..20 {
        ctl_ok(&cluster.members[leader].endpoint(), &["put", &format!("k{i}"), "v"]);
    }
    let after = scrape(&cluster, leader);
    for name in [
        "etcd_server_proposals_committed_total",
        "etcd_server_proposals_applied_total",
        "etcd_disk_wal_fsync_duration_seconds",
        "etcd_disk_backend_commit_duration_seconds",
        "etcd_network_peer_sent_bytes_total",
        "etcd_network_client_grpc_received_bytes_total",
    ] {
        assert!(
            after.total(name) > before.total(name),
            "{name} did not move with 20 writes: {} -> {}",
            before.total(name),
            after.total(name)
        );
    }
    let puts_ok = after
        .samples
        .iter()
        .find(|s| {
            s.metric == "grpc_server_handled_total"
                && s.labels.get("grpc_method") == Some("Put")
                && s.labels.get("grpc_code") == Some("OK")
        })
        .expect("handled Put series");
    assert!(matches!(puts_ok.value, prometheus_parse::Value::Counter(v) if v >= 20.0));
    assert!(
        !after.has("grpc_server_handling_seconds"),
        "handling times are for --metrics=extensive only"
    );

    // Kill the leader: the survivors see a new one.
    let survivor = (leader + 1) % 3;
    let changes = scrape(&cluster, survivor).total("etcd_server_leader_changes_seen_total");
    cluster.members[leader].kill();
    wait_until(Duration::from_secs(20), "a leader change on a survivor", || {
        scrape(&cluster, survivor).total("etcd_server_leader_changes_seen_total") > changes
    });
    let round_trips = scrape(&cluster, cluster.leader()).total("etcd_network_peer_round_trip_time_seconds");
    assert!(round_trips > 0.0, "heartbeats give round-trip times");
}

#[test]
fn names_types_and_help_match_etcd() {
    let Some(_) = reference_etcd() else {
        eprintln!("real etcd is not installed; skipping the comparison");
        return;
    };
    let ours = Cluster::start(1);
    let etcd = Cluster::start_with(Flavor::Etcd, 1, &[]);
    let ours = scrape(&ours, 0);
    let theirs = scrape(&etcd, 0);
    for (name, (kind, help)) in &ours.families {
        if name.starts_with("process_") || name.starts_with("etcd_network_peer") {
            continue; // process_threads is the Rust collector's; peers need two members
        }
        let (their_kind, their_help) = theirs
            .families
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not a series etcd 3.4 exports"));
        assert_eq!((kind, help), (their_kind, their_help), "{name}");
    }
}

#[test]
fn extensive_metrics_and_a_separate_metrics_port() {
    let metrics_port = free_port();
    let url = format!("http://127.0.0.1:{metrics_port}");
    let cluster = Cluster::start_with(
        Flavor::Ferrocd,
        1,
        &["--metrics", "extensive", "--listen-metrics-urls", &url],
    );
    ctl_ok(&cluster.endpoints(), &["put", "a", "b"]);
    let scrape = scrape_port(metrics_port);
    assert_eq!(scrape.families["grpc_server_handling_seconds"].0, "histogram");
    assert!(scrape.total("grpc_server_handling_seconds") >= 1.0);
    assert_eq!(
        http_get(metrics_port, "/health"),
        Some((200, r#"{"health":"true"}"#.into()))
    );
    let (status, _) = http_get(metrics_port, "/v3/kv/range").unwrap();
    assert_eq!(status, 404, "the metrics port serves metrics and health only");
}

#[tokio::test]
async fn grpc_health_service_reports_serving() {
    let cluster = Cluster::start(1);
    let channel = tonic::transport::Endpoint::from_shared(cluster.endpoints())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    assert_eq!(
        reply.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}
