//! Test harness: spawn real `ferrocd` members (and real etcd for
//! differential tests) on free loopback ports in temp dirs, wait until they
//! serve, run `etcdctl`, stop with SIGTERM, and print a member's log when the
//! test fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const FERROCD: &str = env!("CARGO_BIN_EXE_ferrocd");

/// Real etcd 3.4.23, extracted from Debian's package by `.ci/run`.
pub fn reference_etcd() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var("REFERENCE_ETCD").unwrap_or("/opt/etcd/usr/bin/etcd".into()));
    path.exists().then_some(path)
}

/// etcdctl 3.4 from Debian's etcd-client.
pub fn etcdctl_path() -> PathBuf {
    for candidate in [
        std::env::var("ETCDCTL").ok(),
        Some("/usr/bin/etcdctl".into()),
        Some("/opt/etcd/usr/bin/etcdctl".into()),
    ]
    .into_iter()
    .flatten()
    {
        if Path::new(&candidate).exists() {
            return candidate.into();
        }
    }
    panic!("etcdctl not found: install Debian's etcd-client (bash .ci/run does)");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP GET on loopback; returns (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((status, body))
}

/// Which server binary a member runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flavor {
    Ferrocd,
    Etcd,
}

pub struct MemberSpec {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
}

impl MemberSpec {
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

/// One running server process.
pub struct Member {
    pub spec: MemberSpec,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    flavor: Flavor,
    initial_cluster: String,
    extra_args: Vec<String>,
    /// Environment variables for the next start.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Member {
    fn args(&self) -> Vec<String> {
        let s = &self.spec;
        let mut args: Vec<String> = [
            "--name",
            &s.name,
            "--data-dir",
            &self.data_dir.to_string_lossy(),
            "--listen-client-urls",
            &s.client_url(),
            "--advertise-client-urls",
            &s.client_url(),
            "--listen-peer-urls",
            &s.peer_url(),
            "--initial-advertise-peer-urls",
            &s.peer_url(),
            "--initial-cluster",
            &self.initial_cluster,
            "--initial-cluster-token",
            "e2e-token",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(self.extra_args.iter().cloned());
        args
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "member {} already running", self.spec.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let binary = match self.flavor {
            Flavor::Ferrocd => PathBuf::from(FERROCD),
            Flavor::Etcd => reference_etcd().expect("reference etcd is not installed"),
        };
        let child = Command::new(binary)
            .args(self.args())
            .env_remove("ETCD_NAME")
            .envs(self.env.iter().cloned())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn server");
        self.child = Some(child);
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id of the running server.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("member is running").id() as i32
    }

    /// Sends SIGTERM and waits for the process to exit; returns its status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("member is running");
        signal(child.id() as i32, "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("member {} did not exit within 15 s of SIGTERM", self.spec.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit on its own; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("member is running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "member {} did not exit", self.spec.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets the `--initial-cluster` and extra arguments of the next start.
    pub fn reconfigure(&mut self, initial_cluster: &str, extra_args: &[&str]) {
        self.initial_cluster = initial_cluster.to_string();
        self.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("member is running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn healthy(&self) -> bool {
        matches!(http_get(self.spec.client_port, "/health"), Some((200, _)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        self.spec.client_url()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- log of member {} ({:?}) -----\n{}",
                self.spec.name,
                self.flavor,
                self.log()
            );
        }
    }
}

fn signal(pid: i32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// A statically bootstrapped cluster in its own temp dir.
pub struct Cluster {
    pub members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start(size: usize) -> Cluster {
        Cluster::start_with(Flavor::Ferrocd, size, &[])
    }

    pub fn start_with(flavor: Flavor, size: usize, extra_args: &[&str]) -> Cluster {
        let mut cluster = Cluster::prepare(flavor, size, extra_args);
        for member in &mut cluster.members {
            member.start();
        }
        cluster.wait_healthy();
        cluster
    }

    /// A cluster whose members are set up but not started.
    pub fn prepare(flavor: Flavor, size: usize, extra_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let specs: Vec<MemberSpec> = (1..=size)
            .map(|i| MemberSpec {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
            })
            .collect();
        let initial_cluster = specs
            .iter()
            .map(|s| format!("{}={}", s.name, s.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let members: Vec<Member> = specs
            .into_iter()
            .map(|spec| Member {
                data_dir: dir.path().join(format!("{}.etcd", spec.name)),
                log_path: dir.path().join(format!("{}.log", spec.name)),
                spec,
                flavor,
                initial_cluster: initial_cluster.clone(),
                extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
                env: Vec::new(),
                child: None,
            })
            .collect();
        Cluster { members, _dir: dir }
    }

    /// Ports for a member that `member add` will announce.
    pub fn new_spec(name: &str) -> MemberSpec {
        MemberSpec {
            name: name.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
        }
    }

    /// Adds a member that joins the running cluster with the settings
    /// `member add` printed (`--initial-cluster-state existing`); not started.
    pub fn join(&mut self, spec: MemberSpec, initial_cluster: &str) -> usize {
        let first = &self.members[0];
        let mut extra_args = first.extra_args.clone();
        extra_args.push("--initial-cluster-state=existing".to_string());
        let member = Member {
            data_dir: self._dir.path().join(format!("{}.etcd", spec.name)),
            log_path: self._dir.path().join(format!("{}.log", spec.name)),
            spec,
            flavor: first.flavor,
            initial_cluster: initial_cluster.to_string(),
            extra_args,
            env: Vec::new(),
            child: None,
        };
        self.members.push(member);
        self.members.len() - 1
    }

    /// Waits until every running member answers `/health` with 200.
    pub fn wait_healthy(&self) {
        for member in self.members.iter().filter(|m| m.is_running()) {
            wait_until(
                Duration::from_secs(30),
                &format!("{} to be healthy", member.spec.name),
                || member.healthy(),
            );
        }
    }

    pub fn endpoints(&self) -> String {
        self.members.iter().map(|m| m.endpoint()).collect::<Vec<_>>().join(",")
    }

    /// Index of the current leader, asked of any running member.
    pub fn leader(&self) -> usize {
        let mut found = None;
        wait_until(Duration::from_secs(20), "a leader", || {
            found = self.members.iter().filter(|m| m.is_running()).find_map(|m| {
                // Without the scheme: etcdctl dials per-endpoint Maintenance
                // calls with the URL as the HTTP/2 authority otherwise.
                let out = etcdctl(
                    &format!("127.0.0.1:{}", m.spec.client_port),
                    &["endpoint", "status", "-w", "json"],
                );
                let text = String::from_utf8_lossy(&out.stdout);
                let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                let leader = v[0]["Status"]["leader"].as_u64()?;
                let me = v[0]["Status"]["header"]["member_id"].as_u64()?;
                (leader == me).then_some(m.spec.name.clone())
            });
            found.is_some()
        });
        let name = found.unwrap();
        self.members.iter().position(|m| m.spec.name == name).unwrap()
    }
}

/// Runs etcdctl 3.4 (API v3) against `endpoints`.
pub fn etcdctl(endpoints: &str, args: &[&str]) -> Output {
    etcdctl_with_input(endpoints, args, None)
}

pub fn etcdctl_with_input(endpoints: &str, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut child = Command::new(etcdctl_path())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=15s")
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl");
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// etcdctl's stdout, asserting success.
pub fn ctl_ok(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoints, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Connects the Rust etcd-client to the given members.
pub async fn client(endpoints: &[String]) -> etcd_client::Client {
    etcd_client::Client::connect(endpoints, None)
        .await
        .expect("connect etcd-client")
}

/// Runs a host scenario script (`tests/hosts/*.sh`) from the repository root, prints its whole
/// output, and asserts it passed: exit 0 within `limit` (after which it gets SIGTERM and its
/// trap stops its hosts) and its summary line. Skipped unless root.
pub fn run_host_scenario(script: &str, limit: Duration) {
    use nix::sys::signal::{kill, SIGTERM};
    use nix::unistd::{Pid, Uid};

    if !Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
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
        if started.elapsed() > limit {
            let _ = kill(Pid::from_raw(child.id() as i32), SIGTERM);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(log.path()).unwrap();
    println!("{output}");
    let failure = output.lines().rfind(|line| line.starts_with("FAIL: "));
    match status {
        Some(status) => assert!(
            status.success(),
            "{script} exited with {status}: {}\n(full output above)",
            failure.unwrap_or("no FAIL line")
        ),
        None => panic!("{script} took more than {limit:?}\n(full output above)"),
    }
    assert!(output.contains("checks passed in"), "no summary line");
}
