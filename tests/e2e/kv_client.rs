//! KV over gRPC with the etcd-client crate: what etcdctl 3.4 cannot express, checked against
//! ferrocd and, with the same assertions, against real etcd 3.4.

use crate::support::{client, reference_etcd, Cluster, Flavor};
use etcd_client::CompareOp::{Equal, Greater, Less, NotEqual};
use etcd_client::{
    Client, Compare, DeleteOptions, Error, GetOptions as Get, GetResponse, KeyValue, PutOptions as Put, ResponseHeader,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse as Resp,
};
use std::collections::HashMap;
use tonic::Code;

/// Generates one `#[tokio::test]` per flavor that runs the scenario `$name(flavor)`.
macro_rules! both_flavors {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn ferrocd() {
                super::$name(super::Flavor::Ferrocd).await
            }

            #[tokio::test]
            async fn etcd() {
                assert!(super::reference_etcd().is_some(), "real etcd 3.4 is not installed");
                super::$name(super::Flavor::Etcd).await
            }
        }
    )*};
}

both_flavors!(
    revisions_and_versions,
    range_options,
    txn_compares_and_nesting,
    put_options,
    error_statuses,
    headers
);

type Status = (Code, &'static str);
const COMPACTED: Status = (
    Code::OutOfRange,
    "etcdserver: mvcc: required revision has been compacted",
);
const FUTURE: Status = (
    Code::OutOfRange,
    "etcdserver: mvcc: required revision is a future revision",
);
const NO_KEY: Status = (Code::InvalidArgument, "etcdserver: key is not provided");
const KEY_NOT_FOUND: Status = (Code::InvalidArgument, "etcdserver: key not found");
const VALUE_PROVIDED: Status = (Code::InvalidArgument, "etcdserver: value is provided");
const LEASE_PROVIDED: Status = (Code::InvalidArgument, "etcdserver: lease is provided");
const NO_LEASE: Status = (Code::NotFound, "etcdserver: requested lease not found");
const TOO_MANY: Status = (Code::InvalidArgument, "etcdserver: too many operations in txn request");
const DUPLICATE: Status = (Code::InvalidArgument, "etcdserver: duplicate key given in txn request");
const TOO_LARGE: Status = (Code::InvalidArgument, "etcdserver: request is too large");

async fn start(flavor: Flavor, size: usize) -> (Cluster, Client) {
    let cluster = Cluster::start_with(flavor, size, &[]);
    let client = client(&[cluster.members[0].endpoint()]).await;
    (cluster, client)
}

#[track_caller]
fn check<T: std::fmt::Debug>(result: Result<T, Error>, (code, message): Status) {
    match result {
        Err(Error::GRpcStatus(status)) => assert_eq!((status.code(), status.message()), (code, message)),
        other => panic!("expected {code:?} {message:?}, got {other:?}"),
    }
}

fn rev(header: Option<&ResponseHeader>) -> i64 {
    header.expect("response header").revision()
}

/// (key, value, create_revision, mod_revision, version).
fn kv(kv: &KeyValue) -> (&str, &str, i64, i64, i64) {
    let text = |b| std::str::from_utf8(b).expect("utf-8");
    (
        text(kv.key()),
        text(kv.value()),
        kv.create_revision(),
        kv.mod_revision(),
        kv.version(),
    )
}

fn kvs(kvs: &[KeyValue]) -> Vec<(&str, &str, i64, i64, i64)> {
    kvs.iter().map(kv).collect()
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|pair| kv(pair).0).collect()
}

/// Puts and returns the revision of the response header.
async fn put_rev(c: &mut Client, key: &str, value: &str) -> i64 {
    rev(c.put(key, value, None).await.unwrap().header())
}

async fn get(c: &mut Client, key: &str, options: Get) -> GetResponse {
    c.get(key, Some(options)).await.unwrap()
}

fn del_prefix() -> DeleteOptions {
    DeleteOptions::new().with_prefix()
}

fn put(key: &str, value: &str) -> TxnOp {
    TxnOp::put(key, value, None)
}

