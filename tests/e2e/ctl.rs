//! ferrocdctl against etcdctl 3.4: the same commands, the same answers.
//!
//! KV, txn, lease and watch run on two identical ferrocd members (etcdctl on
//! one, ferrocdctl on the other, so revisions line up); membership and
//! maintenance commands, which ferrocd does not serve yet, run against a
//! real etcd 3.4 cluster. Cluster, member and lease IDs, raft terms and
//! timings are masked; everything else (revisions, values, errors, exit
//! codes) must be equal.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use regex::Regex;

use crate::support::{etcdctl_path, wait_until, Cluster, Flavor};

pub const FERROCDCTL: &str = env!("CARGO_BIN_EXE_ferrocdctl");

/// What a command printed and how it exited.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a CLI (etcdctl or ferrocdctl) with `--endpoints` and optional stdin, killed after a
/// minute (a watch the server should have refused must fail the test, not hang it).
pub fn run_ctl(binary: &Path, endpoints: &str, args: &[&str], input: Option<&str>) -> Outcome {
    let mut child = Command::new("timeout")
        .arg("60")
        .arg(binary)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the CLI");
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    // etcdctl's client library logs retries as JSON lines on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("{\"level\""))
        .map(|l| format!("{l}\n"))
        .collect();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

pub fn ferrocdctl(endpoints: &str, args: &[&str]) -> Outcome {
    run_ctl(Path::new(FERROCDCTL), endpoints, args, None)
}

pub fn reference(endpoints: &str, args: &[&str]) -> Outcome {
    run_ctl(&etcdctl_path(), endpoints, args, None)
}

/// Removes what legitimately differs between two servers or two runs.
pub fn mask(text: &str) -> String {
    let rules = [
        (
            r#""(cluster_id|member_id|raft_term|ID|id|memberID|leader)":\d+"#,
            r#""$1":0"#,
        ),
        (r#""(ClusterID|MemberID|RaftTerm|ID)" : \d+"#, r#""$1" : 0"#),
        (r"\b[0-9a-f]{14,16}\b", "<id>"),
        (r"took = [0-9.]+[µnm]?s", "took = <t>"),
        (r#""took":"[^"]*""#, r#""took":"<t>""#),
        (r"remaining\(\d+s\)", "remaining(<ttl>s)"),
        (r#""(ttl|TTL)":\d+"#, r#""$1":0"#),
        (r#""TTL" : \d+"#, r#""TTL" : 0"#),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
    ];
    let mut text = text.to_string();
    for (pattern, replacement) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, replacement)
            .into_owned();
    }
    text
}

fn masked(outcome: Outcome) -> Outcome {
    Outcome {
        code: outcome.code,
        stdout: mask(&outcome.stdout),
        stderr: mask(&outcome.stderr),
    }
}

/// etcdctl on `reference_endpoints`, ferrocdctl on `ours`: equal after masking.
fn same(reference_endpoints: &str, ours: &str, args: &[&str], input: Option<&str>) {
    let expected = masked(run_ctl(&etcdctl_path(), reference_endpoints, args, input));
    let got = masked(run_ctl(Path::new(FERROCDCTL), ours, args, input));
    assert_eq!(got, expected, "ferrocdctl {args:?} differs from etcdctl");
}

#[test]
fn kv_txn_and_errors_print_as_etcdctl_prints_them() {
    let a = Cluster::start(1);
    let b = Cluster::start(1);
    let (ea, eb) = (a.endpoints(), b.endpoints());
    let same = |args: &[&str]| same(&ea, &eb, args, None);
    let same_input = |args: &[&str], input: &str| self::same(&ea, &eb, args, Some(input));
    same(&["put", "foo", "bar"]);
    same(&["put", "foo", "baz", "--prev-kv"]);
    same(&["-w", "json", "put", "foo", "q", "--prev-kv"]);
    same(&["-w", "fields", "put", "a", "c", "--prev-kv"]);
    same(&["put", "k1", "v1"]);
    same(&["put", "k2", "v2"]);
    same(&["put", "bin\u{1}", "line\nbreak"]);
    same_input(&["put", "fromstdin"], "value from stdin");
    for args in [
        &["get", "foo"][..],
        &["-w", "json", "get", "foo"],
        &["-w", "json", "get", "nothing"],
        &["get", "", "--prefix"],
        &["-w", "fields", "get", "foo"],
        &["--hex", "get", "bin\u{1}"],
        &["get", "bin\u{1}"],
        &["-w", "json", "get", "k", "--prefix", "--limit", "1"],
        &["get", "k", "--prefix", "--keys-only"],
        &["get", "k", "--prefix", "--print-value-only"],
        &["get", "k", "--prefix", "--sort-by=key", "--order=descend"],
        &["get", "k", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"],
        &["get", "k", "--from-key"],
        &["get", "k1", "k3"],
        &["get", "k1", "--rev=5", "--consistency=s"],
        &["-w", "json", "get", "k", "--prefix", "--keys-only"],
        &["-w", "json", "del", "zz"],
        &["del", "foo", "--prev-kv"],
        &["-w", "json", "del", "a", "--prev-kv"],
        &["-w", "fields", "del", "k", "--prefix"],
        &["compaction", "4"],
        &["-w", "json", "get", "k1", "--rev=2"],
        // Bad input: messages and exit codes.
        &["get"],
        &["put"],
        &["del"],
        &["-w", "table", "put", "a", "b"],
        &["-w", "xml", "get", "a"],
        &["get", "a", "--sort-by=bogus"],
        &["get", "a", "--order=sideways"],
        &["get", "a", "--consistency=x"],
        &["get", "a", "b", "--prefix"],
        &["get", "a", "--prefix", "--from-key"],
        &["get", "a", "--print-value-only", "-w", "json"],
        &["put", "k", "v", "--lease=zz"],
        &["put", "k", "v", "--lease=1234"],
        &["put", "k", "v", "--ignore-value"],
        &["compaction", "x"],
        &["compaction", "1000"],
        &["compaction"],
        &["lease", "grant", "x"],
        &["lease", "revoke"],
        &["lease", "timetolive", "zz"],
        &["lease", "keep-alive"],
        &["member", "remove", "zz"],
        &["member", "promote"],
        &["move-leader"],
        &["move-leader", "zz"],
        &["snapshot", "save"],
        &["-w", "table", "lease", "list"],
    ] {
        same(args);
    }
    let txns = [
        "mod(\"k1\") > \"0\"\n\nput k1 newv --prev-kv\nget k1\n\ndel nothing\n\n",
        "value(\"k1\") = \"nope\"\n\nput k1 x\n\nput \"a b\" 'c d'\nget \"\" --prefix --keys-only\ndel k2 --prev-kv\n\n",
        "ver(\"k1\") = \"3\"\nc(\"k1\") != \"0\"\n\n\n\n",
        "\n\nput x y\nput x z\n\n\n",
        "value(\"sk\") = \"x\"\n\n\n",
        "bogus\n\n\n\n",
        "version(\"sk\")=\"4\"\n\n\n\n",
        "mod(\"sk\") < 100\n\n\n\n",
        "foo(\"sk\") = \"x\"\n\n\n\n",
        "ver(\"sk\") = \"x\"\n\n\n\n",
        "\n\nbogus\n\n\n",
        "\n\nbogus x\n\n\n",
    ];
    for txn in txns {
        same_input(&["txn"], txn);
        same_input(&["-w", "json", "txn"], txn);
    }
    same_input(&["-w", "fields", "txn"], txns[0]);
    same_input(&["txn", "-i"], txns[1]);
    same_input(&["-w", "table", "txn"], "\n\n\n");
}

/// Grants a lease with the given tool and returns its hex ID.
fn grant(binary: &Path, endpoints: &str) -> String {
    let out = run_ctl(binary, endpoints, &["lease", "grant", "100"], None);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn lease_commands_print_as_etcdctl_prints_them() {
    let a = Cluster::start(1);
    let b = Cluster::start(1);
    let (ea, eb) = (a.endpoints(), b.endpoints());
    let etcdctl = etcdctl_path();
    let ours = Path::new(FERROCDCTL);
    let (la, lb) = (grant(&etcdctl, &ea), grant(ours, &eb));
    let pair = |args: &dyn Fn(&str) -> Vec<String>| {
        let (args_a, args_b) = (args(&la), args(&lb));
        let expected = masked(run_ctl(
            &etcdctl,
            &ea,
            &args_a.iter().map(String::as_str).collect::<Vec<_>>(),
            None,
        ));
        let got = masked(run_ctl(
            ours,
            &eb,
            &args_b.iter().map(String::as_str).collect::<Vec<_>>(),
            None,
        ));
        assert_eq!(got, expected, "ferrocdctl {args_b:?} differs from etcdctl");
    };
    let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    pair(&|id| v(&["put", "leased", "v", &format!("--lease={id}")]));
    pair(&|id| v(&["lease", "timetolive", id]));
    pair(&|id| v(&["lease", "timetolive", id, "--keys"]));
    pair(&|id| v(&["-w", "json", "lease", "timetolive", id, "--keys"]));
    pair(&|id| v(&["-w", "fields", "lease", "timetolive", id, "--keys"]));
    pair(&|id| v(&["lease", "keep-alive", "--once", id]));
    pair(&|id| v(&["-w", "json", "lease", "keep-alive", "--once", id]));
    pair(&|_| v(&["lease", "list"]));
    pair(&|_| v(&["-w", "json", "lease", "list"]));
    pair(&|_| v(&["-w", "json", "lease", "grant", "50"]));
    pair(&|id| v(&["lease", "revoke", id]));
    pair(&|id| v(&["lease", "timetolive", id]));
    pair(&|id| v(&["-w", "json", "lease", "timetolive", id]));
    pair(&|id| v(&["lease", "revoke", id]));
    pair(&|id| v(&["lease", "keep-alive", "--once", id]));
    pair(&|_| v(&["get", "leased"]));
}

/// Runs a watch in the background until killed; returns its stdout.
fn watch_output(binary: &Path, endpoints: &str, args: &[&str], writes: impl FnOnce()) -> String {
    let mut child = Command::new(binary)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    writes();
    // The sentinel key (value "done") ends every watch range used below.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let mut buffer = [0u8; 4096];
        use std::io::Read;
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buffer[..n]));
            // The sentinel's value, raw, hex or base64, and its line's end.
            let done = ["done\n", "\\x64\\x6f\\x6e\\x65\n", "ZG9uZQ=="]
                .iter()
                .any(|marker| text.find(marker).is_some_and(|at| text[at..].contains('\n')));
            if done {
                break;
            }
        }
        text
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn watch_prints_events_as_etcdctl_does() {
    let cluster = Cluster::start(1);
    let endpoints = cluster.endpoints();
    let put = |k: &str, v: &str| assert_eq!(ferrocdctl(&endpoints, &["put", k, v]).code, 0);
    put("w/a", "1");
    put("w/a", "2");
    assert_eq!(ferrocdctl(&endpoints, &["del", "w/a"]).code, 0);
    put("w/b", "3");
    put("w/zz-end", "done");
    // Both tools replay the same history from revision 2.
    for args in [
        &["w/", "--prefix", "--rev=2", "--prev-kv"][..],
        &["-w", "json", "w/", "--prefix", "--rev=2"],
        &["--hex", "w/a", "w/zz-end\u{1}", "--rev=2"],
    ] {
        let expected = watch_output(&etcdctl_path(), &endpoints, args, || {});
        let got = watch_output(Path::new(FERROCDCTL), &endpoints, args, || {});
        assert!(!expected.is_empty());
        assert_eq!(mask(&got), mask(&expected), "watch {args:?}");
    }
    // A compacted start revision: both report it and exit 5.
    assert_eq!(ferrocdctl(&endpoints, &["compaction", "5"]).code, 0);
    same(&endpoints, &endpoints, &["watch", "w/a", "--rev=2"], None);
    same(&endpoints, &endpoints, &["watch"], None);
    same(&endpoints, &endpoints, &["watch", "a", "b", "--prefix"], None);
}

#[test]
fn member_list_status_and_cluster_health_on_ferrocd() {
    let mut cluster = Cluster::start(3);
    let endpoints = cluster.endpoints();
    let number = Regex::new(r"\b\d+\b").unwrap();
    for args in [
        &["member", "list"][..],
        &["-w", "table", "member", "list"],
        &["-w", "json", "member", "list"],
        &["endpoint", "status"],
        &["-w", "table", "endpoint", "status", "--cluster"],
    ] {
        let expected = reference(&endpoints, args);
        let got = ferrocdctl(&endpoints, args);
        assert_eq!(got.code, expected.code, "{args:?}: {got:?}");
        // Raft indexes move between the two runs; the shape must not.
        let shape = |o: &Outcome| number.replace_all(&mask(&o.stdout), "N").into_owned();
        assert_eq!(shape(&got), shape(&expected), "{args:?}");
    }
    let health = ferrocdctl(&endpoints, &["cluster-health"]);
    assert_eq!(health.code, 0, "{health:?}");
    let lines: Vec<&str> = health.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{health:?}");
    let healthy =
        Regex::new(r"^member [0-9a-f]+ is healthy: got healthy result from http://127\.0\.0\.1:\d+$").unwrap();
    assert!(lines[..3].iter().all(|l| healthy.is_match(l)), "{health:?}");
    assert_eq!(lines[3], "cluster is healthy");

    let stopped = cluster.members[2].spec.client_url();
    cluster.members[2].stop();
    let live = format!("{},{}", cluster.members[0].endpoint(), cluster.members[1].endpoint());
    wait_until(Duration::from_secs(20), "a leader among the rest", || {
        ferrocdctl(&live, &["get", "x"]).code == 0
    });
    let health = ferrocdctl(&live, &["--command-timeout=1s", "cluster-health"]);
    assert_eq!(health.code, 5, "{health:?}");
    assert!(health.stdout.contains("are all unreachable"), "{health:?}");
    assert!(health.stdout.contains(&stopped), "{health:?}");
    assert!(health.stdout.ends_with("cluster is degraded\n"), "{health:?}");
    let check = ferrocdctl(&endpoints, &["--command-timeout=1s", "endpoint", "health"]);
    assert_eq!(check.code, 1);
    assert!(
        check
            .stderr
            .contains(&format!("{stopped} is unhealthy: failed to commit proposal")),
        "{check:?}"
    );
    assert!(check.stderr.ends_with("Error: unhealthy cluster\n"), "{check:?}");
}

#[test]
fn snapshot_status_reads_ferrocd_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let file = ferrocd::snapshot::encode(&ferrocd::snapshot::Contents {
        revision: 42,
        records: vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), vec![7; 3000])],
    });
    let path = dir.path().join("s.db");
    std::fs::write(&path, &file).unwrap();
    let path = path.to_str().unwrap();
    let status = ferrocd::snapshot::status(&file).unwrap();
    let simple = ferrocdctl("127.0.0.1:1", &["snapshot", "status", path]);
    assert_eq!(simple.stdout, format!("{:x}, 42, 2, 3.6 kB\n", status.hash));
    let json = ferrocdctl("127.0.0.1:1", &["-w", "json", "snapshot", "status", path]);
    assert_eq!(
        json.stdout,
        format!(
            "{{\"hash\":{},\"revision\":42,\"totalKey\":2,\"totalSize\":{}}}\n",
            status.hash,
            file.len()
        )
    );
    let table = ferrocdctl("127.0.0.1:1", &["-w", "table", "snapshot", "status", path]);
    assert!(
        table
            .stdout
            .contains("|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |"),
        "{table:?}"
    );
    std::fs::write(dir.path().join("bad.db"), &file[..file.len() - 3]).unwrap();
    let bad = ferrocdctl(
        "127.0.0.1:1",
        &["snapshot", "status", dir.path().join("bad.db").to_str().unwrap()],
    );
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.starts_with("Error: snapshot file integrity check failed"),
        "{bad:?}"
    );
    let missing = ferrocdctl("127.0.0.1:1", &["snapshot", "status", "/nonexistent/s.db"]);
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (1, "Error: stat /nonexistent/s.db: no such file or directory\n")
    );
}

