//! SIGTERM on the leader of three: it hands leadership to a caught-up follower before it exits,
//! and a client writing all along sees no error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{etcdctl, Cluster};

#[test]
fn a_stopping_leader_hands_over_and_writes_never_fail() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let followers: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| cluster.members[i].endpoint())
        .collect();
    let endpoints = followers.join(",");

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut written, mut failures) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let out = etcdctl(&endpoints, &["put", "counter", &written.to_string()]);
                if out.status.success() {
                    written += 1;
                } else {
                    failures.push(String::from_utf8_lossy(&out.stderr).to_string());
                }
            }
            (written, failures)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let status = cluster.members[leader].stop();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (written, failures) = writer.join().unwrap();

    assert!(status.success(), "{status:?}");
    assert!(failures.is_empty(), "writes failed: {failures:?}");
    assert!(written > 5, "only {written} writes");
    let log = cluster.members[leader].log();
    let handed = log
        .find("leadership handed over")
        .expect("no hand-over in the old leader's log");
    let stopped = log.find("member stopped").expect("no clean stop");
    assert!(handed < stopped, "{log}");
    let new_leader = cluster.leader();
    assert_ne!(new_leader, leader);
}
