//! Member attributes that members publish through the log once they start:
//! name and client URLs (etcd's `publish`), keyed by member ID.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mvcc::MvccError;
use crate::storage::Keyspace;

const PREFIX: &[u8] = b"c/";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAttributes {
    pub name: String,
    pub client_urls: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Members {
    published: BTreeMap<u64, MemberAttributes>,
    /// Members whose attributes changed since the last commit.
    dirty: Vec<u64>,
}

impl Members {
    pub fn load(space: &Keyspace) -> Result<Self, MvccError> {
        let mut published = BTreeMap::new();
        for record in space.scan_prefix(PREFIX) {
            let (key, value) = record?;
            let id_bytes: [u8; 8] = key[PREFIX.len()..]
                .try_into()
                .map_err(|_| MvccError::Storage("corrupt member key".into()))?;
            let attributes =
                serde_json::from_slice(&value).map_err(|_| MvccError::Storage("corrupt member attributes".into()))?;
            published.insert(u64::from_be_bytes(id_bytes), attributes);
        }
        Ok(Members {
            published,
            dirty: Vec::new(),
        })
    }

    pub fn get(&self, member_id: u64) -> Option<&MemberAttributes> {
        self.published.get(&member_id)
    }

    pub(super) fn publish(&mut self, member_id: u64, attributes: MemberAttributes) {
        self.published.insert(member_id, attributes);
        self.dirty.push(member_id);
    }

    /// Records to persist for the members changed since the last call.
    pub(super) fn drain_dirty(&mut self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        let published = &self.published;
        self.dirty.drain(..).filter_map(move |id| {
            let attributes = published.get(&id)?;
            let key = [PREFIX, &id.to_be_bytes()].concat();
            Some((key, serde_json::to_vec(attributes).expect("attributes serialize")))
        })
    }
}
