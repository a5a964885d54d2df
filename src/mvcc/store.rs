//! The MVCC store: the key index in memory, every revision's value in the
//! backend, and write transactions that add one revision each.

use std::collections::HashMap;

use prost::Message;

use super::index::{IndexEntry, KeyIndex};
use super::revision::{Revision, ENCODED_LEN};
use super::MvccError;
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::{Batch, Keyspace};

/// Backend key prefix of revision records.
const REVISION_PREFIX: u8 = b'r';
const META_CURRENT: &[u8] = b"m/current_revision";
const META_COMPACTED: &[u8] = b"m/compact_revision";
/// First byte of a stored record: a value, or the tombstone of a delete.
const TAG_PUT: u8 = 0;
const TAG_TOMBSTONE: u8 = 1;

fn record_key(rev: Revision) -> [u8; ENCODED_LEN + 1] {
    let mut key = [REVISION_PREFIX; ENCODED_LEN + 1];
    key[1..].copy_from_slice(&rev.encode());
    key
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RangeOptions {
    /// Maximum number of values returned; 0 means no limit.
    pub limit: usize,
    /// Revision to read at; 0 or less means the current one.
    pub revision: i64,
    /// Count the keys without reading values.
    pub count_only: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Number of keys in the range, before `limit`.
    pub count: usize,
    /// The store's revision the read was served at (etcd reports the current
    /// revision even for historical reads).
    pub revision: i64,
}

pub struct Store {
    space: Keyspace,
    index: KeyIndex,
    /// Revision of the last write transaction; 1 for an empty store.
    current: i64,
    /// Revision of the last compaction; -1 before the first.
    compacted: i64,
    /// Writes not yet handed to the backend, committed by [`Store::commit`].
    pending: Batch,
    /// Values of `pending`, so reads inside the same apply batch see them.
    overlay: HashMap<Revision, KeyValue>,
    /// Changes since the last [`Store::take_events`], in revision order, for
    /// watchers.
    events: Vec<Event>,
    /// Bytes of the revision records kept (keys and values): the live
    /// key-value data, which compaction reduces.
    live_bytes: u64,
}

/// What a revision record occupies: its key and its value.
fn record_size(value_len: usize) -> u64 {
    (ENCODED_LEN + 1 + value_len) as u64
}

impl Store {
    /// Opens the store persisted in `space`, rebuilding the key index.
    pub fn open(space: Keyspace) -> Result<Self, MvccError> {
        let mut store = Store {
            space,
            index: KeyIndex::default(),
            current: 1,
            compacted: -1,
            pending: Batch::default(),
            overlay: HashMap::new(),
            events: Vec::new(),
            live_bytes: 0,
        };
        store.reload()?;
        Ok(store)
    }

    /// Re-reads everything from the backend (after a snapshot replaced it).
    pub fn reload(&mut self) -> Result<(), MvccError> {
        self.index = KeyIndex::default();
        self.pending = Batch::default();
        self.overlay.clear();
        self.events.clear();
        self.current = read_i64(&self.space, META_CURRENT)?.unwrap_or(1);
        self.compacted = read_i64(&self.space, META_COMPACTED)?.unwrap_or(-1);
        self.live_bytes = 0;
        for record in self.space.scan_prefix(&[REVISION_PREFIX]) {
            let (key, value) = record?;
            self.live_bytes += record_size(value.len());
            let rev = Revision::decode(&key[1..]).ok_or_else(|| corrupt("revision key"))?;
            let kv = decode_record(&value)?;
            match kv {
                (TAG_PUT, kv) => self.index.put(&kv.key, rev),
                (_, kv) => self.index.tombstone(&kv.key, rev),
            }
        }
        Ok(())
    }

    pub fn revision(&self) -> i64 {
        self.current
    }

    /// Keys that exist at the current revision.
    pub fn key_count(&self) -> usize {
        self.index.live_keys()
    }

    pub fn compact_revision(&self) -> i64 {
        self.compacted
    }

    /// etcd's HashKV: a CRC-32 of the key-value history up to revision `at`
    /// (0: the current one), equal on members that applied the same log.
    pub fn hash_kv(&self, at: i64) -> Result<u32, MvccError> {
        let at = if at <= 0 { self.current } else { at };
        self.check_revision(at, self.current)?;
        let end = record_key(Revision { main: at + 1, sub: 0 }).to_vec();
        let mut hasher = crc32fast::Hasher::new();
        for record in self.space.range(record_key(Revision { main: 0, sub: 0 }).to_vec()..end) {
            let (key, value) = record?;
            hasher.update(&key);
            hasher.update(&value);
        }
        Ok(hasher.finalize())
    }

    /// The live key-value data in bytes (etcd's size in use).
    pub fn size_in_use(&self) -> u64 {
        self.live_bytes
    }

    /// The keyspace the store lives in, shared with the rest of the state.
    pub fn keyspace(&self) -> &Keyspace {
        &self.space
    }

    /// Reads `[key, range_end)` (etcd's range conventions) at a revision.
    pub fn range(&self, key: &[u8], range_end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        self.range_at(key, range_end, opts, self.current)
    }

    fn range_at(
        &self,
        key: &[u8],
        range_end: &[u8],
        opts: RangeOptions,
        current: i64,
    ) -> Result<RangeResult, MvccError> {
        let at = if opts.revision <= 0 { current } else { opts.revision };
        self.check_revision(at, current)?;
        let entries = self.index.range(key, range_end, at);
        let count = entries.len();
        if opts.count_only {
            return Ok(RangeResult {
                kvs: Vec::new(),
                count,
                revision: current,
            });
        }
        let take = if opts.limit == 0 { count } else { opts.limit.min(count) };
        let kvs = entries[..take]
            .iter()
            .map(|(_, entry)| self.value_at(entry))
            .collect::<Result<_, _>>()?;
        Ok(RangeResult {
            kvs,
            count,
            revision: current,
        })
    }

    /// Whether revision `at` can be read while the store is at `current`.
    fn check_revision(&self, at: i64, current: i64) -> Result<(), MvccError> {
        if at > current {
            return Err(MvccError::FutureRevision);
        }
        if at < self.compacted {
            return Err(MvccError::Compacted);
        }
        Ok(())
    }

    fn value_at(&self, entry: &IndexEntry) -> Result<KeyValue, MvccError> {
        if let Some(kv) = self.overlay.get(&entry.modified) {
            return Ok(kv.clone());
        }
        let bytes = self
            .space
            .get(record_key(entry.modified))?
            .ok_or_else(|| corrupt("indexed revision missing from backend"))?;
        Ok(decode_record(&bytes)?.1)
    }

    /// The live value of `key` as of revision `at`, if any (prev_kv of watch
    /// events).
    pub fn get_at(&self, key: &[u8], at: i64) -> Result<Option<KeyValue>, MvccError> {
        match self.index.get(key, at) {
            Some(entry) => Ok(Some(self.value_at(&entry)?)),
            None => Ok(None),
        }
    }

    /// Every change to keys in the range from revision `from` on, in
    /// revision order, as watch events.
    pub fn history(&self, key: &[u8], range_end: &[u8], from: i64) -> Result<Vec<Event>, MvccError> {
        if from < self.compacted {
            return Err(MvccError::Compacted);
        }
        let start = record_key(Revision::new(from.max(0), 0)).to_vec();
        let end = record_key(Revision::new(i64::MAX, 0)).to_vec();
        let mut events = Vec::new();
        for record in self.space.range(start..end) {
            let (_, value) = record?;
            let (tag, kv) = decode_record(&value)?;
            if !super::in_range(key, range_end, &kv.key) {
                continue;
            }
            let kind = if tag == TAG_PUT {
                EventType::Put
            } else {
                EventType::Delete
            };
            events.push(Event {
                r#type: kind as i32,
                kv: Some(kv),
                prev_kv: None,
            });
        }
        Ok(events)
    }

    /// Takes the changes made since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Calls `f` with every live key-value; used to rebuild derived state.
    pub fn for_each_live(&self, mut f: impl FnMut(&KeyValue)) -> Result<(), MvccError> {
        for (_, entry) in self.index.range(b"\0", b"\0", self.current) {
            f(&self.value_at(&entry)?);
        }
        Ok(())
    }

    /// Starts a write transaction; it adds one revision if it changes anything.
    pub fn write(&mut self) -> WriteTxn<'_> {
        let main = self.current + 1;
        WriteTxn {
            store: self,
            main,
            changes: 0,
        }
    }

    /// Compacts history at `at`: reads before it fail from now on, and the
    /// values they would have needed are deleted.
    pub fn compact(&mut self, at: i64) -> Result<(), MvccError> {
        if at <= self.compacted {
            return Err(MvccError::Compacted);
        }
        if at > self.current {
            return Err(MvccError::FutureRevision);
        }
        for rev in self.index.compact(at) {
            let size = match self.overlay.remove(&rev) {
                Some(kv) => 1 + kv.encoded_len(),
                None => self.space.get(record_key(rev))?.map_or(0, |value| value.len()),
            };
            self.live_bytes = self.live_bytes.saturating_sub(record_size(size));
            self.pending.remove(record_key(rev));
        }
        self.compacted = at;
        Ok(())
    }

    /// Hands the writes since the last commit, plus the caller's `extra`
    /// records (a `None` value removes the key), to the backend in one
    /// atomic batch.
    pub fn commit(&mut self, extra: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>) -> Result<(), MvccError> {
        let mut batch = std::mem::take(&mut self.pending);
        batch.insert(META_CURRENT, self.current.to_be_bytes());
        batch.insert(META_COMPACTED, self.compacted.to_be_bytes());
        for (key, value) in extra {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        self.space.apply(batch)?;
        self.overlay.clear();
        Ok(())
    }

    fn record(&mut self, rev: Revision, tag: u8, kv: KeyValue) {
        let mut value = Vec::with_capacity(1 + kv.encoded_len());
        value.push(tag);
        kv.encode(&mut value).expect("Vec has capacity");
        self.live_bytes += record_size(value.len());
        self.pending.insert(record_key(rev), value);
        let kind = if tag == TAG_PUT {
            EventType::Put
        } else {
            EventType::Delete
        };
        self.events.push(Event {
            r#type: kind as i32,
            kv: Some(kv.clone()),
            prev_kv: None,
        });
        self.overlay.insert(rev, kv);
    }
}

/// A write transaction: reads see its own writes, and all its changes share
/// one main revision.
pub struct WriteTxn<'a> {
    store: &'a mut Store,
    main: i64,
    changes: i64,
}

