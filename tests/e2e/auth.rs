//! Auth and RBAC: etcdctl's user/role/auth commands against ferrocd and real
//! etcd 3.4.23 (equal output), an access matrix of users x keys x operations
//! checked against the grants on three members, rules in force on every
//! member as soon as a change returns, and JWT tokens.

use std::collections::BTreeMap;
use std::process::Command;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Permission, Txn, TxnOp, WatchOptions};
use tonic::Code;

use crate::ctl::{mask, run_ctl, Outcome};
use crate::support::{etcdctl_path, reference_etcd, Cluster, Flavor};

/// etcdctl 3.4, its output masked as `crate::ctl` masks it.
fn etcdctl(endpoints: &str, args: &[&str], input: Option<&str>) -> Outcome {
    let out = run_ctl(&etcdctl_path(), endpoints, args, input);
    Outcome {
        code: out.code,
        stdout: mask(&out.stdout),
        stderr: mask(&out.stderr),
    }
}

const ROOT: &str = "--user=root:rootpw";
const ALICE: &str = "--user=alice:apw";

/// The sequence both servers get: setup, refusals, every command's output
/// forms, and the auth management errors.
fn sequence() -> Vec<(Vec<&'static str>, Option<&'static str>)> {
    let plain = |args: &[&'static str]| (args.to_vec(), None);
    vec![
        plain(&["auth", "enable"]),
        plain(&["user", "add", "root:rootpw"]),
        plain(&["user", "add", "root:x"]),
        plain(&["role", "list"]),
        plain(&["auth", "enable"]),
        plain(&["get", "a"]),
        plain(&["--user=root:bad", "get", "a"]),
        plain(&["--user=nobody:bad", "get", "a"]),
        plain(&[ROOT, "user", "add", "alice:apw"]),
        plain(&[ROOT, "user", "add", "nopw", "--no-password"]),
        plain(&[ROOT, "role", "add", "r1"]),
        plain(&[ROOT, "role", "add", "r1"]),
        plain(&[ROOT, "role", "grant-permission", "r1", "readwrite", "a", "b"]),
        plain(&[ROOT, "role", "grant-permission", "--prefix=true", "r1", "read", "p/"]),
        plain(&[ROOT, "role", "grant-permission", "r1", "write", "c"]),
        plain(&[ROOT, "role", "grant-permission", "--from-key", "r1", "read", "x"]),
        plain(&[ROOT, "role", "grant-permission", "r1", "sideways", "c"]),
        plain(&[ROOT, "role", "grant-permission", "nosuch", "read", "c"]),
        plain(&[ROOT, "user", "grant-role", "alice", "r1"]),
        plain(&[ROOT, "user", "grant-role", "alice", "r1"]),
        plain(&[ROOT, "user", "grant-role", "alice", "nosuch"]),
        plain(&[ROOT, "user", "grant-role", "bob", "r1"]),
        plain(&["--user=nopw:", "get", "a"]),
        plain(&[ALICE, "put", "a", "1"]),
        plain(&[ALICE, "put", "c", "1"]),
        plain(&[ALICE, "put", "d", "1"]),
        plain(&[ALICE, "put", "a", "2", "--prev-kv"]),
        plain(&[ALICE, "get", "p/x"]),
        plain(&[ALICE, "get", "a", "c"]),
        plain(&[ALICE, "get", "x", "--from-key"]),
        plain(&[ALICE, "get", "w", "--from-key"]),
        plain(&[ALICE, "-w", "json", "get", "a", "--prefix"]),
        plain(&[ALICE, "del", "c"]),
        (
            vec![ALICE, "txn", "-i"],
            Some("value(\"a\") = \"2\"\n\nput a 3\n\nput zz 3\n\n"),
        ),
        (
            vec![ALICE, "txn", "-i"],
            Some("value(\"a\") = \"2\"\n\nput a 3\n\nget a\n\n"),
        ),
        (vec![ALICE, "txn", "-i"], Some("value(\"q\") = \"2\"\n\nput a 3\n\n\n")),
        plain(&[ALICE, "watch", "c"]),
        plain(&[ALICE, "watch", "a", "b"]),
        plain(&[ALICE, "lock", "zz"]),
        plain(&[ALICE, "compact", "1"]),
        plain(&[ALICE, "defrag"]),
        plain(&[ALICE, "endpoint", "hashkv"]),
        plain(&[ALICE, "member", "add", "x", "--peer-urls=http://127.0.0.1:1"]),
        plain(&[ALICE, "user", "list"]),
        plain(&[ALICE, "user", "get", "alice"]),
        plain(&[ALICE, "user", "get", "alice", "--detail"]),
        plain(&[ALICE, "role", "get", "r1"]),
        plain(&[ALICE, "role", "get", "root"]),
        plain(&[ALICE, "user", "get", "root"]),
        plain(&[ROOT, "user", "list"]),
        plain(&[ROOT, "role", "list"]),
        plain(&[ROOT, "-w", "json", "role", "get", "r1"]),
        plain(&[ROOT, "-w", "json", "user", "get", "alice"]),
        plain(&[ROOT, "user", "get", "alice", "--detail"]),
        plain(&[ROOT, "role", "get", "root"]),
        plain(&[ROOT, "role", "get", "nosuch"]),
        plain(&[ROOT, "user", "get", "nosuch"]),
        plain(&[ROOT, "role", "revoke-permission", "r1", "c"]),
        plain(&[ROOT, "role", "revoke-permission", "r1", "c"]),
        plain(&[ROOT, "role", "revoke-permission", "r1", "a", "b"]),
        plain(&[ROOT, "role", "get", "r1"]),
        plain(&[ALICE, "put", "a", "5"]),
        plain(&[ROOT, "user", "revoke-role", "alice", "r1"]),
        plain(&[ROOT, "user", "revoke-role", "alice", "r1"]),
        plain(&[ROOT, "user", "revoke-role", "root", "root"]),
        plain(&[ROOT, "user", "delete", "root"]),
        plain(&[ROOT, "role", "delete", "root"]),
        (
            vec![ROOT, "user", "passwd", "alice", "--interactive=false"],
            Some("newpw\n"),
        ),
        plain(&[ALICE, "get", "p/x"]),
        plain(&["--user=alice:newpw", "user", "get", "alice"]),
        plain(&[ROOT, "user", "delete", "alice"]),
        plain(&[ROOT, "user", "delete", "alice"]),
        plain(&[ROOT, "role", "delete", "r1"]),
        plain(&[ROOT, "role", "delete", "r1"]),
        plain(&[ROOT, "-w", "json", "role", "list"]),
        plain(&[ROOT, "user", "add", ":pw"]),
        plain(&[ROOT, "auth", "disable"]),
        plain(&["get", "a"]),
        plain(&["user", "list"]),
        plain(&[ROOT, "get", "a"]),
        plain(&["auth", "disable"]),
    ]
}

#[test]
fn user_role_and_auth_commands_print_as_on_real_etcd() {
    let Some(_) = reference_etcd() else {
        eprintln!("real etcd is not installed; skipping the comparison");
        return;
    };
    let ours = Cluster::start(1);
    let etcd = Cluster::start_with(Flavor::Etcd, 1, &[]);
    let steps = sequence();
    for (args, input) in &steps {
        let expected = etcdctl(&etcd.endpoints(), args, *input);
        let got = etcdctl(&ours.endpoints(), args, *input);
        assert_eq!(got, expected, "etcdctl {args:?} differs from real etcd");
    }
    println!(
        "{} etcdctl auth steps print the same on ferrocd and etcd 3.4.23",
        steps.len()
    );
}

/// The grants of the matrix: role -> (permission type, key, range end).
fn matrix_roles() -> Vec<(&'static str, Vec<Permission>)> {
    vec![
        ("ab", vec![Permission::read_write("a").with_range_end("b")]),
        ("m-read", vec![Permission::read("m/").with_prefix()]),
        ("m1-write", vec![Permission::write("m/1")]),
        ("z-on", vec![Permission::read_write("z").with_from_key()]),
        ("n-read", vec![Permission::read("n")]),
        ("overlap", vec![Permission::write("aa").with_range_end("m/2")]),
    ]
}

/// Users and their roles; `nobody` has none.
fn matrix_users() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("u1", vec!["ab", "m-read"]),
        ("u2", vec!["m-read", "m1-write"]),
        ("u3", vec!["z-on", "n-read", "ab"]),
        ("u4", vec!["overlap", "n-read"]),
        ("nobody", vec![]),
    ]
}

