//! Membership changes with etcd's rules: add (voter or learner), remove,
//! update peer URLs and promote, run by the leader (followers forward them),
//! with etcd's reconfiguration safety checks (`--strict-reconfig-check`).
//!
//! openraft only lets a member vote once it is a learner; a member added as
//! a voter therefore joins as a learner marked [`PeerNode::promote`], is
//! reported as a voter (as etcd reports it), and is promoted by
//! [`promote_caught_up`] as soon as its log has caught up. Until then it does
//! not count towards quorum, where etcd would count it at once: adding a voter
//! never makes the cluster need an extra member to be up.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Membership};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::network::{decode, encode};
use super::{ids, PeerNode, ProposeError, Replica};

/// etcd's HealthInterval: a peer that answered within it counts as connected.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// etcd's maxLearners.
const MAX_LEARNERS: usize = 1;
/// A learner may vote once its log reaches this share of the leader's
/// (etcd's readyPercent).
const READY_SHARE: f64 = 0.9;
/// How often the leader looks for caught-up members to promote.
const PROMOTE_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MembershipChange {
    Add { peer_urls: Vec<String>, learner: bool },
    Remove { id: u64 },
    Update { id: u64, peer_urls: Vec<String> },
    Promote { id: u64 },
}

/// The cluster as a member knows it, for members that join or restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cluster_id: u64,
    pub members: Vec<(u64, PeerNode)>,
    pub removed: Vec<u64>,
}

