//! TLS: a three-member cluster with client and peer TLS and client certificate authentication
//! driven by etcdctl; refused plaintext, missing and foreign client certificates; a member with
//! a peer certificate from another CA that cannot join; certificate rotation with SIGHUP; key
//! file checks. Certificates are generated here (rcgen), never committed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::support::{etcdctl_path, free_port, wait_until, FERROCD};

/// A certificate authority that signs test certificates into a directory.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    name: &'static str,
}

/// Paths of a certificate and its key.
#[derive(Clone)]
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &'static str) -> Ca {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), issuer.pem()).unwrap();
        Ca {
            issuer,
            dir: dir.to_path_buf(),
            name,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A certificate for both server and client use, for 127.0.0.1 and localhost, written as
    /// `<file>.pem` and `<file>-key.pem` (mode 0600).
    fn issue(&self, file: &str, common_name: &str, serial: u64) -> Pair {
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.serial_number = Some(serial.into());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let pair = Pair {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}-key.pem")),
        };
        std::fs::write(&pair.cert, cert.pem()).unwrap();
        let _ = std::fs::remove_file(&pair.key);
        std::fs::write(&pair.key, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&pair.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        pair
    }
}

fn text(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// One ferrocd process with TLS flags, its log in the test's directory.
struct Node {
    name: String,
    client_port: u16,
    peer_port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(dir: &Path, name: &str) -> Node {
        Node {
            name: name.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
            log: dir.join(format!("{name}.log")),
            child: None,
        }
    }

    fn client_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.peer_port)
    }

    fn start(&mut self, dir: &Path, initial_cluster: &str, state: &str, tls: &[String]) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(FERROCD)
            .args(["--name", &self.name])
            .args(["--data-dir", &text(&dir.join(format!("{}.etcd", self.name)))])
            .args(["--listen-client-urls", &self.client_url()])
            .args(["--advertise-client-urls", &self.client_url()])
            .args(["--listen-peer-urls", &self.peer_url()])
            .args(["--initial-advertise-peer-urls", &self.peer_url()])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", "tls-e2e"])
            .args(tls)
            .env_remove("ETCD_NAME")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().unwrap().try_wait().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- log of {} -----\n{}", self.name, self.log());
        }
    }
}

fn peer_flags(ca: &Ca, pair: &Pair) -> Vec<String> {
    vec![
        "--peer-client-cert-auth".into(),
        format!("--peer-trusted-ca-file={}", text(&ca.ca_file())),
        format!("--peer-cert-file={}", text(&pair.cert)),
        format!("--peer-key-file={}", text(&pair.key)),
    ]
}

fn client_flags(ca: &Ca, pair: &Pair) -> Vec<String> {
    vec![
        "--client-cert-auth".into(),
        format!("--trusted-ca-file={}", text(&ca.ca_file())),
        format!("--cert-file={}", text(&pair.cert)),
        format!("--key-file={}", text(&pair.key)),
    ]
}

