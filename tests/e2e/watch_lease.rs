//! Watches and leases through the etcd-client crate and etcdctl: event order
//! and content, history and compaction, progress, lease expiry and
//! keep-alive across a leader change.

use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};

use crate::support::{client, ctl_ok, wait_until, Cluster, Flavor};

/// Reads watch responses until `count` events arrived (or 10 s passed).
async fn collect_events(stream: &mut etcd_client::WatchStream, count: usize) -> Vec<(EventType, String, i64, String)> {
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.len() < count {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let response = tokio::time::timeout(remaining, stream.message())
            .await
            .expect("events in time")
            .unwrap()
            .unwrap();
        for event in response.events() {
            let kv = event.kv().unwrap();
            let prev = event
                .prev_kv()
                .map(|p| p.value_str().unwrap().to_string())
                .unwrap_or_default();
            events.push((
                event.event_type(),
                kv.key_str().unwrap().to_string(),
                kv.mod_revision(),
                prev,
            ));
        }
    }
    events
}

#[tokio::test]
async fn watch_delivers_every_change_in_order_with_prev_kv() {
    let cluster = Cluster::start(1);
    let mut kv = client(&[cluster.members[0].endpoint()]).await;
    let options = WatchOptions::new().with_prefix().with_prev_key();
    let mut stream = kv.watch("w/", Some(options)).await.unwrap();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created());

    kv.put("w/a", "1", None).await.unwrap();
    kv.put("w/a", "2", None).await.unwrap();
    kv.put("other", "x", None).await.unwrap();
    kv.delete("w/a", None).await.unwrap();
    let txn = Txn::new()
        .when([Compare::version("w/a", CompareOp::Equal, 0)])
        .and_then([TxnOp::put("w/b", "3", None), TxnOp::put("w/c", "4", None)]);
    kv.txn(txn).await.unwrap();

    let events = collect_events(&mut stream, 5).await;
    let expected = vec![
        (EventType::Put, "w/a".to_string(), 2, String::new()),
        (EventType::Put, "w/a".to_string(), 3, "1".to_string()),
        (EventType::Delete, "w/a".to_string(), 5, "2".to_string()),
        (EventType::Put, "w/b".to_string(), 6, String::new()),
        (EventType::Put, "w/c".to_string(), 6, String::new()),
    ];
    assert_eq!(events, expected);
}

#[tokio::test]
async fn watch_replays_history_and_cancels_on_compacted_revisions() {
    let cluster = Cluster::start(1);
    let mut kv = client(&[cluster.members[0].endpoint()]).await;
    for value in ["a", "b", "c"] {
        kv.put("h", value, None).await.unwrap();
    }
    let mut stream = kv
        .watch("h", Some(WatchOptions::new().with_start_revision(2)))
        .await
        .unwrap();
    assert!(stream.message().await.unwrap().unwrap().created());
    let revisions: Vec<i64> = collect_events(&mut stream, 3).await.iter().map(|e| e.2).collect();
    assert_eq!(revisions, vec![2, 3, 4]);

    kv.compact(4, None).await.unwrap();
    let mut late = kv
        .watch("h", Some(WatchOptions::new().with_start_revision(3)))
        .await
        .unwrap();
    let mut canceled = None;
    while canceled.is_none() {
        let response = late.message().await.unwrap().unwrap();
        if response.canceled() {
            canceled = Some(response.compact_revision());
        }
    }
    assert_eq!(canceled, Some(4));
}

