//! Life under systemd, with the test in systemd's place: the notifications a member sends on
//! `NOTIFY_SOCKET` while it waits for quorum, once it serves, while healthy, and on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{wait_until, Cluster, Flavor};

/// Every datagram received on a socket, in order, each line separately.
fn listen(socket: UnixDatagram) -> Arc<Mutex<Vec<String>>> {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..n]).to_string();
            sink.lock().unwrap().extend(text.lines().map(str::to_string));
        }
    });
    received
}

fn position(messages: &[String], prefix: &str) -> Option<usize> {
    messages.iter().position(|m| m.starts_with(prefix))
}

#[test]
fn notifies_waiting_ready_watchdog_and_stopping_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let messages = listen(UnixDatagram::bind(&socket_path).unwrap());
    let seen = |prefix: &str| position(&messages.lock().unwrap(), prefix).is_some();

    let mut cluster = Cluster::prepare(Flavor::Ferrocd, 3, &[]);
    cluster.members[0].env = vec![
        ("NOTIFY_SOCKET".into(), socket_path.to_string_lossy().into()),
        ("WATCHDOG_USEC".into(), "400000".into()),
    ];
    cluster.members[0].start();
    let waiting = "STATUS=waiting for quorum: 1 of 3 members reachable";
    wait_until(Duration::from_secs(10), "the waiting status", || seen(waiting));
    wait_until(Duration::from_secs(10), "a start timeout extension", || {
        seen("EXTEND_TIMEOUT_USEC=30000000")
    });
    assert!(!seen("READY=1"), "ready without quorum: {:?}", messages.lock().unwrap());
    assert!(!seen("WATCHDOG=1"), "watchdog pings before serving");

    cluster.members[1].start();
    cluster.members[2].start();
    wait_until(Duration::from_secs(30), "READY=1", || seen("READY=1"));
    assert!(cluster.members[0].healthy(), "READY=1 before the member serves");
    wait_until(Duration::from_secs(10), "the serving status", || {
        seen("STATUS=serving: leader=m")
    });
    wait_until(Duration::from_secs(10), "watchdog pings", || {
        messages.lock().unwrap().iter().filter(|m| *m == "WATCHDOG=1").count() >= 3
    });
    let status = cluster.members[0].stop();
    assert!(status.success(), "{status:?}");
    wait_until(Duration::from_secs(5), "STOPPING=1", || seen("STOPPING=1"));

    let messages = messages.lock().unwrap().clone();
    let at = |prefix: &str| position(&messages, prefix).unwrap_or_else(|| panic!("no {prefix} in {messages:?}"));
    assert!(at(waiting) < at("READY=1"), "{messages:?}");
    assert!(at("EXTEND_TIMEOUT_USEC=") < at("READY=1"), "{messages:?}");
    assert!(at("READY=1") < at("WATCHDOG=1"), "{messages:?}");
    assert!(at("READY=1") < at("STATUS=serving: "), "{messages:?}");
    assert!(at("STOPPING=1") > at("WATCHDOG=1"), "{messages:?}");
    assert!(messages.contains(&"STATUS=stopping".to_string()), "{messages:?}");
    let extensions_after_ready = messages[at("READY=1")..]
        .iter()
        .filter(|m| m.starts_with("EXTEND_TIMEOUT_USEC="));
    assert_eq!(extensions_after_ready.count(), 0, "{messages:?}");
}