async fn revisions_and_versions(flavor: Flavor) {
    let (_cluster, mut c) = start(flavor, 1).await;
    assert_eq!(rev(get(&mut c, "a", Get::new()).await.header()), 1); // a new store
    assert_eq!(put_rev(&mut c, "a", "1").await, 2);
    assert_eq!(put_rev(&mut c, "a", "2").await, 3);
    let r = get(&mut c, "a", Get::new()).await;
    assert_eq!((rev(r.header()), kvs(r.kvs())), (3, vec![("a", "2", 2, 3, 2)]));
    let d = c.delete("a", None).await.unwrap();
    assert_eq!((rev(d.header()), d.deleted()), (4, 1));
    let d = c.delete("a", None).await.unwrap(); // deleting nothing makes no revision
    assert_eq!((rev(d.header()), d.deleted()), (4, 0));
    let r = get(&mut c, "a", Get::new()).await;
    assert_eq!((rev(r.header()), r.count(), r.kvs().len()), (4, 0, 0));
    assert_eq!(put_rev(&mut c, "a", "3").await, 5);
    assert_eq!(put_rev(&mut c, "a", "3").await, 6); // an unchanged value still writes
    let r = get(&mut c, "a", Get::new()).await;
    assert_eq!(kvs(r.kvs()), [("a", "3", 5, 6, 2)]); // the version restarted after the delete

    // One transaction with several writes makes one revision; its reads see its own writes.
    let (delete_a, get_b) = (TxnOp::delete("a", None), TxnOp::get("b", None));
    let t = c
        .txn(Txn::new().and_then([put("b", "1"), put("c", "1"), delete_a, get_b]))
        .await
        .unwrap();
    assert_eq!((t.succeeded(), rev(t.header())), (true, 7));
    match &t.op_responses()[..] {
        [Resp::Put(_), Resp::Put(_), Resp::Delete(d), Resp::Get(g)] => {
            assert_eq!((d.deleted(), kvs(g.kvs())), (1, vec![("b", "1", 7, 7, 1)]));
        }
        other => panic!("unexpected txn responses {other:?}"),
    }
    let all = get(&mut c, "", Get::new().with_from_key()).await;
    assert_eq!(kvs(all.kvs()), [("b", "1", 7, 7, 1), ("c", "1", 7, 7, 1)]);

    // Transactions that write nothing make no revision.
    let b_is_nope = Compare::value("b", Equal, "nope");
    let failed_compare = Txn::new().when([b_is_nope]).and_then([put("b", "x")]);
    let read_only = Txn::new().and_then([TxnOp::get("b", None)]);
    let delete_nothing = Txn::new().and_then([TxnOp::delete("zz", Some(del_prefix()))]);
    for txn in [failed_compare, read_only, delete_nothing, Txn::new()] {
        assert_eq!(rev(c.txn(txn).await.unwrap().header()), 7);
    }
    assert_eq!(put_rev(&mut c, "d", "1").await, 8);
}

