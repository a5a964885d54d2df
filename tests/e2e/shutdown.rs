//! Stopping with clients still attached: a watch stream that never ends by itself does not hold
//! the stop past the drain deadline (it is cut, and the member exits 0), and a second SIGTERM
//! during the drain ends the process at once.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{kill, SIGTERM};
use nix::unistd::Pid;

use crate::support::{ctl_ok, etcdctl_path, wait_until, Cluster};

/// An `etcdctl watch` on `key`, whose output lines arrive on the receiver.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    fn start(endpoint: &str, key: &str) -> Watch {
        let mut child = Command::new(etcdctl_path())
            .env("ETCDCTL_API", "3")
            .args([&format!("--endpoints={endpoint}"), "watch", key])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sink, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sink.send(line).is_err() {
                    return;
                }
            }
        });
        Watch { child, lines }
    }

    /// Puts `value` under `key` until the watch reports it: the stream is then surely open.
    fn wait_open(&self, endpoint: &str, key: &str) {
        wait_until(Duration::from_secs(20), "the watch to report a put", || {
            ctl_ok(endpoint, &["put", key, "ping"]);
            std::iter::from_fn(|| self.lines.recv_timeout(Duration::from_millis(300)).ok()).any(|line| line == "ping")
        });
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_open_watch_stream_is_cut_at_the_drain_deadline_and_the_member_exits_0() {
    let mut cluster = Cluster::start(1);
    let endpoint = cluster.members[0].endpoint();
    let watch = Watch::start(&endpoint, "k");
    watch.wait_open(&endpoint, "k");

    // `stop` waits at most 15 s for the exit: a hang guard, well above the 5 s drain deadline.
    let status = cluster.members[0].stop();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let log = cluster.members[0].log();
    let cut = log
        .find("client requests or streams still open 5s after the stop began; closed them")
        .expect("the watch stream was not cut");
    let stopped = log.find("data flushed; member stopped").expect("no clean stop");
    assert!(cut < stopped, "{log}");
    drop(watch);
}

#[test]
fn a_second_sigterm_during_the_drain_exits_at_once() {
    let mut cluster = Cluster::start(1);
    let endpoint = cluster.members[0].endpoint();
    let watch = Watch::start(&endpoint, "k");
    watch.wait_open(&endpoint, "k");

    let member = &mut cluster.members[0];
    let pid = Pid::from_raw(member.pid());
    kill(pid, SIGTERM).unwrap();
    wait_until(Duration::from_secs(10), "the stop to begin", || {
        member.log().contains("received shutdown signal, stopping")
    });
    kill(pid, SIGTERM).unwrap();
    // Generous: a hang guard, not a measure of speed.
    let status = member.wait_exit(Duration::from_secs(15));
    let log = member.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("second signal: exiting without a clean shutdown"), "{log}");
    assert!(!log.contains("member stopped"), "the drain ran to its end: {log}");
    drop(watch);
}
