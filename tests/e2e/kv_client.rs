//! KV over gRPC with the etcd-client crate: what etcdctl 3.4 cannot express, checked against
//! ferrocd and, with the same assertions, against real etcd 3.4.

use crate::support::{client, reference_etcd, Cluster, Flavor};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, Error, GetOptions, GetResponse, KeyValue, PutOptions, ResponseHeader,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
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

async fn start(flavor: Flavor, size: usize) -> (Cluster, Client) {
    let cluster = Cluster::start_with(flavor, size, &[]);
    let client = client(&[cluster.members[0].endpoint()]).await;
    (cluster, client)
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

async fn prefix(c: &mut Client, options: GetOptions) -> GetResponse {
    c.get("k", Some(options.with_prefix())).await.unwrap()
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter()
        .map(|kv| std::str::from_utf8(kv.key()).expect("utf-8"))
        .collect()
}

#[track_caller]
fn assert_status<T: std::fmt::Debug>(result: Result<T, Error>, code: Code, message: &str) {
    match result {
        Err(Error::GRpcStatus(status)) => assert_eq!((status.code(), status.message()), (code, message)),
        other => panic!("expected {code:?} {message:?}, got {other:?}"),
    }
}

fn put(key: &str, value: &str) -> TxnOp {
    TxnOp::put(key, value, None)
}

async fn revisions_and_versions(flavor: Flavor) {
    let (_cluster, mut c) = start(flavor, 1).await;
    assert_eq!(
        rev(c.get("a", None).await.unwrap().header()),
        1,
        "a new store is at revision 1"
    );
    assert_eq!(rev(c.put("a", "1", None).await.unwrap().header()), 2);
    assert_eq!(rev(c.put("a", "2", None).await.unwrap().header()), 3);
    let r = c.get("a", None).await.unwrap();
    assert_eq!((rev(r.header()), kvs(r.kvs())), (3, vec![("a", "2", 2, 3, 2)]));
    let d = c.delete("a", None).await.unwrap();
    assert_eq!((rev(d.header()), d.deleted()), (4, 1));
    let d = c.delete("a", None).await.unwrap();
    assert_eq!(
        (rev(d.header()), d.deleted()),
        (4, 0),
        "deleting nothing makes no revision"
    );
    let r = c.get("a", None).await.unwrap();
    assert_eq!((rev(r.header()), r.count(), r.kvs().len()), (4, 0, 0));
    assert_eq!(rev(c.put("a", "3", None).await.unwrap().header()), 5);
    assert_eq!(
        rev(c.put("a", "3", None).await.unwrap().header()),
        6,
        "an unchanged value still writes"
    );
    let r = c.get("a", None).await.unwrap();
    assert_eq!(kvs(r.kvs()), [("a", "3", 5, 6, 2)], "version restarts after a delete");

    // One transaction with several writes makes one revision; its reads see its own writes.
    let ops = [
        put("b", "1"),
        put("c", "1"),
        TxnOp::delete("a", None),
        TxnOp::get("b", None),
    ];
    let t = c.txn(Txn::new().and_then(ops)).await.unwrap();
    assert!(t.succeeded());
    assert_eq!(rev(t.header()), 7);
    match &t.op_responses()[..] {
        [TxnOpResponse::Put(_), TxnOpResponse::Put(_), TxnOpResponse::Delete(d), TxnOpResponse::Get(g)] => {
            assert_eq!(d.deleted(), 1);
            assert_eq!(kvs(g.kvs()), [("b", "1", 7, 7, 1)]);
        }
        other => panic!("unexpected txn responses {other:?}"),
    }
    let all = c.get("", Some(GetOptions::new().with_from_key())).await.unwrap();
    assert_eq!(kvs(all.kvs()), [("b", "1", 7, 7, 1), ("c", "1", 7, 7, 1)]);

    // Transactions that write nothing make no revision.
    let failed_compare = Txn::new()
        .when([Compare::value("b", CompareOp::Equal, "nope")])
        .and_then([put("b", "x")]);
    let read_only = Txn::new().and_then([TxnOp::get("b", None)]);
    let delete_nothing = Txn::new().and_then([TxnOp::delete("zz", Some(DeleteOptions::new().with_prefix()))]);
    for txn in [failed_compare, read_only, delete_nothing, Txn::new()] {
        assert_eq!(rev(c.txn(txn).await.unwrap().header()), 7);
    }
    assert_eq!(rev(c.put("d", "1", None).await.unwrap().header()), 8);
}

async fn range_options(flavor: Flavor) {
    let (_cluster, mut c) = start(flavor, 1).await;
    for (k, v) in [
        ("k1", "a"),
        ("k2", "b"),
        ("k3", "c"),
        ("k2", "bb"),
        ("k4", "d"),
        ("other", "x"),
    ] {
        c.put(k, v, None).await.unwrap();
    }
    // Now (key, create, mod): k1 2 2, k2 3 5, k3 4 4, k4 6 6, other 7 7.
    let r = prefix(&mut c, GetOptions::new().with_count_only()).await;
    assert_eq!((r.count(), r.kvs().len(), r.more(), rev(r.header())), (4, 0, false, 7));
    let r = prefix(&mut c, GetOptions::new().with_count_only().with_limit(2)).await;
    assert_eq!((r.count(), r.kvs().len(), r.more()), (4, 0, false));
    let r = prefix(&mut c, GetOptions::new().with_limit(2)).await;
    assert_eq!((r.count(), keys(r.kvs()), r.more()), (4, vec!["k1", "k2"], true));
    let r = prefix(&mut c, GetOptions::new().with_keys_only()).await;
    assert_eq!(
        kvs(r.kvs()),
        [
            ("k1", "", 2, 2, 1),
            ("k2", "", 3, 5, 2),
            ("k3", "", 4, 4, 1),
            ("k4", "", 6, 6, 1)
        ]
    );

    // Revision filters prune kvs but not count.
    let cases: [(GetOptions, &[&str]); 5] = [
        (GetOptions::new().with_min_mod_revision(5), &["k2", "k4"]),
        (GetOptions::new().with_max_mod_revision(4), &["k1", "k3"]),
        (GetOptions::new().with_min_create_revision(4), &["k3", "k4"]),
        (GetOptions::new().with_max_create_revision(3), &["k1", "k2"]),
        (
            GetOptions::new().with_min_mod_revision(3).with_max_mod_revision(5),
            &["k2", "k3"],
        ),
    ];
    for (options, expected) in cases {
        let r = prefix(&mut c, options.clone()).await;
        assert_eq!((keys(r.kvs()), r.count()), (expected.to_vec(), 4), "{options:?}");
    }
    let r = prefix(&mut c, GetOptions::new().with_min_mod_revision(3).with_limit(1)).await;
    assert_eq!((keys(r.kvs()), r.count(), r.more()), (vec!["k2"], 4, true));
    let r = prefix(&mut c, GetOptions::new().with_max_create_revision(3).with_limit(2)).await;
    assert_eq!((keys(r.kvs()), r.more()), (vec!["k1", "k2"], false));

    // Sorting, historical reads, serializable reads, ranges.
    let r = prefix(&mut c, GetOptions::new().with_sort(SortTarget::Mod, SortOrder::Descend)).await;
    assert_eq!(keys(r.kvs()), ["k4", "k2", "k3", "k1"]);
    let r = prefix(
        &mut c,
        GetOptions::new()
            .with_sort(SortTarget::Value, SortOrder::Ascend)
            .with_limit(3),
    )
    .await;
    assert_eq!((keys(r.kvs()), r.more()), (vec!["k1", "k2", "k3"], true));
    let r = prefix(&mut c, GetOptions::new().with_revision(4)).await;
    assert_eq!(
        kvs(r.kvs()),
        [("k1", "a", 2, 2, 1), ("k2", "b", 3, 3, 1), ("k3", "c", 4, 4, 1)]
    );
    assert_eq!(
        (r.count(), rev(r.header())),
        (3, 7),
        "the header carries the current revision"
    );
    let r = c.get("k2", Some(GetOptions::new().with_serializable())).await.unwrap();
    assert_eq!((kvs(r.kvs()), rev(r.header())), (vec![("k2", "bb", 3, 5, 2)], 7));
    let r = c.get("k1", Some(GetOptions::new().with_range("k3"))).await.unwrap();
    assert_eq!(keys(r.kvs()), ["k1", "k2"]);
    let r = c.get("k3", Some(GetOptions::new().with_from_key())).await.unwrap();
    assert_eq!(keys(r.kvs()), ["k3", "k4", "other"]);
    let r = c
        .get("k", Some(GetOptions::new().with_all_keys().with_count_only()))
        .await
        .unwrap();
    assert_eq!(r.count(), 5);
}

async fn txn_compares_and_nesting(flavor: Flavor) {
    let (_cluster, mut c) = start(flavor, 1).await;
    c.put("a", "1", None).await.unwrap(); // revision 2
    c.put("b", "2", None).await.unwrap(); // revision 3
    let cases = [
        (Compare::lease("a", CompareOp::Equal, 0), true),
        (Compare::lease("a", CompareOp::NotEqual, 0), false),
        (Compare::lease("a", CompareOp::Greater, 0), false),
        (Compare::lease("missing", CompareOp::Equal, 0), true),
        (Compare::value("missing", CompareOp::Equal, ""), false),
        (Compare::value("missing", CompareOp::NotEqual, "x"), false),
        (Compare::version("missing", CompareOp::Equal, 0), true),
        (Compare::create_revision("missing", CompareOp::Less, 1), true),
        (Compare::create_revision("a", CompareOp::Equal, 2), true),
        (Compare::mod_revision("b", CompareOp::Greater, 3), false),
        (Compare::value("a", CompareOp::Less, "2"), true),
        (Compare::version("a", CompareOp::Greater, 0).with_range("c"), true),
        (
            Compare::create_revision("a", CompareOp::Equal, 2).with_range("c"),
            false,
        ),
        (Compare::value("", CompareOp::NotEqual, "zz").with_prefix(), true),
    ];
    for (compare, expected) in cases {
        let t = c.txn(Txn::new().when([compare.clone()])).await.unwrap();
        assert_eq!(t.succeeded(), expected, "{compare:?}");
        assert_eq!(rev(t.header()), 3);
    }

    // A nested transaction: its branch follows its own compares; all its writes share one revision.
    let inner = Txn::new()
        .when([Compare::value("b", CompareOp::Equal, "nope")])
        .and_then([put("n/2", "then")])
        .or_else([
            put("n/2", "else"),
            TxnOp::get("n/", Some(GetOptions::new().with_prefix())),
        ]);
    let outer = Txn::new()
        .when([Compare::value("a", CompareOp::Equal, "1")])
        .and_then([put("n/1", "o"), TxnOp::txn(inner)]);
    let t = c.txn(outer).await.unwrap();
    assert!(t.succeeded());
    assert_eq!(rev(t.header()), 4);
    match &t.op_responses()[..] {
        [TxnOpResponse::Put(_), TxnOpResponse::Txn(inner)] => {
            assert!(!inner.succeeded());
            match &inner.op_responses()[..] {
                [TxnOpResponse::Put(_), TxnOpResponse::Get(g)] => {
                    assert_eq!(kvs(g.kvs()), [("n/1", "o", 4, 4, 1), ("n/2", "else", 4, 4, 1)])
                }
                other => panic!("unexpected inner responses {other:?}"),
            }
        }
        other => panic!("unexpected responses {other:?}"),
    }

    // Duplicate puts are checked across nesting levels, but not across exclusive branches.
    let dup = "etcdserver: duplicate key given in txn request";
    let both_branches = Txn::new().and_then([put("x", "1")]).or_else([put("x", "2")]);
    assert_status(
        c.txn(Txn::new().and_then([put("x", "0"), TxnOp::txn(both_branches.clone())]))
            .await,
        Code::InvalidArgument,
        dup,
    );
    let t = c
        .txn(Txn::new().and_then([TxnOp::txn(both_branches), put("y", "1")]))
        .await
        .unwrap();
    assert_eq!(rev(t.header()), 5);
    let under_delete = Txn::new().and_then([put("n/3", "1")]);
    let ops = [
        TxnOp::delete("n/", Some(DeleteOptions::new().with_prefix())),
        TxnOp::txn(under_delete),
    ];
    assert_status(c.txn(Txn::new().and_then(ops)).await, Code::InvalidArgument, dup);
    let ops = [
        TxnOp::delete("x", None),
        TxnOp::delete("x", None),
        TxnOp::get("x", None),
        TxnOp::get("x", None),
    ];
    assert_eq!(
        rev(c.txn(Txn::new().and_then(ops)).await.unwrap().header()),
        6,
        "repeated deletes and gets are fine"
    );
}

async fn put_options(flavor: Flavor) {
    let (_cluster, mut c) = start(flavor, 1).await;
    let r = c.put("a", "1", Some(PutOptions::new().with_prev_key())).await.unwrap();
    assert!(r.prev_key().is_none(), "a new key has no previous pair");
    let r = c.put("a", "2", Some(PutOptions::new().with_prev_key())).await.unwrap();
    assert_eq!(r.prev_key().map(kv), Some(("a", "1", 2, 2, 1)));
    let r = c
        .put("a", "", Some(PutOptions::new().with_ignore_value().with_prev_key()))
        .await
        .unwrap();
    assert_eq!((rev(r.header()), r.prev_key().map(kv)), (4, Some(("a", "2", 2, 3, 2))));
    let r = c.get("a", None).await.unwrap();
    assert_eq!(
        kvs(r.kvs()),
        [("a", "2", 2, 4, 3)],
        "ignore_value keeps the value and bumps the version"
    );
    c.put("a", "3", Some(PutOptions::new().with_ignore_lease()))
        .await
        .unwrap(); // revision 5
    let r = c.get("a", None).await.unwrap();
    assert_eq!((kvs(r.kvs()), r.kvs()[0].lease()), (vec![("a", "3", 2, 5, 4)], 0));

    let bad = Code::InvalidArgument;
    assert_status(
        c.put("a", "x", Some(PutOptions::new().with_ignore_value())).await,
        bad,
        "etcdserver: value is provided",
    );
    assert_status(
        c.put("m", "", Some(PutOptions::new().with_ignore_value())).await,
        bad,
        "etcdserver: key not found",
    );
    assert_status(
        c.put("m", "v", Some(PutOptions::new().with_ignore_lease())).await,
        bad,
        "etcdserver: key not found",
    );
    let lease_and_ignore = PutOptions::new().with_lease(5).with_ignore_lease();
    assert_status(
        c.put("a", "v", Some(lease_and_ignore)).await,
        bad,
        "etcdserver: lease is provided",
    );
    let unknown_lease = Some(PutOptions::new().with_lease(0x1234abcd));
    assert_status(
        c.put("a", "v", unknown_lease.clone()).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    // The same checks apply to puts inside a transaction.
    let txn = Txn::new().and_then([TxnOp::put("m", "", Some(PutOptions::new().with_ignore_value()))]);
    assert_status(c.txn(txn).await, bad, "etcdserver: key not found");
    let txn = Txn::new().and_then([TxnOp::put("a", "v", unknown_lease)]);
    assert_status(
        c.txn(txn).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    let r = c.get("", Some(GetOptions::new().with_from_key())).await.unwrap();
    assert_eq!(
        (rev(r.header()), kvs(r.kvs())),
        (5, vec![("a", "3", 2, 5, 4)]),
        "failed puts change nothing"
    );
}

async fn error_statuses(flavor: Flavor) {
    let (_cluster, mut c) = start(flavor, 1).await;
    for v in ["v1", "v2", "v3"] {
        c.put("k", v, None).await.unwrap(); // revisions 2, 3, 4
    }
    let (compacted, future) = (
        "etcdserver: mvcc: required revision has been compacted",
        "etcdserver: mvcc: required revision is a future revision",
    );
    let at = |revision: i64| Some(GetOptions::new().with_revision(revision));
    assert_status(c.compact(5, None).await, Code::OutOfRange, future);
    assert_eq!(rev(c.compact(3, None).await.unwrap().header()), 4);
    assert_status(c.get("k", at(2)).await, Code::OutOfRange, compacted);
    assert_eq!(kvs(c.get("k", at(3)).await.unwrap().kvs()), [("k", "v2", 2, 3, 2)]);
    assert_status(c.get("k", at(5)).await, Code::OutOfRange, future);
    assert_status(c.compact(3, None).await, Code::OutOfRange, compacted);
    assert_status(c.compact(2, None).await, Code::OutOfRange, compacted);
    assert_status(
        c.txn(Txn::new().and_then([TxnOp::get("k", at(2))])).await,
        Code::OutOfRange,
        compacted,
    );
    assert_status(
        c.txn(Txn::new().and_then([TxnOp::get("k", at(9))])).await,
        Code::OutOfRange,
        future,
    );

    let no_key = "etcdserver: key is not provided";
    assert_status(c.get("", None).await, Code::InvalidArgument, no_key);
    assert_status(c.put("", "v", None).await, Code::InvalidArgument, no_key);
    assert_status(c.delete("", None).await, Code::InvalidArgument, no_key);
    assert_status(
        c.txn(Txn::new().or_else([put("", "v")])).await,
        Code::InvalidArgument,
        no_key,
    );

    let too_many = "etcdserver: too many operations in txn request";
    let puts = |n: usize| (0..n).map(|i| put(&format!("many/{i:03}"), "v")).collect::<Vec<_>>();
    let compares = |n: usize| vec![Compare::version("k", CompareOp::Greater, 0); n];
    assert_status(
        c.txn(Txn::new().and_then(puts(129))).await,
        Code::InvalidArgument,
        too_many,
    );
    assert_status(
        c.txn(Txn::new().when(compares(129))).await,
        Code::InvalidArgument,
        too_many,
    );
    assert_status(
        c.txn(Txn::new().or_else(puts(129))).await,
        Code::InvalidArgument,
        too_many,
    );
    let t = c
        .txn(Txn::new().when(compares(128)).and_then(puts(128)).or_else(puts(128)))
        .await
        .unwrap();
    assert_eq!((t.succeeded(), t.op_responses().len(), rev(t.header())), (true, 128, 5));

    let huge = "x".repeat(2 * 1024 * 1024);
    assert_status(
        c.put("huge", huge, None).await,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
    assert_eq!(
        rev(c.get("k", None).await.unwrap().header()),
        5,
        "failed requests make no revision"
    );
}

/// Every member answers with the cluster ID and its own member ID from MemberList.
async fn headers(flavor: Flavor) {
    let (cluster, mut c) = start(flavor, 3).await;
    let list = c.member_list().await.unwrap();
    let cluster_id = list.header().expect("header").cluster_id();
    assert_ne!(cluster_id, 0);
    let member = |name: &str, peer: String, client: String| (name.to_string(), vec![peer], vec![client], false);
    let mut members: Vec<_> = list
        .members()
        .iter()
        .map(|m| {
            (
                m.name().to_string(),
                m.peer_urls().to_vec(),
                m.client_urls().to_vec(),
                m.is_learner(),
            )
        })
        .collect();
    members.sort();
    let expected: Vec<_> = cluster
        .members
        .iter()
        .map(|m| member(&m.spec.name, m.spec.peer_url(), m.spec.client_url()))
        .collect();
    assert_eq!(members, expected);
    c.put("h", "1", None).await.unwrap();
    for member in &cluster.members {
        let id = list
            .members()
            .iter()
            .find(|m| m.name() == member.spec.name)
            .expect("listed")
            .id();
        let mut c = client(&[member.endpoint()]).await;
        let headers = [
            c.get("h", None).await.unwrap().header().cloned(),
            c.get("h", Some(GetOptions::new().with_serializable()))
                .await
                .unwrap()
                .header()
                .cloned(),
            c.put("h", "2", None).await.unwrap().header().cloned(),
            c.txn(Txn::new()).await.unwrap().header().cloned(),
            c.delete("none", None).await.unwrap().header().cloned(),
            c.member_list().await.unwrap().header().cloned(),
        ];
        for header in headers {
            let header = header.expect("response header");
            assert_eq!(
                (header.cluster_id(), header.member_id()),
                (cluster_id, id),
                "from {}",
                member.spec.name
            );
            assert!(header.raft_term() >= 1, "raft term of {header:?}");
        }
    }
}
