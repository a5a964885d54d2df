//! ferrocdctl's `auth`, `user` and `role` commands against etcdctl 3.4: one
//! sequence (setup, every output format, usage and server errors, password
//! prompts, a non-root user refused, auth enabled and disabled) run by
//! etcdctl on one ferrocd and by ferrocdctl on another; equal after masking
//! IDs. When real etcd is installed, etcdctl on it gives the same answers.

use std::path::Path;

use crate::ctl::{mask, run_ctl, Outcome, FERROCDCTL};
use crate::support::{etcdctl_path, reference_etcd, Cluster, Flavor};

const ROOT: &str = "--user=root:rootpw";
const ALICE: &str = "--user=alice:apw";

type Step = (Vec<&'static str>, Option<&'static str>);

/// Setup, the errors etcdctl reports before and after calling, and a
/// non-root user's refusals.
fn setup_and_users() -> Vec<Step> {
    let plain = |args: &[&'static str]| (args.to_vec(), None);
    let typed = |args: &[&'static str], input: &'static str| (args.to_vec(), Some(input));
    vec![
        plain(&["auth", "enable"]),
        plain(&["user", "add", "root:rootpw"]),
        plain(&["user", "add", "root:x"]),
        plain(&["role", "list"]),
        // root lacks role root: etcdctl creates it, grants it and retries.
        plain(&["auth", "enable"]),
        plain(&["role", "list"]),
        plain(&["--user=root:bad", "user", "list"]),
        plain(&[ROOT, "user", "add", "alice:apw"]),
        plain(&[ROOT, "-w", "json", "user", "add", "bob:bpw"]),
        plain(&[ROOT, "-w", "fields", "user", "add", "carol", "--no-password"]),
        plain(&[ROOT, "-w", "table", "user", "add", "dave:d"]),
        typed(&[ROOT, "user", "add", "erin", "--interactive=false"], "  epw extra\n"),
        typed(&[ROOT, "user", "add", "frank"], " fpw \nfpw\n"),
        typed(&[ROOT, "user", "add", "gina"], "g1\ng2\n"),
        typed(&[ROOT, "user", "add", "hank"], "\n"),
        plain(&[ROOT, "user", "add", "ivy:pw", "--new-user-password=np"]),
        plain(&[ROOT, "user", "add", ":pw"]),
        plain(&[ROOT, "user", "add"]),
        plain(&[ROOT, "user", "add", "a", "b"]),
        plain(&[ROOT, "user", "list"]),
        plain(&[ROOT, "-w", "json", "user", "list"]),
        plain(&[ROOT, "-w", "fields", "user", "list"]),
        plain(&[ROOT, "-w", "table", "user", "list"]),
        plain(&[ROOT, "user", "list", "x"]),
        plain(&["--user=erin:epw", "get", "a"]),
        plain(&["--user=frank:fpw", "get", "a"]),
        plain(&["--user=ivy:pw", "--password=np", "get", "a"]),
        plain(&["--user=carol:", "get", "a"]),
        plain(&["--user=:x", "get", "a"]),
    ]
}

/// Roles and permissions, grants, `user get` in every form, and what alice
/// may and may not do.
fn roles_and_grants() -> Vec<Step> {
    let plain = |args: &[&'static str]| (args.to_vec(), None);
    let mut steps = vec![
        plain(&[ROOT, "role", "add", "r1"]),
        plain(&[ROOT, "-w", "json", "role", "add", "r2"]),
        plain(&[ROOT, "-w", "fields", "role", "add", "r3"]),
        plain(&[ROOT, "-w", "table", "role", "add", "r4"]),
        plain(&[ROOT, "role", "add", "r1"]),
        plain(&[ROOT, "role", "add"]),
        plain(&[ROOT, "role", "grant-permission", "r1", "readwrite", "a", "b"]),
        plain(&[ROOT, "role", "grant-permission", "--prefix", "r1", "read", "p/"]),
        plain(&[ROOT, "-w", "json", "role", "grant-permission", "r1", "write", "c"]),
        plain(&[
            ROOT,
            "-w",
            "fields",
            "role",
            "grant-permission",
            "--from-key",
            "r1",
            "READ",
            "x",
        ]),
        plain(&[ROOT, "-w", "table", "role", "grant-permission", "r2", "write", "t"]),
        plain(&[ROOT, "role", "grant-permission", "r1", "Write", ""]),
        plain(&[ROOT, "role", "grant-permission", "--prefix=true", "r2", "readWrite", ""]),
        plain(&[ROOT, "role", "grant-permission", "r1", "read", "k3", "k1", "extra"]),
        plain(&[ROOT, "role", "grant-permission", "r1", "read", "\u{1}é", "ü"]),
        plain(&[ROOT, "role", "grant-permission", "r1", "sideways", "c"]),
        plain(&[ROOT, "role", "grant-permission", "r1", "read"]),
        plain(&[
            ROOT,
            "role",
            "grant-permission",
            "--prefix",
            "--from-key",
            "r1",
            "read",
            "a",
        ]),
        plain(&[ROOT, "role", "grant-permission", "--prefix", "r1", "read", "a", "b"]),
        plain(&[ROOT, "role", "grant-permission", "--from-key", "r1", "read", "a", "b"]),
        plain(&[ROOT, "role", "grant-permission", "nosuch", "read", "c"]),
    ];
    for format in ["simple", "json", "fields", "table"] {
        steps.push((vec![ROOT, "-w", format, "role", "get", "r1"], None));
    }
    steps.extend([
        plain(&[ROOT, "role", "get", "r2"]),
        plain(&[ROOT, "-w", "json", "role", "get", "r3"]),
        plain(&[ROOT, "role", "get", "root"]),
        plain(&[ROOT, "role", "get", "nosuch"]),
        plain(&[ROOT, "role", "get"]),
        plain(&[ROOT, "user", "grant-role", "alice", "r1"]),
        plain(&[ROOT, "-w", "json", "user", "grant-role", "alice", "r2"]),
        plain(&[ROOT, "-w", "fields", "user", "grant-role", "alice", "r3"]),
        plain(&[ROOT, "-w", "table", "user", "grant-role", "bob", "r1"]),
        plain(&[ROOT, "user", "grant-role", "alice", "r1"]),
        plain(&[ROOT, "user", "grant-role", "alice", "nosuch"]),
        plain(&[ROOT, "user", "grant-role", "nosuch", "r1"]),
        plain(&[ROOT, "user", "grant-role", "alice"]),
    ]);
    for format in ["simple", "json", "fields", "table"] {
        steps.push((vec![ROOT, "-w", format, "user", "get", "alice"], None));
        steps.push((vec![ROOT, "-w", format, "user", "get", "alice", "--detail"], None));
    }
    steps.extend([
        plain(&[ROOT, "user", "get", "carol"]),
        plain(&[ROOT, "-w", "table", "user", "get", "carol", "--detail"]),
        plain(&[ROOT, "user", "get", "root", "--detail"]),
        plain(&[ROOT, "user", "get", "nosuch"]),
        plain(&[ROOT, "user", "get"]),
        plain(&[ALICE, "put", "a", "1"]),
        plain(&[ALICE, "put", "c", "1"]),
        plain(&[ALICE, "get", "c"]),
        plain(&[ALICE, "user", "list"]),
        plain(&[ALICE, "role", "list"]),
        plain(&[ALICE, "user", "get", "alice"]),
        plain(&[ALICE, "user", "add", "x:y"]),
        plain(&[ALICE, "role", "grant-permission", "r1", "readwrite", "d"]),
        plain(&[ALICE, "auth", "disable"]),
        plain(&["--user=bob:bpw", "get", "a"]),
    ]);
    steps
}

/// Revocations, password changes, deletions, and auth disabled and enabled
/// again.
fn revocations_and_teardown() -> Vec<Step> {
    let plain = |args: &[&'static str]| (args.to_vec(), None);
    let typed = |args: &[&'static str], input: &'static str| (args.to_vec(), Some(input));
    vec![
        plain(&[ROOT, "role", "revoke-permission", "r1", "c"]),
        plain(&[ROOT, "role", "revoke-permission", "r1", "c"]),
        plain(&[ROOT, "-w", "json", "role", "revoke-permission", "r1", "a", "b"]),
        plain(&[
            ROOT,
            "-w",
            "fields",
            "role",
            "revoke-permission",
            "--prefix",
            "r1",
            "p/",
        ]),
        plain(&[
            ROOT,
            "-w",
            "table",
            "role",
            "revoke-permission",
            "--from-key",
            "r1",
            "x",
        ]),
        plain(&[ROOT, "role", "revoke-permission", "r1", ""]),
        plain(&[ROOT, "role", "revoke-permission", "--prefix", "r2", ""]),
        plain(&[ROOT, "role", "revoke-permission", "r1", "k3", "k1"]),
        plain(&[ROOT, "role", "revoke-permission", "r1", "\u{1}é", "ü"]),
        plain(&[ROOT, "role", "revoke-permission", "--from-key", "r1", "zz"]),
        plain(&[ROOT, "role", "revoke-permission", "r1"]),
        plain(&[ROOT, "role", "revoke-permission", "nosuch", "k"]),
        plain(&[ROOT, "role", "revoke-permission", "--prefix", "r1", "a", "b"]),
        plain(&[ROOT, "role", "get", "r1"]),
        plain(&[ALICE, "put", "a", "2"]),
        plain(&[ROOT, "user", "revoke-role", "alice", "r1"]),
        plain(&[ROOT, "user", "revoke-role", "alice", "r1"]),
        plain(&[ROOT, "-w", "json", "user", "revoke-role", "alice", "r2"]),
        plain(&[ROOT, "-w", "fields", "user", "revoke-role", "alice", "r3"]),
        plain(&[ROOT, "-w", "table", "user", "revoke-role", "bob", "r1"]),
        plain(&[ROOT, "user", "revoke-role", "nosuch", "r1"]),
        plain(&[ROOT, "user", "revoke-role", "alice"]),
        plain(&[ROOT, "user", "revoke-role", "root", "root"]),
        typed(&[ROOT, "user", "passwd", "alice", "--interactive=false"], "newpw\n"),
        typed(
            &[ROOT, "-w", "json", "user", "passwd", "bob", "--interactive=false"],
            "b2\n",
        ),
        typed(&[ROOT, "-w", "fields", "user", "passwd", "bob"], "b3\nb3\n"),
        typed(
            &[ROOT, "-w", "table", "user", "passwd", "bob", "--interactive=false"],
            "b4",
        ),
        typed(&[ROOT, "user", "passwd", "frank"], "a\nb\n"),
        typed(&[ROOT, "user", "passwd", "frank"], "\n"),
        typed(&[ROOT, "user", "passwd", "nosuch", "--interactive=false"], "x\n"),
        plain(&[ROOT, "user", "passwd"]),
        plain(&[ALICE, "user", "get", "alice"]),
        plain(&["--user=alice:newpw", "user", "get", "alice"]),
        plain(&["--user=bob:b4", "get", "a"]),
        plain(&[ROOT, "user", "delete", "alice"]),
        plain(&[ROOT, "user", "delete", "alice"]),
        plain(&[ROOT, "-w", "json", "user", "delete", "bob"]),
        plain(&[ROOT, "-w", "fields", "user", "delete", "carol"]),
        plain(&[ROOT, "-w", "table", "user", "delete", "dave"]),
        plain(&[ROOT, "user", "delete", "root"]),
        plain(&[ROOT, "user", "delete"]),
        plain(&[ROOT, "role", "delete", "r1"]),
        plain(&[ROOT, "role", "delete", "r1"]),
        plain(&[ROOT, "-w", "json", "role", "delete", "r2"]),
        plain(&[ROOT, "-w", "fields", "role", "list"]),
        plain(&[ROOT, "-w", "fields", "role", "delete", "r3"]),
        plain(&[ROOT, "-w", "table", "role", "delete", "r4"]),
        plain(&[ROOT, "role", "delete", "root"]),
        plain(&[ROOT, "-w", "json", "role", "list"]),
        plain(&[ROOT, "-w", "table", "role", "list"]),
        plain(&[ROOT, "role", "list", "x"]),
        plain(&[ROOT, "auth", "disable", "x"]),
        plain(&[ROOT, "-w", "json", "auth", "disable"]),
        plain(&["auth", "disable"]),
        plain(&[ROOT, "user", "get", "root"]),
        plain(&["--user=nobody:x", "user", "list"]),
        plain(&["user", "revoke-role", "root", "root"]),
        plain(&["auth", "enable"]),
        plain(&["role", "delete", "root"]),
        plain(&["auth", "enable", "x"]),
        plain(&["-w", "fields", "auth", "enable"]),
        plain(&[ROOT, "user", "get", "root"]),
        plain(&[ROOT, "auth", "enable"]),
        plain(&[ROOT, "auth", "disable"]),
    ]
}

/// A CLI's answer with what differs between servers and tools masked:
/// IDs, and the `stty` complaints etcdctl's password prompt writes when
/// stdin is not a terminal.
fn answer(binary: &Path, endpoints: &str, args: &[&str], input: Option<&str>) -> Outcome {
    let outcome = run_ctl(binary, endpoints, args, input);
    let stderr: String = outcome
        .stderr
        .lines()
        .filter(|l| !l.starts_with("stty: "))
        .map(|l| format!("{l}\n"))
        .collect();
    Outcome {
        code: outcome.code,
        stdout: mask(&outcome.stdout),
        stderr: mask(&stderr),
    }
}

#[test]
fn user_role_and_auth_commands_print_as_etcdctl_prints_them() {
    let theirs = Cluster::start(1);
    let ours = Cluster::start(1);
    let etcd = reference_etcd().map(|_| Cluster::start_with(Flavor::Etcd, 1, &[]));
    let steps: Vec<Step> = [setup_and_users(), roles_and_grants(), revocations_and_teardown()].concat();
    for (args, input) in &steps {
        let expected = answer(&etcdctl_path(), &theirs.endpoints(), args, *input);
        let got = answer(Path::new(FERROCDCTL), &ours.endpoints(), args, *input);
        assert_eq!(got, expected, "ferrocdctl {args:?} differs from etcdctl");
        if let Some(etcd) = &etcd {
            let reference = answer(&etcdctl_path(), &etcd.endpoints(), args, *input);
            assert_eq!(
                expected, reference,
                "etcdctl {args:?} on ferrocd differs from real etcd"
            );
        }
    }
    println!(
        "{} user/role/auth steps: ferrocdctl prints as etcdctl{}",
        steps.len(),
        if etcd.is_some() {
            ", and both as on real etcd 3.4.23"
        } else {
            ""
        }
    );
}
