//! etcd's Cluster service: the member list, served from the Raft membership
//! and the attributes members published, and membership changes, run by the
//! leader with etcd's checks (see `raft::membership`).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Context, EtcdError};
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use crate::raft::{counts_as_voter, MembershipChange};

pub struct ClusterService {
    context: Arc<Context>,
}

impl ClusterService {
    pub fn new(context: Arc<Context>) -> Self {
        ClusterService { context }
    }

    /// Membership changes need the root role once auth is on.
    async fn admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let caller = self.context.caller(request).await?;
        self.context.authorize(&caller, &[crate::auth::Need::Admin])
    }
}

/// Every member as etcd lists it: a member added but not started yet has no
/// name and no client URLs.
pub fn members(context: &Context) -> Vec<Member> {
    let metrics = context.replica.raft().metrics();
    let metrics = metrics.borrow();
    let membership = metrics.membership_config.membership();
    let applier = context.applier.read();
    membership
        .nodes()
        .map(|(id, node)| {
            let published = applier.members().get(*id);
            Member {
                id: *id,
                name: published.map_or_else(|| node.name.clone(), |p| p.name.clone()),
                peer_ur_ls: node.peer_urls.clone(),
                client_ur_ls: published.map(|p| p.client_urls.clone()).unwrap_or_default(),
                is_learner: !counts_as_voter(membership, *id),
            }
        })
        .collect()
}

/// etcd's rules for member peer URLs (`types.NewURLs`: `http(s)://host:port` without a path,
/// trimmed and sorted), with etcd's text for the first bad one. ferrocd dials peers over http
/// and https only, so unix sockets are refused too.
pub fn peer_urls(urls: &[String]) -> Result<Vec<String>, String> {
    let urls = crate::config::new_urls(urls)?;
    match urls.iter().find(|url| url.starts_with("unix")) {
        Some(url) => Err(format!("ferrocd does not dial unix peer URLs: {url}")),
        None => Ok(urls),
    }
}

/// The v3 API reports every bad peer URL with one error.
fn checked_peer_urls(urls: &[String]) -> Result<Vec<String>, Status> {
    peer_urls(urls).map_err(|_| EtcdError::MemberBadUrls.into())
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, request: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        self.admin(&request).await?;
        let request = request.into_inner();
        let peer_urls = checked_peer_urls(&request.peer_ur_ls)?;
        let change = MembershipChange::Add {
            peer_urls: peer_urls.clone(),
            learner: request.is_learner,
        };
        let done = self.context.replica.reconfigure(change).await?;
        let mut response = MemberAddResponse {
            header: None,
            member: Some(Member {
                id: done.id,
                peer_ur_ls: peer_urls,
                is_learner: request.is_learner,
                ..Default::default()
            }),
            members: members(&self.context),
        };
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.admin(&request).await?;
        let id = request.get_ref().id;
        self.context
            .replica
            .reconfigure(MembershipChange::Remove { id })
            .await?;
        let mut response = MemberRemoveResponse {
            header: None,
            members: members(&self.context),
        };
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.admin(&request).await?;
        let request = request.into_inner();
        let peer_urls = checked_peer_urls(&request.peer_ur_ls)?;
        let change = MembershipChange::Update {
            id: request.id,
            peer_urls,
        };
        self.context.replica.reconfigure(change).await?;
        let mut response = MemberUpdateResponse {
            header: None,
            members: members(&self.context),
        };
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn member_list(&self, request: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        if request.get_ref().linearizable {
            self.context.replica.linearize().await?;
        }
        let mut response = MemberListResponse {
            header: None,
            members: members(&self.context),
        };
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.admin(&request).await?;
        let id = request.get_ref().id;
        self.context
            .replica
            .reconfigure(MembershipChange::Promote { id })
            .await?;
        let mut response = MemberPromoteResponse {
            header: None,
            members: members(&self.context),
        };
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }
}
