//! A member's life: clean stop on SIGTERM with data kept, restart from an
//! existing data dir, /health and /version, MemberList, and startup errors
//! for bad configuration.

use std::process::Command;
use std::time::Duration;

use crate::support::{ctl_ok, etcdctl, http_get, wait_until, Cluster, FERROCD};

#[test]
fn sigterm_stops_cleanly_and_a_restart_keeps_everything() {
    let mut cluster = Cluster::start(1);
    let endpoint = cluster.members[0].endpoint();
    ctl_ok(&endpoint, &["put", "k", "v1"]);
    ctl_ok(&endpoint, &["put", "k", "v2"]);
    let status = cluster.members[0].stop();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    assert!(
        cluster.members[0].log().contains("member stopped"),
        "shutdown was not logged in order"
    );

    cluster.members[0].start();
    cluster.wait_healthy();
    let out = etcdctl(&endpoint, &["get", "k", "-w", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["header"]["revision"], 3);
    assert_eq!(json["kvs"][0]["version"], 2);
    assert_eq!(
        ctl_ok(&endpoint, &["get", "k", "--rev=2", "--print-value-only"]).trim(),
        "v1"
    );
}

#[test]
fn health_version_and_member_list() {
    let mut cluster = Cluster::start(3);
    let port = cluster.members[0].spec.client_port;
    assert_eq!(
        http_get(port, "/health"),
        Some((200, r#"{"health":"true"}"#.to_string()))
    );
    let (status, body) = http_get(port, "/version").unwrap();
    assert_eq!(status, 200);
    let version: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(version["etcdcluster"], "3.4.0");

    let list = ctl_ok(&cluster.endpoints(), &["member", "list", "-w", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let mut seen: Vec<(String, String, String)> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["peerURLs"][0].as_str().unwrap().to_string(),
                m["clientURLs"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let expected: Vec<(String, String, String)> = cluster
        .members
        .iter()
        .map(|m| (m.spec.name.clone(), m.spec.peer_url(), m.spec.client_url()))
        .collect();
    assert_eq!(seen, expected);

    // etcdctl sends a scheme-qualified endpoint as the HTTP/2 authority of
    // per-endpoint calls; `endpoint status --cluster` must work all the same.
    let status = ctl_ok(&cluster.members[0].endpoint(), &["endpoint", "status", "--cluster"]);
    assert_eq!(status.lines().count(), 3, "{status}");
    for member in &cluster.members {
        assert!(status.contains(&member.endpoint()), "{status}");
    }

    // Without a quorum the remaining member reports itself unhealthy (etcd
    // ends that body, and only that one, with a newline).
    cluster.members[1].kill();
    cluster.members[2].kill();
    wait_until(Duration::from_secs(20), "health to turn false", || {
        http_get(port, "/health") == Some((503, "{\"health\":\"false\"}\n".to_string()))
    });
}

/// Runs the server with `args`; it must exit non-zero at once with one line
/// on stderr that contains `expected`.
fn refuses(args: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(FERROCD)
        .current_dir(dir.path())
        .args(args)
        .env_remove("ETCD_NAME")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} started");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains(expected), "{args:?}: expected {expected:?} in {stderr:?}");
}

#[test]
fn bad_configuration_is_refused_with_one_line() {
    refuses(
        &["--heartbeat-interval=abc"],
        r#"invalid value "abc" for flag -heartbeat-interval: parse error"#,
    );
    refuses(&["--no-such-flag"], "flag provided but not defined: -no-such-flag");
    refuses(
        &["--initial-cluster-state=sideways"],
        r#"invalid value "sideways" for flag -initial-cluster-state"#,
    );
    refuses(
        &["--name", "m9", "--initial-cluster", "m1=http://127.0.0.1:1"],
        r#"couldn't find local name "m9" in the initial cluster configuration"#,
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    let under_a_file = file.path().join("data");
    refuses(
        &["--data-dir", under_a_file.to_str().unwrap()],
        "cannot access data directory",
    );
}

#[test]
fn periodic_auto_compaction_compacts_old_history() {
    let cluster = Cluster::start_with(
        crate::support::Flavor::Ferrocd,
        1,
        &["--auto-compaction-mode=periodic", "--auto-compaction-retention=1s"],
    );
    let endpoint = cluster.members[0].endpoint();
    ctl_ok(&endpoint, &["put", "k", "old"]);
    ctl_ok(&endpoint, &["put", "k", "new"]);
    wait_until(Duration::from_secs(10), "revision 2 to be compacted", || {
        let out = etcdctl(&endpoint, &["get", "k", "--rev=2"]);
        String::from_utf8_lossy(&out.stderr).contains("required revision has been compacted")
    });
    assert_eq!(ctl_ok(&endpoint, &["get", "k", "--print-value-only"]).trim(), "new");
}
