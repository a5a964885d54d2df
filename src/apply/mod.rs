//! The applier: the replicated commands and how each one changes the state
//! (etcd's applierV3). Raft delivers committed commands here in log order; the
//! API's read path uses the same range logic against the same state.

mod alarms;
mod kv;
mod members;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::auth::{self, AuthCommand, AuthError, AuthState, Need};
use crate::mvcc::{Lessor, MvccError, Store, WatchHub};
use crate::proto::etcdserverpb::{
    AlarmResponse, AlarmType, CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse,
    ResponseHeader, TxnRequest, TxnResponse,
};
use crate::storage::Keyspace;
pub use alarms::Alarms;
pub use kv::is_read_only;
pub use members::{MemberAttributes, Members};

/// Key-value records of the state keyspace, in key order.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// Keys of Raft's bookkeeping in the state keyspace (see `raft::state_machine`).
pub const RAFT_PREFIX: &[u8] = b"s/";

/// Whether a state record describes the cluster rather than its data
/// (members, removed members, alarms): a restore into a new cluster drops them.
pub fn is_cluster_record(key: &[u8]) -> bool {
    [members::PUBLISHED, members::REMOVED, alarms::PREFIX]
        .iter()
        .any(|prefix| key.starts_with(prefix))
}

/// A command replicated through the Raft log. Request bodies travel as
/// etcd's own protobuf encoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    Put(Vec<u8>),
    DeleteRange(Vec<u8>),
    Txn(Vec<u8>),
    Compact(Vec<u8>),
    /// A lease with an ID chosen before proposing, so every member applies
    /// the same one.
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    /// Raises, clears or lists alarms (etcd's AlarmRequest).
    Alarm {
        action: i32,
        member_id: u64,
        alarm: i32,
    },
    /// A member announces its name and client URLs (etcd's publish).
    Publish {
        member_id: u64,
        attributes: MemberAttributes,
    },
    /// A change to users, roles or auth itself, or a simple token's assignment.
    Auth(AuthCommand),
    /// A client's command, checked against the auth rules in force when it
    /// is applied (`user`: whom the client authenticated as, if anyone).
    As {
        user: Option<String>,
        command: Box<Command>,
    },
}

impl Command {
    /// Bytes the command carries, to bound how many share a log entry.
    pub fn size(&self) -> usize {
        match self {
            Command::Put(b) | Command::DeleteRange(b) | Command::Txn(b) | Command::Compact(b) => b.len(),
            Command::LeaseGrant { .. }
            | Command::LeaseRevoke { .. }
            | Command::Publish { .. }
            | Command::Alarm { .. } => 16,
            Command::Auth(_) => 64,
            Command::As { user, command } => user.as_ref().map_or(0, String::len) + command.size(),
        }
    }
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
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("undecodable command")]
    Undecodable,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: {0}")]
    Auth(#[from] AuthError),
}

pub struct Applier {
    store: Store,
    members: Members,
    alarms: Alarms,
    auth: AuthState,
    lessor: Lessor,
    /// Receives every applied change; shared with the Watch API.
    watches: Arc<WatchHub>,
}

impl Applier {
    pub fn open(space: Keyspace) -> Result<Self, MvccError> {
        let members = Members::load(&space)?;
        let alarms = Alarms::load(&space)?;
        let auth = AuthState::load(&space)?;
        let store = Store::open(space.clone())?;
        let lessor = Lessor::load(&space, &store)?;
        Ok(Applier {
            store,
            members,
            alarms,
            auth,
            lessor,
            watches: Arc::default(),
        })
    }

    /// Re-reads all state from the backend, after a snapshot replaced it.
    pub fn reload(&mut self, space: &Keyspace) -> Result<(), MvccError> {
        self.members = Members::load(space)?;
        self.alarms = Alarms::load(space)?;
        let ttl = self.auth.token_ttl();
        self.auth = AuthState::load(space)?;
        self.auth.set_token_ttl(ttl);
        self.store.reload()?;
        self.lessor = Lessor::load(space, &self.store)?;
        Ok(())
    }

    pub fn lessor(&self) -> &Lessor {
        &self.lessor
    }