/// etcdctl with TLS options (`--cacert --cert --key` as given).
fn ctl(endpoints: &str, tls: &[String], args: &[&str]) -> Output {
    Command::new(etcdctl_path())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(["--dial-timeout=2s", "--command-timeout=5s"])
        .args(tls)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ctl_ok(endpoints: &str, tls: &[String], args: &[&str]) -> String {
    let out = ctl(endpoints, tls, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ctl_tls(ca: &Path, pair: Option<&Pair>) -> Vec<String> {
    let mut flags = vec![format!("--cacert={}", text(ca))];
    if let Some(pair) = pair {
        flags.push(format!("--cert={}", text(&pair.cert)));
        flags.push(format!("--key={}", text(&pair.key)));
    }
    flags
}

/// curl's HTTP status for `url`, with the CA and optionally a client certificate; `None` when
/// the connection or handshake fails.
fn curl_status(url: &str, ca: &Path, pair: Option<&Pair>) -> Option<u16> {
    let mut command = Command::new("curl");
    command.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "--cacert",
    ]);
    command.arg(ca);
    if let Some(pair) = pair {
        command.arg("--cert").arg(&pair.cert).arg("--key").arg(&pair.key);
    }
    let out = command.arg(url).output().unwrap();
    let code: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    (out.status.success() && code != 0).then_some(code)
}

/// The serial number of the certificate served on `port`, read with `openssl s_client`.
fn served_serial(port: u16, ca: &Path, pair: &Pair) -> Option<String> {
    let handshake = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-CAfile"])
        .arg(ca)
        .arg("-cert")
        .arg(&pair.cert)
        .arg("-key")
        .arg(&pair.key)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    x509.stdin.take().unwrap().write_all(&handshake.stdout).unwrap();
    let out = x509.wait_with_output().unwrap();
    let serial = String::from_utf8_lossy(&out.stdout).trim().to_string();
    serial.strip_prefix("serial=").map(str::to_string)
}

fn healthy(endpoint: &str, tls: &[String]) -> bool {
    ctl(endpoint, tls, &["endpoint", "health"]).status.success()
}

#[test]
fn tls_cluster_refuses_what_it_should_and_a_foreign_peer_cannot_join() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "main");
    let other = Ca::new(dir.path(), "other");
    let admin = ca.issue("admin", "admin", 100);
    let stranger = other.issue("stranger", "admin", 101);
    let mut nodes: Vec<Node> = (1..=3).map(|i| Node::new(dir.path(), &format!("m{i}"))).collect();
    let initial_cluster = nodes
        .iter()
        .map(|n| format!("{}={}", n.name, n.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    for (i, node) in nodes.iter_mut().enumerate() {
        let server = ca.issue(&format!("m{}", i + 1), &format!("m{}", i + 1), 10 + i as u64);
        let mut flags = client_flags(&ca, &server);
        flags.extend(peer_flags(&ca, &server));
        node.start(dir.path(), &initial_cluster, "new", &flags);
    }
    let good = ctl_tls(&ca.ca_file(), Some(&admin));
    let endpoints = nodes.iter().map(Node::client_url).collect::<Vec<_>>().join(",");
    for node in &nodes {
        wait_until(Duration::from_secs(30), "a TLS member to be healthy", || {
            healthy(&node.client_url(), &good)
        });
    }

    ctl_ok(&endpoints, &good, &["put", "k", "v"]);
    assert_eq!(ctl_ok(&nodes[2].client_url(), &good, &["get", "k"]), "k\nv\n");
    let members = ctl_ok(&endpoints, &good, &["member", "list"]);
    for node in &nodes {
        assert!(
            members.contains(&format!("{}, {}, {}", node.name, node.peer_url(), node.client_url())),
            "{members}"
        );
    }
    let one = nodes[0].client_url();
    assert_eq!(
        curl_status(&format!("{one}/health"), &ca.ca_file(), Some(&admin)),
        Some(200)
    );

    // Refused: no client certificate, one from another CA, plaintext.
    let without_cert = ctl(&one, &ctl_tls(&ca.ca_file(), None), &["get", "k"]);
    assert!(!without_cert.status.success());
    let foreign = ctl(&one, &ctl_tls(&ca.ca_file(), Some(&stranger)), &["get", "k"]);
    assert!(!foreign.status.success());
    let plaintext = ctl(
        &format!("http://127.0.0.1:{}", nodes[0].client_port),
        &[],
        &["get", "k"],
    );
    assert!(!plaintext.status.success());
    // What etcdctl prints against real etcd 3.4.23 in the same three cases.
    for out in [&without_cert, &foreign, &plaintext] {
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.ends_with("Error: context deadline exceeded\n"), "{stderr}");
    }
    assert_eq!(curl_status(&format!("{one}/health"), &ca.ca_file(), None), None);
    assert_eq!(
        curl_status(&format!("{one}/health"), &ca.ca_file(), Some(&stranger)),
        None
    );
    let plain_http = format!("http://127.0.0.1:{}/health", nodes[0].client_port);
    assert_eq!(curl_status(&plain_http, &ca.ca_file(), None), None);
    assert!(nodes[0].log().contains("rejected connection: TLS handshake failed"));

    // A member whose peer certificate comes from the other CA cannot join.
    let mut intruder = Node::new(dir.path(), "m4");
    let added = ctl_ok(
        &endpoints,
        &good,
        &["member", "add", "m4", &format!("--peer-urls={}", intruder.peer_url())],
    );
    assert!(added.contains("Member"), "{added}");
    let joining = format!("{initial_cluster},m4={}", intruder.peer_url());
    let server = other.issue("m4", "m4", 14);
    let mut flags = client_flags(&other, &server);
    flags.extend(peer_flags(&other, &server));
    intruder.start(dir.path(), &joining, "existing", &flags);
    let intruder_tls = ctl_tls(&other.ca_file(), Some(&stranger));
    let status = loop {
        assert!(
            !healthy(&intruder.client_url(), &intruder_tls),
            "the foreign member serves"
        );
        if let Some(status) = intruder.exited() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!status.success());
    let log = intruder.log();
    assert!(log.contains("cannot fetch cluster info from peer urls"), "{log}");
    for node in &nodes {
        assert!(healthy(&node.client_url(), &good), "{} unhealthy", node.name);
    }
    let members = ctl_ok(&endpoints, &good, &["member", "list", "-w", "json"]);
    assert_eq!(members.matches("\"clientURLs\"").count(), 3, "{members}");
    ctl_ok(&endpoints, &good, &["put", "after", "intruder"]);
    assert_eq!(
        ctl_ok(&one, &good, &["get", "after", "--print-value-only"]),
        "intruder\n"
    );
}