impl WriteTxn<'_> {
    /// The revision reads in this transaction observe.
    pub fn revision(&self) -> i64 {
        if self.changes > 0 {
            self.main
        } else {
            self.main - 1
        }
    }

    pub fn range(&self, key: &[u8], range_end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        self.store.range_at(key, range_end, opts, self.revision())
    }

    /// Whether this transaction can read at revision `at`.
    pub fn check_revision(&self, at: i64) -> Result<(), MvccError> {
        self.store.check_revision(at, self.revision())
    }

    /// The live value of one key as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, MvccError> {
        match self.store.index.get(key, self.revision()) {
            Some(entry) => Ok(Some(self.store.value_at(&entry)?)),
            None => Ok(None),
        }
    }

    fn next_revision(&mut self) -> Revision {
        let rev = Revision::new(self.main, self.changes);
        self.changes += 1;
        rev
    }

    /// Writes `key`; returns the transaction's revision.
    pub fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> i64 {
        let (create_revision, version) = match self.store.index.get(key, self.main) {
            Some(entry) => (entry.created.main, entry.version + 1),
            None => (self.main, 1),
        };
        let rev = self.next_revision();
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: self.main,
            version,
            value,
            lease,
        };
        self.store.index.put(key, rev);
        self.store.record(rev, TAG_PUT, kv);
        self.main
    }

    /// Deletes the live keys in the range; returns their last values and the
    /// revision reads observe afterwards.
    pub fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> Result<(Vec<KeyValue>, i64), MvccError> {
        let live: Vec<(Vec<u8>, IndexEntry)> = self
            .store
            .index
            .range(key, range_end, self.main)
            .into_iter()
            .map(|(k, e)| (k.to_vec(), e))
            .collect();
        let mut deleted = Vec::with_capacity(live.len());
        for (key, entry) in live {
            deleted.push(self.store.value_at(&entry)?);
            let rev = self.next_revision();
            let tombstone = KeyValue {
                key: key.clone(),
                mod_revision: self.main,
                ..Default::default()
            };
            self.store.index.tombstone(&key, rev);
            self.store.record(rev, TAG_TOMBSTONE, tombstone);
        }
        Ok((deleted, self.revision()))
    }

    /// Ends the transaction; returns the store's revision after it.
    pub fn end(self) -> i64 {
        if self.changes > 0 {
            self.store.current = self.main;
        }
        self.store.current
    }
}

