//! Started as root with `--user nobody`: every thread runs as nobody, the data dir belongs to
//! nobody with mode 0700, and the member serves. Skipped when the tests do not run as root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, SIGTERM};
use nix::unistd::{Pid, Uid, User};

use crate::support::{ctl_ok, free_port, http_get, FERROCD};

/// The `Uid:` and `Gid:` lines of every thread of `pid`.
fn thread_credentials(pid: u32) -> Vec<(String, String)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .map(|status| {
            let field = |name: &str| {
                let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_default();
                line.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
            };
            (field("Uid:"), field("Gid:"))
        })
        .collect()
}

#[test]
fn runs_as_the_user_given_after_preparing_as_root() {
    if !Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let nobody = User::from_name("nobody").unwrap().expect("user nobody");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = dir.path().join("data");
    let log_path = dir.path().join("member.log");
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut child = Command::new(FERROCD)
        .args(["--user", "nobody", "--data-dir"])
        .arg(&data_dir)
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
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .env_remove("ETCD_NAME")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let healthy = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        matches!(http_get(client, "/health"), Some((200, _)))
    });
    let checked = std::panic::catch_unwind(|| {
        assert!(healthy, "member did not serve");
        ctl_ok(&client_url, &["put", "k", "as-nobody"]);
        assert_eq!(
            ctl_ok(&client_url, &["get", "k", "--print-value-only"]).trim(),
            "as-nobody"
        );
        let (uid, gid) = (nobody.uid.to_string(), nobody.gid.to_string());
        let expected = (format!("{uid} {uid} {uid} {uid}"), format!("{gid} {gid} {gid} {gid}"));
        let threads = thread_credentials(child.id());
        assert!(threads.len() > 1, "{threads:?}");
        assert!(threads.iter().all(|t| *t == expected), "{threads:?}");
        let metadata = std::fs::metadata(&data_dir).unwrap();
        assert_eq!(
            (metadata.uid(), metadata.gid()),
            (nobody.uid.as_raw(), nobody.gid.as_raw())
        );
        assert_eq!(metadata.permissions().mode() & 0o777, 0o700);
    });
    kill(Pid::from_raw(child.id() as i32), SIGTERM).unwrap();
    let status = child.wait().unwrap();
    if let Err(panic) = checked {
        eprintln!("----- member log -----\n{}", log());
        std::panic::resume_unwind(panic);
    }
    assert!(status.success(), "{status:?}\n{}", log());
    assert!(log().contains("dropped root privileges user=nobody"), "{}", log());
}