const MATRIX_KEYS: &[&str] = &["a", "aa", "ab", "b", "m/1", "m/2", "n", "y", "z", "zz"];

/// What the grants allow, computed from the table above by hand-written rules
/// (independent of the server's interval logic).
fn allowed(user: &str, key: &str, write: bool) -> bool {
    let roles = matrix_users().into_iter().find(|(u, _)| *u == user).unwrap().1;
    roles.iter().any(|role| match (*role, write) {
        ("ab", _) => ("a".."b").contains(&key),
        ("m-read", false) => key.starts_with("m/"),
        ("m1-write", true) => key == "m/1",
        ("z-on", _) => key >= "z",
        ("n-read", false) => key == "n",
        ("overlap", true) => ("aa".."m/2").contains(&key),
        _ => false,
    })
}

fn is_denied(result: Result<(), etcd_client::Error>, what: &str) -> bool {
    match result {
        Ok(()) => false,
        Err(etcd_client::Error::GRpcStatus(status)) => {
            assert_eq!(
                (status.code(), status.message()),
                (Code::PermissionDenied, "etcdserver: permission denied"),
                "{what}"
            );
            true
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

async fn connect(endpoint: String, user: &str, password: &str) -> Client {
    let options = ConnectOptions::new().with_user(user, password);
    Client::connect([endpoint], Some(options))
        .await
        .expect("connect as a user")
}

#[tokio::test]
async fn access_matrix_allows_exactly_what_the_grants_allow() {
    let cluster = Cluster::start(3);
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.endpoint()).collect();
    let mut admin = Client::connect([endpoints[0].clone()], None).await.unwrap();
    admin.user_add("root", "rootpw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    for (role, perms) in matrix_roles() {
        admin.role_add(role).await.unwrap();
        for perm in perms {
            admin.role_grant_permission(role, perm).await.unwrap();
        }
    }
    for (user, roles) in matrix_users() {
        admin.user_add(user, "pw", None).await.unwrap();
        for role in roles {
            admin.user_grant_role(user, role).await.unwrap();
        }
    }
    admin.auth_enable().await.unwrap();

    // What the data should be: every allowed write, none of the others.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let (mut checks, mut granted) = (0, 0);
    for (i, (user, _)) in matrix_users().into_iter().enumerate() {
        // Each user on a different member: every member enforces the same rules.
        let mut client = connect(endpoints[i % 3].clone(), user, "pw").await;
        for key in MATRIX_KEYS {
            let (read, write) = (allowed(user, key, false), allowed(user, key, true));
            let what = |op: &str| format!("{user} {op} {key}");
            // del, then put: the last allowed writer's value stays.
            let del = client.delete(*key, None).await.map(|_| ());
            assert_eq!(!is_denied(del, &what("del")), write, "{}", what("del"));
            if write {
                expected.remove(*key);
            }
            let value = user.to_string();
            let put = client.put(*key, value.as_str(), None).await.map(|_| ());
            assert_eq!(!is_denied(put, &what("put")), write, "{}", what("put"));
            if write {
                expected.insert(key.to_string(), value);
            }
            let get = client.get(*key, None).await.map(|_| ());
            assert_eq!(!is_denied(get, &what("get")), read, "{}", what("get"));
            // A compare reads, the put writes; the put never runs (the compare fails).
            let txn = Txn::new()
                .when([Compare::value(*key, CompareOp::Equal, "never")])
                .and_then([TxnOp::put(*key, "txn", None)])
                .or_else([TxnOp::get(*key, None)]);
            let txn = client.txn(txn).await.map(|_| ());
            assert_eq!(!is_denied(txn, &what("txn")), read && write, "{}", what("txn"));
            let mut stream = client.watch(*key, None).await.expect("watch stream");
            let created = stream.message().await.unwrap().expect("a created response");
            assert!(created.created(), "{}", what("watch"));
            assert_eq!(!created.canceled(), read, "{}: {created:?}", what("watch"));
            if created.canceled() {
                assert_eq!(
                    created.cancel_reason(),
                    "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
                );
            }
            drop(stream);
            checks += 5;
            granted += [write, write, read, read && write, read].iter().filter(|a| **a).count();
        }
    }
    // Ranges: allowed only when every key in them is granted.
    let mut u1 = connect(endpoints[1].clone(), "u1", "pw").await;
    let prefix = u1.get("m/", Some(GetOptions::new().with_prefix())).await.map(|_| ());
    assert!(!is_denied(prefix, "u1 get --prefix m/"));
    let across = u1.get("a", Some(GetOptions::new().with_range("c"))).await.map(|_| ());
    assert!(is_denied(across, "u1 get [a, c)"));
    let mut u3 = connect(endpoints[2].clone(), "u3", "pw").await;
    let from_z = u3.get("z", Some(GetOptions::new().with_from_key())).await.map(|_| ());
    assert!(!is_denied(from_z, "u3 get --from-key z"));
    let all = u3.get("", Some(GetOptions::new().with_all_keys())).await.map(|_| ());
    assert!(is_denied(all, "u3 get everything"));
    let watch_all = u3
        .watch("a", Some(WatchOptions::new().with_range("c")))
        .await
        .expect("watch stream")
        .message()
        .await
        .unwrap()
        .unwrap();
    assert!(watch_all.canceled(), "a watch over ungranted keys is refused");

    // The data: exactly the allowed writes.
    let mut root = connect(endpoints[2].clone(), "root", "rootpw").await;
    let stored = root.get("", Some(GetOptions::new().with_all_keys())).await.unwrap();
    let stored: BTreeMap<String, String> = stored
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_string(), kv.value_str().unwrap().to_string()))
        .collect();
    assert_eq!(stored, expected, "no forbidden write happened, every allowed one did");
    println!(
        "access matrix: {} users x {} keys x 5 operations = {checks} checks ({granted} allowed, {} denied), \
         plus 5 range checks: all as granted",
        matrix_users().len(),
        MATRIX_KEYS.len(),
        checks - granted
    );
}

