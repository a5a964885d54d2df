//! Cluster operations with etcdctl 3.4 (issue 4): the deployment guide's
//! replace-a-member procedure, growing and shrinking, learners, a removed
//! member's old data dir, maintenance calls, and the NOSPACE quota.

use std::time::Duration;

use crate::support::{ctl_ok, etcdctl, wait_until, Cluster, MemberSpec};

/// `member list` as (id, status, name) rows.
fn members(endpoints: &str) -> Vec<(String, String, String)> {
    ctl_ok(endpoints, &["member", "list"])
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(", ").collect();
            (fields[0].to_string(), fields[1].to_string(), fields[2].to_string())
        })
        .collect()
}

fn id_of(endpoints: &str, name: &str) -> String {
    members(endpoints)
        .into_iter()
        .find(|(_, _, n)| n == name)
        .unwrap_or_else(|| panic!("no member {name}"))
        .0
}

/// Runs `member add` and returns the new member's ID and the
/// `ETCD_INITIAL_CLUSTER` it printed.
fn member_add(endpoints: &str, spec: &MemberSpec, learner: bool) -> (String, String) {
    let peer = format!("--peer-urls={}", spec.peer_url());
    let mut args = vec!["member", "add", &spec.name, &peer];
    if learner {
        args.push("--learner");
    }
    let out = ctl_ok(endpoints, &args);
    assert!(out.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""), "{out}");
    assert!(out.contains(&format!("ETCD_NAME=\"{}\"", spec.name)), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let initial = out
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    (id, initial)
}

/// Waits until every member reports the same HashKV.
fn wait_hashes_equal(endpoints: &str, expected_members: usize) {
    wait_until(Duration::from_secs(30), "equal HashKV on every member", || {
        let out = etcdctl(endpoints, &["endpoint", "hashkv", "--cluster"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let hashes: Vec<&str> = text.lines().filter_map(|l| l.split(", ").nth(1)).collect();
        out.status.success() && hashes.len() == expected_members && hashes.windows(2).all(|w| w[0] == w[1])
    });
}

#[test]
fn the_guide_procedure_replaces_grows_shrinks_and_promotes() {
    let mut cluster = Cluster::start(3);
    let first = cluster.members[0].endpoint();
    for i in 0..50 {
        ctl_ok(&first, &["put", &format!("key{i}"), &format!("value{i}")]);
    }

    // Remove m3: it stops on its own.
    let m3 = id_of(&first, "m3");
    let out = ctl_ok(&first, &["member", "remove", &m3]);
    assert!(
        out.starts_with(&format!("Member {m3:>16} removed from cluster")),
        "{out}"
    );
    let status = cluster.members[2].wait_exit(Duration::from_secs(30));
    assert!(status.success(), "a removed member exits cleanly: {status:?}");
    assert!(cluster.members[2]
        .log()
        .contains("permanently removed from the cluster"));
    assert_eq!(members(&first).len(), 2);

    // Add a replacement: listed unstarted, without a name, until it starts.
    let spec = Cluster::new_spec("m4");
    let (m4, initial) = member_add(&first, &spec, false);
    let listed = members(&first);
    assert!(
        listed.contains(&(m4.clone(), "unstarted".into(), String::new())),
        "{listed:?}"
    );
    let i4 = cluster.join(spec, &initial);
    cluster.members[i4].start();
    cluster.wait_healthy();
    ctl_ok(&first, &["put", "after-replace", "yes"]);
    wait_hashes_equal(&first, 3);
    let value = ctl_ok(&cluster.members[i4].endpoint(), &["get", "key7", "--print-value-only"]);
    assert_eq!(value, "value7\n");

    // Grow to five, one at a time.
    for name in ["m5", "m6"] {
        let spec = Cluster::new_spec(name);
        let (_, initial) = member_add(&first, &spec, false);
        let index = cluster.join(spec, &initial);
        cluster.members[index].start();
        cluster.wait_healthy();
    }
    wait_hashes_equal(&first, 5);
    let listed = members(&first);
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|(_, status, _)| status == "started"), "{listed:?}");
    let table = ctl_ok(&first, &["endpoint", "status", "--cluster"]);
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains(", false, false,") || l.contains(", true, false,"))
            .count(),
        5
    );

    // Shrink back to three.
    for name in ["m5", "m6"] {
        let id = id_of(&first, name);
        ctl_ok(&first, &["member", "remove", &id]);
        let index = cluster.members.iter().position(|m| m.spec.name == name).unwrap();
        cluster.members[index].wait_exit(Duration::from_secs(30));
    }
    assert_eq!(members(&first).len(), 3);
    ctl_ok(&first, &["put", "after-shrink", "yes"]);
    wait_hashes_equal(&first, 3);

    // A learner: added, started, promoted once in sync.
    let spec = Cluster::new_spec("m7");
    let (m7, initial) = member_add(&first, &spec, true);
    let index = cluster.join(spec, &initial);
    cluster.members[index].start();
    cluster.wait_healthy();
    let learner_row = ctl_ok(&first, &["member", "list"]);
    assert!(
        learner_row.lines().any(|l| l.starts_with(&m7) && l.ends_with(", true")),
        "{learner_row}"
    );
    let mut promoted = String::new();
    wait_until(Duration::from_secs(30), "the learner to be promoted", || {
        let out = etcdctl(&first, &["member", "promote", &m7]);
        promoted = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        out.status.success()
    });
    // etcdctl prints IDs with `%16x`: a short one is padded with spaces.
    assert!(
        promoted.contains(&format!("Member {m7:>16} promoted in cluster")),
        "{promoted}"
    );
    let again = etcdctl(&first, &["member", "promote", &m7]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("etcdserver: can only promote a learner member"));
    wait_hashes_equal(&first, 4);
}

