//! Who this member is: its member ID, its cluster's ID and, for a new
//! cluster, the initial membership, decided once at first start from
//! `--initial-cluster` and the token, and read back from the data dir after.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ClusterState, Config};
use crate::raft::{cluster_info, ids, ClusterInfo, PeerNode};
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
        "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs \
         ({0}); to join an existing cluster, --initial-cluster must list running members"
    )]
    NoPeerAnswered(String),
    #[error(
        "member with peer URLs {urls} is not part of the cluster {cluster_id:x}; add it first with \
         `etcdctl member add {name} --peer-urls={urls}`, then start it with the settings that command prints"
    )]
    NotAdded {
        urls: String,
        cluster_id: u64,
        name: String,
    },
    #[error(
        "the data dir {dir} belongs to member {old:x} of cluster {cluster_id:x}, which was removed from the \
         cluster{replaced}; a removed member cannot come back with its old data: remove the data dir \
         (rm -rf {dir}) and start again to join with a fresh copy"
    )]
    Removed {
        dir: String,
        old: u64,
        cluster_id: u64,
        replaced: String,
    },
    #[error(
        "the data dir {dir} belongs to cluster {ours:x}, but the member at {peer} belongs to cluster {theirs:x}; \
         this data dir is from another cluster: use a fresh data dir, or fix --initial-cluster"
    )]
    WrongCluster {
        dir: String,
        ours: u64,
        theirs: u64,
        peer: String,
    },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// etcd's form of a URL: no trailing slash for an empty path.
pub fn url_string(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

/// Reads this member's identity from the data dir, or on first start derives
/// it (new cluster) or asks the running members (`existing`), and stores it.
/// `--initial-*` are ignored when the data dir has one.
/// The flag is true when the identity was created now.
pub async fn resolve(config: &Config, backend: &Backend) -> Result<(Identity, bool), BootstrapError> {
    let meta = backend.keyspace("raft_meta")?;
    if let Some(bytes) = meta.get(IDENTITY)? {
        let identity = bincode::deserialize(&bytes).map_err(|e| BootstrapError::Corrupt(e.to_string()))?;
        return Ok((identity, false));
    }
    let identity = if config.initial_cluster_state == ClusterState::Existing {
        join(config).await?
    } else {
        config
            .verify_bootstrap()
            .map_err(|e| BootstrapError::Config(e.to_string()))?;
        derive(config)
    };
    meta.insert(
        IDENTITY,
        bincode::serialize(&identity).expect("in-memory serialization"),
    )?;
    backend.flush_blocking()?;
    Ok((identity, true))
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
                    promote: false,
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

fn own_peer_urls(config: &Config) -> Vec<String> {
    let mut urls: Vec<String> = config.initial_advertise_peer_urls.iter().map(url_string).collect();
    urls.sort();
    urls
}

/// Asks every URL at once how its member sees the cluster; what answered
/// within `PEER_ANSWER_TIMEOUT`.
async fn ask(urls: Vec<String>) -> Vec<(String, Result<ClusterInfo, String>)> {
    let questions = urls.into_iter().map(|url| async move {
        let answer = tokio::time::timeout(PEER_ANSWER_TIMEOUT, cluster_info(&url))
            .await
            .unwrap_or_else(|_| Err("timed out".to_string()));
        (url, answer)
    });
    futures::future::join_all(questions).await
}

const PEER_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a joining member keeps asking the members it was given.
const JOIN_PATIENCE: Duration = Duration::from_secs(10);

/// Joins a running cluster: finds the ID that `member add` gave this
/// member's peer URLs.
async fn join(config: &Config) -> Result<Identity, BootstrapError> {
    let own = own_peer_urls(config);
    let peers: Vec<String> = config
        .initial_cluster
        .iter()
        .map(|(_, url)| url_string(url))
        .filter(|url| !own.contains(url))
        .collect();
    let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
    let info = loop {
        let answers = ask(peers.clone()).await;
        let failures: Vec<String> = answers
            .iter()
            .filter_map(|(url, answer)| answer.as_ref().err().map(|e| format!("{url}: {e}")))
            .collect();
        if let Some(info) = answers.into_iter().find_map(|(_, answer)| answer.ok()) {
            break info;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BootstrapError::NoPeerAnswered(failures.join("; ")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let found = info.members.iter().find(|(_, node)| {
        let mut urls = node.peer_urls.clone();
        urls.sort();
        urls == own
    });
    let Some((member_id, _)) = found else {
        return Err(BootstrapError::NotAdded {
            urls: own.join(","),
            cluster_id: info.cluster_id,
            name: config.name.clone(),
        });
    };
    tracing::info!(
        member_id = %format!("{member_id:x}"),
        cluster_id = %format!("{:x}", info.cluster_id),
        "joining the existing cluster"
    );
    Ok(Identity {
        member_id: *member_id,
        cluster_id: info.cluster_id,
        initial_members: BTreeMap::new(),
    })
}

/// Checks with the members that answer that this data dir still belongs to
/// the cluster: not another cluster's, and not a member removed since (the
/// deployment guide's "delete the old data dir" step forgotten).
pub async fn verify_with_peers(
    config: &Config,
    identity: &Identity,
    known_peers: Vec<String>,
) -> Result<(), BootstrapError> {
    let own = own_peer_urls(config);
    let mut urls: Vec<String> = config.initial_cluster.iter().map(|(_, url)| url_string(url)).collect();
    urls.extend(known_peers);
    urls.sort();
    urls.dedup();
    urls.retain(|url| !own.contains(url));
    let dir = config.data_dir.display().to_string();
    for (peer, answer) in ask(urls).await {
        let Ok(info) = answer else { continue };
        if info.cluster_id != identity.cluster_id {
            return Err(BootstrapError::WrongCluster {
                dir,
                ours: identity.cluster_id,
                theirs: info.cluster_id,
                peer,
            });
        }
        let successor = info
            .members
            .iter()
            .find(|(id, node)| *id != identity.member_id && node.peer_urls.iter().any(|url| own.contains(url)));
        if info.removed.contains(&identity.member_id) || successor.is_some() {
            return Err(BootstrapError::Removed {
                dir,
                old: identity.member_id,
                cluster_id: identity.cluster_id,
                replaced: successor.map_or(String::new(), |(id, _)| {
                    format!(" (its peer URLs now belong to member {id:x}, added with `member add`)")
                }),
            });
        }
    }
    Ok(())
}