async fn range_options(flavor: Flavor) {
    let (_cluster, mut c) = start(flavor, 1).await;
    for (k, v) in "k1=a k2=b k3=c k2=bb k4=d other=x"
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
    {
        put_rev(&mut c, k, v).await;
    }
    // Now (key: create, mod): k1: 2, 2; k2: 3, 5; k3: 4, 4; k4: 6, 6; other: 7, 7.
    let p = Get::new().with_prefix();
    let r = get(&mut c, "k", p.clone().with_count_only()).await;
    assert_eq!((r.count(), r.kvs().len(), r.more(), rev(r.header())), (4, 0, false, 7));
    let r = get(&mut c, "k", p.clone().with_count_only().with_limit(2)).await;
    assert_eq!((r.count(), r.kvs().len(), r.more()), (4, 0, false));
    let r = get(&mut c, "k", p.clone().with_limit(2)).await;
    assert_eq!((r.count(), keys(r.kvs()), r.more()), (4, vec!["k1", "k2"], true));
    let r = get(&mut c, "k", p.clone().with_keys_only()).await;
    let expected = [("k1", 2, 2, 1), ("k2", 3, 5, 2), ("k3", 4, 4, 1), ("k4", 6, 6, 1)];
    assert_eq!(
        kvs(r.kvs()),
        expected.map(|(k, create, modified, v)| (k, "", create, modified, v))
    );

    // Revision filters prune kvs but not count.
    let between_3_and_5 = p.clone().with_min_mod_revision(3).with_max_mod_revision(5);
    let cases: [(Get, &[&str]); 5] = [
        (p.clone().with_min_mod_revision(5), &["k2", "k4"]),
        (p.clone().with_max_mod_revision(4), &["k1", "k3"]),
        (p.clone().with_min_create_revision(4), &["k3", "k4"]),
        (p.clone().with_max_create_revision(3), &["k1", "k2"]),
        (between_3_and_5, &["k2", "k3"]),
    ];
    for (options, expected) in cases {
        let r = get(&mut c, "k", options.clone()).await;
        assert_eq!((keys(r.kvs()), r.count()), (expected.to_vec(), 4), "{options:?}");
    }
    let r = get(&mut c, "k", p.clone().with_min_mod_revision(3).with_limit(1)).await;
    assert_eq!((keys(r.kvs()), r.count(), r.more()), (vec!["k2"], 4, true));
    let r = get(&mut c, "k", p.clone().with_max_create_revision(3).with_limit(2)).await;
    assert_eq!((keys(r.kvs()), r.more()), (vec!["k1", "k2"], false));

    // Sorting, historical reads (the header has the current revision), serializable reads, ranges.
    let r = get(&mut c, "k", p.clone().with_sort(SortTarget::Mod, SortOrder::Descend)).await;
    assert_eq!(keys(r.kvs()), ["k4", "k2", "k3", "k1"]);
    let by_value = p.clone().with_sort(SortTarget::Value, SortOrder::Ascend);
    let r = get(&mut c, "k", by_value.with_limit(3)).await;
    assert_eq!((keys(r.kvs()), r.more()), (vec!["k1", "k2", "k3"], true));
    let r = get(&mut c, "k", p.clone().with_revision(4)).await;
    let expected = [("k1", "a", 2, 2, 1), ("k2", "b", 3, 3, 1), ("k3", "c", 4, 4, 1)];
    assert_eq!(kvs(r.kvs()), expected);
    assert_eq!((r.count(), rev(r.header())), (3, 7));
    let r = get(&mut c, "k2", Get::new().with_serializable()).await;
    assert_eq!((kvs(r.kvs()), rev(r.header())), (vec![("k2", "bb", 3, 5, 2)], 7));
    let r = get(&mut c, "k1", Get::new().with_range("k3")).await;
    assert_eq!(keys(r.kvs()), ["k1", "k2"]);
    let r = get(&mut c, "k3", Get::new().with_from_key()).await;
    assert_eq!(keys(r.kvs()), ["k3", "k4", "other"]);
    let r = get(&mut c, "k", Get::new().with_all_keys().with_count_only()).await;
    assert_eq!(r.count(), 5);
}

async fn txn_compares_and_nesting(flavor: Flavor) {
    let (_cluster, mut c) = start(flavor, 1).await;
    put_rev(&mut c, "a", "1").await; // revision 2
    put_rev(&mut c, "b", "2").await; // revision 3
    let cases = [
        (Compare::lease("a", Equal, 0), true),
        (Compare::lease("a", NotEqual, 0), false),
        (Compare::lease("a", Greater, 0), false),
        (Compare::lease("missing", Equal, 0), true),
        (Compare::value("missing", Equal, ""), false),
        (Compare::value("missing", NotEqual, "x"), false),
        (Compare::version("missing", Equal, 0), true),
        (Compare::create_revision("missing", Less, 1), true),
        (Compare::create_revision("a", Equal, 2), true),
        (Compare::mod_revision("b", Greater, 3), false),
        (Compare::value("a", Less, "2"), true),
        (Compare::version("a", Greater, 0).with_range("c"), true),
        (Compare::create_revision("a", Equal, 2).with_range("c"), false),
        (Compare::value("a", NotEqual, "zz").with_prefix(), true),
    ];
    for (compare, expected) in cases {
        let t = c.txn(Txn::new().when([compare.clone()])).await.unwrap();
        assert_eq!((t.succeeded(), rev(t.header())), (expected, 3), "{compare:?}");
    }

    // A nested transaction takes the branch of its own compares; all writes share one revision.
    let inner = Txn::new()
        .when([Compare::value("b", Equal, "nope")])
        .and_then([put("n/2", "then")])
        .or_else([put("n/2", "else"), TxnOp::get("n/", Some(Get::new().with_prefix()))]);
    let outer = Txn::new()
        .when([Compare::value("a", Equal, "1")])
        .and_then([put("n/1", "o"), TxnOp::txn(inner)]);
    let t = c.txn(outer).await.unwrap();
    assert_eq!((t.succeeded(), rev(t.header())), (true, 4));
    let [Resp::Put(_), Resp::Txn(inner)] = &t.op_responses()[..] else {
        panic!("responses of {t:?}")
    };
    let [Resp::Put(_), Resp::Get(g)] = &inner.op_responses()[..] else {
        panic!("inner responses of {t:?}")
    };
    assert!(!inner.succeeded());
    assert_eq!(kvs(g.kvs()), [("n/1", "o", 4, 4, 1), ("n/2", "else", 4, 4, 1)]);

    // Duplicate puts are checked across nesting levels, but not across exclusive branches.
    let both_branches = Txn::new().and_then([put("x", "1")]).or_else([put("x", "2")]);
    let ops = [put("x", "0"), TxnOp::txn(both_branches.clone())];
    check(c.txn(Txn::new().and_then(ops)).await, DUPLICATE);
    let ops = [TxnOp::txn(both_branches), put("y", "1")];
    assert_eq!(rev(c.txn(Txn::new().and_then(ops)).await.unwrap().header()), 5);
    let ops = [TxnOp::delete("n/", Some(del_prefix())), put("n/3", "1")];
    check(c.txn(Txn::new().and_then(ops)).await, DUPLICATE);
    let under_delete = Txn::new().and_then([put("n/3", "1")]);
    let ops = [TxnOp::delete("n/", Some(del_prefix())), TxnOp::txn(under_delete)];
    check(c.txn(Txn::new().and_then(ops)).await, DUPLICATE);
    // Repeated deletes and reads of one key are fine.
    let (delete_x, get_x) = (TxnOp::delete("x", None), TxnOp::get("x", None));
    let ops = [delete_x.clone(), delete_x, get_x.clone(), get_x];
    assert_eq!(rev(c.txn(Txn::new().and_then(ops)).await.unwrap().header()), 6);
}

