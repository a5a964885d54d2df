//! The Ansible role and playbooks (ansible/), run for real against hosts booted with systemd
//! (systemd-nspawn over a Debian bookworm root, see `tests/hosts/lib.sh`):
//! `tests/hosts/ansible.sh` lints the playbooks, builds the .deb with `packaging/build.sh`,
//! rolls out a three-member cluster with site.yml (firewalld and ufw hosts), checks idempotence,
//! the firewall from outside and between members, power cuts, the TLS PKI, rolling-restart.yml,
//! replace-member.yml under a writing client and scale.yml to five and back. Needs root (CI has
//! it); skipped otherwise.

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, SIGTERM};
use nix::unistd::{Pid, Uid};

/// Far more than the script needs (a few minutes here, plus about 2 minutes the first time, to
/// build the cached root filesystem and the Ansible venv).
const LIMIT: Duration = Duration::from_secs(15 * 60);

/// Runs `script` from the repository root with its output in a file; SIGTERM after `LIMIT`
/// (the script's trap then stops its hosts). Returns the exit status (None on timeout) and
/// the whole output.
fn run_script(script: &str) -> (Option<ExitStatus>, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new("bash")
        .arg(script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = kill(Pid::from_raw(child.id() as i32), SIGTERM);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (status, std::fs::read_to_string(log.path()).unwrap())
}

#[test]
fn ansible_deploys_replaces_and_scales_a_cluster_on_systemd_hosts() {
    if !Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (status, output) = run_script("tests/hosts/ansible.sh");
    println!("{output}");
    let failure = output.lines().rfind(|line| line.starts_with("FAIL: "));
    match status {
        Some(status) => assert!(
            status.success(),
            "tests/hosts/ansible.sh exited with {status}: {}\n(full output above)",
            failure.unwrap_or("no FAIL line")
        ),
        None => panic!("tests/hosts/ansible.sh took more than {LIMIT:?}\n(full output above)"),
    }
    assert!(output.contains("checks passed in"), "no summary line");
}
