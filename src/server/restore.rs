//! `snapshot restore`: a new member's data dir from a ferrocd snapshot file,
//! for disaster recovery. The data keeps its revisions, leases and history;
//! the cluster is new: its membership comes from `--initial-cluster` (as with
//! etcd's restore), and the old cluster's members and alarms are dropped.

use std::collections::BTreeMap;

use anyhow::Context as _;

use super::bootstrap;
use crate::apply::is_cluster_record;
use crate::config::{self, Config, Loaded};
use crate::snapshot;
use crate::storage::{Backend, Batch};

/// What a restore produced.
#[derive(Debug, Clone)]
pub struct Restored {
    pub member_id: u64,
    pub cluster_id: u64,
    pub revision: i64,
    pub records: usize,
}

/// The settings of a restore, as `etcdctl snapshot restore` takes them; the
/// same names and defaults as the server's flags (`ETCD_*` do not apply).
pub fn restore_config(flags: &[String]) -> anyhow::Result<Config> {
    let mut args = vec!["ferrocd".into()];
    args.extend(flags.iter().map(Into::into));
    match config::load(args, &BTreeMap::new())? {
        Loaded::Run(config) => Ok(config),
        Loaded::Exit { message, .. } => anyhow::bail!("{message}"),
    }
}

/// Writes a new data dir at `config.data_dir` holding the snapshot's data,
/// for a member of the new cluster `config` describes. The data dir must not
/// exist yet.
pub fn restore(file: &[u8], config: &Config) -> anyhow::Result<Restored> {
    let contents = snapshot::decode(file)?;
    if config.data_dir.exists() {
        anyhow::bail!("data-dir {:?} exists", config.data_dir.display().to_string());
    }
    let identity = bootstrap::derive_new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let backend = super::open_data_dir(&config.data_dir)?;
    let state = backend.keyspace("state")?;
    let mut batch = Batch::default();
    let mut kept = 0;
    for (key, value) in &contents.records {
        if !is_cluster_record(key) {
            batch.insert(key, value);
            kept += 1;
        }
    }
    state.apply(batch)?;
    bootstrap::store(&backend, &identity)?;
    flush(&backend)?;
    Ok(Restored {
        member_id: identity.member_id,
        cluster_id: identity.cluster_id,
        revision: contents.revision,
        records: kept,
    })
}

fn flush(backend: &Backend) -> anyhow::Result<()> {
    backend.flush_blocking().context("cannot flush the restored data dir")
}
