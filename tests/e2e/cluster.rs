//! Three members: leader failover, catch-up after a restart, crash of every
//! member after acknowledged writes, and followers that serve writes and
//! linearizable reads.

use std::time::Duration;

use etcd_client::GetOptions;

use crate::support::{client, ctl_ok, etcdctl, wait_until, Cluster};

/// The value of `key` as served by one member without a read index.
fn local_value(endpoint: &str, key: &str) -> String {
    ctl_ok(endpoint, &["get", key, "--print-value-only", "--consistency=s"])
        .trim()
        .to_string()
}

#[test]
fn killed_leader_is_replaced_and_catches_up_after_restart() {
    let mut cluster = Cluster::start(3);
    ctl_ok(&cluster.endpoints(), &["put", "before", "1"]);
    let old_leader = cluster.leader();
    cluster.members[old_leader].kill();

    let survivors: Vec<String> = cluster
        .members
        .iter()
        .filter(|m| m.is_running())
        .map(|m| m.endpoint())
        .collect();
    let new_leader = cluster.leader();
    assert_ne!(new_leader, old_leader, "a killed member cannot lead");
    for (i, endpoint) in survivors.iter().enumerate() {
        ctl_ok(endpoint, &["put", &format!("during-{i}"), "2"]);
    }
    assert_eq!(
        ctl_ok(&survivors[0], &["get", "during-1", "--print-value-only"]).trim(),
        "2"
    );

    cluster.members[old_leader].start();
    cluster.wait_healthy();
    let restarted = cluster.members[old_leader].endpoint();
    wait_until(Duration::from_secs(20), "the restarted member to catch up", || {
        local_value(&restarted, "during-1") == "2"
    });
    assert_eq!(local_value(&restarted, "before"), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_crash_of_every_member() {
    let mut cluster = Cluster::start(3);
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.endpoint()).collect();
    let mut writers = Vec::new();
    for writer in 0..8 {
        let endpoints = endpoints.clone();
        writers.push(tokio::spawn(async move {
            let mut kv = client(&endpoints[writer % 3..writer % 3 + 1]).await;
            let mut acknowledged = Vec::new();
            for i in 0..40 {
                let key = format!("burst/{writer}/{i}");
                if kv.put(key.clone(), "v", None).await.is_ok() {
                    acknowledged.push(key);
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert_eq!(
        acknowledged.len(),
        320,
        "every write of a healthy cluster is acknowledged"
    );
    for member in &mut cluster.members {
        member.kill();
    }
    for member in &mut cluster.members {
        member.start();
    }
    cluster.wait_healthy();
    for endpoint in &endpoints {
        let mut kv = client(std::slice::from_ref(endpoint)).await;
        let found = kv
            .get("burst/", Some(GetOptions::new().with_prefix().with_keys_only()))
            .await
            .unwrap();
        let keys: std::collections::HashSet<String> =
            found.kvs().iter().map(|kv| kv.key_str().unwrap().to_string()).collect();
        let missing: Vec<&String> = acknowledged.iter().filter(|k| !keys.contains(*k)).collect();
        assert!(missing.is_empty(), "{endpoint} lost acknowledged writes: {missing:?}");
    }
}

#[test]
fn followers_forward_writes_and_serve_linearizable_reads() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader();
    let followers: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| cluster.members[i].endpoint())
        .collect();
    for round in 0..20 {
        let value = round.to_string();
        ctl_ok(&followers[0], &["put", "shared", &value]);
        // A linearizable read on the other follower must see the write that
        // was acknowledged just before, without any wait.
        assert_eq!(
            ctl_ok(&followers[1], &["get", "shared", "--print-value-only"]).trim(),
            value
        );
    }
    let out = etcdctl(&followers[1], &["get", "shared", "-w", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["kvs"][0]["version"], 20);
    assert_eq!(json["header"]["revision"], 21);
}

#[test]
fn a_member_behind_the_compacted_log_catches_up_by_snapshot() {
    let mut cluster = Cluster::start_with(crate::support::Flavor::Ferrocd, 3, &["--snapshot-count=50"]);
    let leader = cluster.leader();
    let behind = (leader + 1) % 3;
    cluster.members[behind].kill();
    let endpoint = cluster.members[leader].endpoint();
    let script: String = (0..300).map(|i| format!("put snap/{i} v{i}\n")).collect();
    for line in script.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        ctl_ok(&endpoint, &words);
    }
    cluster.members[behind].start();
    let restarted = cluster.members[behind].endpoint();
    wait_until(Duration::from_secs(30), "the restarted member to catch up", || {
        etcdctl(
            &restarted,
            &["get", "snap/299", "--print-value-only", "--consistency=s"],
        )
        .stdout
            == b"v299\n"
    });
    assert!(
        cluster.members[behind]
            .log()
            .contains("installed snapshot from the leader"),
        "the member caught up without a snapshot"
    );
    let count = ctl_ok(
        &restarted,
        &["get", "snap/", "--prefix", "--keys-only", "--consistency=s"],
    );
    assert_eq!(count.lines().filter(|l| !l.is_empty()).count(), 300);
}