/// A committed change: the member it concerns, and the log index that holds it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Reconfigured {
    pub id: u64,
    pub log_index: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ReconfigError {
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    #[error(transparent)]
    Propose(#[from] ProposeError),
}

/// Whether a node is a voter as etcd counts them: an openraft voter, or a
/// learner waiting to be promoted.
pub fn counts_as_voter(membership: &Membership<u64, PeerNode>, id: u64) -> bool {
    membership.voter_ids().any(|voter| voter == id) || membership.get_node(&id).is_some_and(|node| node.promote)
}

/// The membership as etcd sees it, taken on the leader.
struct View {
    membership: Membership<u64, PeerNode>,
    voters: Vec<u64>,
    learners: Vec<u64>,
    matched: BTreeMap<u64, u64>,
    last_log_index: u64,
}

impl View {
    fn node(&self, id: u64) -> Result<&PeerNode, ReconfigError> {
        self.membership.get_node(&id).ok_or(ReconfigError::MemberNotFound)
    }

    /// Whether the learner's log is close enough to the leader's to vote.
    fn caught_up(&self, id: u64) -> bool {
        self.matched
            .get(&id)
            .is_some_and(|matched| *matched as f64 >= self.last_log_index as f64 * READY_SHARE)
    }

    fn url_in_use(&self, urls: &[String], except: Option<u64>) -> bool {
        self.membership
            .nodes()
            .filter(|(id, _)| Some(**id) != except)
            .any(|(_, node)| node.peer_urls.iter().any(|url| urls.contains(url)))
    }
}

fn quorum(members: usize) -> usize {
    members / 2 + 1
}

impl Replica {
    /// Runs a membership change on the leader, forwarding it when this member
    /// follows, and returns once this member has applied it.
    pub async fn reconfigure(&self, change: MembershipChange) -> Result<Reconfigured, ReconfigError> {
        let deadline = Instant::now() + self.request_timeout();
        let done = tokio::time::timeout(self.request_timeout(), async {
            loop {
                let leader = self.await_leader(deadline).await?;
                let attempt = if leader == self.member_id() {
                    self.reconfigure_as_leader(change.clone()).await
                } else {
                    self.forward_reconfigure(leader, &change).await
                };
                match attempt {
                    Err(ReconfigError::Propose(ProposeError::NotDelivered | ProposeError::LeaderChanged))
                        if Instant::now() < deadline =>
                    {
                        self.await_other_leader(leader, deadline).await
                    }
                    other => break other,
                }
            }
        })
        .await
        .map_err(|_| ProposeError::Timeout)??;
        self.raft()
            .wait(Some(self.request_timeout()))
            .applied_index_at_least(Some(done.log_index), "membership change applied")
            .await
            .map_err(|_| ProposeError::Timeout)?;
        Ok(done)
    }

    async fn forward_reconfigure(&self, leader: u64, change: &MembershipChange) -> Result<Reconfigured, ReconfigError> {
        let mut client = self.leader_client(leader)?;
        let reply = client
            .reconfigure(encode(change))
            .await
            .map_err(super::replica::unavailable)?;
        decode::<Result<Reconfigured, ReconfigError>>(reply.get_ref())
            .map_err(|e| ProposeError::Internal(e.to_string()))?
    }

    /// On the leader: checks and commits one change at a time.
    pub async fn reconfigure_as_leader(&self, change: MembershipChange) -> Result<Reconfigured, ReconfigError> {
        let _one_at_a_time = self.reconfiguring.lock().await;
        let view = self.view()?;
        let (id, changes) = match change {
            MembershipChange::Add { peer_urls, learner } => {
                let id = self.check_add(&view, &peer_urls, learner)?;
                let node = PeerNode {
                    name: String::new(),
                    peer_urls,
                    promote: !learner,
                };
                (id, ChangeMembers::AddNodes(BTreeMap::from([(id, node)])))
            }
            MembershipChange::Remove { id } => {
                self.check_remove(&view, id)?;
                let ids = BTreeSet::from([id]);
                if view.membership.voter_ids().any(|voter| voter == id) {
                    (id, ChangeMembers::RemoveVoters(ids))
                } else {
                    (id, ChangeMembers::RemoveNodes(ids))
                }
            }
            MembershipChange::Update { id, peer_urls } => {
                let node = view.node(id)?.clone();
                if view.url_in_use(&peer_urls, Some(id)) {
                    return Err(ReconfigError::PeerUrlExists);
                }
                let node = PeerNode { peer_urls, ..node };
                (id, ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
            }
            MembershipChange::Promote { id } => {
                self.check_promote(&view, id)?;
                (id, ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            }
        };
        let response = self
            .raft()
            .change_membership(changes, false)
            .await
            .map_err(write_error)?;
        tracing::info!(member = %format!("{id:x}"), log_index = response.log_id.index, "membership changed");
        Ok(Reconfigured {
            id,
            log_index: response.log_id.index,
        })
    }

    fn view(&self) -> Result<View, ReconfigError> {
        let metrics = self.raft().metrics().borrow().clone();
        if metrics.current_leader != Some(self.member_id()) {
            return Err(ProposeError::LeaderChanged.into());
        }
        let membership = metrics.membership_config.membership().clone();
        let (voters, learners) = membership
            .nodes()
            .map(|(id, _)| *id)
            .partition(|id| counts_as_voter(&membership, *id));
        let mut matched: BTreeMap<u64, u64> = metrics
            .replication
            .iter()
            .flatten()
            .filter_map(|(id, log_id)| Some((*id, log_id.as_ref()?.index)))
            .collect();
        let last_log_index = metrics.last_log_index.unwrap_or(0);
        matched.insert(self.member_id(), last_log_index);
        Ok(View {
            membership,
            voters,
            learners,
            matched,
            last_log_index,
        })
    }

    /// etcd's IsStarted: the member has a name, from `--initial-cluster` or
    /// published when it started.
    fn started(&self, view: &View, id: u64) -> bool {
        id == self.member_id()
            || view.membership.get_node(&id).is_some_and(|node| !node.name.is_empty())
            || self.applier().read().members().get(id).is_some()
    }

    /// Whether the member answered Raft messages within etcd's health interval.
    fn connected(&self, id: u64) -> bool {
        id == self.member_id()
            || self
                .channels()
                .last_answer(id)
                .is_some_and(|at| at.elapsed() <= HEALTH_INTERVAL)
    }

    /// etcd's order: the reconfiguration safety checks first (refused before the change is
    /// proposed), then the checks the change meets when applied.
    fn check_add(&self, view: &View, peer_urls: &[String], learner: bool) -> Result<u64, ReconfigError> {
        if self.strict_reconfig_check() {
            let members = view.voters.len() + 1;
            let started = view.voters.iter().filter(|id| self.started(view, **id)).count();
            let first_addition = started == 1 && members == 2;
            if !learner && !first_addition && started < quorum(members) {
                return Err(ReconfigError::NotEnoughStarted);
            }
            if !view.voters.iter().all(|id| self.connected(*id)) {
                return Err(ReconfigError::Unhealthy);
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let id = ids::member_id(peer_urls, &now.to_string());
        if view.membership.get_node(&id).is_some() || self.applier().read().members().is_removed(id) {
            return Err(ReconfigError::MemberExists);
        }
        if view.url_in_use(peer_urls, None) {
            return Err(ReconfigError::PeerUrlExists);
        }
        if learner && view.learners.len() >= MAX_LEARNERS {
            return Err(ReconfigError::TooManyLearners);
        }
        Ok(id)
    }

    fn check_remove(&self, view: &View, id: u64) -> Result<(), ReconfigError> {
        view.node(id)?;
        if !self.strict_reconfig_check() || !view.voters.contains(&id) {
            return Ok(());
        }
        let others: Vec<u64> = view.voters.iter().copied().filter(|voter| *voter != id).collect();
        let started = others.iter().filter(|other| self.started(view, **other)).count();
        if started < quorum(others.len()) {
            return Err(ReconfigError::NotEnoughStarted);
        }
        // A member that is down (no answer within the health interval, or never) is not part of
        // the active quorum: removing it is safe, as etcd's transport "active since" check has it.
        if id != self.member_id() && !self.connected(id) {
            return Ok(());
        }
        let active = view.voters.iter().filter(|voter| self.connected(**voter)).count();
        if active.saturating_sub(1) < 1 + (view.voters.len() - 1) / 2 {
            return Err(ReconfigError::Unhealthy);
        }
        Ok(())
    }

    fn check_promote(&self, view: &View, id: u64) -> Result<(), ReconfigError> {
        view.node(id)?;
        if view.voters.contains(&id) {
            return Err(ReconfigError::MemberNotLearner);
        }
        if !view.caught_up(id) {
            return Err(ReconfigError::LearnerNotReady);
        }
        if self.strict_reconfig_check() {
            let members = view.voters.len() + 1;
            let started = view.voters.iter().filter(|voter| self.started(view, **voter)).count() + 1;
            if started < quorum(members) {
                return Err(ReconfigError::NotEnoughStarted);
            }
        }
        Ok(())
    }
}

fn write_error(e: RaftError<u64, ClientWriteError<u64, PeerNode>>) -> ReconfigError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ProposeError::LeaderChanged.into(),
        RaftError::APIError(e) => ProposeError::Internal(e.to_string()).into(),
        RaftError::Fatal(_) => ProposeError::Stopped.into(),
    }
}

/// On the leader: promotes members added as voters once their log has caught
/// up, one at a time.
pub async fn promote_caught_up(replica: Arc<Replica>) {
    let mut ticks = tokio::time::interval(PROMOTE_EVERY);
    loop {
        ticks.tick().await;
        let Ok(view) = replica.view() else { continue };
        let waiting = view
            .membership
            .nodes()
            .filter(|(id, node)| node.promote && !view.membership.voter_ids().any(|voter| voter == **id))
            .map(|(id, _)| *id)
            .find(|id| view.caught_up(*id) && replica.connected(*id));
        let Some(id) = waiting else { continue };
        let _one_at_a_time = replica.reconfiguring.lock().await;
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        match replica.raft().change_membership(change, false).await {
            Ok(_) => tracing::info!(member = %format!("{id:x}"), "member caught up; it now votes"),
            Err(e) => tracing::debug!(member = %format!("{id:x}"), error = %e, "promotion deferred"),
        }
    }
}
