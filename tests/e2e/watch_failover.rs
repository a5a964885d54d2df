//! Watches across failures: many watchers on three members keep every event
//! in order while the leader is killed and restarted, and require-leader
//! watches end when their member loses its leader.

use std::collections::HashMap;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, WatchOptions};

use crate::support::{client, Cluster};

const WATCHERS: usize = 100;
const WRITES: i64 = 1000;

/// One watch on `endpoint` from `next` until `last`, appending what it sees.
async fn watch_from(endpoint: &str, next: i64, last: i64, seen: &mut Vec<i64>) -> Result<(), etcd_client::Error> {
    let mut kv = Client::connect([endpoint.to_string()], None).await?;
    let options = WatchOptions::new().with_prefix().with_start_revision(next);
    let mut stream = kv.watch("w/", Some(options)).await?;
    while let Some(response) = stream.message().await? {
        seen.extend(response.events().iter().map(|e| e.kv().unwrap().mod_revision()));
        if seen.last().is_some_and(|r| *r >= last) {
            return Ok(());
        }
    }
    Err(etcd_client::Error::WatchError("stream ended".into()))
}

/// Watches `w/` on `endpoint` from `start` until `last` revision is seen,
/// reconnecting (from the revision after the last event) when the member
/// goes away. Returns the revisions seen and how many reconnects it took.
async fn follow(endpoints: Vec<String>, first: usize, start: i64, last: i64) -> (Vec<i64>, usize) {
    let mut seen = Vec::new();
    let mut reconnects = 0;
    let mut target = first;
    let mut next = start;
    while next <= last {
        let attempt = tokio::time::timeout(
            Duration::from_secs(60),
            watch_from(&endpoints[target], next, last, &mut seen),
        );
        let ok = matches!(attempt.await, Ok(Ok(())));
        next = seen.last().map_or(next, |r| r + 1);
        if !ok && next <= last {
            reconnects += 1;
            target = (target + 1) % endpoints.len();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (seen, reconnects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_watcher_gets_every_event_in_order_across_a_leader_restart() {
    let mut cluster = Cluster::start(3);
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.endpoint()).collect();
    let mut kv = client(&endpoints).await;
    let start = kv.put("w/start", "0", None).await.unwrap().header().unwrap().revision();
    let last = start + WRITES;
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|i| tokio::spawn(follow(endpoints.clone(), i % 3, start + 1, last)))
        .collect();

    let leader = cluster.leader();
    let writer_endpoint = endpoints[(leader + 1) % 3].clone();
    let mut writer = client(&[writer_endpoint]).await;
    let mut written = 0;
    while written < WRITES {
        if writer
            .put(format!("w/{}", written % 50), written.to_string(), None)
            .await
            .is_ok()
        {
            written += 1;
        }
        if written == WRITES / 3 && cluster.members[leader].is_running() {
            cluster.members[leader].kill();
        }
        if written == 2 * WRITES / 3 && !cluster.members[leader].is_running() {
            cluster.members[leader].start();
        }
    }
    let expected: Vec<i64> = (start + 1..=last).collect();
    let mut reconnects: HashMap<usize, usize> = HashMap::new();
    for (i, watcher) in watchers.into_iter().enumerate() {
        let (seen, again) = watcher.await.unwrap();
        assert_eq!(seen, expected, "watcher {i} missed, repeated or reordered events");
        reconnects.insert(i, again);
    }
    let reconnected = reconnects.values().filter(|n| **n > 0).count();
    println!("{reconnected} of {WATCHERS} watchers reconnected after the leader was killed");
    assert!(
        reconnected >= WATCHERS / 3,
        "watchers on the killed member must have reconnected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_leader_watches_end_when_the_member_loses_its_leader() {
    let mut cluster = Cluster::start(3);
    let endpoint = cluster.members[0].endpoint();
    let options = ConnectOptions::new().with_require_leader(true);
    let mut kv = Client::connect([endpoint], Some(options)).await.unwrap();
    let mut stream = kv.watch("anything", None).await.unwrap();
    assert!(stream.message().await.unwrap().unwrap().created());
    cluster.members[1].kill();
    cluster.members[2].kill();
    let ended = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("the watch ended");
    let error = ended.expect_err("the watch must end with an error");
    assert!(error.to_string().contains("etcdserver: no leader"), "{error}");
    let refused = kv.watch("anything", None).await;
    let refused = match refused {
        Ok(mut s) => s.message().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(
        refused.is_err(),
        "a new require-leader watch must be refused without a leader"
    );
}