#[test]
fn sighup_rotates_the_served_certificate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "main");
    let admin = ca.issue("admin", "admin", 100);
    let mut node = Node::new(dir.path(), "m1");
    let server = ca.issue("server", "m1", 1);
    let mut flags = client_flags(&ca, &server);
    flags.extend(peer_flags(&ca, &server));
    let cluster = format!("m1={}", node.peer_url());
    node.start(dir.path(), &cluster, "new", &flags);
    let good = ctl_tls(&ca.ca_file(), Some(&admin));
    wait_until(Duration::from_secs(30), "the member to be healthy", || {
        healthy(&node.client_url(), &good)
    });
    assert_eq!(
        served_serial(node.client_port, &ca.ca_file(), &admin).as_deref(),
        Some("01")
    );
    let pid = node.pid();

    // A world-readable key is refused on reload; the old certificate stays.
    ca.issue("server", "m1", 2);
    std::fs::set_permissions(&server.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    wait_until(Duration::from_secs(10), "the refused reload to be logged", || {
        node.log().contains("cannot reload TLS certificates")
    });
    assert!(node.log().contains("is readable by every user"));
    assert_eq!(
        served_serial(node.client_port, &ca.ca_file(), &admin).as_deref(),
        Some("01")
    );

    std::fs::set_permissions(&server.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    wait_until(Duration::from_secs(10), "the new certificate to be served", || {
        served_serial(node.client_port, &ca.ca_file(), &admin).as_deref() == Some("02")
    });
    assert!(node.exited().is_none(), "the member restarted or stopped");
    assert_eq!(node.pid(), pid);
    ctl_ok(&node.client_url(), &good, &["put", "rotated", "yes"]);
    assert_eq!(
        ctl_ok(&node.client_url(), &good, &["get", "rotated", "--print-value-only"]),
        "yes\n"
    );
}

#[test]
fn key_files_others_can_read_or_none_can_are_refused_at_start_and_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "main");
    let server = ca.issue("server", "m1", 1);
    std::fs::set_permissions(&server.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let data_dir = dir.path().join("m1.etcd");
    let args = |key: &Path| {
        vec![
            "--data-dir".to_string(),
            text(&data_dir),
            format!("--listen-client-urls={url}"),
            format!("--advertise-client-urls={url}"),
            format!("--listen-peer-urls=http://127.0.0.1:{}", free_port()),
            format!("--cert-file={}", text(&server.cert)),
            format!("--key-file={}", text(key)),
        ]
    };
    let start = Command::new(FERROCD).args(args(&server.key)).output().unwrap();
    assert!(!start.status.success());
    let stderr = String::from_utf8_lossy(&start.stderr);
    let expected = format!(
        "private key file {} is readable by every user (mode 0644); restrict it with chmod 600 {}",
        server.key.display(),
        server.key.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    let check = Command::new(FERROCD)
        .arg("check-config")
        .args(args(&server.key))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let report = String::from_utf8_lossy(&check.stderr);
    assert!(
        report.contains(&expected) && report.contains("ferrocd would not start"),
        "{report}"
    );

    let missing = dir.path().join("missing-key.pem");
    let start = Command::new(FERROCD).args(args(&missing)).output().unwrap();
    assert!(!start.status.success());
    let stderr = String::from_utf8_lossy(&start.stderr);
    assert!(
        stderr.contains(&format!("open {}: no such file or directory", missing.display())),
        "{stderr}"
    );

    let no_certs = Command::new(FERROCD)
        .args([
            "--data-dir",
            &text(&data_dir),
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(no_certs.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&no_certs.stderr);
    assert!(
        stderr.contains(&format!(
            "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme"
        )),
        "{stderr}"
    );
}

#[test]
fn auto_tls_serves_generated_certificates_to_clients_and_peers() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (1..=3).map(|i| Node::new(dir.path(), &format!("m{i}"))).collect();
    let initial_cluster = nodes
        .iter()
        .map(|n| format!("{}={}", n.name, n.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    let flags = ["--auto-tls".to_string(), "--peer-auto-tls".to_string()];
    for node in &mut nodes {
        node.start(dir.path(), &initial_cluster, "new", &flags);
    }
    let insecure = [
        "--insecure-skip-tls-verify".to_string(),
        "--insecure-transport=false".to_string(),
    ];
    for node in &nodes {
        wait_until(Duration::from_secs(30), "an auto TLS member to be healthy", || {
            healthy(&node.client_url(), &insecure)
        });
    }
    ctl_ok(&nodes[0].client_url(), &insecure, &["put", "auto", "tls"]);
    assert_eq!(
        ctl_ok(
            &nodes[2].client_url(),
            &insecure,
            &["get", "auto", "--print-value-only"]
        ),
        "tls\n"
    );
    // The certificate is self-signed: a client that verifies it refuses it.
    let verified = Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("{}/health", nodes[0].client_url())])
        .output()
        .unwrap();
    assert!(!verified.status.success());
    let unverified = Command::new("curl")
        .args(["-sk", "--max-time", "5", &format!("{}/health", nodes[0].client_url())])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&unverified.stdout).contains("\"health\":\"true\""));
}

