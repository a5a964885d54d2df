//! The applier: the replicated commands and how each one changes the state
//! (etcd's applierV3). Raft delivers committed commands here in log order; the
//! API's read path uses the same range logic against the same state.

mod kv;
mod members;

use serde::{Deserialize, Serialize};

use crate::mvcc::{MvccError, Store};
use crate::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, ResponseHeader, TxnRequest,
    TxnResponse,
};
use crate::storage::Keyspace;
pub use members::{MemberAttributes, Members};

/// A command replicated through the Raft log. Request bodies travel as
/// etcd's own protobuf encoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    Put(Vec<u8>),
    DeleteRange(Vec<u8>),
    Txn(Vec<u8>),
    Compact(Vec<u8>),
    /// A member announces its name and client URLs (etcd's publish).
    Publish {
        member_id: u64,
        attributes: MemberAttributes,
    },
}

/// The result of applying a command: the encoded etcd response, or an error.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub outcome: Option<Result<Vec<u8>, ApplyError>>,
}

/// Errors that applying a command can return to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ApplyError {
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("undecodable command")]
    Undecodable,
}

pub struct Applier {
    store: Store,
    members: Members,
}

impl Applier {
    pub fn open(space: Keyspace) -> Result<Self, MvccError> {
        let members = Members::load(&space)?;
        Ok(Applier {
            store: Store::open(space)?,
            members,
        })
    }

    /// Re-reads all state from the backend, after a snapshot replaced it.
    pub fn reload(&mut self, space: &Keyspace) -> Result<(), MvccError> {
        self.members = Members::load(space)?;
        self.store.reload()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn members(&self) -> &Members {
        &self.members
    }

    /// Applies one committed command. Its writes become durable with the next
    /// [`Applier::commit`].
    pub fn apply(&mut self, command: &Command) -> Applied {
        let outcome = match command {
            Command::Put(body) => decode::<PutRequest>(body).and_then(|r| kv::put(&mut self.store, &r)),
            Command::DeleteRange(body) => {
                decode::<DeleteRangeRequest>(body).and_then(|r| kv::delete_range(&mut self.store, &r))
            }
            Command::Txn(body) => decode::<TxnRequest>(body).and_then(|r| kv::txn(&mut self.store, &r)),
            Command::Compact(body) => decode::<CompactionRequest>(body).and_then(|r| kv::compact(&mut self.store, &r)),
            Command::Publish { member_id, attributes } => {
                self.members.publish(*member_id, attributes.clone());
                Ok(Vec::new())
            }
        };
        Applied { outcome: Some(outcome) }
    }

    /// Persists everything applied since the last commit, with `extra`
    /// records of the caller's, atomically.
    pub fn commit(&mut self, extra: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), MvccError> {
        let records = self.members.drain_dirty().chain(extra);
        self.store.commit(records)
    }

    /// Serves a range on the read path.
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, ApplyError> {
        kv::range(&self.store, request)
    }

    /// Serves a transaction without writes on the read path.
    pub fn txn_read_only(&mut self, request: &TxnRequest) -> Result<TxnResponse, ApplyError> {
        kv::txn(&mut self.store, request)
            .and_then(|bytes| prost::Message::decode(bytes.as_slice()).map_err(|_| ApplyError::Undecodable))
    }
}

fn decode<M: prost::Message + Default>(body: &[u8]) -> Result<M, ApplyError> {
    M::decode(body).map_err(|_| ApplyError::Undecodable)
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}
