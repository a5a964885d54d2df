//! Multi-version key-value state with etcd's semantics: one global revision,
//! per-key create/mod revisions and versions, reads at past revisions, and
//! compaction. Nothing here knows about gRPC or Raft.

mod index;
mod lessor;
mod revision;
mod store;
mod watch;

pub use index::{in_range, key_bounds};
pub use lessor::Lessor;
pub use revision::Revision;
pub use store::{RangeOptions, RangeResult, Store, WriteTxn};
pub use watch::{history, WatchHub, WatchMessage, WatchSpec};

/// Errors of the MVCC layer; the API maps each to etcd's wire error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MvccError {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("mvcc: {0}")]
    Storage(String),
}

impl From<crate::storage::StorageError> for MvccError {
    fn from(e: crate::storage::StorageError) -> Self {
        MvccError::Storage(e.to_string())
    }
}
