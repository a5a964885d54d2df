//! etcd's v2 members API (`--enable-v2`) against real etcd 3.4.23: the same
//! `ETCDCTL_API=2 etcdctl` commands (member list/add/update/remove,
//! cluster-health with every member up, with one down and with quorum lost)
//! and the same curl requests (bodies, status codes and headers, errors
//! included) on a 3-member ferrocd cluster and a 3-member etcd cluster,
//! compared after masking IDs and ports, and sorting what comes in ID order.
//! Without the flag, the v2 paths and etcdctl v2 fail as they do on etcd.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::support::{etcdctl_path, reference_etcd, wait_until, Cluster, Flavor};

/// What one step printed, masked and normalised.
type Transcript = Vec<(String, String)>;

/// `ETCDCTL_API=2 etcdctl --endpoints=... args`: exit code, stdout, then stderr.
fn etcdctl2(endpoint: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(etcdctl_path())
        .env("ETCDCTL_API", "2")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run etcdctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// One HTTP exchange with curl: the status line, the headers that matter
/// (lower-cased, sorted) and the body, byte for byte (quoted).
fn curl(method: &str, url: &str, content_type: Option<&str>, body: Option<&str>) -> String {
    let mut command = Command::new("curl");
    command.args(["-s", "-i", "-m", "20"]);
    if method == "HEAD" {
        command.arg("-I");
    } else {
        command.args(["-X", method]);
    }
    if let Some(content_type) = content_type {
        command.args(["-H", &format!("Content-Type: {content_type}")]);
    }
    if let Some(body) = body {
        command.args(["--data-binary", body]);
    }
    let out = command.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("no answer").trim().to_string();
    let mut headers: Vec<String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
        .filter(|(name, _)| {
            [
                // Not content-length: IDs are 15 or 16 hex digits.
                "content-type",
                "x-etcd-cluster-id",
                "allow",
                "x-content-type-options",
            ]
            .contains(&name.as_str())
        })
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    headers.sort();
    format!("{status}\n{}\n{body:?}", headers.join("\n"))
}

/// IDs, ports and which member leads differ between two correct clusters.
fn mask(text: &str) -> String {
    let rules = [
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
        (r"\b[0-9a-f]{9,16}\b", "<id>"),
        (r"isLeader=(true|false)", "isLeader=<bool>"),
        // etcdctl numbers the endpoints' errors in the order it tried them.
        (r"(?m)(^; )?error #\d+: ", "\nerror: "),
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

/// Masked, with lines sorted: listings come in member ID order.
fn sorted(text: &str) -> String {
    let masked = mask(text);
    let mut lines: Vec<&str> = masked.lines().collect();
    lines.sort();
    lines.join("\n")
}

/// A masked `/v2/members` exchange with the members sorted.
fn sorted_members(exchange: &str) -> String {
    let masked = mask(exchange);
    let Some((head, rest)) = masked.split_once(r#""{\"members\":["#) else {
        return masked;
    };
    let (items, tail) = rest.rsplit_once("]}").expect("a members list");
    let items = items
        .strip_prefix('{')
        .and_then(|i| i.strip_suffix('}'))
        .unwrap_or(items);
    let mut items: Vec<&str> = items.split("},{").collect();
    items.sort();
    format!(r#"{head}"{{\"members\":[{{{}}}]}}{tail}"#, items.join("},{"))
}

/// The member ID etcdctl v2 lists for `name` (`[unstarted]` ones have none).
fn id_of(endpoint: &str, name: &str) -> String {
    let (_, list) = etcdctl2(endpoint, &["member", "list"]);
    let line = list
        .lines()
        .find(|line| line.contains(&format!("name={name} ")) || (name.is_empty() && line.contains("[unstarted]")))
        .unwrap_or_else(|| panic!("no member {name:?} in {list}"));
    line.split([':', '[']).next().unwrap().to_string()
}

/// etcd refuses changes for a while after start (and while a member is
/// unreachable), answering 500, which etcdctl v2 reports as "has no leader".
fn member_add(endpoint: &str, name: &str, peer_url: &str) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out) = etcdctl2(endpoint, &["member", "add", name, peer_url]);
        if code == 0 || !out.contains("has no leader") || Instant::now() > deadline {
            return (code, out);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `member add`'s output, with the members of `ETCD_INITIAL_CLUSTER` sorted.
fn added(code: i32, out: &str) -> String {
    let out = mask(out);
    let out = Regex::new(r#"ETCD_INITIAL_CLUSTER="([^"]*)""#)
        .unwrap()
        .replace(&out, |c: &regex::Captures| {
            let mut members: Vec<&str> = c[1].split(',').collect();
            members.sort();
            format!("ETCD_INITIAL_CLUSTER=\"{}\"", members.join(","))
        })
        .into_owned();
    format!("{out}exit {code}")
}

/// Requests etcd answers with an error, whatever its state.
fn error_requests(endpoint: &str, m1_id: &str, record: &mut impl FnMut(&str, String)) {
    let mut step = |name: &str, exchange: String| record(name, mask(&exchange));
    let members = format!("{endpoint}/v2/members");
    let json = Some("application/json");
    let bodies = [
        "",
        "{",
        "x",
        "{\"a\" 1}",
        "{\"a\":1.}",
        "{} x",
        "[]",
        "\"s\"",
        "null",
        "{}",
        r#"{"peerURLs":"a"}"#,
        r#"{"peerURLs":[1]}"#,
        r#"{"peerURLs":[true]}"#,
        r#"{"peerURLs":{}}"#,
        r#"{"peerURLs":[]}"#,
        r#"{"peerURLs":null}"#,
        r#"{"peerURLs":["foo"]}"#,
        r#"{"peerURLs":["http://a"]}"#,
        r#"{"peerURLs":["http://a:1/"]}"#,
        r#"{"peerURLs":[null]}"#,
    ];
    for body in bodies {
        step(&format!("POST {body}"), curl("POST", &members, json, Some(body)));
    }
    let urls = r#"{"peerURLs":["http://127.0.0.1:1"]}"#;
    for content_type in [None, Some("text/plain"), Some("APPLICATION/JSON")] {
        step(
            &format!("POST as {content_type:?}"),
            curl("POST", &members, content_type, Some(urls)),
        );
    }
    for id in ["123", "00ABC", "zz", "0x12", "+12", "", "1/2", "ffffffffffffffffff"] {
        step(
            &format!("DELETE {id}"),
            curl("DELETE", &format!("{members}/{id}"), None, None),
        );
    }
    step("DELETE no slash", curl("DELETE", &members, None, None));
    let update = |id: &str, content_type, body| curl("PUT", &format!("{members}/{id}"), content_type, Some(body));
    step("PUT unknown", update("123", json, urls));
    step("PUT bad id, bad type", update("zz", None, urls));
    step("PUT bad type", update("123", Some("text/plain"), urls));
    step("PUT no URLs", update(m1_id, json, r#"{"peerURLs":[]}"#));
    step("PUT bad JSON", update(m1_id, json, "{"));
    step("PUT no id", curl("PUT", &members, json, Some(urls)));
    for (method, path) in [
        ("PATCH", "/v2/members"),
        ("HEAD", "/v2/members"),
        ("OPTIONS", "/v2/members"),
        ("GET", "/v2/members/leader/"),
        ("GET", "/v2/members/foo"),
        ("GET", "/v2/members/123"),
        ("GET", "/v2/machines/"),
        ("POST", "/v2/machines"),
        ("HEAD", "/v2/machines"),
        ("GET", "/v2"),
        ("GET", "/v2/"),
        ("GET", "/v2/membersx"),
        ("GET", "/v2/foo"),
    ] {
        step(
            &format!("{method} {path}"),
            curl(method, &format!("{endpoint}{path}"), None, None),
        );
    }
}

/// The whole sequence on one cluster: the transcript to compare.
fn v2_session(flavor: Flavor) -> Transcript {
    let mut cluster = Cluster::start_with(flavor, 3, &["--enable-v2"]);
    let endpoint = cluster.members[0].endpoint();
    let e = endpoint.as_str();
    let mut transcript = Transcript::new();
    let mut step = |name: &str, text: String| transcript.push((name.to_string(), text));
    let ctl = |args: &[&str]| {
        let (code, out) = etcdctl2(e, args);
        format!("{}\nexit {code}", sorted(&out))
    };

    // Everything up.
    let (code, list) = etcdctl2(e, &["member", "list"]);
    assert_eq!(list.matches("isLeader=true").count(), 1, "{list}");
    step("member list", format!("{}\nexit {code}", sorted(&list)));
    step("cluster-health", ctl(&["cluster-health"]));
    step(
        "GET members",
        sorted_members(&curl("GET", &format!("{e}/v2/members"), None, None)),
    );
    step(
        "GET members/",
        sorted_members(&curl("GET", &format!("{e}/v2/members/"), None, None)),
    );
    let leader = curl("GET", &format!("{e}/v2/members/leader"), None, None);
    step(
        "GET leader",
        Regex::new(r#"\\"name\\":\\"m\d\\""#)
            .unwrap()
            .replace(&mask(&leader), "<name>")
            .into_owned(),
    );
    step(
        "GET machines",
        mask(&curl("GET", &format!("{e}/v2/machines"), None, None)),
    );
    let m1_id = id_of(e, "m1");
    error_requests(e, &m1_id, &mut step);

    // A member added but not started: listed without name or client URLs,
    // unreachable for cluster-health, and the cluster refuses more changes.
    let peer = |port: u16| format!("http://127.0.0.1:{port}");
    let unused = crate::support::free_port();
    let (code, out) = member_add(e, "m4", &peer(unused));
    step("member add", added(code, &out));
    step("member list, m4 unstarted", ctl(&["member", "list"]));
    step("cluster-health, m4 unstarted", ctl(&["cluster-health"]));
    step(
        "GET members, m4 unstarted",
        sorted_members(&curl("GET", &format!("{e}/v2/members"), None, None)),
    );
    let m4_id = id_of(e, "");
    let body = format!(r#"{{"peerURLs":["{}"]}}"#, peer(unused + 1));
    step(
        "POST while m4 unstarted",
        mask(&curl(
            "POST",
            &format!("{e}/v2/members"),
            Some("application/json"),
            Some(&body),
        )),
    );
    step(
        "member update m4",
        ctl(&["member", "update", &m4_id, &peer(unused + 1)]),
    );
    step("member list, m4 updated", ctl(&["member", "list"]));
    step(
        "PUT m4 as it is",
        mask(&curl(
            "PUT",
            &format!("{e}/v2/members/{m4_id}"),
            Some("application/json"),
            Some(&body),
        )),
    );
    step("member remove m4", ctl(&["member", "remove", &m4_id]));
    step(
        "DELETE removed",
        mask(&curl("DELETE", &format!("{e}/v2/members/{m4_id}"), None, None)),
    );
    step(
        "PUT removed",
        mask(&curl(
            "PUT",
            &format!("{e}/v2/members/{m4_id}"),
            Some("application/json"),
            Some(&body),
        )),
    );
    step("member remove removed", ctl(&["member", "remove", &m4_id]));

    // The guide's procedure: add, start with the printed settings, remove.
    let spec = Cluster::new_spec("m5");
    let (code, out) = member_add(e, "m5", &spec.peer_url());
    assert_eq!(code, 0, "{out}");
    step("member add m5", added(code, &out));
    let initial = out
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let m5 = cluster.join(spec, &initial);
    cluster.members[m5].start();
    cluster.wait_healthy();
    wait_until(Duration::from_secs(30), "m5 listed as started", || {
        !etcdctl2(e, &["member", "list"]).1.contains("unstarted")
    });
    step("member list with m5", ctl(&["member", "list"]));
    step("cluster-health with m5", ctl(&["cluster-health"]));
    step(
        "GET members with m5",
        sorted_members(&curl("GET", &format!("{e}/v2/members"), None, None)),
    );
    let m5_id = id_of(e, "m5");
    let remove = |id: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, out) = etcdctl2(e, &["member", "remove", id]);
            if code == 0 || !out.contains("has no leader") || Instant::now() > deadline {
                return format!("{}\nexit {code}", sorted(&out));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    step("member remove m5", remove(&m5_id));
    cluster.members[m5].wait_exit(Duration::from_secs(30));
    step("member list without m5", ctl(&["member", "list"]));

    // etcdctl's own checks and the server's refusals.
    let m2_peer = cluster.members[1].spec.peer_url();
    for args in [
        &["member", "remove", "1234"][..],
        &["member", "remove", "zz"],
        &["member", "add", "m6"],
        &["member", "add", "m6", "foo"],
        &["member", "add", "m6", &m2_peer],
        &["member", "update", &m1_id, &m2_peer],
        &["member", "update", "1234", &peer(unused + 2)],
    ] {
        step(&args.join(" "), ctl(args));
    }

    // One member down: degraded. Two down: no leader, unavailable.
    cluster.members[2].stop();
    step("cluster-health, m3 down", ctl(&["cluster-health"]));
    step("member list, m3 down", ctl(&["member", "list"]));
    cluster.members[1].stop();
    wait_until(Duration::from_secs(30), "no leader", || {
        curl("GET", &format!("{e}/v2/members/leader"), None, None).starts_with("HTTP/1.1 503")
    });
    step("cluster-health, quorum lost", ctl(&["cluster-health"]));
    step("member list, quorum lost", ctl(&["member", "list"]));
    step(
        "GET leader, quorum lost",
        mask(&curl("GET", &format!("{e}/v2/members/leader"), None, None)),
    );
    step(
        "GET members, quorum lost",
        sorted_members(&curl("GET", &format!("{e}/v2/members"), None, None)),
    );
    transcript
}

/// Asserts two transcripts are equal step by step, naming the first difference.
fn assert_same(ours: &Transcript, reference: &Transcript) {
    for ((step, got), (_, expected)) in ours.iter().zip(reference) {
        assert_eq!(got, expected, "step {step:?}: ferrocd (left) differs from etcd (right)");
    }
    assert_eq!(ours.len(), reference.len());
}

#[test]
fn v2_members_api_answers_as_etcd_with_enable_v2() {
    if reference_etcd().is_none() {
        eprintln!("skipped: real etcd is not installed");
        return;
    }
    let reference = v2_session(Flavor::Etcd);
    let ours = v2_session(Flavor::Ferrocd);
    assert_same(&ours, &reference);
}

/// Without `--enable-v2`: 404 for every v2 path, and etcdctl v2 fails alike.
fn without_v2(flavor: Flavor) -> Transcript {
    let cluster = Cluster::start_with(flavor, 1, &[]);
    let e = cluster.members[0].endpoint();
    let mut transcript = Transcript::new();
    let json = Some("application/json");
    for (method, path, body) in [
        ("GET", "/v2/members", None),
        ("POST", "/v2/members", Some(r#"{"peerURLs":["http://127.0.0.1:1"]}"#)),
        ("DELETE", "/v2/members/123", None),
        ("PUT", "/v2/members/123", Some(r#"{"peerURLs":["http://127.0.0.1:1"]}"#)),
        ("GET", "/v2/members/leader", None),
        ("GET", "/v2/machines", None),
        ("GET", "/v2/keys/foo", None),
    ] {
        let exchange = curl(method, &format!("{e}{path}"), json.filter(|_| body.is_some()), body);
        transcript.push((format!("{method} {path}"), mask(&exchange)));
    }
    for args in [
        &["member", "list"][..],
        &["cluster-health"],
        &["member", "add", "m2", "http://127.0.0.1:1"],
        &["member", "remove", "1234"],
    ] {
        let (code, out) = etcdctl2(&e, args);
        transcript.push((args.join(" "), format!("{}\nexit {code}", sorted(&out))));
    }
    transcript
}

#[test]
fn v2_paths_are_not_served_without_enable_v2_as_in_etcd() {
    if reference_etcd().is_none() {
        eprintln!("skipped: real etcd is not installed");
        return;
    }
    let reference = without_v2(Flavor::Etcd);
    let ours = without_v2(Flavor::Ferrocd);
    assert_same(&ours, &reference);
}
