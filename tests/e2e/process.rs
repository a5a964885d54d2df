//! The process around the server: the open-files limit raised and logged, connections refused
//! (not a crash, not a spin) while descriptors run out, the worker pool sized from the CPUs it
//! may use or by `--worker-threads`, and log lines for the journal, as JSON or in files that
//! SIGHUP reopens.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, SIGHUP, SIGTERM};
use nix::unistd::Pid;

use crate::support::{ctl_ok, free_port, http_get, wait_until, FERROCD};

/// Runs one member from `command` (ferrocd, or a wrapper that execs it) until it serves, calls
/// `check` with its pid and client port, stops it with SIGTERM and returns its stderr.
fn serve(mut command: Command, check: impl FnOnce(u32, u16)) -> String {
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
    check(child.id(), client);
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
    let log = serve(command, |pid, _| {
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

/// One HTTP/1.1 request on a kept-alive connection; the status and body, or `None` when the
/// server closed the connection or did not answer.
fn request(stream: &mut TcpStream, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(format!("{head}{body}").as_bytes()).ok()?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).ok()?;
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).to_string()))
}

#[test]
fn running_out_of_descriptors_refuses_connections_and_recovers() {
    let mut command = Command::new(FERROCD);
    // A member needs about 20 descriptors; 64 run out after some 40 connections.
    // SAFETY: setrlimit is async-signal-safe and touches nothing but the child's own limits.
    unsafe {
        command.pre_exec(|| setrlimit(Resource::RLIMIT_NOFILE, 64, 64).map_err(std::io::Error::from));
    }
    let log = serve(command, |pid, port| {
        let connect = || TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut kept = connect();
        assert_eq!(request(&mut kept, "GET", "/health", "").map(|r| r.0), Some(200));
        let (mut held, mut refused) = (Vec::new(), 0);
        while refused < 3 {
            assert!(held.len() < 200, "never refused a connection");
            let mut connection = connect();
            match request(&mut connection, "GET", "/health", "") {
                Some((200, _)) => held.push(connection),
                _ => refused += 1,
            }
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat.rsplit(") ").next().unwrap().chars().next();
        assert_ne!(state, Some('Z'), "the member died");
        // A connection made before still works, for writes too.
        let put = request(&mut kept, "POST", "/v3/kv/put", r#"{"key":"YQ==","value":"MQ=="}"#);
        assert_eq!(put.map(|r| r.0), Some(200));
        assert_eq!(request(&mut kept, "GET", "/health", "").map(|r| r.0), Some(200));
        drop(held);
        wait_until(Duration::from_secs(10), "new connections to be served", || {
            matches!(http_get(port, "/health"), Some((200, _)))
        });
        let endpoint = format!("127.0.0.1:{port}");
        ctl_ok(&endpoint, &["put", "b", "2"]);
        assert_eq!(ctl_ok(&endpoint, &["get", "a", "--print-value-only"]).trim(), "1");
        assert_eq!(ctl_ok(&endpoint, &["get", "b", "--print-value-only"]).trim(), "2");
    });
    let warnings = log.matches("out of file descriptors: refusing new connections").count();
    assert_eq!(warnings, 1, "one warning per burst: {log}");
    assert!(log.contains("file descriptors available again"), "{log}");
}

#[test]
fn worker_threads_follow_the_cpus_allowed_or_the_flag() {
    let mut pinned = Command::new("taskset");
    pinned.args(["-c", "0", FERROCD]);
    let log = serve(pinned, |_, _| {});
    assert!(log.contains("runtime started workers=1"), "{log}");

    let mut flagged = Command::new("taskset");
    flagged.args(["-c", "0", FERROCD, "--worker-threads=3"]);
    let log = serve(flagged, |_, _| {});
    assert!(log.contains("runtime started workers=3"), "{log}");
}

#[test]
fn journal_lines_carry_priorities_and_no_timestamps() {
    let mut command = Command::new(FERROCD);
    command
        .env("JOURNAL_STREAM", "8:12345")
        .args(["--snapshot-count=5", "--pre-vote"]);
    let log = serve(command, |_, _| {});
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
    let log = serve(command, |_, _| {});
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    let ready = lines
        .iter()
        .find(|l| l["fields"]["message"] == "ready to serve client requests");
    assert_eq!(ready.expect("ready line")["level"], "INFO", "{log}");
}

#[test]
fn sighup_reopens_log_files_after_logrotate_moved_them() {
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("etcd.log");
    let rotated = dir.path().join("etcd.log.1");
    let mut command = Command::new(FERROCD);
    command.args(["--logger=zap", &format!("--log-outputs={},stderr", log_file.display())]);
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    let stderr = serve(command, |pid, port| {
        assert!(
            read(&log_file).contains("ready to serve client requests"),
            "{}",
            read(&log_file)
        );
        std::fs::rename(&log_file, &rotated).unwrap();
        kill(Pid::from_raw(pid as i32), SIGHUP).unwrap();
        wait_until(Duration::from_secs(10), "a new log file", || {
            read(&log_file).contains("SIGHUP: log file reopened")
        });
        let endpoint = format!("127.0.0.1:{port}");
        ctl_ok(&endpoint, &["put", "k", "v"]);
        assert_eq!(ctl_ok(&endpoint, &["get", "k", "--print-value-only"]).trim(), "v");
    });
    let (old, new) = (read(&rotated), read(&log_file));
    assert!(old.contains("ready to serve client requests"), "{old}");
    assert!(
        !old.contains("log file reopened") && !old.contains("member stopped"),
        "{old}"
    );
    assert!(
        new.contains("received shutdown signal") && new.contains("member stopped"),
        "{new}"
    );
    assert!(!new.contains("ready to serve client requests"), "{new}");
    // stderr got every line, before and after.
    assert!(
        stderr.contains("ready to serve client requests") && stderr.contains("member stopped"),
        "{stderr}"
    );
}

#[test]
fn log_outputs_are_checked_as_etcd_checks_them() {
    let run = |args: &[&str]| {
        let output = Command::new(FERROCD)
            .args(args)
            .env_remove("ETCD_NAME")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} started");
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        stderr.lines().last().unwrap_or_default().to_string()
    };
    assert_eq!(
        run(&["--log-outputs=/tmp/ferrocd.log"]),
        r#"ferrocd: unknown log-output "/tmp/ferrocd.log" (only supports "default", "stderr", "stdout")"#
    );
    assert_eq!(
        run(&["--logger=zap", "--log-outputs=/nonexistent/dir/etcd.log"]),
        r#"ferrocd: open sink "/nonexistent/dir/etcd.log": open /nonexistent/dir/etcd.log: no such file or directory"#
    );
    assert_eq!(
        run(&["--logger=zap", "--log-outputs=default,stderr"]),
        r#"ferrocd: multi logoutput for "default" is not supported yet"#
    );
}
