//! This member's handle on the replicated log: propose a command (forwarded
//! to the leader when this member is a follower, since etcd clients do not
//! follow redirects), and wait until a read may be served linearizably.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};

use super::network::{decode, encode, PeerChannels};
use super::Raft;
use crate::apply::{Applied, Command};

/// How far applying may fall behind the log before new proposals are refused
/// (etcd's maxGapBetweenApplyAndCommitIndex).
const MAX_APPLY_BACKLOG: u64 = 5000;

/// Why a proposal or a linearizable read did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: {0}")]
    Internal(String),
}

pub struct Replica {
    raft: Raft,
    member_id: u64,
    channels: Arc<PeerChannels>,
    request_timeout: Duration,
}

impl Replica {
    pub fn new(raft: Raft, member_id: u64, channels: Arc<PeerChannels>, request_timeout: Duration) -> Self {
        Replica {
            raft,
            member_id,
            channels,
            request_timeout,
        }
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    /// The current leader, if one is known.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Replicates `command` and returns its result once applied here or on
    /// the leader.
    pub async fn propose(&self, command: Command) -> Result<Applied, ProposeError> {
        tokio::time::timeout(self.request_timeout, async {
            match self.leader() {
                Some(leader) if leader == self.member_id => self.propose_as_leader(command).await,
                Some(leader) => self.forward(leader, command).await,
                None => Err(ProposeError::NoLeader),
            }
        })
        .await
        .map_err(|_| ProposeError::Timeout)?
    }

    /// Appends `command` on this member, which must be the leader.
    pub async fn propose_as_leader(&self, command: Command) -> Result<Applied, ProposeError> {
        self.check_backlog()?;
        match self.raft.client_write(command).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(ProposeError::LeaderChanged),
            Err(RaftError::APIError(e)) => Err(ProposeError::Internal(e.to_string())),
            Err(RaftError::Fatal(_)) => Err(ProposeError::Stopped),
        }
    }

    fn check_backlog(&self) -> Result<(), ProposeError> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let last_log = metrics.last_log_index.unwrap_or(0);
        let applied = metrics.last_applied.map_or(0, |id| id.index);
        if last_log.saturating_sub(applied) > MAX_APPLY_BACKLOG {
            return Err(ProposeError::TooManyRequests);
        }
        Ok(())
    }

    async fn forward(&self, leader: u64, command: Command) -> Result<Applied, ProposeError> {
        let mut client = self.leader_client(leader)?;
        let reply = client.forward(encode(&command)).await.map_err(unavailable)?;
        decode::<Result<Applied, ProposeError>>(reply.get_ref()).map_err(|e| ProposeError::Internal(e.to_string()))?
    }

    fn leader_client(
        &self,
        leader: u64,
    ) -> Result<crate::proto::peer::peer_client::PeerClient<tonic::transport::Channel>, ProposeError> {
        let metrics = self.raft.metrics();
        let node = metrics
            .borrow()
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
            .ok_or(ProposeError::NoLeader)?;
        self.channels.client(leader, &node).map_err(ProposeError::Internal)
    }

    /// Waits until this member has applied everything committed before the
    /// call, confirmed by the leader with a quorum (a read index).
    pub async fn linearize(&self) -> Result<(), ProposeError> {
        tokio::time::timeout(self.request_timeout, async {
            let index = match self.leader() {
                Some(leader) if leader == self.member_id => self.read_index().await?,
                Some(leader) => {
                    let mut client = self.leader_client(leader)?;
                    let reply = client.read_index(encode(&())).await.map_err(unavailable)?;
                    decode::<Result<u64, ProposeError>>(reply.get_ref())
                        .map_err(|e| ProposeError::Internal(e.to_string()))??
                }
                None => return Err(ProposeError::NoLeader),
            };
            self.raft
                .wait(None)
                .applied_index_at_least(Some(index), "linearizable read")
                .await
                .map_err(|_| ProposeError::Stopped)?;
            Ok(())
        })
        .await
        .map_err(|_| ProposeError::Timeout)?
    }

    /// On the leader: the log index a linearizable read must wait for.
    pub async fn read_index(&self) -> Result<u64, ProposeError> {
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map_or(0, |id| id.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => Err(ProposeError::LeaderChanged),
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => Err(ProposeError::Timeout),
            Err(RaftError::Fatal(_)) => Err(ProposeError::Stopped),
        }
    }
}

fn unavailable(status: tonic::Status) -> ProposeError {
    match status.code() {
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => ProposeError::Timeout,
        _ => ProposeError::LeaderChanged,
    }
}
