//! The .deb and .rpm, installed for real on hosts booted with systemd (systemd-nspawn over a
//! Debian bookworm root, see `tests/hosts/lib.sh`): `tests/hosts/packages.sh` builds them with
//! `packaging/build.sh` (reusing the release binaries), lints them, installs, starts, inspects,
//! breaks, upgrades, removes and purges them, installs the .rpm with `rpm -ivh --nodeps`, and
//! forms a three-host cluster from seed-style etcd.conf files. Needs root (CI has it); skipped
//! otherwise.

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, SIGTERM};
use nix::unistd::{Pid, Uid};

/// Far more than the script needs (about 1.5 minutes here, plus about 2 minutes the first time,
/// to build the cached root filesystem).
const LIMIT: Duration = Duration::from_secs(15 * 60);

/// Runs `script` from the repository root with its output in a file; SIGTERM after `LIMIT`
/// (the script's trap then stops its hosts). Returns the exit status (None on timeout) and
/// the whole output.
fn run_script(script: &str) -> (Option<ExitStatus>, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    // One open file for both streams (a duplicate shares the offset), so neither overwrites
    // the other.
    let output = log.reopen().unwrap();
    let mut child = Command::new("bash")
        .arg(script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
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
fn packages_install_run_upgrade_and_form_a_cluster_on_systemd_hosts() {
    if !Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (status, output) = run_script("tests/hosts/packages.sh");
    println!("{output}");
    let failure = output.lines().rfind(|line| line.starts_with("FAIL: "));
    match status {
        Some(status) => assert!(
            status.success(),
            "tests/hosts/packages.sh exited with {status}: {}\n(full output above)",
            failure.unwrap_or("no FAIL line")
        ),
        None => panic!("tests/hosts/packages.sh took more than {LIMIT:?}\n(full output above)"),
    }
    assert!(output.contains("checks passed in"), "no summary line");
}
