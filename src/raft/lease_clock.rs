//! When leases expire: the leader's clock. The lease table itself is
//! replicated (`mvcc::Lessor`); expiry times live only on the leader, which
//! revokes expired leases through the log. A new leader gives every lease its
//! full TTL plus an election timeout, so a leader change never expires a live
//! lease early (as etcd's lessor promotion does). Followers ask the leader.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::network::{decode, encode};
use super::{ProposeError, Replica};
use crate::apply::{Applier, Command};

const TICK: Duration = Duration::from_millis(100);

/// A question for the leader's lease clock.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum LeaseQuery {
    /// Keep-alive: restart the lease's TTL.
    Renew(i64),
    TimeToLive(i64),
}

/// The leader's answer: granted TTL and remaining seconds, or None when the
/// lease does not exist.
pub type LeaseAnswer = Option<(i64, i64)>;

pub struct LeaseClock {
    replica: Arc<Replica>,
    applier: Arc<RwLock<Applier>>,
    /// Expiry of each lease, kept only while this member leads.
    expiry: Mutex<HashMap<i64, Instant>>,
    /// Added to every TTL when this member becomes leader.
    election_timeout: Duration,
}

impl LeaseClock {
    pub fn new(replica: Arc<Replica>, applier: Arc<RwLock<Applier>>, election_timeout: Duration) -> Self {
        LeaseClock {
            replica,
            applier,
            expiry: Mutex::default(),
            election_timeout,
        }
    }

    fn leading(&self) -> bool {
        self.replica.leader() == Some(self.replica.member_id())
    }

    /// Answers `query` here when leading, else asks the leader; during an
    /// election it waits for the next leader (within the request timeout).
    pub async fn ask(&self, query: LeaseQuery) -> Result<LeaseAnswer, ProposeError> {
        let deadline = Instant::now() + self.replica.request_timeout();
        loop {
            let leader = self.replica.await_leader(deadline).await?;
            let attempt = if leader == self.replica.member_id() {
                Ok(self.answer(query))
            } else {
                self.ask_leader(leader, query).await
            };
            match attempt {
                Err(ProposeError::LeaderChanged | ProposeError::NotDelivered) if Instant::now() < deadline => {
                    self.replica.await_other_leader(leader, deadline).await
                }
                other => return other,
            }
        }
    }

    async fn ask_leader(&self, leader: u64, query: LeaseQuery) -> Result<LeaseAnswer, ProposeError> {
        let mut client = self.replica.leader_client(leader)?;
        let reply = client
            .lease(encode(&query))
            .await
            .map_err(|_| ProposeError::LeaderChanged)?;
        decode::<Result<LeaseAnswer, ProposeError>>(reply.get_ref())
            .map_err(|e| ProposeError::Internal(e.to_string()))?
    }

    /// The answer of this member's clock (None when it does not lead).
    pub fn answer(&self, query: LeaseQuery) -> LeaseAnswer {
        if !self.leading() {
            return None;
        }
        let (id, renew) = match query {
            LeaseQuery::Renew(id) => (id, true),
            LeaseQuery::TimeToLive(id) => (id, false),
        };
        let ttl = self.applier.read().lessor().ttl(id)?;
        let now = Instant::now();
        let mut expiry = self.expiry.lock();
        let deadline = expiry.entry(id).or_insert(now + Duration::from_secs(ttl as u64));
        if renew {
            *deadline = now + Duration::from_secs(ttl as u64);
        }
        let remaining = deadline.saturating_duration_since(now).as_secs_f64().round() as i64;
        Some((ttl, remaining))
    }

    /// Revokes expired leases while this member leads.
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(TICK);
        let mut was_leading = false;
        loop {
            ticks.tick().await;
            let leading = self.leading();
            if !leading {
                self.expiry.lock().clear();
                was_leading = false;
                continue;
            }
            let extra = if was_leading {
                Duration::ZERO
            } else {
                self.election_timeout
            };
            was_leading = true;
            for id in self.expired(extra) {
                match self.replica.propose(Command::LeaseRevoke { id }).await {
                    Ok(_) => tracing::debug!(lease = %format!("{id:x}"), "lease expired and revoked"),
                    Err(e) => tracing::warn!(lease = %format!("{id:x}"), error = %e, "cannot revoke expired lease"),
                }
            }
        }
    }

    /// Brings the expiry table in line with the lease table (new leases get
    /// their TTL plus `extra`) and returns the leases past their expiry.
    fn expired(&self, extra: Duration) -> Vec<i64> {
        let now = Instant::now();
        let leases: Vec<(i64, i64)> = {
            let applier = self.applier.read();
            let lessor = applier.lessor();
            lessor
                .ids()
                .filter_map(|id| lessor.ttl(id).map(|ttl| (id, ttl)))
                .collect()
        };
        let mut expiry = self.expiry.lock();
        if extra > Duration::ZERO {
            expiry.clear();
        }
        let live: HashMap<i64, i64> = leases.into_iter().collect();
        expiry.retain(|id, _| live.contains_key(id));
        let mut expired = Vec::new();
        for (id, ttl) in live {
            let deadline = *expiry
                .entry(id)
                .or_insert(now + Duration::from_secs(ttl as u64) + extra);
            if deadline <= now {
                expired.push(id);
            }
        }
        expired
    }
}
