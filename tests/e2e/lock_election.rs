//! etcd's lock and election services driven by `etcdctl lock` and
//! `etcdctl elect`, as operators use them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{ctl_ok, etcdctl_path, wait_until, Cluster};

fn spawn_ctl(endpoint: &str, args: &[&str]) -> Child {
    Command::new(etcdctl_path())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcdctl")
}

fn interrupt(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
}

#[test]
fn lock_serialises_two_contending_processes() {
    let cluster = Cluster::start(1);
    let endpoint = cluster.members[0].endpoint();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let script = format!("echo start >> {0}; sleep 0.5; echo end >> {0}", journal.display());
    let mut holders: Vec<Child> = (0..2)
        .map(|_| spawn_ctl(&endpoint, &["lock", "critical", "--", "sh", "-c", &script]))
        .collect();
    for holder in &mut holders {
        assert!(holder.wait().unwrap().success());
    }
    let lines = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(lines, "start\nend\nstart\nend\n", "the critical sections overlapped");
    // Both sessions released their keys.
    assert_eq!(ctl_ok(&endpoint, &["get", "critical", "--prefix", "--keys-only"]), "");
}

#[test]
fn a_released_lock_passes_to_the_waiter() {
    let cluster = Cluster::start(1);
    let endpoint = cluster.members[0].endpoint();
    let mut first = spawn_ctl(&endpoint, &["lock", "door"]);
    wait_until(Duration::from_secs(10), "the first holder", || {
        ctl_ok(&endpoint, &["get", "door/", "--prefix", "--keys-only"])
            .lines()
            .count()
            >= 1
    });
    let mut second = spawn_ctl(&endpoint, &["lock", "door"]);
    wait_until(Duration::from_secs(10), "the second waiter's key", || {
        ctl_ok(&endpoint, &["get", "door/", "--prefix", "--keys-only"])
            .lines()
            .filter(|l| !l.is_empty())
            .count()
            == 2
    });
    assert!(
        second.try_wait().unwrap().is_none(),
        "the waiter got the lock while it was held"
    );
    interrupt(&mut first);
    wait_until(Duration::from_secs(10), "the waiter to get the lock", || {
        ctl_ok(&endpoint, &["get", "door/", "--prefix", "--keys-only"])
            .lines()
            .filter(|l| !l.is_empty())
            .count()
            == 1
    });
    interrupt(&mut second);
}

#[test]
fn elect_one_of_two_campaigners_and_observe_the_leader() {
    let cluster = Cluster::start(1);
    let endpoint = cluster.members[0].endpoint();
    let mut first = spawn_ctl(&endpoint, &["elect", "chair", "alice"]);
    wait_until(Duration::from_secs(10), "alice to lead", || {
        ctl_ok(&endpoint, &["get", "chair/", "--prefix", "--print-value-only"]).trim() == "alice"
    });
    let mut second = spawn_ctl(&endpoint, &["elect", "chair", "bob"]);
    let dir = tempfile::tempdir().unwrap();
    let seen_path = dir.path().join("observed");
    let mut observer = Command::new(etcdctl_path())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["elect", "-l", "chair"])
        .stdout(std::fs::File::create(&seen_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let observed = || std::fs::read_to_string(&seen_path).unwrap_or_default();
    wait_until(Duration::from_secs(10), "the observer to see alice", || {
        observed().lines().any(|l| l == "alice")
    });
    wait_until(Duration::from_secs(10), "bob's candidacy", || {
        ctl_ok(&endpoint, &["get", "chair/", "--prefix", "--print-value-only"])
            .lines()
            .any(|l| l == "bob")
    });
    interrupt(&mut first);
    wait_until(Duration::from_secs(10), "bob to lead alone", || {
        ctl_ok(&endpoint, &["get", "chair/", "--prefix", "--print-value-only"]).trim() == "bob"
    });
    wait_until(Duration::from_secs(10), "the observer to see bob", || {
        observed().lines().any(|l| l == "bob")
    });
    interrupt(&mut second);
    interrupt(&mut observer);
    let seen = observed();
    let values: Vec<&str> = seen.lines().filter(|l| *l == "alice" || *l == "bob").collect();
    assert_eq!(values, vec!["alice", "bob"], "observer saw: {seen:?}");
}

#[tokio::test]
async fn etcd_client_lock_and_election_apis() {
    use etcd_client::{LockOptions, ProclaimOptions, ResignOptions};
    let cluster = Cluster::start(1);
    let mut kv = crate::support::client(&[cluster.members[0].endpoint()]).await;
    let lease = kv.lease_grant(30, None).await.unwrap().id();
    let held = kv
        .lock("vault", Some(LockOptions::new().with_lease(lease)))
        .await
        .unwrap();
    assert_eq!(held.key(), format!("vault/{lease:x}").as_bytes());
    // A second session waits until the first unlocks.
    let other = kv.lease_grant(30, None).await.unwrap().id();
    let mut contender = kv.clone();
    let waiting = tokio::spawn(async move {
        contender
            .lock("vault", Some(LockOptions::new().with_lease(other)))
            .await
            .unwrap()
            .key()
            .to_vec()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the lock was granted twice");
    kv.unlock(held.key()).await.unwrap();
    assert_eq!(waiting.await.unwrap(), format!("vault/{other:x}").as_bytes());

    let campaign = kv.campaign("board", "first", lease).await.unwrap();
    let leader = campaign.leader().unwrap().clone();
    let current = kv.leader("board").await.unwrap();
    assert_eq!(current.kv().unwrap().value(), b"first");
    kv.proclaim("second", Some(ProclaimOptions::new().with_leader(leader.clone())))
        .await
        .unwrap();
    assert_eq!(kv.leader("board").await.unwrap().kv().unwrap().value(), b"second");
    kv.resign(Some(ResignOptions::new().with_leader(leader))).await.unwrap();
    let gone = kv.leader("board").await.unwrap_err();
    assert!(gone.to_string().contains("election: no leader"), "{gone}");
}