fn decode_record(bytes: &[u8]) -> Result<(u8, KeyValue), MvccError> {
    let (&tag, body) = bytes.split_first().ok_or_else(|| corrupt("empty record"))?;
    let kv = KeyValue::decode(body).map_err(|_| corrupt("undecodable record"))?;
    Ok((if tag == TAG_PUT { TAG_PUT } else { TAG_TOMBSTONE }, kv))
}

fn read_i64(space: &Keyspace, key: &[u8]) -> Result<Option<i64>, MvccError> {
    match space.get(key)? {
        Some(v) => {
            let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| corrupt("meta value"))?;
            Ok(Some(i64::from_be_bytes(bytes)))
        }
        None => Ok(None),
    }
}

fn corrupt(what: &str) -> MvccError {
    MvccError::Storage(format!("corrupt backend: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Backend;

    fn open() -> (tempfile::TempDir, Backend, Store) {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::open(dir.path()).unwrap();
        let store = Store::open(backend.keyspace("state").unwrap()).unwrap();
        (dir, backend, store)
    }

    #[test]
    fn revisions_versions_and_history() {
        let (_dir, backend, mut store) = open();
        assert_eq!(store.revision(), 1);
        let mut txn = store.write();
        assert_eq!(txn.put(b"a", b"1".to_vec(), 0), 2);
        assert_eq!(txn.end(), 2);
        let mut txn = store.write();
        txn.put(b"a", b"2".to_vec(), 0);
        txn.put(b"b", b"x".to_vec(), 0);
        txn.end();
        store.commit(Vec::new()).unwrap();
        let now = store.range(b"a", b"", RangeOptions::default()).unwrap();
        assert_eq!(now.kvs[0].version, 2);
        assert_eq!(now.kvs[0].create_revision, 2);
        assert_eq!(now.kvs[0].mod_revision, 3);
        let old = store
            .range(
                b"a",
                b"",
                RangeOptions {
                    revision: 2,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(old.kvs[0].value, b"1");
        assert_eq!(old.revision, 3);

        let (deleted, rev) = {
            let mut txn = store.write();
            let out = txn.delete_range(b"a", b"\0").unwrap();
            txn.end();
            out
        };
        assert_eq!((deleted.len(), rev), (2, 4));
        store.commit(Vec::new()).unwrap();
        drop(store);
        let reopened = Store::open(backend.keyspace("state").unwrap()).unwrap();
        assert_eq!(reopened.revision(), 4);
        assert_eq!(reopened.range(b"a", b"\0", RangeOptions::default()).unwrap().count, 0);
        let at3 = RangeOptions {
            revision: 3,
            ..Default::default()
        };
        assert_eq!(reopened.range(b"a", b"\0", at3).unwrap().count, 2);
    }

    #[test]
    fn compaction_errors_and_deletes() {
        let (_dir, _backend, mut store) = open();
        for i in 0..3 {
            let mut txn = store.write();
            txn.put(b"k", vec![i], 0);
            txn.end();
        }
        assert_eq!(store.compact(5), Err(MvccError::FutureRevision));
        store.compact(3).unwrap();
        assert_eq!(store.compact(3), Err(MvccError::Compacted));
        let at2 = RangeOptions {
            revision: 2,
            ..Default::default()
        };
        assert_eq!(store.range(b"k", b"", at2).unwrap_err(), MvccError::Compacted);
        let at3 = RangeOptions {
            revision: 3,
            ..Default::default()
        };
        assert_eq!(store.range(b"k", b"", at3).unwrap().kvs[0].value, vec![1]);
        store.commit(Vec::new()).unwrap();
    }
}