async fn put_options(flavor: Flavor) {
    let (_cluster, mut c) = start(flavor, 1).await;
    let (prev, ignore_value, ignore_lease) = (
        Some(Put::new().with_prev_key()),
        Some(Put::new().with_ignore_value()),
        Some(Put::new().with_ignore_lease()),
    );
    let r = c.put("a", "1", prev.clone()).await.unwrap();
    assert!(r.prev_key().is_none(), "a new key has no previous pair");
    let r = c.put("a", "2", prev).await.unwrap();
    assert_eq!(r.prev_key().map(kv), Some(("a", "1", 2, 2, 1)));
    // ignore_value keeps the value and still makes a new version.
    let r = c
        .put("a", "", Some(Put::new().with_ignore_value().with_prev_key()))
        .await
        .unwrap();
    assert_eq!((rev(r.header()), r.prev_key().map(kv)), (4, Some(("a", "2", 2, 3, 2))));
    assert_eq!(kvs(get(&mut c, "a", Get::new()).await.kvs()), [("a", "2", 2, 4, 3)]);
    c.put("a", "3", ignore_lease.clone()).await.unwrap(); // revision 5
    let r = get(&mut c, "a", Get::new()).await;
    assert_eq!((kvs(r.kvs()), r.kvs()[0].lease()), (vec![("a", "3", 2, 5, 4)], 0));

    check(c.put("a", "x", ignore_value.clone()).await, VALUE_PROVIDED);
    check(c.put("m", "", ignore_value.clone()).await, KEY_NOT_FOUND);
    check(c.put("m", "v", ignore_lease).await, KEY_NOT_FOUND);
    let lease_and_ignore = Some(Put::new().with_lease(5).with_ignore_lease());
    check(c.put("a", "v", lease_and_ignore).await, LEASE_PROVIDED);
    let unknown_lease = Some(Put::new().with_lease(0x1234abcd));
    check(c.put("a", "v", unknown_lease.clone()).await, NO_LEASE);
    // The same checks apply to puts inside a transaction.
    let txn = Txn::new().and_then([TxnOp::put("m", "", ignore_value)]);
    check(c.txn(txn).await, KEY_NOT_FOUND);
    let txn = Txn::new().and_then([TxnOp::put("a", "v", unknown_lease)]);
    check(c.txn(txn).await, NO_LEASE);
    // Failed puts change nothing.
    let r = get(&mut c, "", Get::new().with_from_key()).await;
    assert_eq!((rev(r.header()), kvs(r.kvs())), (5, vec![("a", "3", 2, 5, 4)]));
}

