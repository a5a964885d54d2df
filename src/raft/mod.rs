//! Consensus: openraft's type configuration for ferrocd, the sled-backed log
//! and state machine, the peer network, and the [`Replica`] handle the API
//! uses to propose commands and to make reads linearizable.

// openraft's storage traits fix the error type (`StorageError`, ~224 bytes);
// boxing it in our helpers would only move the conversion around.
#![allow(clippy::result_large_err)]

mod gate;
mod handoff;
pub mod ids;
mod lease_clock;
mod log_store;
mod membership;
mod network;
mod peer_service;
mod replica;
mod state_machine;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::apply::{Applied, Command};

pub use handoff::{hand_off, transfer_leadership};
pub use lease_clock::{LeaseClock, LeaseQuery};
pub use log_store::LogStore;
pub use membership::{counts_as_voter, promote_caught_up, ClusterInfo, MembershipChange, ReconfigError, Reconfigured};
pub use network::REMOVED_MESSAGE;
pub use network::{PeerChannels, PeerNetwork, MAX_PEER_MESSAGE};
pub use peer_service::PeerService;
pub use replica::{ProposeError, Replica, ReplicaOptions};
pub use state_machine::StateMachine;

openraft::declare_raft_types!(
    /// ferrocd's openraft types: batches of commands in, their results out,
    /// members identified by etcd's member IDs.
    pub TypeConfig:
        D = Proposal,
        R = Vec<Applied>,
        NodeId = u64,
        Node = PeerNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;

/// One log entry's worth of commands: concurrent proposals share an entry,
/// and so one disk flush (openraft 0.9 flushes every append before taking
/// the next one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal(pub Vec<Command>);
pub type LogId = openraft::LogId<u64>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<u64, PeerNode>;
pub type StorageError = openraft::StorageError<u64>;

/// What the Raft membership records of a member: how to reach it, the name
/// it was given in `--initial-cluster` (empty for members added later, until
/// they publish one), and whether it was added as a voter. openraft brings a
/// voter in as a learner until it has caught up; etcd counts it as a voter
/// from the start, and so does everything ferrocd reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub promote: bool,
}

fn io_error(e: impl std::error::Error + 'static) -> openraft::AnyError {
    openraft::AnyError::new(&e)
}