#[tokio::test]
async fn a_revocation_holds_on_every_member_once_it_returns() {
    let cluster = Cluster::start(3);
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.endpoint()).collect();
    let mut admin = Client::connect([endpoints[0].clone()], None).await.unwrap();
    admin.user_add("root", "rootpw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.user_add("alice", "apw", None).await.unwrap();
    admin.role_add("rw").await.unwrap();
    admin
        .role_grant_permission("rw", Permission::read_write("k").with_prefix())
        .await
        .unwrap();
    admin.user_grant_role("alice", "rw").await.unwrap();
    admin.auth_enable().await.unwrap();
    let mut root = connect(endpoints[0].clone(), "root", "rootpw").await;
    // Alice works through member 3; root changes the rules through member 1.
    let mut alice = connect(endpoints[2].clone(), "alice", "apw").await;
    for round in 0..20 {
        alice.put("k1", format!("{round}"), None).await.expect("granted put");
        root.role_revoke_permission(
            "rw",
            "k",
            Some(etcd_client::RoleRevokePermissionOptions::new().with_prefix()),
        )
        .await
        .unwrap();
        let put = alice.put("k1", "after revoke", None).await.map(|_| ());
        assert!(is_denied(put, "put right after the revocation"), "round {round}");
        let get = alice.get("k1", None).await.map(|_| ());
        assert!(is_denied(get, "get right after the revocation"), "round {round}");
        root.role_grant_permission("rw", Permission::read_write("k").with_prefix())
            .await
            .unwrap();
        alice.get("k1", None).await.expect("granted again");
    }
    let value = root.get("k1", None).await.unwrap();
    assert_eq!(value.kvs()[0].value_str().unwrap(), "19");
    // A user deleted through one member can do nothing anywhere: a member that has applied the
    // deletion no longer knows the token; one that learns of it at the read barrier refuses the
    // user it no longer has.
    root.user_delete("alice").await.unwrap();
    let status = alice.get("k1", None).await.unwrap_err();
    let etcd_client::Error::GRpcStatus(status) = status else {
        panic!("{status}")
    };
    assert!(
        ["etcdserver: invalid auth token", "etcdserver: permission denied"].contains(&status.message()),
        "{status:?}"
    );
}

