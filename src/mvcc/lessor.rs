//! The replicated lease table: each lease's granted TTL and the keys attached
//! to it. When a lease expires is decided by the leader's clock, outside the
//! replicated state (see `raft::LeaseClock`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{MvccError, Store};
use crate::storage::Keyspace;

const PREFIX: &[u8] = b"l/";

#[derive(Debug, Default)]
pub struct Lessor {
    /// Granted TTL in seconds, by lease ID.
    leases: BTreeMap<i64, i64>,
    /// Keys attached to each lease.
    attached: HashMap<i64, BTreeSet<Vec<u8>>>,
    /// The lease of each key that has one.
    key_lease: HashMap<Vec<u8>, i64>,
    /// Changes since the last commit: a lease granted (`Some(ttl)`) or gone.
    dirty: Vec<(i64, Option<i64>)>,
}

fn record_key(id: i64) -> Vec<u8> {
    [PREFIX, &id.to_be_bytes()].concat()
}

impl Lessor {
    /// Loads the lease table and re-attaches the live keys of `store`.
    pub fn load(space: &Keyspace, store: &Store) -> Result<Self, MvccError> {
        let mut lessor = Lessor::default();
        for record in space.scan_prefix(PREFIX) {
            let (key, value) = record?;
            let id = key[PREFIX.len()..].try_into().map(i64::from_be_bytes);
            let ttl = value.as_ref().try_into().map(i64::from_be_bytes);
            match (id, ttl) {
                (Ok(id), Ok(ttl)) => lessor.leases.insert(id, ttl),
                _ => return Err(MvccError::Storage("corrupt lease record".into())),
            };
        }
        store.for_each_live(|kv| {
            if kv.lease != 0 {
                lessor.attach(&kv.key, kv.lease);
            }
        })?;
        Ok(lessor)
    }

    pub fn ttl(&self, id: i64) -> Option<i64> {
        self.leases.get(&id).copied()
    }

    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.leases.keys().copied()
    }

    pub fn keys(&self, id: i64) -> Vec<Vec<u8>> {
        self.attached
            .get(&id)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Records a new lease; false when the ID is taken.
    pub fn grant(&mut self, id: i64, ttl: i64) -> bool {
        if self.leases.contains_key(&id) {
            return false;
        }
        self.leases.insert(id, ttl);
        self.dirty.push((id, Some(ttl)));
        true
    }

    /// Forgets a lease; returns the keys that were attached to it (the caller
    /// deletes them), or None when there was no such lease.
    pub fn revoke(&mut self, id: i64) -> Option<Vec<Vec<u8>>> {
        self.leases.remove(&id)?;
        self.dirty.push((id, None));
        let keys = self.attached.remove(&id).unwrap_or_default();
        for key in &keys {
            self.key_lease.remove(key);
        }
        Some(keys.into_iter().collect())
    }

    /// A put of `key` with `lease` (0 for none).
    pub fn on_put(&mut self, key: &[u8], lease: i64) {
        if self.key_lease.get(key) == Some(&lease) {
            return;
        }
        self.detach(key);
        if lease != 0 {
            self.attach(key, lease);
        }
    }

    pub fn on_delete(&mut self, key: &[u8]) {
        self.detach(key);
    }

    fn attach(&mut self, key: &[u8], lease: i64) {
        self.key_lease.insert(key.to_vec(), lease);
        self.attached.entry(lease).or_default().insert(key.to_vec());
    }

    fn detach(&mut self, key: &[u8]) {
        if let Some(old) = self.key_lease.remove(key) {
            if let Some(keys) = self.attached.get_mut(&old) {
                keys.remove(key);
            }
        }
    }

    /// Records to persist (value empty = delete) for the leases changed since
    /// the last call.
    pub fn drain_dirty(&mut self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> + '_ {
        self.dirty
            .drain(..)
            .map(|(id, ttl)| (record_key(id), ttl.map(|t| t.to_be_bytes().to_vec())))
    }
}
