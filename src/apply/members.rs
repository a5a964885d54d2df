//! What the cluster records of its members beyond Raft's membership: the name
//! and client URLs each member publishes through the log once it starts
//! (etcd's `publish`), and the IDs of removed members, which may never come
//! back (etcd's removed set).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::mvcc::MvccError;
use crate::storage::Keyspace;

const PUBLISHED: &[u8] = b"c/";
const REMOVED: &[u8] = b"x/";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAttributes {
    pub name: String,
    pub client_urls: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Members {
    published: BTreeMap<u64, MemberAttributes>,
    removed: BTreeSet<u64>,
    /// Records written or deleted since the last commit.
    dirty: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn member_key(prefix: &[u8], id: u64) -> Vec<u8> {
    [prefix, &id.to_be_bytes()].concat()
}

fn member_id(prefix: &[u8], key: &[u8]) -> Result<u64, MvccError> {
    let bytes: [u8; 8] = key[prefix.len()..]
        .try_into()
        .map_err(|_| MvccError::Storage("corrupt member key".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

impl Members {
    pub fn load(space: &Keyspace) -> Result<Self, MvccError> {
        let mut published = BTreeMap::new();
        for record in space.scan_prefix(PUBLISHED) {
            let (key, value) = record?;
            let attributes =
                serde_json::from_slice(&value).map_err(|_| MvccError::Storage("corrupt member attributes".into()))?;
            published.insert(member_id(PUBLISHED, &key)?, attributes);
        }
        let mut removed = BTreeSet::new();
        for record in space.scan_prefix(REMOVED) {
            removed.insert(member_id(REMOVED, &record?.0)?);
        }
        Ok(Members {
            published,
            removed,
            dirty: Vec::new(),
        })
    }

    pub fn get(&self, member_id: u64) -> Option<&MemberAttributes> {
        self.published.get(&member_id)
    }

    /// Whether the member was removed from the cluster (it may not rejoin
    /// under the same ID).
    pub fn is_removed(&self, member_id: u64) -> bool {
        self.removed.contains(&member_id)
    }

    pub fn removed(&self) -> impl Iterator<Item = u64> + '_ {
        self.removed.iter().copied()
    }

    pub(super) fn publish(&mut self, member_id: u64, attributes: MemberAttributes) {
        if self.removed.contains(&member_id) {
            return;
        }
        let value = serde_json::to_vec(&attributes).expect("attributes serialize");
        self.published.insert(member_id, attributes);
        self.dirty.push((member_key(PUBLISHED, member_id), Some(value)));
    }

    /// Records members that left the Raft membership.
    pub fn mark_removed(&mut self, member_id: u64) {
        self.published.remove(&member_id);
        self.removed.insert(member_id);
        self.dirty.push((member_key(PUBLISHED, member_id), None));
        self.dirty.push((member_key(REMOVED, member_id), Some(Vec::new())));
    }

    /// Records to persist (or delete) for the changes since the last call.
    pub(super) fn drain_dirty(&mut self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> + '_ {
        self.dirty.drain(..)
    }
}