#[test]
fn a_removed_member_restarted_with_its_old_data_dir_refuses_to_start() {
    let mut cluster = Cluster::start(3);
    let first = cluster.members[0].endpoint();
    ctl_ok(&first, &["put", "k", "v"]);
    let m3 = id_of(&first, "m3");
    ctl_ok(&first, &["member", "remove", &m3]);
    cluster.members[2].wait_exit(Duration::from_secs(30));

    // The guide: `member add` again with the same peer URL, then start it,
    // forgetting to delete the old data dir.
    let same = MemberSpec {
        name: "m3".into(),
        client_port: cluster.members[2].spec.client_port,
        peer_port: cluster.members[2].spec.peer_port,
    };
    let (new_id, initial) = member_add(&first, &same, false);
    let member = &mut cluster.members[2];
    member.reconfigure(&initial, &["--initial-cluster-state=existing"]);
    member.start();
    let status = member.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "must refuse to start");
    let log = member.log();
    assert!(log.contains(&format!("belongs to member {m3}")), "{log}");
    assert!(log.contains(&format!("now belong to member {new_id}")), "{log}");
    assert!(log.contains("rm -rf"), "{log}");

    // With the data dir removed, the same settings join.
    std::fs::remove_dir_all(&member.data_dir).unwrap();
    member.start();
    cluster.wait_healthy();
    wait_hashes_equal(&first, 3);
}

#[test]
fn maintenance_calls_answer_as_etcdctl_expects() {
    let cluster = Cluster::start(3);
    let endpoints = cluster.endpoints();
    ctl_ok(&endpoints, &["put", "a", "1"]);
    // etcdctl 3.4 prints health results on stderr.
    let out = etcdctl(&endpoints, &["endpoint", "health", "--cluster"]);
    assert!(out.status.success());
    let health = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        health
            .lines()
            .filter(|l| l.contains("is healthy: successfully committed proposal"))
            .count(),
        3
    );
    let defrag = ctl_ok(&endpoints, &["defrag", "--cluster"]);
    assert_eq!(
        defrag
            .lines()
            .filter(|l| l.starts_with("Finished defragmenting etcd member["))
            .count(),
        3
    );
    assert_eq!(ctl_ok(&endpoints, &["alarm", "list"]), "");

    // move-leader to a follower, asked of the leader.
    let leader = cluster.leader();
    let target = (leader + 1) % 3;
    let target_id = id_of(&endpoints, &cluster.members[target].spec.name);
    let leader_endpoint = cluster.members[leader].endpoint();
    let out = ctl_ok(&leader_endpoint, &["move-leader", &target_id]);
    assert!(out.starts_with("Leadership transferred from "), "{out}");
    assert!(out.trim_end().ends_with(&target_id), "{out}");
    assert_eq!(cluster.leader(), target);
    // Asked of a follower, etcd's error.
    let follower = cluster.members[leader].endpoint();
    let out = etcdctl(&follower, &["move-leader", &target_id]);
    assert!(!out.status.success());

    // Snapshot: etcdctl's own integrity rule holds (sha256 trailer).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.db");
    let out = ctl_ok(
        &cluster.members[0].endpoint(),
        &["snapshot", "save", path.to_str().unwrap()],
    );
    assert!(out.contains("Snapshot saved at"), "{out}");
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(size % 512, 32);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(ferrocd::snapshot::status(&bytes).unwrap().revision, 2);
}

