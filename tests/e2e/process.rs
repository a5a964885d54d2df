//! The process around the server: the open-files limit raised and logged, the worker pool sized
//! from the CPUs it may use or by `--worker-threads`, and log lines for the journal or as JSON.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, SIGTERM};
use nix::unistd::Pid;

use crate::support::{free_port, http_get, FERROCD};

/// Runs one member from `command` (ferrocd, or a wrapper that execs it) until it serves, calls
/// `check` with its pid, stops it with SIGTERM and returns its stderr.
fn serve(mut command: Command, check: impl FnOnce(u32)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let log_path = dir.path().join("member.log");
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let initial_cluster = format!("default={peer_url}");
    let data_dir = dir.path().join("data");
    let mut child = command
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &initial_cluster, "--data-dir"])
        .arg(&data_dir)
        .env_remove("ETCD_NAME")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let healthy = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        matches!(http_get(client, "/health"), Some((200, _)))
    });
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    if !healthy {
        let _ = child.kill();
        panic!("member did not serve; log:\n{}", log());
    }
    check(child.id());
    kill(Pid::from_raw(child.id() as i32), SIGTERM).unwrap();
    assert!(child.wait().unwrap().success(), "log:\n{}", log());
    log()
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit_and_a_low_one_warns() {
    let mut command = Command::new(FERROCD);
    // SAFETY: setrlimit is async-signal-safe and touches nothing but the child's own limits.
    unsafe {
        command.pre_exec(|| setrlimit(Resource::RLIMIT_NOFILE, 1024, 4096).map_err(std::io::Error::from));
    }
    let log = serve(command, |pid| {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let open_files = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_string();
        assert_eq!(
            open_files.split_whitespace().collect::<Vec<_>>()[3..5],
            ["4096", "4096"],
            "{open_files}"
        );
    });
    assert!(
        log.contains("RLIMIT_NOFILE: open files limit soft=4096 hard=4096 was=1024"),
        "{log}"
    );
    assert!(
        log.contains("below 65536") && log.contains("set LimitNOFILE=65536 in the systemd unit"),
        "{log}"
    );
}

#[test]
fn worker_threads_follow_the_cpus_allowed_or_the_flag() {
    let mut pinned = Command::new("taskset");
    pinned.args(["-c", "0", FERROCD]);
    let log = serve(pinned, |_| {});
    assert!(log.contains("runtime started workers=1"), "{log}");

    let mut flagged = Command::new("taskset");
    flagged.args(["-c", "0", FERROCD, "--worker-threads=3"]);
    let log = serve(flagged, |_| {});
    assert!(log.contains("runtime started workers=3"), "{log}");
}

#[test]
fn journal_lines_carry_priorities_and_no_timestamps() {
    let mut command = Command::new(FERROCD);
    command
        .env("JOURNAL_STREAM", "8:12345")
        .args(["--snapshot-count=5", "--pre-vote"]);
    let log = serve(command, |_| {});
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with('<')), "{log}");
    assert!(lines.contains(&"<6> INFO ready to serve client requests"), "{log}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4> WARN flag --pre-vote is accepted")),
        "{log}"
    );
    let levels = ["INFO ", "WARN ", "ERROR ", "DEBUG "];
    for line in lines {
        let (_, rest) = line.split_once('>').unwrap();
        assert!(
            levels.iter().any(|level| rest.trim_start().starts_with(level)),
            "a timestamp? {line}"
        );
    }
}

#[test]
fn json_log_lines_parse() {
    let mut command = Command::new(FERROCD);
    command.arg("--log-format=json");
    let log = serve(command, |_| {});
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    let ready = lines
        .iter()
        .find(|l| l["fields"]["message"] == "ready to serve client requests");
    assert_eq!(ready.expect("ready line")["level"], "INFO", "{log}");
}