#[tokio::test]
async fn progress_notifications_and_requests() {
    let cluster = Cluster::start_with(
        Flavor::Ferrocd,
        1,
        &["--experimental-watch-progress-notify-interval=300ms"],
    );
    let mut kv = client(&[cluster.members[0].endpoint()]).await;
    kv.put("busy", "1", None).await.unwrap();
    let mut stream = kv
        .watch("quiet", Some(WatchOptions::new().with_progress_notify()))
        .await
        .unwrap();
    assert!(stream.message().await.unwrap().unwrap().created());
    let notice = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(notice.events().is_empty());
    assert_eq!(notice.header().unwrap().revision(), 2);

    stream.request_progress().await.unwrap();
    let answer = loop {
        let response = stream.message().await.unwrap().unwrap();
        if response.watch_id() == -1 {
            break response;
        }
    };
    assert_eq!(answer.header().unwrap().revision(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_keys_live_while_kept_alive_across_a_leader_change_and_expire_after() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let follower = (leader + 1) % 3;
    let mut kv = client(&[cluster.members[follower].endpoint()]).await;
    let lease = kv.lease_grant(2, None).await.unwrap();
    assert_eq!(lease.ttl(), 2);
    kv.put("leased", "v", Some(PutOptions::new().with_lease(lease.id())))
        .await
        .unwrap();
    let (mut keeper, mut acks) = kv.lease_keep_alive(lease.id()).await.unwrap();

    // Keep it alive for 6 s (three TTLs) while the leader is killed.
    let started = Instant::now();
    let mut killed = false;
    while started.elapsed() < Duration::from_secs(6) {
        keeper.keep_alive().await.unwrap();
        let ack = acks.message().await.unwrap().unwrap();
        assert_eq!(ack.ttl(), 2, "keep-alive answered for a live lease");
        if !killed && started.elapsed() > Duration::from_secs(1) {
            cluster.members[leader].kill();
            killed = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let found = kv.get("leased", None).await.unwrap();
    assert_eq!(found.count(), 1, "a kept-alive lease expired");
    let ttl = kv.lease_time_to_live(lease.id(), None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 2);

    drop(keeper);
    drop(acks);
    let endpoint = cluster.members[follower].endpoint();
    wait_until(Duration::from_secs(15), "the lease to expire", || {
        ctl_ok(&endpoint, &["get", "leased", "--print-value-only"])
            .trim()
            .is_empty()
    });
    let after = kv
        .get("leased", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(after.count(), 0);
    let leases = kv.leases().await.unwrap();
    assert!(leases.leases().iter().all(|l| l.id() != lease.id()));
}

#[test]
fn etcdctl_lease_commands() {
    let cluster = Cluster::start(1);
    let endpoint = cluster.members[0].endpoint();
    let granted = ctl_ok(&endpoint, &["lease", "grant", "100"]);
    let id = granted.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(granted.trim(), format!("lease {id} granted with TTL(100s)"));
    ctl_ok(&endpoint, &["put", "lk", "v", &format!("--lease={id}")]);
    let ttl = ctl_ok(&endpoint, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.contains("granted with TTL(100s)") && ttl.contains("attached keys([lk])"),
        "{ttl}"
    );
    let once = ctl_ok(&endpoint, &["lease", "keep-alive", "--once", &id]);
    assert_eq!(once.trim(), format!("lease {id} keepalived with TTL(100)"));
    assert!(ctl_ok(&endpoint, &["lease", "list"]).contains(&id));
    assert_eq!(
        ctl_ok(&endpoint, &["lease", "revoke", &id]).trim(),
        format!("lease {id} revoked")
    );
    assert_eq!(ctl_ok(&endpoint, &["get", "lk"]), "");
    assert_eq!(
        ctl_ok(&endpoint, &["lease", "timetolive", &id]).trim(),
        format!("lease {id} already expired")
    );
}

#[tokio::test]
async fn large_watch_responses_are_fragmented_on_request() {
    let cluster = Cluster::start_with(Flavor::Ferrocd, 1, &["--max-request-bytes=1024"]);
    let mut kv = client(&[cluster.members[0].endpoint()]).await;
    for i in 0..6 {
        kv.put(format!("f/{i}"), "x".repeat(300), None).await.unwrap();
    }
    // etcd-client hides the fragment flag; speak the protocol directly.
    use ferrocd::proto::etcdserverpb::{watch_client::WatchClient, watch_request, WatchCreateRequest, WatchRequest};
    let mut watch = WatchClient::connect(cluster.members[0].endpoint()).await.unwrap();
    let create = WatchCreateRequest {
        key: b"f/".to_vec(),
        range_end: b"f0".to_vec(),
        start_revision: 2,
        fragment: true,
        ..Default::default()
    };
    let request = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
    };
    let mut responses = watch.watch(tokio_stream::iter([request])).await.unwrap().into_inner();
    assert!(responses.message().await.unwrap().unwrap().created);
    let mut fragments = Vec::new();
    let mut events = 0;
    while events < 6 {
        let response = responses.message().await.unwrap().unwrap();
        events += response.events.len();
        fragments.push(response.fragment);
    }
    assert!(fragments.len() > 1, "a 1.9 kB replay over a 1 kB limit must be split");
    assert_eq!(fragments.last(), Some(&false));
    assert!(fragments[..fragments.len() - 1].iter().all(|f| *f));
}

/// A watcher that does not read while 10,000 writes happen: writers are
/// not held up (their rate with and without it is printed), and the watcher
/// then gets every event, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_does_not_slow_writers_and_catches_up() {
    let cluster = Cluster::start(1);
    let endpoint = cluster.members[0].endpoint();
    let write_burst = |prefix: &'static str| {
        let endpoint = endpoint.clone();
        async move {
            let started = Instant::now();
            let writers: Vec<_> = (0..16)
                .map(|w| {
                    let endpoint = endpoint.clone();
                    tokio::spawn(async move {
                        let mut kv = client(&[endpoint]).await;
                        for i in 0..625 {
                            kv.put(format!("{prefix}{w}/{i}"), "v".repeat(100), None).await.unwrap();
                        }
                    })
                })
                .collect();
            for writer in writers {
                writer.await.unwrap();
            }
            10_000.0 / started.elapsed().as_secs_f64()
        }
    };
    let without = write_burst("warm/").await;
    let mut kv = client(std::slice::from_ref(&endpoint)).await;
    let start = kv
        .put("stall/start", "", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let options = WatchOptions::new().with_prefix().with_start_revision(start + 1);
    let mut stalled = kv.watch("stall/", Some(options)).await.unwrap();
    let with = write_burst("stall/").await;
    println!("writes/s without a stalled watcher: {without:.0}, with one: {with:.0}");

    let mut revisions = Vec::new();
    while revisions.len() < 10_000 {
        let response = tokio::time::timeout(Duration::from_secs(30), stalled.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!response.canceled(), "the watcher was cancelled without compaction");
        revisions.extend(response.events().iter().map(|e| e.kv().unwrap().mod_revision()));
    }
    let expected: Vec<i64> = (start + 1..=start + 10_000).collect();
    assert_eq!(revisions, expected);
}

/// Runs `etcdctl watch <args> -w json` in the background through a scripted
/// sequence and returns the events it printed.
fn watch_transcript(flavor: Flavor, args: &[&str]) -> Vec<serde_json::Value> {
    let cluster = Cluster::start_with(flavor, 1, &[]);
    let endpoint = cluster.members[0].endpoint();
    ctl_ok(&endpoint, &["put", "w/old", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("watch.json");
    let mut watcher = std::process::Command::new(crate::support::etcdctl_path())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("watch")
        .args(args)
        .args(["-w", "json"])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    ctl_ok(&endpoint, &["put", "w/a", "1"]);
    ctl_ok(&endpoint, &["put", "w/a", "2"]);
    ctl_ok(&endpoint, &["del", "w/a"]);
    crate::support::etcdctl_with_input(&endpoint, &["txn"], Some(b"\nput w/b 3\nput w/c 4\n\n"));
    ctl_ok(&endpoint, &["del", "w/", "--prefix"]);
    ctl_ok(&endpoint, &["put", "w/a", "END"]);
    wait_until(Duration::from_secs(10), "the sentinel event", || {
        std::fs::read_to_string(&out).unwrap_or_default().contains("RU5E")
    });
    watcher.kill().unwrap();
    watcher.wait().unwrap();
    // Responses may batch events differently (etcd does not define it);
    // the events themselves, in order, must be the same.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut events = Vec::new();
    for response in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
        let response = response.unwrap();
        assert_eq!(response["Canceled"], false);
        events.extend(response["Events"].as_array().cloned().unwrap_or_default());
    }
    events
}

#[test]
fn etcdctl_watch_prints_what_real_etcd_prints() {
    if crate::support::reference_etcd().is_none() {
        panic!("real etcd 3.4.23 is required in /opt/etcd (bash tests/run.sh installs it)");
    }
    // Every watch starts at revision 2, so it sees the same history whenever
    // etcdctl gets it established.
    let variants: [&[&str]; 4] = [
        &["w/", "--prefix", "--rev=2"],
        &["w/", "--prefix", "--rev=2", "--prev-kv"],
        &["w/a", "--rev=2"],
        &["w/a", "w/c", "--rev=2"],
    ];
    for args in variants {
        let ours = watch_transcript(Flavor::Ferrocd, args);
        let theirs = watch_transcript(Flavor::Etcd, args);
        assert_eq!(ours, theirs, "etcdctl watch {args:?}");
    }
}
