//! The narrow storage interface: everything ferrocd persists goes through the
//! few operations here, implemented on sled.
//!
//! sled holds writes in memory until they are flushed; nothing written here is
//! durable before [`Backend::flush`] returns, and callers that acknowledge
//! writes (Raft votes and log appends) flush first. On Linux sled's own flush
//! ends in `sync_file_range`, which neither persists the file's metadata nor
//! flushes the drive's cache, so every flush is followed by an `fdatasync`
//! of sled's log file.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use sled::IVec as Bytes;

/// sled's page cache. Its default (1 GiB) would dominate our memory use; the
/// working set that matters (the key index) lives outside sled anyway.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(#[from] sled::Error);

pub type Result<T> = std::result::Result<T, StorageError>;

/// The database of one member: a set of named keyspaces that flush together.
#[derive(Clone)]
pub struct Backend {
    db: sled::Db,
    /// sled's data file, kept open to `fdatasync` it after each flush.
    data_file: Arc<std::fs::File>,
    stats: Arc<FlushStats>,
}

/// Counts of durable flushes, for metrics and for tests that check that a
/// reply never precedes the flush that made it durable.
#[derive(Default, Debug)]
pub struct FlushStats {
    pub count: AtomicU64,
    pub total_micros: AtomicU64,
}

impl Backend {
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .open()?;
        let data_file = std::fs::File::open(dir.join("db")).map_err(sled::Error::Io)?;
        Ok(Backend {
            db,
            data_file: Arc::new(data_file),
            stats: Arc::default(),
        })
    }

    pub fn keyspace(&self, name: &str) -> Result<Keyspace> {
        Ok(Keyspace(self.db.open_tree(name)?))
    }

    /// Makes everything written so far durable (fsync).
    pub async fn flush(&self) -> Result<()> {
        let started = Instant::now();
        self.db.flush_async().await?;
        let file = self.data_file.clone();
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|e| sled::Error::Io(std::io::Error::other(e)))?
            .map_err(sled::Error::Io)?;
        self.record_flush(started.elapsed());
        Ok(())
    }

    /// Blocking variant of [`Backend::flush`] for shutdown paths.
    pub fn flush_blocking(&self) -> Result<()> {
        let started = Instant::now();
        self.db.flush()?;
        self.data_file.sync_data().map_err(sled::Error::Io)?;
        self.record_flush(started.elapsed());
        Ok(())
    }

    fn record_flush(&self, took: Duration) {
        crate::metrics::WAL_FSYNC.observe(took.as_secs_f64());
        self.stats.count.fetch_add(1, Ordering::Relaxed);
        self.stats
            .total_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn flush_stats(&self) -> &FlushStats {
        &self.stats
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// One ordered keyspace of byte keys and values.
#[derive(Clone)]
pub struct Keyspace(sled::Tree);

/// Writes applied to a keyspace atomically.
#[derive(Default)]
pub struct Batch {
    inner: sled::Batch,
    len: usize,
}

impl Batch {
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.inner.insert(key.as_ref(), value.as_ref());
        self.len += 1;
    }

    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.inner.remove(key.as_ref());
        self.len += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Keyspace {
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        Ok(self.0.get(key)?)
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.0.insert(key.as_ref(), value.as_ref())?;
        Ok(())
    }

    pub fn apply(&self, batch: Batch) -> Result<()> {
        if !batch.is_empty() {
            self.0.apply_batch(batch.inner)?;
        }
        Ok(())
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(Bytes, Bytes)>> {
        self.0.scan_prefix(prefix).map(|r| r.map_err(StorageError))
    }

    /// Entries with keys in `range`, in key order.
    pub fn range<R: std::ops::RangeBounds<Vec<u8>>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = Result<(Bytes, Bytes)>> {
        self.0.range(range).map(|r| r.map_err(StorageError))
    }

    pub fn last(&self) -> Result<Option<(Bytes, Bytes)>> {
        Ok(self.0.last()?)
    }

    pub fn clear(&self) -> Result<()> {
        Ok(self.0.clear()?)
    }
}
