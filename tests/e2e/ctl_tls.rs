//! ferrocdctl over TLS (CA, client certificates, `--insecure-skip-tls-verify`,
//! `ETCDCTL_*` variables) and with authentication, against real etcd 3.4
//! (ferrocd serves neither yet). Certificates are made fresh per test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

use crate::ctl::{run_ctl, Outcome, FERROCDCTL};
use crate::support::{etcdctl_path, free_port, reference_etcd, wait_until};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as
/// PEM files in `dir`.
fn make_certs(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "ferrocd test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, sans: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    };
    leaf(
        "server",
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    leaf("client", vec![], ExtendedKeyUsagePurpose::ClientAuth);
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
}

/// One real etcd member with the given client URL scheme and extra flags.
struct Etcd {
    child: Child,
    client_port: u16,
    log: PathBuf,
}

impl Etcd {
    fn start(dir: &Path, scheme: &str, extra: &[String]) -> Etcd {
        let (client_port, peer_port) = (free_port(), free_port());
        let client = format!("{scheme}://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = dir.join("etcd.log");
        let child = Command::new(reference_etcd().expect("reference etcd"))
            .args(["--name", "t", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .arg(format!("--initial-cluster=t={peer}"))
            .args(extra)
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(dir.join("etcd.err")).unwrap()))
            .spawn()
            .unwrap();
        Etcd {
            child,
            client_port,
            log,
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

fn ours(endpoints: &str, args: &[&str]) -> Outcome {
    run_ctl(Path::new(FERROCDCTL), endpoints, args, None)
}

fn with_env(endpoints: &str, env: &[(&str, &str)], args: &[&str]) -> Outcome {
    let out = Command::new(FERROCDCTL)
        .envs(env.iter().copied())
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Outcome {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn tls_with_ca_client_certificates_and_skip_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certs(d);
    let file = |name: &str| d.join(name).to_string_lossy().into_owned();
    let etcd = Etcd::start(
        d,
        "https",
        &[
            format!("--cert-file={}", file("server.crt")),
            format!("--key-file={}", file("server.key")),
            format!("--trusted-ca-file={}", file("ca.crt")),
            "--client-cert-auth".into(),
        ],
    );
    let bare = format!("127.0.0.1:{}", etcd.client_port);
    let https = format!("https://{bare}");
    let (cacert, cert, key) = (
        format!("--cacert={}", file("ca.crt")),
        format!("--cert={}", file("client.crt")),
        format!("--key={}", file("client.key")),
    );
    wait_until(Duration::from_secs(30), "etcd over TLS", || {
        ours(&bare, &[&cacert, &cert, &key, "put", "tls", "yes"]).code == 0
    });
    // A bare endpoint turns to TLS when TLS files are given; https:// always does.
    assert_eq!(ours(&https, &[&cacert, &cert, &key, "get", "tls"]).stdout, "tls\nyes\n");
    let env = [
        ("ETCDCTL_CACERT", file("ca.crt")),
        ("ETCDCTL_CERT", file("client.crt")),
        ("ETCDCTL_KEY", file("client.key")),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let from_env = with_env(&bare, &env, &["get", "tls", "--print-value-only"]);
    assert_eq!((from_env.code, from_env.stdout.as_str()), (0, "yes\n"), "{from_env:?}");
    // A flag and its variable together: etcdctl's conflict error.
    let both = with_env(&bare, &env, &[&cacert, "get", "tls"]);
    assert_eq!(both.code, 1);
    assert!(
        both.stderr
            .contains("conflicting environment variable \"ETCDCTL_CACERT\""),
        "{both:?}"
    );
    let skip = ours(
        &bare,
        &[
            "--insecure-skip-tls-verify",
            "--insecure-transport=false",
            &cert,
            &key,
            "get",
            "tls",
        ],
    );
    assert_eq!(skip.stdout, "tls\nyes\n", "{skip:?}");
    // Without the CA the server's certificate is not trusted.
    let untrusted = ours(&https, &["--command-timeout=2s", &cert, &key, "get", "tls"]);
    assert_eq!(untrusted.code, 1, "{untrusted:?}");
    // Without a client certificate the server refuses the call.
    let anonymous = ours(&bare, &["--command-timeout=2s", &cacert, "get", "tls"]);
    assert_eq!(anonymous.code, 1, "{anonymous:?}");
    // Plain text to a TLS port fails too.
    let plain = ours(&format!("http://{bare}"), &["--command-timeout=2s", "get", "tls"]);
    assert_eq!(plain.code, 1, "{plain:?}");
    // Bad TLS settings: etcdctl's messages and exit code.
    let expected = run_ctl(&etcdctl_path(), &bare, &["--cacert=/nonexistent.crt", "get", "a"], None);
    assert_eq!(ours(&bare, &["--cacert=/nonexistent.crt", "get", "a"]), expected);
    let only_cert = ours(&bare, &[&cert, "get", "a"]);
    assert_eq!(only_cert.code, 128);
    assert!(
        only_cert
            .stderr
            .starts_with("Error: KeyFile and CertFile must both be present"),
        "{only_cert:?}"
    );
}

#[test]
fn authentication_with_user_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path(), "http", &[]);
    let endpoint = format!("127.0.0.1:{}", etcd.client_port);
    let etcdctl = |args: &[&str]| run_ctl(&etcdctl_path(), &endpoint, args, None);
    wait_until(Duration::from_secs(30), "etcd", || {
        etcdctl(&["put", "k", "v"]).code == 0
    });
    assert_eq!(etcdctl(&["user", "add", "root:secret"]).code, 0);
    assert_eq!(etcdctl(&["auth", "enable"]).code, 0);

    for args in [
        &["get", "k"][..],
        &["--user=root:secret", "put", "k", "v2"],
        &["--user=root", "--password=secret", "get", "k"],
        &["--user=root:wrong", "get", "k"],
        &["--user=nobody:x", "get", "k"],
        &["--user=root:secret", "-w", "json", "member", "list"],
        &["--user=root:secret", "endpoint", "hashkv", "--cluster"],
    ] {
        let expected = crate::ctl::mask(&format!("{:?}", etcdctl(args)));
        assert_eq!(
            crate::ctl::mask(&format!("{:?}", ours(&endpoint, args))),
            expected,
            "{args:?}"
        );
    }
    let from_env = with_env(
        &endpoint,
        &[("ETCDCTL_USER", "root"), ("ETCDCTL_PASSWORD", "secret")],
        &["get", "k"],
    );
    assert_eq!(
        (from_env.code, from_env.stdout.as_str()),
        (0, "k\nv2\n"),
        "{from_env:?}"
    );
    // Without a password, it is read from stdin after etcdctl's prompt line.
    let args = ["--user=root", "get", "k", "--print-value-only"];
    let prompted = run_ctl(Path::new(FERROCDCTL), &endpoint, &args, Some("secret\n"));
    assert_eq!(prompted.stdout, "Password: \nv2\n", "{prompted:?}");
    assert_eq!(
        prompted.stdout,
        run_ctl(&etcdctl_path(), &endpoint, &args, Some("secret\n")).stdout
    );
}
