//! The Raft log and vote in sled. Appends are acknowledged to openraft only
//! after a flush made them durable; a single flusher task groups the flushes
//! of appends that arrive while one is in progress.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError, Vote};
use tokio::sync::mpsc;

use super::{io_error, Entry, LogId, StorageError, TypeConfig};
use crate::storage::{Backend, Batch, Keyspace};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct LogStore {
    backend: Backend,
    /// Entries keyed by big-endian index, so key order is log order.
    log: Keyspace,
    /// Vote, committed and purge marks.
    meta: Keyspace,
    /// Appends waiting for their flush; see [`flusher`].
    flushes: mpsc::UnboundedSender<LogFlushed<TypeConfig>>,
}

impl LogStore {
    /// Opens the log; must be called inside a tokio runtime (it starts the
    /// flusher task).
    pub fn open(backend: &Backend) -> crate::storage::Result<Self> {
        let (flushes, pending) = mpsc::unbounded_channel();
        tokio::spawn(flusher(backend.clone(), pending));
        Ok(LogStore {
            backend: backend.clone(),
            log: backend.keyspace("raft_log")?,
            meta: backend.keyspace("raft_meta")?,
            flushes,
        })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let read = |e| StorageIOError::read_logs(io_error(e));
        match self.meta.get(key).map_err(read)? {
            Some(bytes) => Ok(Some(
                bincode::deserialize(&bytes).map_err(|e| StorageIOError::read_logs(io_error(*e)))?,
            )),
            None => Ok(None),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        let bytes = bincode::serialize(value).map_err(|e| StorageIOError::write_logs(io_error(*e)))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| StorageIOError::write_logs(io_error(e)).into())
    }

    async fn flush(&self) -> Result<(), StorageError> {
        self.backend
            .flush()
            .await
            .map_err(|e| StorageIOError::write_logs(io_error(e)).into())
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.log.last().map_err(|e| StorageIOError::read_logs(io_error(e)))? {
            Some((_, bytes)) => Ok(Some(decode_entry(&bytes)?.log_id)),
            None => Ok(None),
        }
    }
}

/// Completes appends in order, one flush for everything queued so far.
async fn flusher(backend: Backend, mut pending: mpsc::UnboundedReceiver<LogFlushed<TypeConfig>>) {
    let mut batch = Vec::new();
    while pending.recv_many(&mut batch, 1024).await > 0 {
        let result = backend.flush().await.map_err(std::io::Error::other);
        for callback in batch.drain(..) {
            let result = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            callback.log_io_completed(result);
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn decode_entry(bytes: &[u8]) -> Result<Entry, StorageError> {
    bincode::deserialize(bytes).map_err(|e| StorageIOError::read_logs(io_error(*e)).into())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i).to_vec()),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i).to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.log
            .range((Bound::Included(index_key(start).to_vec()), end))
            .map(|record| {
                let (_, bytes) = record.map_err(|e| StorageIOError::read_logs(io_error(e)))?;
                decode_entry(&bytes)
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(LAST_PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        self.write_meta(VOTE, vote)?;
        self.flush().await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.read_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        crate::metrics::PROPOSALS_COMMITTED.set(committed.map_or(0, |id| id.index) as i64);
        self.write_meta(COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = Batch::default();
        let mut appended = 0;
        for entry in entries {
            appended += 1;
            let bytes =
                bincode::serialize(&entry).map_err(|e| StorageIOError::write_log_entry(entry.log_id, io_error(*e)))?;
            batch.insert(index_key(entry.log_id.index), bytes);
        }
        if appended == 0 {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        self.log
            .apply(batch)
            .map_err(|e| StorageIOError::write_logs(io_error(e)))?;
        // The flusher reports the append as persisted after its flush.
        self.flushes
            .send(callback)
            .map_err(|_| StorageIOError::write_logs(io_error(std::io::Error::other("log flusher stopped"))))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove_range(Bound::Included(index_key(log_id.index).to_vec()), Bound::Unbounded)?;
        self.flush().await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write_meta(LAST_PURGED, &log_id)?;
        self.remove_range(Bound::Unbounded, Bound::Included(index_key(log_id.index).to_vec()))
    }
}

impl LogStore {
    fn remove_range(&self, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        for record in self.log.range((start, end)) {
            let (key, _) = record.map_err(|e| StorageIOError::write_logs(io_error(e)))?;
            batch.remove(key);
        }
        self.log
            .apply(batch)
            .map_err(|e| StorageIOError::write_logs(io_error(e)).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::{StoreBuilder, Suite};

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, super::super::StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, super::super::StateMachine), StorageError> {
            let dir = tempfile::tempdir().unwrap();
            let backend = Backend::open(dir.path()).unwrap();
            let log = LogStore::open(&backend).unwrap();
            let sm = super::super::StateMachine::open(&backend).unwrap();
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn passes_openraft_storage_suite() {
        Suite::test_all(Builder).unwrap();
    }
}
