//! Leadership hand-off when the leader stops, so that clients see no election pause after it:
//! the leader closes its gate (new proposals are refused as not delivered, so followers resend
//! them to the next leader) and waits for those already admitted, so its log is final; then it
//! waits for a follower whose log matches its own, stops sending heartbeats and starting
//! elections, and asks that follower to stand for election (openraft 0.9 has no leadership
//! transfer of its own), again every 200 ms, until another member leads or the time is up.
//! Voters refuse every candidate while their lease on the last heartbeat lasts (openraft's
//! election timeout maximum), so the hand-over takes about that long. A leader that steps down
//! on seeing the candidate's higher term keeps asking that candidate: it no longer knows how far
//! the others' logs reach, and the candidate was caught up with everything it had.

use std::time::Duration;

use openraft::ServerState;
use tokio::time::Instant;

use super::network::encode;
use super::Replica;

/// How often a caught-up follower is asked again.
const ASK_EVERY: Duration = Duration::from_millis(200);
const POLL: Duration = Duration::from_millis(20);

/// Hands leadership to a caught-up follower when this member leads, waiting at most `limit`.
pub async fn hand_off(replica: &Replica, limit: Duration) {
    let member_id = replica.member_id();
    let metrics = replica.raft().metrics().borrow().clone();
    if metrics.current_leader != Some(member_id) {
        return;
    }
    let membership = metrics.membership_config.membership().clone();
    let followers: Vec<u64> = membership.voter_ids().filter(|id| *id != member_id).collect();
    if followers.is_empty() {
        return;
    }
    if hand_over(replica, &followers, limit).await.is_none() {
        tracing::warn!("no follower took over in time; stopping without handing over leadership");
    }
}

/// Moves leadership to `target` (etcd's MoveLeader), waiting at most `limit`; this member goes on
/// as a follower. Returns whether `target` leads now.
pub async fn transfer_leadership(replica: &Replica, target: u64, limit: Duration) -> bool {
    let led = hand_over(replica, &[target], limit).await;
    let raft = replica.raft();
    raft.runtime_config().heartbeat(true);
    raft.runtime_config().elect(true);
    replica.gate.open();
    led == Some(target)
}

/// Asks the first of `candidates` whose log has caught up to stand for election until another member
/// leads or `limit` passes; returns the new leader.
async fn hand_over(replica: &Replica, candidates: &[u64], limit: Duration) -> Option<u64> {
    let (raft, member_id) = (replica.raft(), replica.member_id());
    let membership = raft.metrics().borrow().membership_config.membership().clone();
    let deadline = Instant::now() + limit;
    if !replica.gate.close(deadline).await {
        tracing::warn!("writes in flight were not answered before the hand-over deadline");
    }
    let channels = replica.channels().fresh();
    let mut asked = None;
    loop {
        if Instant::now() >= deadline {
            return None;
        }
        let target = match next_step(raft, member_id, candidates, asked, deadline).await {
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
                let mut request = tonic::Request::new(encode(&()));
                request.set_timeout(ASK_EVERY);
                if let Err(e) = client.elect(request).await {
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
async fn other_leader(raft: &super::Raft, member_id: u64) {
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

/// Waits for a caught-up follower or for another member to lead. Once this member no longer
/// leads, the follower `asked` last is asked again.
async fn next_step(
    raft: &super::Raft,
    member_id: u64,
    followers: &[u64],
    asked: Option<u64>,
    deadline: Instant,
) -> Step {
    loop {
        let metrics = raft.metrics().borrow().clone();
        if let Some(leader) = metrics.current_leader.filter(|leader| *leader != member_id) {
            return Step::Led(leader);
        }
        if let Some(asked) = asked.filter(|_| metrics.state != ServerState::Leader) {
            return Step::Ask(asked);
        }
        let matched = |id: &u64| {
            let replication = metrics.replication.as_ref()?;
            replication.get(id).copied().flatten().map(|log_id| log_id.index)
        };
        // Checked first: a caught-up follower that has stopped would be asked forever.
        if Instant::now() >= deadline {
            return Step::TimedOut;
        }
        if let Some(id) = followers.iter().find(|id| matched(id) == metrics.last_log_index) {
            return Step::Ask(*id);
        }
        tokio::time::sleep(POLL).await;
    }
}
