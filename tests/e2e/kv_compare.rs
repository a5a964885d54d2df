//! Differential KV tests: one scripted etcdctl session against ferrocd and real etcd 3.4.

use crate::support::{etcdctl_with_input, reference_etcd, Cluster, Flavor};
use serde_json::Value;
use std::collections::BTreeMap;

/// One etcdctl invocation, and whether it must succeed on real etcd.
struct Step {
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    must_succeed: bool,
    /// The order of output lines is not defined (member list follows member IDs).
    unordered: bool,
}

/// `ok("get k --prefix")`: arguments are split on spaces; `''` is an empty argument.
fn ok(command: &str) -> Step {
    let args = command
        .split(' ')
        .map(|a| if a == "''" { String::new() } else { a.to_string() })
        .collect();
    Step {
        args,
        stdin: None,
        must_succeed: true,
        unordered: false,
    }
}

fn fails(command: &str) -> Step {
    Step {
        must_succeed: false,
        ..ok(command)
    }
}

impl Step {
    fn input(mut self, data: impl Into<Vec<u8>>) -> Step {
        self.stdin = Some(data.into());
        self
    }

    /// Feeds a transaction written as `compares | success ops | failure ops`, lines separated by
    /// `;`, as etcdctl txn reads it: each block ends with an empty line.
    fn txn(self, script: &str) -> Step {
        let blocks: Vec<&str> = script.split('|').collect();
        assert_eq!(blocks.len(), 3, "txn script needs three blocks: {script}");
        let mut input = String::new();
        for block in blocks {
            for line in block.split(';').map(str::trim).filter(|l| !l.is_empty()) {
                input += &format!("{line}\n");
            }
            input += "\n";
        }
        self.input(input)
    }

    fn unordered(mut self) -> Step {
        self.unordered = true;
        self
    }

    fn describe(&self) -> String {
        let mut text = format!("etcdctl {:?}", self.args);
        if let Some(input) = &self.stdin {
            let shown: String = String::from_utf8_lossy(input).chars().take(120).collect();
            text.push_str(&format!(" <<< {shown:?} ({} bytes)", input.len()));
        }
        text
    }
}

/// What one step produced, with everything that legitimately differs masked. JSON lines of
/// stdout are parsed, masked and printed again with sorted keys.
#[derive(Debug, PartialEq)]
struct Record {
    exit_code: Option<i32>,
    stdout: String,
    /// The last stderr line that is not a client log line (`Error: ...`).
    error_line: String,
    /// The gRPC status in the client's retry warning (`rpc error: code = ... desc = ...`).
    grpc_error: Option<String>,
}

/// Replaces URLs, endpoints and IDs of one cluster by names that both clusters share.
struct Masker {
    substitutions: Vec<(String, String)>,
    members: BTreeMap<u64, String>,
}

impl Masker {
    fn new(cluster: &Cluster) -> Masker {
        let mut substitutions = Vec::new();
        for m in &cluster.members {
            let name = &m.spec.name;
            substitutions.push((m.spec.client_url(), format!("<client:{name}>")));
            substitutions.push((m.spec.peer_url(), format!("<peer:{name}>")));
            substitutions.push((format!("127.0.0.1:{}", m.spec.client_port), format!("<ep:{name}>")));
        }
        let out = etcdctl_with_input(&cluster.endpoints(), &["member", "list", "-w", "json"], None);
        let list: Value = serde_json::from_slice(&out.stdout).expect("member list -w json prints JSON");
        let mut members = BTreeMap::new();
        for m in list["members"].as_array().expect("members array") {
            let (id, name) = (m["ID"].as_u64().expect("member ID"), m["name"].as_str().expect("name"));
            substitutions.push((format!("{id:x}"), format!("<member:{name}>")));
            members.insert(id, name.to_string());
        }
        assert_eq!(members.len(), cluster.members.len(), "member list: {list}");
        Masker { substitutions, members }
    }

    fn text(&self, line: &str) -> String {
        // `-w fields` prints the header as `"ClusterID" : 123`.
        if let Some((field @ ("\"ClusterID\"" | "\"MemberID\"" | "\"RaftTerm\"" | "\"RaftIndex\""), _)) =
            line.split_once(" : ")
        {
            return format!("{field} : <masked>");
        }
        self.substitutions
            .iter()
            .fold(line.to_string(), |text, (from, to)| text.replace(from, to))
    }

