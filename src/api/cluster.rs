//! etcd's Cluster service. MemberList is served from the Raft membership and
//! the attributes members published; membership changes are not served yet.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::Context;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};

pub struct ClusterService {
    context: Arc<Context>,
}

impl ClusterService {
    pub fn new(context: Arc<Context>) -> Self {
        ClusterService { context }
    }

    fn members(&self) -> Vec<Member> {
        let metrics = self.context.replica.raft().metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let applier = self.context.applier.read();
        membership
            .nodes()
            .map(|(id, node)| {
                let published = applier.members().get(*id);
                Member {
                    id: *id,
                    name: published.map_or_else(|| node.name.clone(), |p| p.name.clone()),
                    peer_ur_ls: node.peer_urls.clone(),
                    client_ur_ls: published.map(|p| p.client_urls.clone()).unwrap_or_default(),
                    is_learner: !voters.contains(id),
                }
            })
            .collect()
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("etcdserver: {what} is not supported by this ferrocd version"))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, _: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        Err(not_yet("member add"))
    }

    async fn member_remove(&self, _: Request<MemberRemoveRequest>) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(not_yet("member remove"))
    }

    async fn member_update(&self, _: Request<MemberUpdateRequest>) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(not_yet("member update"))
    }

    async fn member_list(&self, request: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        if request.get_ref().linearizable {
            self.context.replica.linearize().await?;
        }
        let mut response = MemberListResponse {
            header: None,
            members: self.members(),
        };
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(not_yet("member promote"))
    }
}
