//! Configuration files on the real binary: a member started from an etcd.conf or from etcd's
//! YAML file serves, and `check-config` passes the deployment guide's file and refuses a broken
//! one with its line numbers.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{ctl_ok, free_port, http_get, FERROCD};

/// Starts ferrocd with only `--config-file`, waits until it serves, writes and reads a key, and
/// stops it with SIGTERM.
fn serves_from(file_text: &str, client_port: u16, dir: &std::path::Path) {
    let path = dir.join("etcd.conf");
    std::fs::write(&path, file_text).unwrap();
    let log_path = dir.join("member.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(FERROCD)
        .arg("--config-file")
        .arg(&path)
        .env_remove("ETCD_NAME")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let healthy = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        matches!(http_get(client_port, "/health"), Some((200, _)))
    });
    let endpoint = format!("http://127.0.0.1:{client_port}");
    let served = healthy && {
        ctl_ok(&endpoint, &["put", "from-file", "yes"]);
        ctl_ok(&endpoint, &["get", "from-file", "--print-value-only"]).trim() == "yes"
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(served && status.success(), "{status:?}; log:\n{log}");
}

#[test]
fn a_member_starts_from_an_etcd_conf_file() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let text = format!(
        "# /etc/etcd/etcd.conf\n[member]\nexport ETCD_NAME=conf1\nETCD_DATA_DIR=\"{}/data\"\n\
         ETCD_LISTEN_CLIENT_URLS='http://127.0.0.1:{client}'\nETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:{client}\n\
         ETCD_LISTEN_PEER_URLS=\"http://127.0.0.1:{peer}\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:{peer}\n\
         [cluster]\nETCD_INITIAL_CLUSTER=\"conf1=http://127.0.0.1:{peer}\"\nETCD_INITIAL_CLUSTER_STATE=\"new\"\n",
        dir.path().display()
    );
    serves_from(&text, client, dir.path());
}

#[test]
fn a_member_starts_from_etcds_yaml_file() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let text = format!(
        "# etcd.conf.yml\nname: yaml1\ndata-dir: {}/data\nlisten-client-urls: http://127.0.0.1:{client}\n\
         advertise-client-urls: http://127.0.0.1:{client}\nlisten-peer-urls: http://127.0.0.1:{peer}\n\
         initial-advertise-peer-urls: http://127.0.0.1:{peer}\ninitial-cluster: yaml1=http://127.0.0.1:{peer}\n\
         initial-cluster-state: 'new'\nclient-transport-security:\n  client-cert-auth: false\n",
        dir.path().display()
    );
    serves_from(&text, client, dir.path());
}

#[test]
fn check_config_passes_the_guide_file_and_lists_errors_of_a_broken_one() {
    let guide = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/guide-etcd.conf");
    let out = Command::new(FERROCD)
        .args(["check-config", "--config-file", guide])
        .env_remove("ETCD_NAME")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!(
        "{guide}:5: warning: --advertise-client-urls has http://0.0.0.0:2379"
    )));

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("etcd.conf");
    std::fs::write(
        &broken,
        "ETCD_NAME=a\nETCD_ELECTION_TIMEOUT=soon\nETCD_LISTEN_CLIENT_URLS=http://h:1\n",
    )
    .unwrap();
    let out = Command::new(FERROCD)
        .args(["check-config", "--config-file"])
        .arg(&broken)
        .env_remove("ETCD_NAME")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let path = broken.display();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{path}:2: error: invalid value \"soon\" for ETCD_ELECTION_TIMEOUT"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:3: error: expected IP in URL for binding (http://h:1)")),
        "{stderr}"
    );
    assert!(stderr.ends_with("ferrocd would not start\n"), "{stderr}");
}

/// A member that joins a running cluster (the cluster operations' `member add`, then a start
/// with `existing` and an empty data dir) passes check-config, which the systemd unit runs
/// before every start; its name must still be in the initial cluster.
#[test]
fn check_config_passes_a_joining_member_and_wants_its_name_listed() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str| {
        let file = dir.path().join(format!("{name}.conf"));
        std::fs::write(
            &file,
            format!(
                "[member]\nETCD_NAME={name}\nETCD_DATA_DIR={}/data\n\
                 ETCD_LISTEN_PEER_URLS=http://127.0.0.1:2380\nETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:2379\n\
                 [cluster]\nETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:2380\nETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:2379\n\
                 ETCD_INITIAL_CLUSTER=a=http://10.0.0.1:2380,d=http://127.0.0.1:2380\n\
                 ETCD_INITIAL_CLUSTER_STATE=existing\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let out = Command::new(FERROCD)
            .args(["check-config", "--config-file"])
            .arg(&file)
            .env_remove("ETCD_NAME")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = check("d");
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = check("e");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("error: couldn't find local name \"e\" in the initial cluster configuration"),
        "{stderr}"
    );
}