#[tokio::test]
async fn jwt_tokens_carry_the_user_across_members() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let (private, public) = (dir.path().join("jwt.key"), dir.path().join("jwt.pub"));
    std::fs::write(&private, key.serialize_pem()).unwrap();
    std::fs::write(&public, key.public_key_pem()).unwrap();
    let spec = format!(
        "--auth-token=jwt,pub-key={},priv-key={},sign-method=ES256,ttl=10m",
        public.display(),
        private.display()
    );
    let cluster = Cluster::start_with(Flavor::Ferrocd, 3, &[spec.as_str()]);
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.endpoint()).collect();
    let mut admin = Client::connect([endpoints[0].clone()], None).await.unwrap();
    admin.user_add("root", "rootpw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();
    let auth = Client::connect([endpoints[0].clone()], None).await.unwrap();
    let token = auth
        .auth_client()
        .authenticate("root".into(), "rootpw".into())
        .await
        .unwrap();
    let token = token.token().to_string();
    assert_eq!(token.matches('.').count(), 2, "a JWT: {token}");
    // The same token on another member, over the gateway.
    let output = Command::new("curl")
        .args([
            "-s",
            "-H",
            &format!("Authorization: {token}"),
            "-d",
            r#"{"key":"eA==","value":"eQ=="}"#,
        ])
        .arg(format!("{}/v3/kv/put", endpoints[2]))
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(body["header"]["revision"].is_string(), "{body}");
    let forged = format!("{}x", token);
    let output = Command::new("curl")
        .args([
            "-s",
            "-H",
            &format!("Authorization: {forged}"),
            "-d",
            r#"{"key":"eA=="}"#,
        ])
        .arg(format!("{}/v3/kv/range", endpoints[1]))
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["message"], "etcdserver: invalid auth token", "{body}");
}
