//! Durability ordering: a put is acknowledged only after the log was synced
//! to disk on the leader and on a quorum of followers. Each member runs
//! under strace, which records its fdatasync/fsync calls as they happen; a
//! sync that completes inside the window of one acknowledged put (and in no
//! quiet window) belongs to that put.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{ctl_ok, free_port, wait_until, FERROCD};

struct Traced {
    child: Child,
    trace: PathBuf,
    log: PathBuf,
}

impl Traced {
    fn syncs(&self) -> usize {
        std::fs::read_to_string(&self.trace)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("fdatasync(") || l.contains("fsync("))
            .filter(|l| l.contains("= 0"))
            .count()
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- {} -----\n{}",
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_traced(dir: &Path, name: &str, client: u16, peer: u16, cluster: &str) -> Traced {
    let trace = dir.join(format!("{name}.trace"));
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(FERROCD)
        .args([
            "--name",
            name,
            "--initial-cluster",
            cluster,
            "--initial-cluster-token",
            "durability",
        ])
        .arg("--data-dir")
        .arg(dir.join(format!("{name}.etcd")))
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
        .args(["--advertise-client-urls", &format!("http://127.0.0.1:{client}")])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("strace");
    Traced { child, trace, log }
}

#[test]
fn a_put_is_acknowledged_after_syncs_on_a_quorum() {
    assert!(strace_available(), "strace is required (bash .ci/run installs it)");
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let cluster = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let members: Vec<Traced> = ports
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| start_traced(dir.path(), &format!("m{i}"), *client, *peer, &cluster))
        .collect();
    let endpoints: Vec<String> = ports.iter().map(|(c, _)| format!("http://127.0.0.1:{c}")).collect();
    for endpoint in &endpoints {
        wait_until(Duration::from_secs(60), "members under strace to serve", || {
            ctl_ok_quiet(endpoint)
        });
    }

    // A quiet window with no requests: heartbeats must not sync anything,
    // otherwise the counts below would prove nothing.
    // (A follower still catching up on the warm-up may sync for a while.)
    wait_until(Duration::from_secs(20), "half a second without syncs", || {
        let before: Vec<usize> = members.iter().map(Traced::syncs).collect();
        std::thread::sleep(Duration::from_millis(500));
        before == members.iter().map(Traced::syncs).collect::<Vec<_>>()
    });

    for round in 0..5 {
        let before: Vec<usize> = members.iter().map(Traced::syncs).collect();
        ctl_ok(&endpoints[round % 3], &["put", "durable", &round.to_string()]);
        let after: Vec<usize> = members.iter().map(Traced::syncs).collect();
        let synced = before.iter().zip(&after).filter(|(b, a)| a > b).count();
        assert!(
            synced >= 2,
            "round {round}: put acknowledged after syncs on {synced} of 3 members ({before:?} -> {after:?})"
        );
    }
}

fn ctl_ok_quiet(endpoint: &str) -> bool {
    crate::support::etcdctl(endpoint, &["put", "warmup", "1"])
        .status
        .success()
}
