//! This member's handle on the replicated log: propose a command (forwarded
//! to the leader when this member is a follower, since etcd clients do not
//! follow redirects), and wait until a read may be served linearizably.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::gate::Gate;
use super::network::{decode, encode, PeerChannels};
use super::{Proposal, Raft};
use crate::apply::{Applied, Applier, Command};

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
    /// The leader could not be reached, so it cannot have received the
    /// command; safe to send again.
    #[error("etcdserver: request timed out, possibly due to connection lost")]
    NotDelivered,
    #[error("etcdserver: {0}")]
    Internal(String),
}

pub struct Replica {
    raft: Raft,
    member_id: u64,
    channels: Arc<PeerChannels>,
    /// Commands waiting for the next log entry; see [`batch_proposals`].
    proposals: mpsc::UnboundedSender<(Command, Reply)>,
    /// Read-index requests waiting for the next leadership check; see
    /// [`coalesce_read_index`].
    read_waiters: mpsc::UnboundedSender<oneshot::Sender<Result<u64, ProposeError>>>,
    request_timeout: Duration,
    /// The applied state, for what membership checks need of it.
    applier: Arc<RwLock<Applier>>,
    /// etcd's `--strict-reconfig-check`.
    strict_reconfig_check: bool,
    /// Membership changes run one at a time.
    pub(super) reconfiguring: tokio::sync::Mutex<()>,
    /// Proposals made here as leader; closed while leadership is handed over.
    pub(super) gate: Gate,
}

/// How a member replicates: its identity and etcd's settings that apply.
pub struct ReplicaOptions {
    pub member_id: u64,
    pub request_timeout: Duration,
    pub strict_reconfig_check: bool,
}

impl Replica {
    pub fn new(
        raft: Raft,
        options: ReplicaOptions,
        channels: Arc<PeerChannels>,
        applier: Arc<RwLock<Applier>>,
    ) -> Self {
        let (read_waiters, waiting) = mpsc::unbounded_channel();
        tokio::spawn(coalesce_read_index(raft.clone(), waiting));
        let (proposals, queued) = mpsc::unbounded_channel();
        tokio::spawn(batch_proposals(raft.clone(), queued));
        Replica {
            raft,
            member_id: options.member_id,
            proposals,
            read_waiters,
            channels,
            request_timeout: options.request_timeout,
            applier,
            strict_reconfig_check: options.strict_reconfig_check,
            reconfiguring: tokio::sync::Mutex::new(()),
            gate: Gate::new(),
        }
    }

    pub fn applier(&self) -> &Arc<RwLock<Applier>> {
        &self.applier
    }

    pub fn channels(&self) -> &Arc<PeerChannels> {
        &self.channels
    }

    pub fn strict_reconfig_check(&self) -> bool {
        self.strict_reconfig_check
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
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

    /// Whether this member has a working leader: a follower that knows one,
    /// or a leader that heard from a quorum within an election timeout
    /// (openraft 0.9 leaders do not step down on their own, etcd's do).
    pub fn has_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        match metrics.current_leader {
            Some(leader) if leader == self.member_id => {
                let single = metrics.membership_config.membership().voter_ids().count() <= 1;
                let limit = self.raft.config().election_timeout_max;
                single || metrics.millis_since_quorum_ack.is_some_and(|ms| ms <= limit)
            }
            Some(_) => true,
            None => false,
        }
    }

    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Replicates `command` and returns its result once applied here or on
    /// the leader. While no leader is known, or the leader it was sent to is
    /// gone before receiving it, it waits for the next leader and tries
    /// again, until the request timeout.
    pub async fn propose(&self, command: Command) -> Result<Applied, ProposeError> {
        let _pending = crate::metrics::proposal_pending();
        let result = tokio::time::timeout(self.request_timeout, self.propose_until_delivered(command)).await;
        result
            .unwrap_or(Err(ProposeError::Timeout))
            .inspect_err(|_| crate::metrics::PROPOSALS_FAILED.inc())
    }