#[test]
fn the_quota_raises_nospace_and_recovers_after_compaction_and_disarm() {
    let cluster = Cluster::start_with(crate::support::Flavor::Ferrocd, 1, &["--quota-backend-bytes=100000"]);
    let endpoint = cluster.members[0].endpoint();
    let value = "x".repeat(5000);
    let mut refused = None;
    for i in 0..100 {
        let out = etcdctl(&endpoint, &["put", &format!("k{}", i % 5), &value]);
        if !out.status.success() {
            refused = Some(String::from_utf8_lossy(&out.stderr).to_string());
            break;
        }
    }
    let refused = refused.expect("the quota must refuse a write");
    assert!(
        refused.contains("etcdserver: mvcc: database space exceeded"),
        "{refused}"
    );
    let alarms = ctl_ok(&endpoint, &["alarm", "list"]);
    assert!(
        alarms.starts_with("memberID:") && alarms.contains("alarm:NOSPACE"),
        "{alarms}"
    );
    let status = ctl_ok(&endpoint, &["endpoint", "status"]);
    assert!(status.contains("alarm:NOSPACE"), "{status}");
    // Deletes still work; puts do not, even small ones.
    ctl_ok(&endpoint, &["del", "k0"]);
    assert!(!etcdctl(&endpoint, &["put", "small", "v"]).status.success());

    let json = ctl_ok(&endpoint, &["get", "k1", "-w", "json"]);
    let revision = serde_json::from_str::<serde_json::Value>(&json).unwrap()["header"]["revision"]
        .as_i64()
        .unwrap();
    ctl_ok(&endpoint, &["compact", &revision.to_string()]);
    ctl_ok(&endpoint, &["defrag"]);
    let disarmed = ctl_ok(&endpoint, &["alarm", "disarm"]);
    assert!(disarmed.contains("alarm:NOSPACE"), "{disarmed}");
    assert_eq!(ctl_ok(&endpoint, &["alarm", "list"]), "");
    assert_eq!(ctl_ok(&endpoint, &["put", "after", "ok"]), "OK\n");
}

#[test]
fn force_new_cluster_recovers_a_lone_survivor_with_its_data() {
    let mut cluster = Cluster::start(3);
    let first = cluster.members[0].endpoint();
    for i in 0..20 {
        ctl_ok(&first, &["put", &format!("k{i}"), "v"]);
    }
    let before = ctl_ok(&first, &["get", "k19", "-w", "json"]);
    let revision = serde_json::from_str::<serde_json::Value>(&before).unwrap()["header"]["revision"].clone();
    for member in &mut cluster.members {
        member.kill();
    }
    let survivor = &mut cluster.members[0];
    let initial = survivor.spec.peer_url();
    survivor.reconfigure(&format!("m1={initial}"), &["--force-new-cluster"]);
    survivor.start();
    cluster.wait_healthy();
    let listed = members(&first);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].2, "m1");
    let after = ctl_ok(&first, &["get", "k19", "-w", "json"]);
    let after: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert_eq!(after["header"]["revision"], revision);
    assert_eq!(after["count"], 1);
    assert_eq!(ctl_ok(&first, &["put", "after", "recovery"]), "OK\n");
}

#[test]
fn ferrocdctl_snapshot_save_and_restore_bring_back_every_key_at_its_revision() {
    let source = Cluster::start(3);
    let endpoint = source.members[0].endpoint();
    for i in 0..30 {
        ctl_ok(&endpoint, &["put", &format!("key{i}"), &format!("value{i}")]);
    }
    ctl_ok(&endpoint, &["del", "key3"]);
    let before = ctl_ok(&endpoint, &["get", "", "--prefix", "-w", "json"]);
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.snap");
    let ctl = env!("CARGO_BIN_EXE_ferrocdctl");
    let saved = std::process::Command::new(ctl)
        .args([
            &format!("--endpoints={endpoint}"),
            "snapshot",
            "save",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(saved.status.success(), "{}", String::from_utf8_lossy(&saved.stderr));

    let mut target = Cluster::prepare(crate::support::Flavor::Ferrocd, 1, &[]);
    let member = &target.members[0];
    let restored = std::process::Command::new(ctl)
        .args([
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--name=m1",
            &format!("--data-dir={}", member.data_dir.display()),
            &format!("--initial-cluster=m1={}", member.spec.peer_url()),
            "--initial-cluster-token=e2e-token",
            &format!("--initial-advertise-peer-urls={}", member.spec.peer_url()),
        ])
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(String::from_utf8_lossy(&restored.stdout).contains("Restored snapshot"));
    target.members[0].start();
    target.wait_healthy();
    let restored_endpoint = target.members[0].endpoint();
    let after = ctl_ok(&restored_endpoint, &["get", "", "--prefix", "-w", "json"]);
    let after: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert_eq!(after["kvs"], before["kvs"]);
    assert_eq!(after["header"]["revision"], before["header"]["revision"]);
    assert_eq!(members(&restored_endpoint).len(), 1);
    // A second restore into the same place is refused, as etcd refuses it.
    let again = std::process::Command::new(ctl)
        .args([
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            &format!("--data-dir={}", target.members[0].data_dir.display()),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
}
