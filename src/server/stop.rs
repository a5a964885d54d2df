//! Stopping a member in a fixed order, each step within a limit, so that no client, stream or
//! stuck step holds the process up: client listeners stop accepting and drain (streams still
//! open at the deadline, such as watches and lease keep-alives, are cut); a leader hands
//! leadership over; Raft stops; peer listeners drain the same way; the data is flushed.
//!
//! A stop therefore takes at most [`DRAIN_DEADLINE`] (plus a second to cut what is left),
//! three election timeouts for the hand-over, [`RAFT_STOP_DEADLINE`], [`DRAIN_DEADLINE`] again
//! for the peers and the final flush. A second signal ends the process at once
//! (`system::signals`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::listeners;
use super::severable::Stage;
use crate::raft::{Raft, Replica};
use crate::storage::Backend;

/// How long requests and streams in flight may take to finish once a listener stops accepting.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
/// How long Raft may take to stop.
pub const RAFT_STOP_DEADLINE: Duration = Duration::from_secs(5);

/// The listeners of one kind and the stage that stops them.
pub struct Listeners {
    pub servers: Vec<JoinHandle<()>>,
    pub stage: watch::Sender<Stage>,
    /// `client` or `peer`, for the log.
    pub what: &'static str,
}

impl Listeners {
    async fn drain(mut self) {
        if !listeners::drain(&mut self.servers, &self.stage, DRAIN_DEADLINE).await {
            tracing::warn!(
                "{} requests or streams still open {DRAIN_DEADLINE:?} after the stop began; closed them",
                self.what
            );
        }
        tracing::info!("{} listeners stopped", self.what);
    }
}

/// What a running member is made of, as far as stopping it goes.
pub struct Member {
    pub clients: Listeners,
    pub peers: Listeners,
    pub raft: Raft,
    pub replica: Arc<Replica>,
    pub election_timeout: Duration,
    pub backend: Backend,
}

/// Stops `member` in order; see the module documentation.
pub async fn stop(member: Member) -> anyhow::Result<()> {
    member.clients.drain().await;
    // A leader that removed itself hands over too: the others need not wait for an election
    // timeout.
    let hand_off_limit = 3 * member.election_timeout;
    crate::raft::hand_off(&member.replica, hand_off_limit).await;
    match tokio::time::timeout(RAFT_STOP_DEADLINE, member.raft.shutdown()).await {
        Ok(Ok(())) => tracing::info!("raft stopped"),
        Ok(Err(e)) => anyhow::bail!("raft shutdown: {e}"),
        Err(_) => tracing::warn!("raft did not stop within {RAFT_STOP_DEADLINE:?}; going on without it"),
    }
    member.peers.drain().await;
    let backend = member.backend;
    backend.flush_blocking()?;
    let stats = backend.flush_stats();
    let flushes = stats.count.load(Ordering::Relaxed);
    let micros = stats.total_micros.load(Ordering::Relaxed);
    tracing::info!(
        flushes,
        mean_flush_ms = micros as f64 / flushes.max(1) as f64 / 1000.0,
        "data flushed; member stopped"
    );
    Ok(())
}