    async fn propose_until_delivered(&self, command: Command) -> Result<Applied, ProposeError> {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let leader = self.await_leader(deadline).await?;
            let attempt = if leader == self.member_id {
                self.propose_as_leader(command.clone()).await
            } else {
                self.forward(leader, command.clone()).await
            };
            match attempt {
                Err(ProposeError::NotDelivered) | Err(ProposeError::LeaderChanged) if Instant::now() < deadline => {
                    self.await_other_leader(leader, deadline).await;
                }
                other => return other,
            }
        }
    }

    /// The current leader, waiting for one to be elected if needed.
    pub(super) async fn await_leader(&self, deadline: Instant) -> Result<u64, ProposeError> {
        if let Some(leader) = self.leader() {
            return Ok(leader);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(remaining))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .ok()
            .and_then(|m| m.current_leader)
            .ok_or(ProposeError::NoLeader)
    }

    /// Waits until a leader other than `old` is known, or the deadline.
    pub(super) async fn await_other_leader(&self, old: u64, deadline: Instant) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let _ = self
            .raft
            .wait(Some(remaining))
            .metrics(|m| m.current_leader.is_some_and(|l| l != old), "a new leader")
            .await;
    }

    /// Appends `command` on this member, which must be the leader, in the
    /// next batch (see [`batch_proposals`]).
    /// While leadership is handed over, nothing is proposed: the command is refused as not
    /// delivered, to be sent to the next leader.
    pub async fn propose_as_leader(&self, command: Command) -> Result<Applied, ProposeError> {
        let Some(_admitted) = self.gate.admit() else {
            return Err(ProposeError::NotDelivered);
        };
        self.check_backlog()?;
        let (reply, result) = oneshot::channel();
        self.proposals
            .send((command, reply))
            .map_err(|_| ProposeError::Stopped)?;
        result.await.map_err(|_| ProposeError::Stopped)?
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

    pub(super) fn leader_client(
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
            // A leader that just removed itself: never contacted, so safe to
            // send to the next one.
            .ok_or(ProposeError::NotDelivered)?;
        self.channels.client(leader, &node).map_err(ProposeError::Internal)
    }

    /// Waits until this member has applied everything committed before the
    /// call, confirmed by the leader with a quorum (a read index).
    pub async fn linearize(&self) -> Result<(), ProposeError> {
        let deadline = Instant::now() + self.request_timeout;
        tokio::time::timeout(self.request_timeout, async {
            let index = loop {
                let leader = self.await_leader(deadline).await?;
                match self.read_index_from(leader).await {
                    // Asking again is always safe for reads.
                    Err(ProposeError::NotDelivered | ProposeError::LeaderChanged) if Instant::now() < deadline => {
                        self.await_other_leader(leader, deadline).await
                    }
                    other => break other?,
                }
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

    async fn read_index_from(&self, leader: u64) -> Result<u64, ProposeError> {
        if leader == self.member_id {
            return self.read_index().await;
        }
        let mut client = self.leader_client(leader)?;
        let reply = client.read_index(encode(&())).await.map_err(unavailable)?;
        decode::<Result<u64, ProposeError>>(reply.get_ref()).map_err(|e| ProposeError::Internal(e.to_string()))?
    }

    /// On the leader: the log index a linearizable read must wait for.
    /// Concurrent callers share one leadership check, started after they asked.
    pub async fn read_index(&self) -> Result<u64, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.read_waiters.send(tx).map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }
}

type Reply = oneshot::Sender<Result<Applied, ProposeError>>;

/// Most commands, and bytes, in one log entry.
const MAX_BATCH_COMMANDS: usize = 1024;
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Entries handed to openraft at once; more overlap flushing with applying.
const MAX_ENTRIES_IN_FLIGHT: usize = 2;

/// Group commit: whatever was proposed while earlier entries were being
/// written goes into the next entry, so one flush serves many writes.
async fn batch_proposals(raft: Raft, mut queue: mpsc::UnboundedReceiver<(Command, Reply)>) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_ENTRIES_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.0.size();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_COMMANDS && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.0.size();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (commands, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
        let raft = raft.clone();
        tokio::spawn(async move {
            let outcome = match raft.client_write(Proposal(commands)).await {
                Ok(response) => Ok(response.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(ProposeError::LeaderChanged),
                Err(RaftError::APIError(e)) => Err(ProposeError::Internal(e.to_string())),
                Err(RaftError::Fatal(_)) => Err(ProposeError::Stopped),
            };
            match outcome {
                Ok(results) => {
                    for (reply, applied) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(applied));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Serves read-index requests in rounds: every request that arrived while a
/// leadership check was running is answered by the next check, which starts
/// after all of them arrived, so each gets an index at least as new as a
/// check of its own would give, for one quorum round trip per round.
async fn coalesce_read_index(
    raft: Raft,
    mut waiting: mpsc::UnboundedReceiver<oneshot::Sender<Result<u64, ProposeError>>>,
) {
    let mut round = Vec::new();
    while waiting.recv_many(&mut round, 4096).await > 0 {
        let result = match raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map_or(0, |id| id.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => Err(ProposeError::LeaderChanged),
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => Err(ProposeError::Timeout),
            Err(RaftError::Fatal(_)) => Err(ProposeError::Stopped),
        };
        for waiter in round.drain(..) {
            let _ = waiter.send(result.clone());
        }
    }
}

/// Maps a failed call to the leader. Only a failure to connect proves the
/// request never arrived; anything else may have been applied.
pub(super) fn unavailable(status: tonic::Status) -> ProposeError {
    let never_connected = std::error::Error::source(&status)
        .and_then(|e| e.downcast_ref::<tonic::transport::Error>())
        .is_some_and(|e| format!("{e:?}").contains("ConnectError"));
    match status.code() {
        tonic::Code::Unavailable if never_connected => ProposeError::NotDelivered,
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => ProposeError::Timeout,
        _ => ProposeError::LeaderChanged,
    }
}