    fn json(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    let member = v.as_u64().and_then(|id| self.members.get(&id));
                    match (key.as_str(), member) {
                        ("cluster_id" | "raft_term" | "raft_index", _) => *v = "<masked>".into(),
                        // Which member answers depends on etcdctl's balancer: only check it is one.
                        ("member_id", Some(_)) => *v = "<member>".into(),
                        ("ID", Some(name)) => *v = format!("<member:{name}>").into(),
                        ("member_id" | "ID", None) => *v = format!("<unknown member {v}>").into(),
                        _ => self.json(v),
                    }
                }
                if let Some(Value::Array(members)) = map.get_mut("members") {
                    members.sort_by_key(|m| m["name"].to_string());
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::String(s) => *s = self.text(s),
            _ => {}
        }
    }

    fn record(&self, out: &std::process::Output, unordered: bool) -> Record {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut lines: Vec<String> = stdout
            .lines()
            .map(|line| match serde_json::from_str::<Value>(line) {
                Ok(mut json) if line.starts_with('{') => {
                    self.json(&mut json);
                    json.to_string()
                }
                _ => self.text(line),
            })
            .collect();
        if unordered {
            lines.sort();
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let is_log = |l: &&str| l.starts_with("{\"level\"");
        let error_line = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty() && !is_log(l))
            .unwrap_or("");
        let log_error = |l: &str| {
            serde_json::from_str::<Value>(l).ok()?["error"]
                .as_str()
                .map(|e| self.text(e))
        };
        Record {
            exit_code: out.status.code(),
            stdout: lines.join("\n"),
            error_line: self.text(error_line),
            grpc_error: stderr.lines().rev().filter(is_log).find_map(log_error),
        }
    }
}

/// Runs every step in order against `cluster` and returns the masked records.
fn run_steps(cluster: &Cluster, steps: &[Step]) -> Vec<Record> {
    let masker = Masker::new(cluster);
    let endpoints = cluster.endpoints();
    steps
        .iter()
        .map(|step| {
            let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
            masker.record(
                &etcdctl_with_input(&endpoints, &args, step.stdin.as_deref()),
                step.unordered,
            )
        })
        .collect()
}

/// Runs the script against `size`-member clusters of real etcd and ferrocd (concurrently) and
/// reports every step whose masked outputs differ.
fn compare(size: usize, steps: &[Step]) {
    assert!(
        reference_etcd().is_some(),
        "real etcd 3.4 is needed (/opt/etcd/usr/bin/etcd or $REFERENCE_ETCD)"
    );
    let etcd = Cluster::start_with(Flavor::Etcd, size, &[]);
    let ferrocd = Cluster::start_with(Flavor::Ferrocd, size, &[]);
    let (expected, actual) = std::thread::scope(|s| {
        let expected = s.spawn(|| run_steps(&etcd, steps));
        let actual = s.spawn(|| run_steps(&ferrocd, steps));
        (expected.join().unwrap(), actual.join().unwrap())
    });
    for (step, record) in steps.iter().zip(&expected) {
        let succeeded = record.exit_code == Some(0);
        assert_eq!(
            succeeded,
            step.must_succeed,
            "script error: real etcd ran {}: {record:#?}",
            step.describe()
        );
    }
    let diffs: Vec<String> = (0..steps.len())
        .filter(|&i| expected[i] != actual[i])
        .map(|i| {
            format!(
                "step {i}: {}\n  etcd:    {:?}\n  ferrocd: {:?}",
                steps[i].describe(),
                expected[i],
                actual[i]
            )
        })
        .collect();
    assert!(
        diffs.is_empty(),
        "{} of {} steps differ from etcd:\n{}",
        diffs.len(),
        steps.len(),
        diffs.join("\n")
    );
}

