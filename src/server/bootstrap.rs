//! Who this member is: its member ID, its cluster's ID and, for a new
//! cluster, the initial membership, decided once at first start from
//! `--initial-cluster` and the token, and read back from the data dir after.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{ClusterState, Config};
use crate::raft::{ids, PeerNode};
use crate::storage::Backend;

const IDENTITY: &[u8] = b"identity";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
    /// The membership a new cluster starts with; kept so an interrupted first
    /// start finishes initializing on the next one.
    pub initial_members: BTreeMap<u64, PeerNode>,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot read member identity from the data dir: {0}")]
    Corrupt(String),
    #[error(
        "joining an existing cluster (--initial-cluster-state=existing) with an empty data dir needs \
         runtime reconfiguration, which this ferrocd version does not support yet"
    )]
    JoinUnsupported,
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// etcd's form of a URL: no trailing slash for an empty path.
pub fn url_string(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

/// Reads this member's identity from the data dir, or derives and stores it
/// on first start (ignoring `--initial-*` when the data dir has one).
pub fn resolve(config: &Config, backend: &Backend) -> Result<Identity, BootstrapError> {
    let meta = backend.keyspace("raft_meta")?;
    if let Some(bytes) = meta.get(IDENTITY)? {
        return bincode::deserialize(&bytes).map_err(|e| BootstrapError::Corrupt(e.to_string()));
    }
    if config.initial_cluster_state == ClusterState::Existing {
        return Err(BootstrapError::JoinUnsupported);
    }
    config
        .verify_bootstrap()
        .map_err(|e| BootstrapError::Config(e.to_string()))?;
    let identity = derive(config);
    meta.insert(
        IDENTITY,
        bincode::serialize(&identity).expect("in-memory serialization"),
    )?;
    backend.flush_blocking()?;
    Ok(identity)
}

fn derive(config: &Config) -> Identity {
    let mut by_name: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, url) in &config.initial_cluster {
        by_name.entry(name.as_str()).or_default().push(url_string(url));
    }
    let token = &config.initial_cluster_token;
    let initial_members: BTreeMap<u64, PeerNode> = by_name
        .into_iter()
        .map(|(name, peer_urls)| {
            let id = ids::member_id(&peer_urls, token);
            (
                id,
                PeerNode {
                    name: name.to_string(),
                    peer_urls,
                },
            )
        })
        .collect();
    let own_urls: Vec<String> = config.initial_advertise_peer_urls.iter().map(url_string).collect();
    let member_id = ids::member_id(&own_urls, token);
    let member_ids: Vec<u64> = initial_members.keys().copied().collect();
    Identity {
        member_id,
        cluster_id: ids::cluster_id(&member_ids),
        initial_members,
    }
}
