//! The server side of member-to-member traffic on the peer URLs: Raft RPCs,
//! writes forwarded by followers, read-index requests, and elections asked
//! for by a stopping leader.

use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, VoteRequest};
use tonic::{Request, Response, Status};

use super::membership::{ClusterInfo, MembershipChange};
use super::network::{decode, encode, REMOVED_MESSAGE};
use super::{LeaseClock, LeaseQuery, Replica, TypeConfig};
use crate::apply::Command;
use crate::proto::peer::peer_server::Peer;
use crate::proto::peer::Blob;

pub struct PeerService {
    replica: Arc<Replica>,
    leases: Arc<LeaseClock>,
    cluster_id: u64,
}

impl PeerService {
    pub fn new(replica: Arc<Replica>, leases: Arc<LeaseClock>, cluster_id: u64) -> Self {
        PeerService {
            replica,
            leases,
            cluster_id,
        }
    }

    /// Refuses Raft messages from a member removed from the cluster, which
    /// then stops (etcd answers them the same way).
    fn refuse_removed(&self, vote: &openraft::Vote<u64>) -> Result<(), Status> {
        let sender = vote.leader_id().voted_for();
        match sender {
            Some(id) if self.replica.applier().read().members().is_removed(id) => {
                Err(Status::failed_precondition(REMOVED_MESSAGE))
            }
            _ => Ok(()),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(request: &Request<Blob>) -> Result<T, Status> {
    decode(request.get_ref()).map_err(|e| Status::invalid_argument(format!("undecodable peer message: {e}")))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<Blob>, Status> {
    Ok(Response::new(encode(value)))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = parse(&request)?;
        self.refuse_removed(&rpc.vote)?;
        crate::metrics::peer_request(
            rpc.vote.leader_id().voted_for().unwrap_or(0),
            request.get_ref().data.len(),
        );
        reply(&self.replica.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let rpc: VoteRequest<u64> = parse(&request)?;
        self.refuse_removed(&rpc.vote)?;
        crate::metrics::peer_request(
            rpc.vote.leader_id().voted_for().unwrap_or(0),
            request.get_ref().data.len(),
        );
        reply(&self.replica.raft().vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let rpc: openraft::raft::InstallSnapshotRequest<super::TypeConfig> = parse(&request)?;
        crate::metrics::peer_request(
            rpc.vote.leader_id().voted_for().unwrap_or(0),
            request.get_ref().data.len(),
        );
        reply(&self.replica.raft().install_snapshot(rpc).await)
    }

    async fn forward(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let command: Command = parse(&request)?;
        reply(&self.replica.propose_as_leader(command).await)
    }

    async fn read_index(&self, _request: Request<Blob>) -> Result<Response<Blob>, Status> {
        reply(&self.replica.read_index().await)
    }

    async fn lease(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let query: LeaseQuery = parse(&request)?;
        let answer: Result<_, crate::raft::ProposeError> = match self.replica.leader() {
            Some(leader) if leader == self.replica.member_id() => Ok(self.leases.answer(query)),
            _ => Err(crate::raft::ProposeError::LeaderChanged),
        };
        reply(&answer)
    }

    async fn reconfigure(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let change: MembershipChange = parse(&request)?;
        reply(&self.replica.reconfigure_as_leader(change).await)
    }

    async fn membership(&self, _request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let membership = self.replica.raft().metrics().borrow().membership_config.clone();
        let info = ClusterInfo {
            cluster_id: self.cluster_id,
            members: membership
                .membership()
                .nodes()
                .map(|(id, node)| (*id, node.clone()))
                .collect(),
            removed: self.replica.applier().read().members().removed().collect(),
        };
        reply(&info)
    }

    async fn elect(&self, _request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let started = self.replica.raft().trigger().elect().await.map_err(|e| e.to_string());
        reply(&started)
    }
}