/// The script. Revisions in the first part are literal: the store starts at revision 1.
fn script() -> Vec<Step> {
    let mut steps = vec![
        // History and compaction: hist is put at 2 and 3, deleted at 4, put again at 5.
        ok("put hist one"),
        ok("put hist two -w json"),
        ok("del hist"),
        ok("put hist three"),
        ok("get hist --rev=1 -w json"),
        ok("get hist --rev=2 -w json"),
        ok("get hist --rev=3"),
        ok("get hist --rev=4 -w json"),
        ok("get hist --rev=5 -w json"),
        fails("get hist --rev=6"),
        fails("get hist --rev=100000"),
        ok("compaction 3"),
        fails("get hist --rev=2"),
        ok("get hist --rev=3 -w json"),
        fails("compaction 2"),
        fails("compaction 3"),
        fails("compaction 6"),
        fails("compaction 100000"),
        // Txn compares on create and mod revisions: t1 is created at 6, t2 at 7 and modified at 8.
        ok("put t1 v1"),
        ok("put t2 v2"),
        ok("put t2 v2b"),
        ok("txn").txn(r#"create("t1") = "6" | put cr ok1 | put cr fail1"#),
        ok("txn").txn(r#"create("t1") > "6" | put cr ok2 | put cr fail2"#),
        ok("txn").txn(r#"create("none") = "0" | get cr |"#),
        ok("txn -w json").txn(r#"mod("t2") = "8" | get t2 | get t1"#),
        ok("txn").txn(r#"mod("t2") < "8" | put m ok | put m fail"#),
        ok("txn").txn(r#"mod("t2") > "7" | put m ok | put m fail"#),
        // Compares on value and version, both branches, interactive or not, several ops.
        ok("txn -i").txn(r#"value("t1") = "v1" | put t3 yes; get t1 | put t3 no"#),
        ok("txn --interactive -w json").txn(r#"value("t1") = "nope" | put t4 yes | put t4 no; get t1"#),
        ok("txn -w json").txn(r#"value("t1") != "v1" | | get t3; del t4 --prev-kv"#),
        ok("txn").txn(r#"value("t1") < "v2" | get t1 | get t2"#),
        ok("txn").txn(r#"value("t1") > "v2" | get t1 | get t2"#),
        ok("txn").txn(r#"value("none") = "" | put vn yes | put vn no"#),
        ok("txn").txn(r#"version("t2") = "2" | put v ok | put v fail"#),
        ok("txn").txn(r#"version("t2") > "5" | put v ok | put v fail"#),
        ok("txn").txn(r#"version("none") = "0" | get v |"#),
        ok("txn").txn(r#"value("t1") = "v1"; version("t2") = "3" | put mc 1 | put mc 0"#),
        ok("txn -w json").txn("| put ops/a 1; put ops/b 2; put ops/c 3; del ops/z; get ops/ --prefix |"),
        ok("txn").txn("| del ops/a; del ops/b --prev-kv; get ops/ --prefix --keys-only |"),
        ok("txn").txn("||"),
        ok("txn -w json").txn("||"),
        fails("txn").txn("| put dup 1; put dup 2 |"),
        fails("txn").txn("| put dup 1; del dup |"),
        fails("txn").txn("| del d --prefix; put dup 1 |"),
        ok("txn").txn("| get dup; get dup; put dup 3 |"),
        ok("txn").txn(r#"value("t1") = "v1" | put dup 4 | put dup 5"#),
        ok("get '' --from-key -w json"),
        // Prefixes, ranges, limits, sorting: values and versions do not follow key order, and
        // pfx/b and pfx/d tie on version.
        ok("put pfx/a 5"),
        ok("put pfx/b 3"),
        ok("put pfx/c 2"),
        ok("put pfx/d 4"),
        ok("put pfx/a 1"),
        ok("put pfx/c 6"),
        ok("put pfx/c 7"),
        ok("get pfx/ --prefix"),
        ok("get pfx/ --prefix -w json"),
        ok("get pfx/a pfx/c"),
        ok("get pfx/b --from-key --keys-only"),
        ok("get pfx/ --prefix --limit=2 -w json"),
        ok("get pfx/ --prefix --limit=4 -w json"),
        ok("get pfx/ --prefix --keys-only"),
        ok("get pfx/ --prefix --keys-only -w json"),
        ok("get pfx/ --prefix --print-value-only"),
        ok("get pfx/a -w fields"),
        ok("get pfx/ --prefix --order=DESCEND --limit=2"),
        ok("get pfx/ --prefix --sort-by=VALUE --limit=2 -w json"),
        ok("get pfx/ --prefix --sort-by=VERSION --order=DESCEND -w json"),
        fails("get pfx/ --prefix --sort-by=BOGUS"),
    ];
    for target in ["KEY", "VALUE", "VERSION", "CREATE", "MODIFY"] {
        for order in ["ASCEND", "DESCEND"] {
            steps.push(ok(&format!("get pfx/ --prefix --sort-by={target} --order={order}")));
        }
    }
    let big = "0123456789abcdef".repeat(65536); // 1 MiB: fits
    let too_big = "x".repeat(1536 * 1024 + 100); // just over the 1.5 MiB request limit
    let puts = |n: usize| {
        (0..n)
            .map(|i| format!("put many/{i:03} v"))
            .collect::<Vec<_>>()
            .join(";")
    };
    steps.extend([
        // Deletes.
        ok("del d1"),
        ok("put d1 x"),
        ok("del d1 -w json"),
        ok("put d2 val2"),
        ok("del d2 --prev-kv"),
        ok("put dp/a 1"),
        ok("put dp/b 2"),
        ok("put dp/c 3"),
        ok("del dp/a dp/c"),
        ok("del dp/ --prefix --prev-kv -w json"),
        ok("put zz1 1"),
        ok("put zz2 2"),
        ok("del zz --from-key --prev-kv"),
        ok("del zz --from-key -w json"),
        // Puts with options.
        ok("put foo bar --prev-kv"),
        ok("put foo baz --prev-kv -w json"),
        ok("put foo --ignore-value"),
        ok("get foo -w json"),
        fails("put missing-iv --ignore-value"),
        fails("put missing-il v --ignore-lease"),
        ok("put foo qux --ignore-lease -w json"),
        // Empty keys, sizes, too many operations.
        fails("get ''"),
        fails("put '' x"),
        fails("del ''"),
        ok("put big").input(big),
        ok("get big --keys-only -w json"),
        fails("put toobig").input(too_big),
        ok("get toobig -w json"),
        fails("txn").txn(&format!("|{}|", puts(129))),
        ok("txn").txn(&format!("|{}|", puts(128))),
        ok("get many/ --prefix --limit=1 -w json"),
        ok("del many/ --prefix"),
        ok("get '' --from-key --keys-only -w json"),
        ok("get '' --from-key --keys-only"),
        // Membership as etcdctl sees it.
        ok("member list -w json"),
        ok("member list").unordered(),
    ]);
    steps
}

#[test]
fn kv_script_matches_etcd_single_member() {
    compare(1, &script());
}

#[test]
fn kv_script_matches_etcd_three_members() {
    compare(3, &script());
}
