//! etcd's KV service: Range, Put, DeleteRange, Txn and Compact.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};

use super::{validate, Context};
use crate::apply::{is_read_only, Command};
use crate::auth;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::{
    request_op, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};

pub struct KvService {
    context: Arc<Context>,
}

impl KvService {
    pub fn new(context: Arc<Context>) -> Self {
        KvService { context }
    }
}

/// etcd serves a read-only txn without a read index only when every op is a
/// serializable range.
fn is_serializable(r: &TxnRequest) -> bool {
    r.success.iter().chain(&r.failure).all(|op| match &op.request {
        Some(request_op::Request::RequestRange(range)) => range.serializable,
        _ => false,
    })
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        let request = request.into_inner();
        validate::range(&request)?;
        if !request.serializable {
            self.context.replica.linearize().await?;
        }
        self.context.authorize(&caller, &auth::needs_of_range(&request))?;
        let mut response = self.context.applier.read().range(&request)?;
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        let request = request.into_inner();
        validate::put(&request)?;
        self.context
            .check_quota(request.key.len() + request.value.len())
            .await?;
        let mut response: PutResponse = self
            .context
            .propose_as(&caller, Command::Put(request.encode_to_vec()))
            .await?;
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        let request = request.into_inner();
        validate::delete_range(&request)?;
        let mut response: DeleteRangeResponse = self
            .context
            .propose_as(&caller, Command::DeleteRange(request.encode_to_vec()))
            .await?;
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        let request = request.into_inner();
        validate::txn(&request, self.context.max_txn_ops)?;
        let mut response = if is_read_only(&request) {
            if !is_serializable(&request) {
                self.context.replica.linearize().await?;
            }
            self.context.authorize(&caller, &auth::needs_of_txn(&request))?;
            self.context.applier.write().txn_read_only(&request)?
        } else {
            let body = request.encode_to_vec();
            self.context.check_quota(body.len()).await?;
            self.context.propose_as(&caller, Command::Txn(body)).await?
        };
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn compact(&self, request: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        let request = request.into_inner();
        let command = Command::Compact(request.encode_to_vec());
        let mut response: CompactionResponse = self.context.propose_as(&caller, command).await?;
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }
}
