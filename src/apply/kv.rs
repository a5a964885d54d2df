//! Range, Put, DeleteRange, Txn and Compaction against the MVCC store, with
//! etcd's semantics for sorting, filters, compares and response headers.

use std::cmp::Ordering;

use prost::Message;

use super::{header, ApplyError};
use crate::mvcc::{Lessor, RangeOptions, RangeResult, Store, WriteTxn};
use crate::proto::etcdserverpb::{
    compare, range_request, request_op, response_op, CompactionRequest, CompactionResponse, Compare,
    DeleteRangeRequest, DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::KeyValue;

/// Something ranges can be served from: the store, or a write transaction
/// that sees its own writes.
trait View {
    fn read(&self, key: &[u8], range_end: &[u8], opts: RangeOptions) -> Result<RangeResult, ApplyError>;
}

impl View for Store {
    fn read(&self, key: &[u8], range_end: &[u8], opts: RangeOptions) -> Result<RangeResult, ApplyError> {
        Ok(self.range(key, range_end, opts)?)
    }
}

impl View for WriteTxn<'_> {
    fn read(&self, key: &[u8], range_end: &[u8], opts: RangeOptions) -> Result<RangeResult, ApplyError> {
        Ok(self.range(key, range_end, opts)?)
    }
}

pub(super) fn range(store: &Store, request: &RangeRequest) -> Result<RangeResponse, ApplyError> {
    range_in(store, request)
}

fn range_in(view: &impl View, r: &RangeRequest) -> Result<RangeResponse, ApplyError> {
    let sort_order = range_request::SortOrder::try_from(r.sort_order).unwrap_or_default();
    let sort_target = range_request::SortTarget::try_from(r.sort_target).unwrap_or_default();
    let filtered =
        r.min_mod_revision != 0 || r.max_mod_revision != 0 || r.min_create_revision != 0 || r.max_create_revision != 0;
    // Sorting and filtering need every key; otherwise fetch one extra to
    // know whether there is `more`.
    let limit = if sort_order != range_request::SortOrder::None || filtered || r.limit <= 0 {
        0
    } else {
        r.limit as usize + 1
    };
    let opts = RangeOptions {
        limit,
        revision: r.revision,
        count_only: r.count_only,
    };
    let result = view.read(&r.key, &r.range_end, opts)?;
    let mut kvs = result.kvs;
    kvs.retain(|kv| {
        (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
            && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
            && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
            && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
    });
    let order = match (sort_order, sort_target) {
        // Results come in ascending key order already; a target other than
        // the key with no order means ascending, as in etcd.
        (range_request::SortOrder::None, range_request::SortTarget::Key) => None,
        (range_request::SortOrder::None, _) => Some(range_request::SortOrder::Ascend),
        (order, _) => Some(order),
    };
    // Stable sorts: equal elements keep their key order, as etcd's sort
    // (insertion sort on small inputs) leaves them.
    match order {
        Some(range_request::SortOrder::Descend) => kvs.sort_by(|a, b| compare_by(sort_target, b, a)),
        Some(_) => kvs.sort_by(|a, b| compare_by(sort_target, a, b)),
        None => {}
    }
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        kvs.iter_mut().for_each(|kv| kv.value.clear());
    }
    Ok(RangeResponse {
        header: header(result.revision),
        kvs,
        more,
        count: result.count as i64,
    })
}

fn compare_by(target: range_request::SortTarget, a: &KeyValue, b: &KeyValue) -> Ordering {
    use range_request::SortTarget;
    match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    }
}

pub(super) fn put(store: &mut Store, lessor: &mut Lessor, request: &PutRequest) -> Result<Vec<u8>, ApplyError> {
    check_lease(lessor, request.lease)?;
    let mut txn = store.write();
    let response = put_in(&mut txn, lessor, request);
    txn.end();
    Ok(response?.encode_to_vec())
}