async fn error_statuses(flavor: Flavor) {
    let (_cluster, mut c) = start(flavor, 1).await;
    for v in ["v1", "v2", "v3"] {
        put_rev(&mut c, "k", v).await; // revisions 2, 3, 4
    }
    let at = |revision: i64| Some(Get::new().with_revision(revision));
    check(c.compact(5, None).await, FUTURE);
    assert_eq!(rev(c.compact(3, None).await.unwrap().header()), 4);
    check(c.get("k", at(2)).await, COMPACTED);
    assert_eq!(kvs(c.get("k", at(3)).await.unwrap().kvs()), [("k", "v2", 2, 3, 2)]);
    check(c.get("k", at(5)).await, FUTURE);
    check(c.compact(3, None).await, COMPACTED);
    check(c.compact(2, None).await, COMPACTED);
    check(c.txn(Txn::new().and_then([TxnOp::get("k", at(2))])).await, COMPACTED);
    check(c.txn(Txn::new().and_then([TxnOp::get("k", at(9))])).await, FUTURE);

    check(c.get("", None).await, NO_KEY);
    check(c.put("", "v", None).await, NO_KEY);
    check(c.delete("", None).await, NO_KEY);
    check(c.txn(Txn::new().or_else([put("", "v")])).await, NO_KEY); // even in the branch not taken
    check(c.txn(Txn::new().when([Compare::version("", Equal, 0)])).await, NO_KEY);

    let puts = |n: usize| (0..n).map(|i| put(&format!("many/{i:03}"), "v")).collect::<Vec<_>>();
    let compares = |n: usize| vec![Compare::version("k", Greater, 0); n];
    check(c.txn(Txn::new().and_then(puts(129))).await, TOO_MANY);
    check(c.txn(Txn::new().when(compares(129))).await, TOO_MANY);
    check(c.txn(Txn::new().or_else(puts(129))).await, TOO_MANY);
    let largest = Txn::new().when(compares(128)).and_then(puts(128)).or_else(puts(128));
    let t = c.txn(largest).await.unwrap();
    assert_eq!((t.succeeded(), t.op_responses().len(), rev(t.header())), (true, 128, 5));

    // Over --max-request-bytes (1.5 MiB) etcd refuses a request; over that plus gRPC's 512 KiB
    // margin, gRPC itself refuses to decode it.
    check(c.put("big", "x".repeat(1536 * 1024 + 100), None).await, TOO_LARGE);
    match c.put("huge", "x".repeat(2 * 1024 * 1024), None).await {
        Err(Error::GRpcStatus(status)) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        other => panic!("a 2 MiB put gave {other:?}"),
    }
    assert_eq!(rev(get(&mut c, "k", Get::new()).await.header()), 5); // failures make no revision
}

/// Every member answers with the cluster ID and its own member ID from MemberList.
async fn headers(flavor: Flavor) {
    let (cluster, mut c) = start(flavor, 3).await;
    let list = c.member_list().await.unwrap();
    let cluster_id = list.header().expect("header").cluster_id();
    assert_ne!(cluster_id, 0);
    let describe = |name: &str, peer: &[String], client: &[String], learner| {
        (name.to_string(), peer.to_vec(), client.to_vec(), learner)
    };
    let mut members: Vec<_> = list
        .members()
        .iter()
        .map(|m| describe(m.name(), m.peer_urls(), m.client_urls(), m.is_learner()))
        .collect();
    members.sort();
    let expected: Vec<_> = (cluster.members.iter())
        .map(|m| describe(&m.spec.name, &[m.spec.peer_url()], &[m.spec.client_url()], false))
        .collect();
    assert_eq!(members, expected);
    let ids: HashMap<&str, u64> = list.members().iter().map(|m| (m.name(), m.id())).collect();
    put_rev(&mut c, "h", "1").await;
    for member in &cluster.members {
        let id = ids[member.spec.name.as_str()];
        let mut c = client(&[member.endpoint()]).await;
        let headers = [
            get(&mut c, "h", Get::new()).await.header().cloned(),
            get(&mut c, "h", Get::new().with_serializable()).await.header().cloned(),
            c.put("h", "2", None).await.unwrap().header().cloned(),
            c.txn(Txn::new()).await.unwrap().header().cloned(),
            c.delete("none", None).await.unwrap().header().cloned(),
            c.member_list().await.unwrap().header().cloned(),
        ];
        for header in headers.map(|h| h.expect("response header")) {
            let ids = (header.cluster_id(), header.member_id());
            assert_eq!(ids, (cluster_id, id), "from {}", member.spec.name);
            assert!(header.raft_term() >= 1, "raft term of {header:?}");
        }
    }
}
