//! Leadership hand-off when the leader stops, so that clients see no election pause after it:
//! the leader waits for a follower whose log matches its own, stops sending heartbeats and
//! starting elections, and asks that follower to stand for election (openraft 0.9 has no
//! leadership transfer of its own; writes forwarded to it meanwhile are refused as not
//! delivered, and followers resend them to the next leader), again every 200 ms and each time of a follower caught up
//! then (writes forwarded meanwhile may move the log on), until another member leads or the
//! time is up. Voters refuse every candidate while their lease on the last heartbeat lasts
//! (openraft's election timeout maximum), so the hand-over takes about that long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::network::{encode, PeerChannels};
use super::Raft;

/// How often a caught-up follower is asked again.
const ASK_EVERY: Duration = Duration::from_millis(200);
const POLL: Duration = Duration::from_millis(20);

/// Set while this member hands leadership over (one member per process): writes forwarded to
/// it are then refused as not delivered, so followers resend them to the next leader instead of
/// moving the log on past the follower chosen to lead.
static HANDING_OVER: AtomicBool = AtomicBool::new(false);

/// Whether this member is handing leadership over.
pub fn handing_over() -> bool {
    HANDING_OVER.load(Ordering::Relaxed)
}

/// Hands leadership to a caught-up follower when this member leads, waiting at most `limit`.
pub async fn hand_off(raft: &Raft, member_id: u64, limit: Duration) {
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(member_id) {
        return;
    }
    let membership = metrics.membership_config.membership().clone();
    let followers: Vec<u64> = membership.voter_ids().filter(|id| *id != member_id).collect();
    if followers.is_empty() {
        return;
    }
    if hand_over(raft, member_id, &followers, limit).await.is_none() {
        tracing::warn!("no follower took over in time; stopping without handing over leadership");
    }
}

/// Moves leadership to `target` (etcd's MoveLeader), waiting at most `limit`; this member goes on
/// as a follower. Returns whether `target` leads now.
pub async fn transfer_leadership(raft: &Raft, member_id: u64, target: u64, limit: Duration) -> bool {
    let led = hand_over(raft, member_id, &[target], limit).await;
    raft.runtime_config().heartbeat(true);
    raft.runtime_config().elect(true);
    HANDING_OVER.store(false, Ordering::Relaxed);
    led == Some(target)
}

/// Asks the first of `candidates` whose log has caught up to stand for election until another member
/// leads or `limit` passes; returns the new leader.
async fn hand_over(raft: &Raft, member_id: u64, candidates: &[u64], limit: Duration) -> Option<u64> {
    let membership = raft.metrics().borrow().membership_config.membership().clone();
    HANDING_OVER.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + limit;
    let channels = PeerChannels::default();
    let mut asked = None;
    loop {
        let target = match next_step(raft, member_id, candidates, deadline).await {
            Step::Ask(target) => target,
            Step::Led(leader) => {
                handed_over(&membership, leader);
                return Some(leader);
            }
            Step::TimedOut => return None,
        };
        let node = membership.get_node(&target).cloned().unwrap_or_default();
        if asked.is_none() {
            raft.runtime_config().heartbeat(false);
            raft.runtime_config().elect(false);
        }
        if asked != Some(target) {
            tracing::info!(to = %node.name, "handing over leadership");
            asked = Some(target);
        }
        match channels.client(target, &node) {
            Ok(mut client) => {
                if let Err(e) = client.elect(encode(&())).await {
                    tracing::debug!(error = %e, "election request failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach the follower chosen to lead"),
        }
        let _ = tokio::time::timeout(ASK_EVERY, other_leader(raft, member_id)).await;
    }
}

fn handed_over(membership: &openraft::Membership<u64, super::PeerNode>, leader: u64) {
    let name = membership
        .get_node(&leader)
        .map_or(String::new(), |node| node.name.clone());
    tracing::info!(leader = %name, "leadership handed over");
}

/// Resolves once another member leads.
async fn other_leader(raft: &Raft, member_id: u64) {
    let mut metrics = raft.metrics();
    let _ = metrics
        .wait_for(|m| m.current_leader.is_some_and(|leader| leader != member_id))
        .await;
}

enum Step {
    /// Ask this follower, whose log reaches the leader's last entry, to stand for election.
    Ask(u64),
    /// Another member leads.
    Led(u64),
    TimedOut,
}

/// Waits for a caught-up follower or for another member to lead.
async fn next_step(raft: &Raft, member_id: u64, followers: &[u64], deadline: Instant) -> Step {
    loop {
        let metrics = raft.metrics().borrow().clone();
        if let Some(leader) = metrics.current_leader.filter(|leader| *leader != member_id) {
            return Step::Led(leader);
        }
        let matched = |id: &u64| {
            let replication = metrics.replication.as_ref()?;
            replication.get(id).copied().flatten().map(|log_id| log_id.index)
        };
        if let Some(id) = followers.iter().find(|id| matched(id) == metrics.last_log_index) {
            return Step::Ask(*id);
        }
        if Instant::now() >= deadline {
            return Step::TimedOut;
        }
        tokio::time::sleep(POLL).await;
    }
}
