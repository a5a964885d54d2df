//! The JSON gateway and the HTTP probes, driven with the real `curl`
//! against ferrocd and real etcd 3.4.23 with the same sequence: status
//! codes, JSON bodies (field order included) and error bodies must match,
//! with IDs, terms, raft indexes, sizes, versions and URLs masked.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{reference_etcd, wait_until, Cluster, Flavor};

/// One HTTP exchange as curl saw it.
#[derive(Debug)]
struct Exchange {
    status: u16,
    body: String,
}

/// `curl -X method url -d body`, with optional extra arguments.
fn curl(method: &str, url: &str, body: Option<&str>) -> Exchange {
    let mut command = Command::new("curl");
    command.args(["-s", "-m", "10", "-X", method, "-w", "\n%{http_code}", url]);
    if let Some(body) = body {
        command.args(["-d", body]);
    }
    let output = command.output().expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').expect("curl printed the status");
    Exchange {
        status: status.parse().expect("numeric status"),
        body: body.to_string(),
    }
}

fn post(endpoint: &str, path: &str, body: &str) -> Exchange {
    curl("POST", &format!("{endpoint}{path}"), Some(body))
}

/// Fields that legitimately differ between two correct servers.
fn masked(value: &Value) -> Value {
    const VOLATILE: &[&str] = &[
        "cluster_id",
        "member_id",
        "raft_term",
        "leader",
        "raftIndex",
        "raftTerm",
        "raftAppliedIndex",
        "dbSize",
        "dbSizeInUse",
        "peerURLs",
        "clientURLs",
    ];
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let volatile = VOLATILE.contains(&key.as_str())
                        // Member IDs; lease IDs are chosen by the test.
                        || (key == "ID" && value.as_str().is_some_and(|v| v.len() > 6))
                        // The server's version string, not a key's version.
                        || (key == "version" && value.as_str().is_some_and(|v| v.contains('.')));
                    let value = if volatile {
                        Value::from("<masked>")
                    } else {
                        masked(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        other => other.clone(),
    }
}

/// The object keys of a JSON text in the order they appear.
fn key_order(text: &str) -> Vec<String> {
    text.split('"')
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|pair| pair[1].starts_with(':'))
        .map(|pair| pair[0].to_string())
        .collect()
}

/// What a test compares of an exchange: status, masked body, key order.
fn comparable(exchange: &Exchange) -> (u16, Value, Vec<String>) {
    let body = serde_json::from_str(&exchange.body).unwrap_or_else(|_| Value::String(exchange.body.clone()));
    (exchange.status, masked(&body), key_order(&exchange.body))
}