fn put_in(txn: &mut WriteTxn<'_>, lessor: &mut Lessor, p: &PutRequest) -> Result<PutResponse, ApplyError> {
    let previous = if p.ignore_value || p.ignore_lease || p.prev_kv {
        txn.get(&p.key)?
    } else {
        None
    };
    let mut value = p.value.clone();
    let mut lease = p.lease;
    if p.ignore_value || p.ignore_lease {
        let prev = previous.as_ref().ok_or(ApplyError::KeyNotFound)?;
        if p.ignore_value {
            value = prev.value.clone();
        }
        if p.ignore_lease {
            lease = prev.lease;
        }
    }
    let revision = txn.put(&p.key, value, lease);
    lessor.on_put(&p.key, lease);
    Ok(PutResponse {
        header: header(revision),
        prev_kv: if p.prev_kv { previous } else { None },
    })
}

fn check_lease(lessor: &Lessor, lease: i64) -> Result<(), ApplyError> {
    if lease == 0 || lessor.ttl(lease).is_some() {
        Ok(())
    } else {
        Err(ApplyError::LeaseNotFound)
    }
}

pub(super) fn delete_range(
    store: &mut Store,
    lessor: &mut Lessor,
    request: &DeleteRangeRequest,
) -> Result<Vec<u8>, ApplyError> {
    let mut txn = store.write();
    let response = delete_in(&mut txn, lessor, request);
    txn.end();
    Ok(response?.encode_to_vec())
}

fn delete_in(
    txn: &mut WriteTxn<'_>,
    lessor: &mut Lessor,
    d: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, ApplyError> {
    let (deleted, revision) = txn.delete_range(&d.key, &d.range_end)?;
    for kv in &deleted {
        lessor.on_delete(&kv.key);
    }
    Ok(DeleteRangeResponse {
        header: header(revision),
        deleted: deleted.len() as i64,
        prev_kvs: if d.prev_kv { deleted } else { Vec::new() },
    })
}

pub(super) fn compact(store: &mut Store, request: &CompactionRequest) -> Result<Vec<u8>, ApplyError> {
    store.compact(request.revision)?;
    Ok(CompactionResponse {
        header: header(store.revision()),
    }
    .encode_to_vec())
}

/// A transaction: every compare (nested ones too) is evaluated against the
/// state before any operation runs, then the chosen branches execute.
/// A transaction with no write in either branch, at any depth.
pub fn is_read_only(r: &TxnRequest) -> bool {
    r.success.iter().chain(&r.failure).all(|op| match &op.request {
        Some(request_op::Request::RequestRange(_)) | None => true,
        Some(request_op::Request::RequestTxn(inner)) => is_read_only(inner),
        _ => false,
    })
}

pub(super) fn txn(store: &mut Store, lessor: &mut Lessor, request: &TxnRequest) -> Result<Vec<u8>, ApplyError> {
    let mut txn = store.write();
    let result = txn_in(&mut txn, lessor, request);
    let revision = txn.end();
    let mut response = result?;
    response.header = header(revision);
    Ok(response.encode_to_vec())
}

fn txn_in(txn: &mut WriteTxn<'_>, lessor: &mut Lessor, request: &TxnRequest) -> Result<TxnResponse, ApplyError> {
    let mut path = Vec::new();
    branch_path(txn, request, &mut path)?;
    check_branches(txn, lessor, request, &path)?;
    let mut cursor = path.iter().copied();
    execute(txn, lessor, request, &mut cursor)
}

fn branch_path(view: &impl View, request: &TxnRequest, path: &mut Vec<bool>) -> Result<(), ApplyError> {
    let mut succeeded = true;
    for c in &request.compare {
        if !compare_holds(view, c)? {
            succeeded = false;
            break;
        }
    }
    path.push(succeeded);
    for op in chosen(request, succeeded) {
        if let Some(request_op::Request::RequestTxn(inner)) = &op.request {
            branch_path(view, inner, path)?;
        }
    }
    Ok(())
}

fn chosen(request: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &request.success
    } else {
        &request.failure
    }
}

fn compare_holds(view: &impl View, c: &Compare) -> Result<bool, ApplyError> {
    let found = view.read(&c.key, &c.range_end, RangeOptions::default())?.kvs;
    let target = compare::CompareTarget::try_from(c.target).unwrap_or_default();
    if found.is_empty() {
        // A missing key has no value to compare with; other targets compare
        // against zero.
        return Ok(target != compare::CompareTarget::Value && compare_kv(c, target, &KeyValue::default()));
    }
    Ok(found.iter().all(|kv| compare_kv(c, target, kv)))
}

