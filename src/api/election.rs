//! etcd's Election service (v3electionpb): campaign for leadership of a name
//! through a lease, proclaim values, observe and resign.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::concurrency::{authorize_queue, create_key, first_owner, ownership_key, wait_for_turn, AbandonGuard};
use super::{Caller, Context};
use crate::apply::Command;
use crate::mvcc::{WatchMessage, WatchSpec};
use crate::proto::etcdserverpb::{
    compare, request_op, Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, TxnResponse,
};
use crate::proto::v3electionpb::election_server::Election;
use crate::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse,
    ResignRequest, ResignResponse,
};

pub struct ElectionService {
    context: Arc<Context>,
}

impl ElectionService {
    pub fn new(context: Arc<Context>) -> Self {
        ElectionService { context }
    }
}

fn prefix_of(name: &[u8]) -> Vec<u8> {
    [name, b"/"].concat()
}

/// etcd's election errors (from its concurrency package).
fn not_leader() -> Status {
    Status::unknown("election: not leader")
}

fn no_leader() -> Status {
    Status::unknown("election: no leader")
}

/// Runs `op` only while `leader` still owns its key; false when it does not.
async fn if_still_leader(
    context: &Context,
    caller: &Caller,
    leader: &LeaderKey,
    op: request_op::Request,
) -> Result<TxnResponse, Status> {
    let txn = TxnRequest {
        compare: vec![Compare {
            key: leader.key.clone(),
            target: compare::CompareTarget::Create as i32,
            result: compare::CompareResult::Equal as i32,
            target_union: Some(compare::TargetUnion::CreateRevision(leader.rev)),
            ..Default::default()
        }],
        success: vec![RequestOp { request: Some(op) }],
        failure: Vec::new(),
    };
    context.propose_as(caller, Command::Txn(txn.encode_to_vec())).await
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(&self, request: Request<CampaignRequest>) -> Result<Response<CampaignResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        let request = request.into_inner();
        authorize_queue(&self.context, &caller, &prefix_of(&request.name))?;
        let key = ownership_key(&request.name, request.lease);
        let (kv, _) = create_key(&self.context, &caller, &key, &request.value, request.lease).await?;
        let leader = LeaderKey {
            name: request.name.clone(),
            key: key.clone(),
            rev: kv.create_revision,
            lease: request.lease,
        };
        if kv.value != request.value {
            let put = PutRequest {
                key: key.clone(),
                value: request.value.clone(),
                lease: request.lease,
                ..Default::default()
            };
            if_still_leader(&self.context, &caller, &leader, request_op::Request::RequestPut(put)).await?;
        }
        let mut guard = AbandonGuard {
            context: self.context.clone(),
            caller,
            key: Some(key),
        };
        wait_for_turn(&self.context, &prefix_of(&request.name), kv.create_revision).await?;
        guard.key = None;
        Ok(Response::new(CampaignResponse {
            header: self.context.header_now(),
            leader: Some(leader),
        }))
    }

    async fn proclaim(&self, request: Request<ProclaimRequest>) -> Result<Response<ProclaimResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        let request = request.into_inner();
        let leader = request
            .leader
            .ok_or_else(|| Status::invalid_argument("\"leader\" field must be provided"))?;
        let put = PutRequest {
            key: leader.key.clone(),
            value: request.value,
            lease: leader.lease,
            ..Default::default()
        };
        let response = if_still_leader(&self.context, &caller, &leader, request_op::Request::RequestPut(put)).await?;
        if !response.succeeded {
            return Err(not_leader());
        }
        Ok(Response::new(ProclaimResponse {
            header: self.context.header_now(),
        }))
    }

    async fn leader(&self, request: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        self.context.replica.linearize().await?;
        let prefix = prefix_of(&request.into_inner().name);
        authorize_queue(&self.context, &caller, &prefix)?;
        let kv = first_owner(&self.context, &prefix, 0)?.ok_or_else(no_leader)?;
        Ok(Response::new(LeaderResponse {
            header: self.context.header_now(),
            kv: Some(kv),
        }))
    }

    type ObserveStream = ObserveStream;

    /// Sends the leader's key-value now and whenever it changes.
    async fn observe(&self, request: Request<LeaderRequest>) -> Result<Response<ObserveStream>, Status> {
        let caller = self.context.caller(&request).await?;
        let prefix = prefix_of(&request.into_inner().name);
        authorize_queue(&self.context, &caller, &prefix)?;
        let context = self.context.clone();
        let (outgoing, responses) = mpsc::channel(16);
        tokio::spawn(async move {
            let (events, mut live) = mpsc::channel(64);
            let (lagged, mut lag) = mpsc::unbounded_channel();
            let hub = context.applier.read().watches();
            let stream = hub.new_stream();
            {
                let applier = context.applier.read();
                let spec = WatchSpec {
                    key: prefix.clone(),
                    range_end: super::concurrency::prefix_end(&prefix),
                    ..Default::default()
                };
                hub.register(stream, 0, spec, applier.store().revision() + 1, events, lagged);
            }
            let mut last_sent: Option<(Vec<u8>, i64)> = None;
            loop {
                if let Ok(Some(kv)) = first_owner(&context, &prefix, 0) {
                    let current = (kv.key.clone(), kv.mod_revision);
                    if last_sent.as_ref() != Some(&current) {
                        let response = LeaderResponse {
                            header: context.header_now(),
                            kv: Some(kv),
                        };
                        if outgoing.send(Ok(response)).await.is_err() {
                            break;
                        }
                        last_sent = Some(current);
                    }
                }
                tokio::select! {
                    message = live.recv() => if !matches!(message, Some(WatchMessage::Events { .. })) { break },
                    _ = lag.recv() => {}
                    _ = outgoing.closed() => break,
                }
            }
            hub.unregister_stream(stream);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(responses))))
    }

    async fn resign(&self, request: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        let leader = request
            .into_inner()
            .leader
            .ok_or_else(|| Status::invalid_argument("\"leader\" field must be provided"))?;
        let delete = DeleteRangeRequest {
            key: leader.key.clone(),
            ..Default::default()
        };
        let delete = request_op::Request::RequestDeleteRange(delete);
        let response = if_still_leader(&self.context, &caller, &leader, delete).await?;
        let mut header = response.header;
        self.context.fill(&mut header);
        Ok(Response::new(ResignResponse { header }))
    }
}
