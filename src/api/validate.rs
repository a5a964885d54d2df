//! Request checks done before anything is proposed, as etcd's v3rpc does
//! them: empty keys, conflicting put options, txn size and overlapping keys.

use std::collections::HashSet;

use super::error::EtcdError;
use crate::proto::etcdserverpb::{
    range_request, request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

pub fn range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if range_request::SortOrder::try_from(r.sort_order).is_err()
        || range_request::SortTarget::try_from(r.sort_target).is_err()
    {
        return Err(EtcdError::InvalidSortOption);
    }
    Ok(())
}

pub fn put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

pub fn delete_range(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// A transaction's shape and ops, then (as etcd does it, after the cheap
/// checks) that no key is written twice on any path.
pub fn txn(r: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    txn_shape(r, max_txn_ops)?;
    intervals(&r.success)?;
    intervals(&r.failure)?;
    Ok(())
}

fn txn_shape(r: &TxnRequest, max_txn_ops: usize) -> Result<(), EtcdError> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_txn_ops {
        return Err(EtcdError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        request_op(op, max_txn_ops - ops)?;
    }
    Ok(())
}

fn request_op(op: &RequestOp, max_txn_ops: usize) -> Result<(), EtcdError> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => range(r),
        Some(request_op::Request::RequestPut(r)) => put(r),
        Some(request_op::Request::RequestDeleteRange(r)) => delete_range(r),
        Some(request_op::Request::RequestTxn(r)) => txn_shape(r, max_txn_ops),
        None => Err(EtcdError::KeyNotFound),
    }
}

/// A deleted interval `[start, end)`; a single key is `[key, key+"\0")`.
struct Interval {
    start: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    fn of(key: &[u8], range_end: &[u8]) -> Self {
        let end = if range_end.is_empty() {
            [key, &[0]].concat()
        } else {
            range_end.to_vec()
        };
        Interval {
            start: key.to_vec(),
            end,
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && key < self.end.as_slice()
    }
}

/// The keys put and the ranges deleted by `ops` and their nested txns;
/// fails when a put meets another put or a delete on the same path.
fn intervals(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Interval>), EtcdError> {
    let mut deletes: Vec<Interval> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestDeleteRange(d)) => Some(Interval::of(&d.key, &d.range_end)),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        let Some(request_op::Request::RequestTxn(inner)) = &op.request else {
            continue;
        };
        let (puts_then, deletes_then) = intervals(&inner.success)?;
        let (puts_else, deletes_else) = intervals(&inner.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deletes.iter().any(|d| d.contains(key)) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(key.clone());
        }
        for key in puts_else {
            // The same key in both branches is fine: only one of them runs.
            let clashes = puts.contains(&key) && !puts_then.contains(&key);
            if clashes || deletes.iter().any(|d| d.contains(&key)) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(key);
        }
        deletes.extend(deletes_then);
        deletes.extend(deletes_else);
    }
    for op in ops {
        let Some(request_op::Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deletes.iter().any(|d| d.contains(&p.key)) {
            return Err(EtcdError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, deletes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_op(key: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    fn delete_op(key: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                key: key.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let twice = TxnRequest {
            success: vec![put_op("a"), put_op("a")],
            ..Default::default()
        };
        assert_eq!(txn(&twice, 128), Err(EtcdError::DuplicateKey));
        let put_and_delete = TxnRequest {
            success: vec![put_op("b"), delete_op("a", "c")],
            ..Default::default()
        };
        assert_eq!(txn(&put_and_delete, 128), Err(EtcdError::DuplicateKey));
        let branches = TxnRequest {
            success: vec![put_op("a")],
            failure: vec![put_op("a")],
            ..Default::default()
        };
        assert_eq!(txn(&branches, 128), Ok(()));
    }

    #[test]
    fn too_many_ops() {
        let big = TxnRequest {
            success: (0..3).map(|i| put_op(&i.to_string())).collect(),
            ..Default::default()
        };
        assert_eq!(txn(&big, 2), Err(EtcdError::TooManyOps));
    }
}