fn compare_kv(c: &Compare, target: compare::CompareTarget, kv: &KeyValue) -> bool {
    use compare::{CompareTarget, TargetUnion};
    let ordering = match (target, &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => kv.value.as_slice().cmp(v.as_slice()),
        (CompareTarget::Value, _) => kv.value.as_slice().cmp(&[]),
        (CompareTarget::Version, Some(TargetUnion::Version(v))) => kv.version.cmp(v),
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => kv.create_revision.cmp(v),
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => kv.mod_revision.cmp(v),
        (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => kv.lease.cmp(v),
        (CompareTarget::Version, _) => kv.version.cmp(&0),
        (CompareTarget::Create, _) => kv.create_revision.cmp(&0),
        (CompareTarget::Mod, _) => kv.mod_revision.cmp(&0),
        (CompareTarget::Lease, _) => kv.lease.cmp(&0),
    };
    match compare::CompareResult::try_from(c.result).unwrap_or_default() {
        compare::CompareResult::Equal => ordering == Ordering::Equal,
        compare::CompareResult::NotEqual => ordering != Ordering::Equal,
        compare::CompareResult::Greater => ordering == Ordering::Greater,
        compare::CompareResult::Less => ordering == Ordering::Less,
    }
}

/// Before anything is written: puts that need a previous value find one,
/// leases exist, and ranges ask for revisions the store has.
fn check_branches(txn: &WriteTxn<'_>, lessor: &Lessor, request: &TxnRequest, path: &[bool]) -> Result<(), ApplyError> {
    let mut cursor = path.iter().copied();
    check_ops(txn, lessor, request, &mut cursor)
}

fn check_ops(
    txn: &WriteTxn<'_>,
    lessor: &Lessor,
    request: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<(), ApplyError> {
    let succeeded = path.next().unwrap_or(false);
    for op in chosen(request, succeeded) {
        match &op.request {
            Some(request_op::Request::RequestPut(p)) => {
                if (p.ignore_value || p.ignore_lease) && txn.get(&p.key)?.is_none() {
                    return Err(ApplyError::KeyNotFound);
                }
                check_lease(lessor, p.lease)?;
            }
            Some(request_op::Request::RequestRange(r)) if r.revision != 0 => txn.check_revision(r.revision)?,
            Some(request_op::Request::RequestTxn(inner)) => check_ops(txn, lessor, inner, path)?,
            _ => {}
        }
    }
    Ok(())
}

fn execute(
    txn: &mut WriteTxn<'_>,
    lessor: &mut Lessor,
    request: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<TxnResponse, ApplyError> {
    let succeeded = path.next().unwrap_or(false);
    let mut responses = Vec::new();
    for op in chosen(request, succeeded) {
        let response = match &op.request {
            Some(request_op::Request::RequestRange(r)) => response_op::Response::ResponseRange(range_in(txn, r)?),
            Some(request_op::Request::RequestPut(p)) => response_op::Response::ResponsePut(put_in(txn, lessor, p)?),
            Some(request_op::Request::RequestDeleteRange(d)) => {
                response_op::Response::ResponseDeleteRange(delete_in(txn, lessor, d)?)
            }
            Some(request_op::Request::RequestTxn(inner)) => {
                let mut nested = execute(txn, lessor, inner, path)?;
                nested.header = Some(Default::default());
                response_op::Response::ResponseTxn(nested)
            }
            None => continue,
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}

pub(super) fn lease_grant(store: &Store, lessor: &mut Lessor, id: i64, ttl: i64) -> Result<Vec<u8>, ApplyError> {
    if !lessor.grant(id, ttl) {
        return Err(ApplyError::LeaseExists);
    }
    Ok(LeaseGrantResponse {
        header: header(store.revision()),
        id,
        ttl,
        error: String::new(),
    }
    .encode_to_vec())
}

/// Revokes a lease and deletes its keys, all in one revision.
pub(super) fn lease_revoke(store: &mut Store, lessor: &mut Lessor, id: i64) -> Result<Vec<u8>, ApplyError> {
    let keys = lessor.revoke(id).ok_or(ApplyError::LeaseNotFound)?;
    let mut txn = store.write();
    for key in keys {
        txn.delete_range(&key, b"")?;
    }
    let revision = txn.end();
    Ok(LeaseRevokeResponse {
        header: header(revision),
    }
    .encode_to_vec())
}
