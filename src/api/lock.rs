//! etcd's Lock service (v3lockpb): a mutex per name, held through a lease.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::concurrency::{authorize_queue, create_key, delete_key, ownership_key, wait_for_turn, AbandonGuard};
use super::Context;
use crate::proto::v3lockpb::lock_server::Lock;
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

pub struct LockService {
    context: Arc<Context>,
}

impl LockService {
    pub fn new(context: Arc<Context>) -> Self {
        LockService { context }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        let request = request.into_inner();
        let prefix = [request.name.as_slice(), b"/"].concat();
        authorize_queue(&self.context, &caller, &prefix).map_err(|status| Status::unknown(status.message()))?;
        let key = ownership_key(&request.name, request.lease);
        // etcd's lock server passes its client's errors on as plain errors,
        // which gRPC reports as Unknown with the same text.
        let (kv, _) = create_key(&self.context, &caller, &key, b"", request.lease)
            .await
            .map_err(|status| Status::unknown(status.message()))?;
        let mut guard = AbandonGuard {
            context: self.context.clone(),
            caller,
            key: Some(key.clone()),
        };
        wait_for_turn(&self.context, &prefix, kv.create_revision).await?;
        guard.key = None;
        Ok(Response::new(LockResponse {
            header: self.context.header_now(),
            key,
        }))
    }

    async fn unlock(&self, request: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        let mut header = delete_key(&self.context, &caller, &request.into_inner().key).await?;
        self.context.fill(&mut header);
        Ok(Response::new(UnlockResponse { header }))
    }
}