/// The gateway sequence of the issue against one server; returns every
/// exchange in order.
fn run_sequence(endpoint: &str) -> Vec<(String, Exchange)> {
    let mut log = Vec::new();
    let mut step = |name: &str, exchange: Exchange| log.push((name.to_string(), exchange));
    step(
        "put a",
        post(endpoint, "/v3/kv/put", r#"{"key":"Z3cvYQ==","value":"MQ=="}"#),
    );
    step(
        "put b",
        post(
            endpoint,
            "/v3/kv/put",
            r#"{"key":"Z3cvYg==","value":"Mg==","prev_kv":true}"#,
        ),
    );
    step(
        "put b again",
        post(
            endpoint,
            "/v3/kv/put",
            r#"{"key":"Z3cvYg==","value":"Mw==","prev_kv":true}"#,
        ),
    );
    step(
        "range prefix",
        post(
            endpoint,
            "/v3/kv/range",
            r#"{"key":"Z3cv","range_end":"Z3cw","sort_order":"DESCEND","sort_target":"MOD"}"#,
        ),
    );
    step(
        "range count only",
        post(
            endpoint,
            "/v3/kv/range",
            r#"{"key":"Z3cv","range_end":"Z3cw","count_only":true}"#,
        ),
    );
    let txn = r#"{"compare":[{"key":"Z3cvYQ==","result":"EQUAL","target":"VALUE","value":"MQ=="}],
        "success":[{"request_put":{"key":"Z3cvYw==","value":"NA=="}}],
        "failure":[{"request_range":{"key":"Z3cvYQ=="}}]}"#;
    step("txn succeeds", post(endpoint, "/v3/kv/txn", txn));
    step(
        "txn fails",
        post(endpoint, "/v3/kv/txn", &txn.replace("\"EQUAL\"", "\"GREATER\"")),
    );
    step(
        "lease grant",
        post(endpoint, "/v3/lease/grant", r#"{"TTL":60,"ID":4096}"#),
    );
    step(
        "lease keepalive",
        post(endpoint, "/v3/lease/keepalive", r#"{"ID":4096}"#),
    );
    step(
        "lease keepalive unknown",
        post(endpoint, "/v3/lease/keepalive", r#"{"ID":4097}"#),
    );
    step("lease leases", post(endpoint, "/v3/kv/lease/leases", "{}"));
    step(
        "lease revoke unknown",
        post(endpoint, "/v3/kv/lease/revoke", r#"{"ID":4097}"#),
    );
    step("member list", post(endpoint, "/v3/cluster/member/list", "{}"));
    step("status", post(endpoint, "/v3/maintenance/status", "{}"));
    step(
        "lock",
        post(endpoint, "/v3/lock/lock", r#"{"name":"Z3dsb2Nr","lease":4096}"#),
    );
    step(
        "unlock",
        post(endpoint, "/v3/lock/unlock", r#"{"key":"Z3dsb2NrLzEwMDA="}"#),
    );
    step(
        "beta alias",
        post(endpoint, "/v3beta/kv/range", r#"{"key":"Z3cvYQ=="}"#),
    );
    // Errors.
    step(
        "range end before key",
        post(endpoint, "/v3/kv/range", r#"{"key":"Z3cvYg==","range_end":"Z3cvYQ=="}"#),
    );
    step(
        "future revision",
        post(endpoint, "/v3/kv/range", r#"{"key":"Z3cvYQ==","revision":1000}"#),
    );
    step("bad base64", post(endpoint, "/v3/kv/range", r#"{"key":"!!!"}"#));
    step("no key", post(endpoint, "/v3/kv/range", "{}"));
    step("unknown path", post(endpoint, "/v3/kv/nothing", "{}"));
    step("unknown prefix", post(endpoint, "/v3alpha/kv/range", "{}"));
    step("wrong method", curl("GET", &format!("{endpoint}/v3/kv/range"), None));
    step("health", curl("GET", &format!("{endpoint}/health"), None));
    step(
        "health serializable",
        curl("GET", &format!("{endpoint}/health?serializable=true"), None),
    );
    log
}

/// Starts `curl -N` on `/v3/watch`, puts a key once the watch is created,
/// and returns the first `lines` lines of the stream.
fn watch_with_put(endpoint: &str, lines: usize) -> Vec<String> {
    let mut watcher = Command::new("curl")
        .args(["-s", "-N", "-m", "15", &format!("{endpoint}/v3/watch")])
        .args(["-d", r#"{"create_request":{"key":"d2F0Y2hlZA==","prev_kv":true}}"#])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run curl");
    let mut reader = BufReader::new(watcher.stdout.take().unwrap());
    let mut received = Vec::new();
    for i in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read the watch stream");
        received.push(line);
        if i == 0 {
            post(endpoint, "/v3/kv/put", r#"{"key":"d2F0Y2hlZA==","value":"djE="}"#);
            post(endpoint, "/v3/kv/put", r#"{"key":"d2F0Y2hlZA==","value":"djI="}"#);
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    received
}

#[test]
fn gateway_answers_as_etcd_does() {
    let Some(_) = reference_etcd() else {
        eprintln!("real etcd is not installed; skipping the comparison");
        return;
    };
    let ferrocd = Cluster::start(1);
    let etcd = Cluster::start_with(Flavor::Etcd, 1, &[]);
    let ours = run_sequence(&ferrocd.endpoints());
    let theirs = run_sequence(&etcd.endpoints());
    for ((step, mine), (_, reference)) in ours.iter().zip(&theirs) {
        let (status, body, keys) = comparable(mine);
        let (ref_status, ref_body, ref_keys) = comparable(reference);
        assert_eq!(status, ref_status, "{step}: status ({mine:?} vs etcd {reference:?})");
        assert_eq!(body, ref_body, "{step}: body ({mine:?} vs etcd {reference:?})");
        assert_eq!(keys, ref_keys, "{step}: field order");
    }
    // Invalid JSON: Go's parser words its errors its own way; the status,
    // the shape and the code match.
    for endpoint in [ferrocd.endpoints(), etcd.endpoints()] {
        let invalid = post(&endpoint, "/v3/kv/put", "{bad");
        assert_eq!(invalid.status, 400, "{invalid:?}");
        let body: Value = serde_json::from_str(&invalid.body).unwrap();
        assert_eq!(key_order(&invalid.body), ["error", "message", "code"]);
        assert_eq!(body["code"], 3);
        assert_eq!(body["error"], body["message"]);
    }
    let ours = watch_with_put(&ferrocd.endpoints(), 3);
    let theirs = watch_with_put(&etcd.endpoints(), 3);
    for (mine, reference) in ours.iter().zip(&theirs) {
        let mine = Exchange {
            status: 200,
            body: mine.clone(),
        };
        let reference = Exchange {
            status: 200,
            body: reference.clone(),
        };
        assert_eq!(comparable(&mine), comparable(&reference), "watch stream");
    }
    assert!(
        ours[2].contains("prev_kv"),
        "second event carries the previous value: {ours:?}"
    );
}

/// `POST` with an `Authorization` header, as etcd's gateway clients send tokens.
fn post_with_token(endpoint: &str, path: &str, body: &str, token: &str) -> Exchange {
    let output = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: {token}"))
        .args(["-d", body])
        .arg(format!("{endpoint}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').expect("curl printed the status");
    Exchange {
        status: status.parse().expect("numeric status"),
        body: body.to_string(),
    }
}

/// The issue's "authenticate, then a request with the token", with the auth
/// management calls before it and the refusals around it.
fn run_auth_sequence(endpoint: &str) -> Vec<(String, Exchange)> {
    let mut log = Vec::new();
    let mut step = |name: &str, exchange: Exchange| {
        log.push((name.to_string(), exchange));
        log.last().map(|(_, e)| e.body.clone()).unwrap_or_default()
    };
    step("enable without root", post(endpoint, "/v3/auth/enable", "{}"));
    step(
        "add root",
        post(endpoint, "/v3/auth/user/add", r#"{"name":"root","password":"rootpw"}"#),
    );
    step(
        "grant root",
        post(endpoint, "/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
    );
    step(
        "add alice",
        post(endpoint, "/v3/auth/user/add", r#"{"name":"alice","password":"apw"}"#),
    );
    step("add role", post(endpoint, "/v3/auth/role/add", r#"{"name":"gw"}"#));
    step(
        "grant prefix",
        post(
            endpoint,
            "/v3/auth/role/grant",
            r#"{"name":"gw","perm":{"permType":"READWRITE","key":"Z3cv","range_end":"Z3cw"}}"#,
        ),
    );
    step(
        "grant role",
        post(endpoint, "/v3/auth/user/grant", r#"{"user":"alice","role":"gw"}"#),
    );
    step("role get", post(endpoint, "/v3/auth/role/get", r#"{"role":"gw"}"#));
    step("user list", post(endpoint, "/v3/auth/user/list", "{}"));
    step("enable", post(endpoint, "/v3/auth/enable", "{}"));
    step(
        "wrong password",
        post(endpoint, "/v3/auth/authenticate", r#"{"name":"alice","password":"x"}"#),
    );
    let body = step(
        "authenticate",
        post(
            endpoint,
            "/v3/auth/authenticate",
            r#"{"name":"alice","password":"apw"}"#,
        ),
    );
    let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .expect("a token")
        .to_string();
    step(
        "put with the token",
        post_with_token(endpoint, "/v3/kv/put", r#"{"key":"Z3cvYQ==","value":"MQ=="}"#, &token),
    );
    step(
        "range with the token",
        post_with_token(endpoint, "/v3/kv/range", r#"{"key":"Z3cvYQ=="}"#, &token),
    );
    step(
        "range outside the grant",
        post_with_token(endpoint, "/v3/kv/range", r#"{"key":"eA=="}"#, &token),
    );
    step(
        "user list as alice",
        post_with_token(endpoint, "/v3/auth/user/list", "{}", &token),
    );
    step(
        "range without a token",
        post(endpoint, "/v3/kv/range", r#"{"key":"Z3cvYQ=="}"#),
    );
    step(
        "range with a bad token",
        post_with_token(endpoint, "/v3/kv/range", r#"{"key":"Z3cvYQ=="}"#, "nonsense.1"),
    );
    let body = step(
        "authenticate root",
        post(
            endpoint,
            "/v3/auth/authenticate",
            r#"{"name":"root","password":"rootpw"}"#,
        ),
    );
    let root = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .expect("a token")
        .to_string();
    step("disable", post_with_token(endpoint, "/v3/auth/disable", "{}", &root));
    step(
        "range after disable",
        post(endpoint, "/v3/kv/range", r#"{"key":"Z3cvYQ=="}"#),
    );
    log
}

#[test]
fn auth_over_the_gateway_answers_as_etcd_does() {
    let Some(_) = reference_etcd() else {
        eprintln!("real etcd is not installed; skipping the comparison");
        return;
    };
    let ferrocd = Cluster::start(1);
    let etcd = Cluster::start_with(Flavor::Etcd, 1, &[]);
    let ours = run_auth_sequence(&ferrocd.endpoints());
    let theirs = run_auth_sequence(&etcd.endpoints());
    let token = regex::Regex::new(r#""token":"[^"]+""#).unwrap();
    for ((step, mine), (_, reference)) in ours.iter().zip(&theirs) {
        let strip = |e: &Exchange| Exchange {
            status: e.status,
            body: token.replace_all(&e.body, r#""token":"<token>""#).into_owned(),
        };
        let (status, body, keys) = comparable(&strip(mine));
        let (ref_status, ref_body, ref_keys) = comparable(&strip(reference));
        assert_eq!(status, ref_status, "{step}: status ({mine:?} vs etcd {reference:?})");
        assert_eq!(body, ref_body, "{step}: body ({mine:?} vs etcd {reference:?})");
        assert_eq!(keys, ref_keys, "{step}: field order");
    }
}

/// The probes' status and body on a member with and without a leader, on
/// ferrocd and on real etcd.
fn probes_without_leader(flavor: Flavor) -> Vec<(u16, String)> {
    let mut cluster = Cluster::start_with(flavor, 3, &[]);
    let endpoint = cluster.members[0].endpoint();
    let health = |path: &str| {
        let exchange = curl("GET", &format!("{endpoint}{path}"), None);
        (exchange.status, exchange.body)
    };
    assert_eq!(health("/health"), (200, r#"{"health":"true"}"#.to_string()));
    // SIGKILL: a stopping leader would hand leadership over first.
    cluster.members[1].kill();
    cluster.members[2].kill();
    // A follower knows the old leader until its election timeout.
    wait_until(Duration::from_secs(20), "the leader to be lost", || {
        health("/health?serializable=true").0 == 503
    });
    vec![
        health("/health"),
        health("/health?serializable=true"),
        health("/health?exclude=NOSPACE"),
    ]
}

#[test]
fn health_fails_without_a_leader_as_in_etcd() {
    let ours = probes_without_leader(Flavor::Ferrocd);
    assert_eq!(ours[0], (503, "{\"health\":\"false\"}\n".to_string()));
    if reference_etcd().is_some() {
        assert_eq!(ours, probes_without_leader(Flavor::Etcd));
    }
}

#[test]
fn livez_and_readyz_follow_etcd_3_5() {
    let mut cluster = Cluster::start(3);
    let endpoint = cluster.members[0].endpoint();
    let get = |path: &str| curl("GET", &format!("{endpoint}{path}"), None);
    let ready = get("/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ok"));
    let verbose = get("/readyz?verbose");
    assert_eq!(
        verbose.body,
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok"
    );
    assert_eq!(get("/livez").body, "ok");
    // SIGKILL: a stopping leader would hand leadership over first.
    cluster.members[1].kill();
    cluster.members[2].kill();
    wait_until(Duration::from_secs(20), "readyz to fail", || {
        get("/readyz").status == 503
    });
    let failed = get("/readyz").body;
    assert!(failed.contains("[-]linearizable_read failed: "), "{failed}");
    assert!(failed.ends_with("readyz check failed\n"), "{failed}");
    let excluded = get("/readyz?exclude=linearizable_read");
    assert_eq!((excluded.status, excluded.body.as_str()), (200, "ok"));
    assert_eq!(get("/livez").status, 200, "a member without a leader is still alive");
}

/// The probes with a NOSPACE alarm raised through the gateway (memberID as
/// a string, as the JSON mapping has 64-bit integers), then disarmed.
fn probes_with_nospace(flavor: Flavor) -> Vec<(u16, String)> {
    let cluster = Cluster::start_with(flavor, 1, &[]);
    let endpoint = cluster.members[0].endpoint();
    let status = post(&endpoint, "/v3/maintenance/status", "{}");
    let status: Value = serde_json::from_str(&status.body).unwrap();
    let member = status["header"]["member_id"].as_str().unwrap().to_string();
    let alarm = |action: &str| {
        let body = format!(r#"{{"action":"{action}","memberID":"{member}","alarm":"NOSPACE"}}"#);
        post(&endpoint, "/v3/maintenance/alarm", &body)
    };
    let get = |path: &str| {
        let exchange = curl("GET", &format!("{endpoint}{path}"), None);
        (exchange.status, exchange.body)
    };
    assert_eq!(alarm("ACTIVATE").status, 200);
    // (/livez is etcd 3.5's; 3.4.23 has none to compare with.)
    let mut probes = vec![get("/health"), get("/health?exclude=NOSPACE")];
    let refused = post(&endpoint, "/v3/kv/put", r#"{"key":"YQ==","value":"Yg=="}"#);
    probes.push((refused.status, refused.body));
    assert_eq!(alarm("DEACTIVATE").status, 200);
    probes.push(get("/health"));
    probes
}

#[test]
fn probes_and_writes_with_a_nospace_alarm_as_in_etcd() {
    let ours = probes_with_nospace(Flavor::Ferrocd);
    assert_eq!(ours[0], (503, "{\"health\":\"false\"}\n".to_string()));
    assert_eq!(ours[1], (200, "{\"health\":\"true\"}".to_string()));
    assert!(
        ours[2].1.contains("etcdserver: mvcc: database space exceeded"),
        "{ours:?}"
    );
    assert_eq!(ours[3], (200, "{\"health\":\"true\"}".to_string()));
    if reference_etcd().is_some() {
        assert_eq!(ours, probes_with_nospace(Flavor::Etcd));
    }
}