/// The member whose ID (hex) `member list` shows for `name`.
fn member_id(endpoints: &str, name: &str) -> String {
    let list = ferrocdctl(endpoints, &["member", "list"]).stdout;
    list.lines()
        .find(|l| l.split(", ").nth(2) == Some(name))
        .map(|l| l.split(", ").next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no member {name} in {list}"))
}

/// The ID of the one added-but-unstarted member, once the member that
/// answers `member list` (locally, as etcd does) has applied the change.
fn unstarted_id(endpoints: &str) -> String {
    let mut id = None;
    wait_until(Duration::from_secs(10), "the new member in the list", || {
        let list = ferrocdctl(endpoints, &["member", "list"]).stdout;
        id = list
            .lines()
            .find(|l| l.contains(", unstarted, "))
            .map(|l| l.split(", ").next().unwrap().to_string());
        id.is_some()
    });
    id.unwrap()
}

#[test]
fn cluster_commands_print_as_etcdctl_prints_them_on_real_etcd() {
    let cluster = Cluster::start_with(Flavor::Etcd, 3, &["--quota-backend-bytes=400000"]);
    let endpoints = cluster.endpoints();
    let one = cluster.members[0].endpoint().replace("http://", "");
    let same = |args: &[&str]| same(&endpoints, &endpoints, args, None);
    for args in [
        &["member", "list"][..],
        &["-w", "table", "member", "list"],
        &["-w", "json", "member", "list"],
        &["-w", "fields", "member", "list"],
        &["endpoint", "status"],
        &["-w", "table", "endpoint", "status"],
        &["-w", "json", "endpoint", "status", "--cluster"],
        &["endpoint", "hashkv", "--cluster"],
        &["-w", "table", "endpoint", "hashkv"],
        &["-w", "json", "endpoint", "hashkv", "--rev=1"],
        &["-w", "json", "endpoint", "health"],
        &["alarm", "list"],
        &["-w", "json", "alarm", "list"],
        &["-w", "table", "alarm", "list"],
        &["defrag"],
        &["defrag", "--cluster"],
        &["member", "promote", "1234"],
        &["member", "remove", "1234"],
        &["member", "update", "1234", "--peer-urls=http://127.0.0.1:1"],
        &["member", "add", "x"],
        &["member", "add", "x", "--peer-urls=bogus"],
        &["member", "add", "x", "--peer-urls=http://127.0.0.1"],
        &["move-leader", "1234"],
        &["snapshot", "save", "/tmp/never.db"],
    ] {
        same(args);
    }
    // Simple `endpoint health` goes to stderr in completion order.
    let sorted = |o: Outcome| {
        let mut lines: Vec<String> = mask(&o.stderr).lines().map(str::to_string).collect();
        lines.sort();
        (o.code, lines)
    };
    assert_eq!(
        sorted(ferrocdctl(&endpoints, &["endpoint", "health", "--cluster"])),
        sorted(reference(&endpoints, &["endpoint", "health", "--cluster"]))
    );

    // Membership changes: each tool adds, updates and removes its own member.
    let peer = |p: u16| format!("http://127.0.0.1:{p}");
    let padded = Regex::new(" +<id>").unwrap();
    for (tool, port) in [(etcdctl_path(), 1u16), (Path::new(FERROCDCTL).to_path_buf(), 2)] {
        // `%16x` pads short IDs with spaces.
        let run = |args: &[&str]| {
            let mut outcome = masked(run_ctl(&tool, &endpoints, args, None));
            outcome.stdout = padded.replace_all(&outcome.stdout, " <id>").into_owned();
            outcome
        };
        // etcd refuses voters until its members have been connected a while.
        let mut added = run(&["member", "add", "d", &format!("--peer-urls={}", peer(port))]);
        while added.stderr.contains("unhealthy cluster") {
            std::thread::sleep(Duration::from_millis(500));
            added = run(&["member", "add", "d", &format!("--peer-urls={}", peer(port))]);
        }
        assert_eq!(added.code, 0, "{added:?}");
        let expected_block = "Member <id> added to cluster <id>\n\nETCD_NAME=\"d\"\nETCD_INITIAL_CLUSTER=\"";
        assert!(added.stdout.starts_with(expected_block), "{added:?}");
        assert!(added.stdout.contains("d=http://127.0.0.1:<port>"), "{added:?}");
        assert!(added.stdout.ends_with(
            "\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://127.0.0.1:<port>\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"
        ));
        let id = unstarted_id(&endpoints);
        let updated = run(&["member", "update", &id, &format!("--peer-urls={}", peer(port + 10))]);
        assert_eq!(updated.stdout, "Member <id> updated in cluster <id>\n");
        let promoted = run(&["member", "promote", &id]);
        assert!(
            promoted
                .stderr
                .starts_with("Error: etcdserver: can only promote a learner member"),
            "{promoted:?}"
        );
        let removed = run(&["member", "remove", &id]);
        assert_eq!(removed.stdout, "Member <id> removed from cluster <id>\n");
    }
    // The guide's form: `member add NAME PEERURL`, and learners; each tool
    // removes one.
    let mut removals = Vec::new();
    // (A peer URL removed within the same second maps to the removed ID.)
    for (tool, port) in [(etcdctl_path(), 3), (Path::new(FERROCDCTL).to_path_buf(), 4)] {
        let added = ferrocdctl(&endpoints, &["member", "add", "e", &peer(port), "--learner"]);
        assert_eq!(added.code, 0, "{added:?}");
        assert!(
            added.stdout.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
            "{added:?}"
        );
        let id = unstarted_id(&endpoints);
        same(&["member", "promote", &id]);
        removals.push(masked(run_ctl(
            &tool,
            &endpoints,
            &["-w", "json", "member", "remove", &id],
            None,
        )));
    }
    assert_eq!(removals[1], removals[0]);

    // Leadership: find the leader and move it with each tool.
    for tool in [etcdctl_path(), Path::new(FERROCDCTL).to_path_buf()] {
        let leader = cluster.leader();
        let target = (leader + 1) % 3;
        let target_id = member_id(&endpoints, &cluster.members[target].spec.name);
        let moved = run_ctl(&tool, &endpoints, &["move-leader", &target_id], None);
        assert_eq!(moved.code, 0, "{moved:?}");
        let leader_id = member_id(&endpoints, &cluster.members[leader].spec.name);
        assert_eq!(
            moved.stdout,
            format!("Leadership transferred from {leader_id} to {target_id}\n")
        );
        wait_until(Duration::from_secs(10), "the new leader", || cluster.leader() == target);
    }

    // Snapshots: ferrocdctl saves real etcd's stream; etcdctl accepts the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etcd.db");
    let saved = ferrocdctl(&one, &["snapshot", "save", path.to_str().unwrap()]);
    assert_eq!(
        saved.stdout,
        format!("Snapshot saved at {}\n", path.display()),
        "{saved:?}"
    );
    assert!(!dir.path().join("etcd.db.part").exists());
    let status = reference(&one, &["snapshot", "status", path.to_str().unwrap()]);
    assert_eq!(status.code, 0, "{status:?}");
    let unwritable = ferrocdctl(&one, &["snapshot", "save", "/nonexistent/x.db"]);
    assert_eq!(
        (unwritable.code, unwritable.stderr.as_str()),
        (
            5,
            "Error: could not open /nonexistent/x.db.part (open /nonexistent/x.db.part: no such file or directory)\n"
        )
    );

    // NOSPACE: both tools list it alike; ferrocdctl clears it.
    let value = "x".repeat(50_000);
    for i in 0..20 {
        if reference(&endpoints, &["put", &format!("big{i}"), &value]).code != 0 {
            break;
        }
    }
    same(&["put", "small", "v"]);
    let mut alarms = ferrocdctl(&endpoints, &["alarm", "list"]);
    alarms.stdout = alarms
        .stdout
        .lines()
        .map(|l| format!("{l}\n"))
        .collect::<Vec<_>>()
        .concat();
    assert!(alarms.stdout.contains("alarm:NOSPACE \n"), "{alarms:?}");
    // etcd keeps alarms in a Go map: the order of `errors` varies between calls.
    let status = |tool: &Path| {
        let outcome = masked(run_ctl(tool, &one, &["-w", "json", "endpoint", "status"], None));
        let mut json: serde_json::Value = serde_json::from_str(&outcome.stdout).expect("status JSON");
        let errors = json[0]["Status"]["errors"].as_array_mut().expect("alarms in status");
        errors.sort_by_key(|e| e.to_string());
        // bbolt's background commits move its sizes between two calls.
        for size in ["dbSize", "dbSizeInUse"] {
            json[0]["Status"][size] = serde_json::Value::from(0);
        }
        (outcome.code, json, outcome.stderr)
    };
    assert_eq!(status(Path::new(FERROCDCTL)), status(&etcdctl_path()));
    // etcd's recovery: delete, compact away the history, defragment, disarm.
    assert_eq!(ferrocdctl(&endpoints, &["del", "big", "--prefix"]).code, 0);
    let revision: serde_json::Value =
        serde_json::from_str(&ferrocdctl(&one, &["-w", "json", "get", "x"]).stdout).unwrap();
    let revision = revision["header"]["revision"].as_i64().unwrap().to_string();
    assert_eq!(ferrocdctl(&endpoints, &["compaction", &revision, "--physical"]).code, 0);
    assert_eq!(ferrocdctl(&endpoints, &["defrag", "--cluster"]).code, 0);
    let disarmed = ferrocdctl(&endpoints, &["alarm", "disarm"]);
    assert!(disarmed.stdout.contains("alarm:NOSPACE"), "{disarmed:?}");
    assert_eq!(ferrocdctl(&endpoints, &["alarm", "list"]).stdout, "");
    let put = ferrocdctl(&endpoints, &["put", "small", "v"]);
    assert_eq!(put.stdout, "OK\n", "{put:?}");
}