#[test]
fn with_client_certificates_and_auth_the_certificate_common_name_is_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "main");
    let root = ca.issue("root", "root", 100);
    let alice = ca.issue("alice", "alice", 101);
    let mallory = ca.issue("mallory", "mallory", 102);
    let mut node = Node::new(dir.path(), "m1");
    let server = ca.issue("server", "m1", 1);
    let cluster = format!("m1={}", node.peer_url());
    let mut flags = client_flags(&ca, &server);
    flags.extend(peer_flags(&ca, &server));
    node.start(dir.path(), &cluster, "new", &flags);
    let as_root = ctl_tls(&ca.ca_file(), Some(&root));
    let as_alice = ctl_tls(&ca.ca_file(), Some(&alice));
    let as_mallory = ctl_tls(&ca.ca_file(), Some(&mallory));
    wait_until(Duration::from_secs(30), "the member to be healthy", || {
        healthy(&node.client_url(), &as_root)
    });
    let endpoint = node.client_url();
    // No passwords anywhere: the certificates say who is who.
    ctl_ok(&endpoint, &as_root, &["user", "add", "root", "--no-password"]);
    ctl_ok(&endpoint, &as_root, &["user", "add", "alice", "--no-password"]);
    ctl_ok(&endpoint, &as_root, &["role", "add", "a-only"]);
    ctl_ok(
        &endpoint,
        &as_root,
        &["role", "grant-permission", "a-only", "readwrite", "a"],
    );
    ctl_ok(&endpoint, &as_root, &["user", "grant-role", "alice", "a-only"]);
    assert_eq!(
        ctl_ok(&endpoint, &as_root, &["auth", "enable"]),
        "Authentication Enabled\n"
    );

    ctl_ok(&endpoint, &as_alice, &["put", "a", "1"]);
    assert_eq!(ctl_ok(&endpoint, &as_alice, &["get", "a", "--print-value-only"]), "1\n");
    let refused = |tls: &[String], args: &[&str]| {
        let out = ctl(&endpoint, tls, args);
        assert!(!out.status.success(), "{args:?} was allowed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(refused(&as_alice, &["put", "b", "1"]).contains("etcdserver: permission denied"));
    assert!(refused(&as_alice, &["user", "list"]).contains("etcdserver: permission denied"));
    // A valid certificate of a user the cluster does not know gets nothing.
    assert!(refused(&as_mallory, &["get", "a"]).contains("etcdserver: permission denied"));
    assert!(refused(&as_mallory, &["put", "a", "2"]).contains("etcdserver: permission denied"));
    assert_eq!(ctl_ok(&endpoint, &as_root, &["user", "list"]), "alice\nroot\n");
    assert_eq!(ctl_ok(&endpoint, &as_root, &["get", "a", "--print-value-only"]), "1\n");
}
