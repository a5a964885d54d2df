//! etcd's Lease service: grant and revoke go through the log; keep-alives
//! and time-to-live are answered by the leader's lease clock.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{Context, EtcdError};
use crate::apply::Command;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use crate::raft::LeaseQuery;

/// etcd's largest TTL (MaxLeaseTTL).
const MAX_LEASE_TTL: i64 = 9_000_000_000;

pub struct LeaseService {
    context: Arc<Context>,
    ids: LeaseIds,
}

impl LeaseService {
    pub fn new(context: Arc<Context>) -> Self {
        let ids = LeaseIds::new(context.replica.member_id());
        LeaseService { context, ids }
    }
}

/// Lease IDs as etcd makes them: the member ID's low 16 bits, then a
/// counter that starts at the start time in milliseconds (shifted by 8), so
/// IDs increase and differ between members; the sign bit is cleared.
struct LeaseIds {
    next: AtomicU64,
}

impl LeaseIds {
    fn new(member_id: u64) -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let suffix = (millis << 8) & ((1 << 48) - 1);
        LeaseIds {
            next: AtomicU64::new((member_id << 48) | suffix),
        }
    }

    fn next(&self) -> i64 {
        (self.next.fetch_add(1, Ordering::Relaxed) & (i64::MAX as u64)) as i64
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(&self, request: Request<LeaseGrantRequest>) -> Result<Response<LeaseGrantResponse>, Status> {
        let request = request.into_inner();
        if request.ttl > MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge.into());
        }
        let ttl = request.ttl.max(self.context.min_lease_ttl);
        let id = if request.id == 0 { self.ids.next() } else { request.id };
        self.context.check_quota(0).await?;
        let mut response: LeaseGrantResponse = self.context.propose(Command::LeaseGrant { id, ttl }).await?;
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let caller = self.context.caller(&request).await?;
        let id = request.into_inner().id;
        let mut response: LeaseRevokeResponse = self.context.propose_as(&caller, Command::LeaseRevoke { id }).await?;
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let context = self.context.clone();
        let responses = request.into_inner().then(move |keep_alive| {
            let context = context.clone();
            async move {
                let id = keep_alive?.id;
                let answer = context.leases.ask(LeaseQuery::Renew(id)).await?;
                // An unknown lease answers TTL 0, which clients read as gone.
                let ttl = answer.map_or(0, |(granted, _)| granted);
                Ok(LeaseKeepAliveResponse {
                    header: context.header_now(),
                    id,
                    ttl,
                })
            }
        });
        Ok(Response::new(Box::pin(responses)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let request = request.into_inner();
        let answer = self.context.leases.ask(LeaseQuery::TimeToLive(request.id)).await?;
        let (granted_ttl, ttl) = answer.unwrap_or((0, -1));
        let keys = match (answer, request.keys) {
            (Some(_), true) => self.context.applier.read().lessor().keys(request.id),
            _ => Vec::new(),
        };
        Ok(Response::new(LeaseTimeToLiveResponse {
            header: self.context.header_now(),
            id: request.id,
            ttl,
            granted_ttl,
            keys,
        }))
    }

    async fn lease_leases(&self, _: Request<LeaseLeasesRequest>) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = self
            .context
            .applier
            .read()
            .lessor()
            .ids()
            .map(|id| LeaseStatus { id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: self.context.header_now(),
            leases,
        }))
    }
}