    pub fn watches(&self) -> Arc<WatchHub> {
        self.watches.clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn members(&self) -> &Members {
        &self.members
    }

    pub fn members_mut(&mut self) -> &mut Members {
        &mut self.members
    }

    pub fn alarms(&self) -> &Alarms {
        &self.alarms
    }

    pub fn auth(&self) -> &AuthState {
        &self.auth
    }

    pub fn auth_mut(&mut self) -> &mut AuthState {
        &mut self.auth
    }

    /// Whether `user` may run `command` under the auth rules in force.
    fn authorize(&self, user: Option<&str>, command: &Command) -> Result<(), ApplyError> {
        if !self.auth.enabled() {
            return Ok(());
        }
        let needs = match command {
            Command::Put(body) => auth::needs_of_put(&decode(body)?),
            Command::DeleteRange(body) => auth::needs_of_delete(&decode(body)?),
            Command::Txn(body) => auth::needs_of_txn(&decode(body)?),
            Command::LeaseRevoke { id } => vec![Need::LeaseKeys(*id)],
            Command::Auth(AuthCommand::Authenticate { .. }) => Vec::new(),
            Command::Auth(_) => vec![Need::Admin],
            _ => Vec::new(),
        };
        if needs.is_empty() {
            return Ok(());
        }
        let lease_keys = |id: i64| self.lessor.keys(id);
        Ok(self.auth.check(user, &needs, &lease_keys)?)
    }

    /// Every replicated record (key-value history, leases, members, alarms),
    /// without Raft's bookkeeping: what a snapshot holds.
    pub fn records(&self) -> Result<Records, MvccError> {
        let mut records = Vec::new();
        for record in self.store.keyspace().scan_prefix(b"") {
            let (key, value) = record?;
            if !key.starts_with(RAFT_PREFIX) {
                records.push((key.to_vec(), value.to_vec()));
            }
        }
        Ok(records)
    }

    /// etcd's Hash: a CRC-32 of every replicated record.
    pub fn hash(&self) -> Result<u32, MvccError> {
        let mut hasher = crc32fast::Hasher::new();
        for (key, value) in self.records()? {
            hasher.update(&key);
            hasher.update(&value);
        }
        Ok(hasher.finalize())
    }

    /// Whether NOSPACE refuses this command (etcd's capped applier: writes
    /// that add data fail; deletes and compaction still work).
    fn capped(&self, command: &Command) -> bool {
        if !self.alarms.is_active(AlarmType::Nospace) {
            return false;
        }
        match command {
            Command::Put(_) | Command::LeaseGrant { .. } => true,
            Command::Txn(body) => decode::<TxnRequest>(body).is_ok_and(|r| !kv::is_read_only(&r)),
            _ => false,
        }
    }

    /// Applies one committed command. Its writes become durable with the next
    /// [`Applier::commit`].
    pub fn apply(&mut self, command: &Command) -> Applied {
        if self.capped(command) {
            return Applied {
                outcome: Some(Err(ApplyError::NoSpace)),
            };
        }
        let outcome = match command {
            Command::Put(body) => {
                decode::<PutRequest>(body).and_then(|r| kv::put(&mut self.store, &mut self.lessor, &r))
            }
            Command::DeleteRange(body) => {
                decode::<DeleteRangeRequest>(body).and_then(|r| kv::delete_range(&mut self.store, &mut self.lessor, &r))
            }
            Command::Txn(body) => {
                decode::<TxnRequest>(body).and_then(|r| kv::txn(&mut self.store, &mut self.lessor, &r))
            }
            Command::LeaseGrant { id, ttl } => kv::lease_grant(&self.store, &mut self.lessor, *id, *ttl),
            Command::LeaseRevoke { id } => kv::lease_revoke(&mut self.store, &mut self.lessor, *id),
            Command::Compact(body) => decode::<CompactionRequest>(body).and_then(|r| kv::compact(&mut self.store, &r)),
            Command::Publish { member_id, attributes } => {
                self.members.publish(*member_id, attributes.clone());
                Ok(Vec::new())
            }
            Command::Alarm {
                action,
                member_id,
                alarm,
            } => {
                let alarms = self.alarms.apply(*action, *member_id, *alarm);
                let response = AlarmResponse {
                    header: header(self.store.revision()),
                    alarms,
                };
                Ok(prost::Message::encode_to_vec(&response))
            }
            Command::Auth(change) => self.auth.apply(change).map_err(ApplyError::from).map(|()| {
                // Every auth response is a header alone (field 1).
                let response = crate::proto::etcdserverpb::AuthEnableResponse {
                    header: header(self.store.revision()),
                };
                prost::Message::encode_to_vec(&response)
            }),
            Command::As { user, command } => match self.authorize(user.as_deref(), command) {
                Ok(()) => return self.apply(command),
                Err(e) => Err(e),
            },
        };
        Applied { outcome: Some(outcome) }
    }

    /// Persists everything applied since the last commit, with `extra`
    /// records of the caller's, atomically.
    /// Then hands the batch's changes to the watchers.
    pub fn commit(&mut self, extra: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), MvccError> {
        let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .members
            .drain_dirty()
            .chain(self.alarms.drain_dirty())
            .chain(self.auth.drain_dirty())
            .chain(extra.into_iter().map(|(k, v)| (k, Some(v))))
            .chain(self.lessor.drain_dirty())
            .collect();
        self.store.commit(records)?;
        let events = self.store.take_events();
        if !events.is_empty() {
            self.watches.publish(&events, self.store.revision(), &self.store);
        }
        Ok(())
    }

    /// Serves a range on the read path.
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, ApplyError> {
        kv::range(&self.store, request)
    }

    /// Serves a transaction without writes on the read path.
    pub fn txn_read_only(&mut self, request: &TxnRequest) -> Result<TxnResponse, ApplyError> {
        kv::txn(&mut self.store, &mut self.lessor, request)
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
