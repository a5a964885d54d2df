//! The Raft state machine: applies committed entries to the applier in
//! batches (one backend write per batch), and builds and installs snapshots
//! of the whole state keyspace.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError};
use parking_lot::RwLock;

use super::{io_error, Entry, LogId, PeerNode, StorageError, StoredMembership, TypeConfig};
use crate::apply::{Applied, Applier, Records};
use crate::storage::{Backend, Batch, Keyspace};

/// Keys of the Raft bookkeeping kept beside the state it describes.
/// Both under [`crate::apply::RAFT_PREFIX`].
const LAST_APPLIED: &[u8] = b"s/last_applied";
const MEMBERSHIP: &[u8] = b"s/membership";
/// Keys of the snapshot keyspace.
const SNAPSHOT_META: &[u8] = b"meta";
const SNAPSHOT_DATA: &[u8] = b"data";
/// Present while a received snapshot is being installed, so a crash in the
/// middle is finished on the next start.
const INSTALLING: &[u8] = b"installing";

pub struct StateMachine {
    backend: Backend,
    state: Keyspace,
    snapshots: Keyspace,
    /// Shared with the API's read path; written only here, in apply order.
    applier: Arc<RwLock<Applier>>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(io_error(e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(io_error(e)).into()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    bincode::deserialize(bytes).map_err(|e| read_err(*e))
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("in-memory serialization")
}

impl StateMachine {
    pub fn open(backend: &Backend) -> Result<Self, StorageError> {
        let state = backend.keyspace("state").map_err(read_err)?;
        let snapshots = backend.keyspace("snapshot").map_err(read_err)?;
        if snapshots.get(INSTALLING).map_err(read_err)?.is_some() {
            finish_install(&state, &snapshots)?;
        }
        let applier = Applier::open(state.clone()).map_err(read_err)?;
        let last_applied = match state.get(LAST_APPLIED).map_err(read_err)? {
            Some(bytes) => decode(&bytes)?,
            None => None,
        };
        let membership = match state.get(MEMBERSHIP).map_err(read_err)? {
            Some(bytes) => decode(&bytes)?,
            None => StoredMembership::default(),
        };
        Ok(StateMachine {
            backend: backend.clone(),
            state,
            snapshots,
            applier: Arc::new(RwLock::new(applier)),
            last_applied,
            membership,
        })
    }

    pub fn applier(&self) -> Arc<RwLock<Applier>> {
        self.applier.clone()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Applied>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applier = self.applier.write();
        let mut results = Vec::new();
        let mut membership_changed = false;
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            results.push(match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(proposal) => proposal.0.iter().map(|command| applier.apply(command)).collect(),
                EntryPayload::Membership(membership) => {
                    for (id, _) in self.membership.membership().nodes() {
                        if membership.get_node(id).is_none() {
                            applier.members_mut().mark_removed(*id);
                        }
                    }
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    membership_changed = true;
                    Vec::new()
                }
            });
        }
        let mut extra = vec![(LAST_APPLIED.to_vec(), encode(&self.last_applied))];
        if membership_changed {
            extra.push((MEMBERSHIP.to_vec(), encode(&self.membership)));
        }
        crate::metrics::timed(&crate::metrics::BACKEND_COMMIT, || applier.commit(extra)).map_err(write_err)?;
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // Copy the state now, between two applies, so the snapshot is exactly
        // the state at `last_applied`.
        let records = self.applier.read().records().map_err(|e| e.to_string());
        SnapshotBuilder {
            snapshots: self.snapshots.clone(),
            records,
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, PeerNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        save_snapshot(&self.snapshots, meta, snapshot.get_ref())?;
        self.snapshots.insert(INSTALLING, b"1").map_err(write_err)?;
        finish_install(&self.state, &self.snapshots)?;
        self.applier.write().reload(&self.state).map_err(read_err)?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.backend.flush().await.map_err(write_err)?;
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        load_snapshot(&self.snapshots)
    }
}

/// Replaces the state keyspace with the stored snapshot's records.
fn finish_install(state: &Keyspace, snapshots: &Keyspace) -> Result<(), StorageError> {
    let snapshot = load_snapshot(snapshots)?.ok_or_else(|| read_err(std::io::Error::other("snapshot missing")))?;
    let records: Vec<(Vec<u8>, Vec<u8>)> = decode(snapshot.snapshot.get_ref())?;
    state.clear().map_err(write_err)?;
    let mut batch = Batch::default();
    for (key, value) in records {
        batch.insert(key, value);
    }
    batch.insert(LAST_APPLIED, encode(&snapshot.meta.last_log_id));
    batch.insert(MEMBERSHIP, encode(&snapshot.meta.last_membership));
    state.apply(batch).map_err(write_err)?;
    let mut done = Batch::default();
    done.remove(INSTALLING);
    snapshots.apply(done).map_err(write_err)
}

fn save_snapshot(snapshots: &Keyspace, meta: &SnapshotMeta<u64, PeerNode>, data: &[u8]) -> Result<(), StorageError> {
    let mut batch = Batch::default();
    batch.insert(SNAPSHOT_META, encode(meta));
    batch.insert(SNAPSHOT_DATA, data);
    snapshots.apply(batch).map_err(write_err)
}

fn load_snapshot(snapshots: &Keyspace) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
    let meta = snapshots.get(SNAPSHOT_META).map_err(read_err)?;
    let data = snapshots.get(SNAPSHOT_DATA).map_err(read_err)?;
    match (meta, data) {
        (Some(meta), Some(data)) => Ok(Some(Snapshot {
            meta: decode(&meta)?,
            snapshot: Box::new(Cursor::new(data.to_vec())),
        })),
        _ => Ok(None),
    }
}

/// A copy of the state taken between two applies, serialized on demand.
pub struct SnapshotBuilder {
    snapshots: Keyspace,
    /// The state's records, or why they could not be read.
    records: Result<Records, String>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let records = self
            .records
            .as_ref()
            .map_err(|e| read_err(std::io::Error::other(e.clone())))?;
        let data = encode(records);
        let snapshot_id = match self.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        save_snapshot(&self.snapshots, &meta, &data)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
