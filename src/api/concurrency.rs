//! What etcd's lock and election services share (etcd's client-side
//! `concurrency` package, run in the server): an ownership key under a
//! prefix, attached to the caller's lease, whose turn comes when every key
//! created before it under the prefix is gone.

use std::sync::Arc;

use prost::Message;
use tokio::sync::mpsc;
use tonic::Status;

use super::{Caller, Context};
use crate::apply::Command;
use crate::auth::Need;
use crate::mvcc::{WatchMessage, WatchSpec};
use crate::proto::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    RangeRequest, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::{event::EventType, KeyValue};

/// The end of the range of keys starting with `prefix` (etcd's GetPrefixRangeEnd).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `name/<lease in hex>`, etcd's ownership key for a session.
pub fn ownership_key(name: &[u8], lease: i64) -> Vec<u8> {
    [name, b"/", format!("{lease:x}").as_bytes()].concat()
}

fn range_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })),
    }
}

/// Creates `key` with `value` and `lease` unless it exists; returns the key
/// as it is now (its create revision orders the queue) and the header.
pub async fn create_key(
    context: &Context,
    caller: &Caller,
    key: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<(KeyValue, Option<ResponseHeader>), Status> {
    let put = PutRequest {
        key: key.to_vec(),
        value: value.to_vec(),
        lease,
        ..Default::default()
    };
    let txn = TxnRequest {
        compare: vec![Compare {
            key: key.to_vec(),
            target: compare::CompareTarget::Create as i32,
            result: compare::CompareResult::Equal as i32,
            target_union: Some(compare::TargetUnion::CreateRevision(0)),
            ..Default::default()
        }],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(put)),
            },
            range_op(key),
        ],
        failure: vec![range_op(key)],
    };
    let response: TxnResponse = context.propose_as(caller, Command::Txn(txn.encode_to_vec())).await?;
    let kv = response.responses.into_iter().rev().find_map(|op| match op.response {
        Some(response_op::Response::ResponseRange(range)) => range.kvs.into_iter().next(),
        _ => None,
    });
    let kv = kv.ok_or_else(|| Status::internal("ownership key vanished"))?;
    Ok((kv, response.header))
}

/// Deletes `key`; used to give up ownership.
pub async fn delete_key(context: &Context, caller: &Caller, key: &[u8]) -> Result<Option<ResponseHeader>, Status> {
    let request = DeleteRangeRequest {
        key: key.to_vec(),
        ..Default::default()
    };
    let command = Command::DeleteRange(request.encode_to_vec());
    let response: DeleteRangeResponse = context.propose_as(caller, command).await?;
    Ok(response.header)
}

/// Whether `caller` may read the queue under `prefix` (lock and election
/// clients read it to find the owner).
pub fn authorize_queue(context: &Context, caller: &Caller, prefix: &[u8]) -> Result<(), Status> {
    context.authorize(caller, &[Need::read(prefix, &prefix_end(prefix))])
}

/// The first key under `prefix` by create revision, with revision filters.
pub fn first_owner(context: &Context, prefix: &[u8], created_before: i64) -> Result<Option<KeyValue>, Status> {
    let request = RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        sort_target: range_request::SortTarget::Create as i32,
        sort_order: if created_before > 0 {
            range_request::SortOrder::Descend as i32
        } else {
            range_request::SortOrder::Ascend as i32
        },
        max_create_revision: created_before.max(0),
        limit: 1,
        ..Default::default()
    };
    Ok(context.applier.read().range(&request)?.kvs.into_iter().next())
}

/// Waits until no key under `prefix` was created before `revision`.
pub async fn wait_for_turn(context: &Arc<Context>, prefix: &[u8], revision: i64) -> Result<(), Status> {
    loop {
        let (events, mut live) = mpsc::channel(16);
        let (lagged, mut lag) = mpsc::unbounded_channel();
        let hub = context.applier.read().watches();
        let stream = hub.new_stream();
        let predecessor = {
            // Look and register under one read lock so no delete slips between.
            let applier = context.applier.read();
            let predecessor = first_owner(context, prefix, revision - 1)?;
            if let Some(kv) = &predecessor {
                let spec = WatchSpec {
                    key: kv.key.clone(),
                    no_put: true,
                    ..Default::default()
                };
                hub.register(stream, 0, spec, applier.store().revision() + 1, events, lagged);
            }
            predecessor
        };
        if predecessor.is_none() {
            return Ok(());
        }
        let _unregister = Unregister {
            hub: hub.clone(),
            stream,
        };
        tokio::select! {
            message = live.recv() => match message {
                Some(WatchMessage::Events { events, .. })
                    if events.iter().any(|e| e.r#type == EventType::Delete as i32) => {}
                _ => continue,
            },
            _ = lag.recv() => continue,
        }
    }
}

/// Removes a waiter's watcher when the wait ends or is abandoned.
struct Unregister {
    hub: Arc<crate::mvcc::WatchHub>,
    stream: u64,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.hub.unregister_stream(self.stream);
    }
}

/// Deletes an ownership key if the caller stops waiting for its turn (the
/// client went away), as etcd's mutex does.
pub struct AbandonGuard {
    pub context: Arc<Context>,
    pub caller: Caller,
    pub key: Option<Vec<u8>>,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let (context, caller) = (self.context.clone(), self.caller.clone());
            tokio::spawn(async move {
                let _ = delete_key(&context, &caller, &key).await;
            });
        }
    }
}
