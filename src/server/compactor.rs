//! Auto-compaction, run by the leader as etcd runs it: `revision` mode keeps
//! the last N revisions (checked every 5 minutes); `periodic` mode keeps the
//! history of the last retention period, sampling the revision every tenth of
//! it and compacting to the revision it had one period ago.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use prost::Message;
use tokio::time::Instant;

use crate::apply::{Applier, Command};
use crate::config::AutoCompaction;
use crate::proto::etcdserverpb::CompactionRequest;
use crate::raft::Replica;

const REVISION_MODE_INTERVAL: Duration = Duration::from_secs(5 * 60);

pub async fn run(mode: AutoCompaction, replica: Arc<Replica>, applier: Arc<RwLock<Applier>>) {
    let current = || applier.read().store().revision();
    let compacted = || applier.read().store().compact_revision();
    match mode {
        AutoCompaction::Revision(keep) => {
            let mut ticks = tokio::time::interval(REVISION_MODE_INTERVAL);
            loop {
                ticks.tick().await;
                let target = current() - keep as i64;
                if target > compacted() && target > 0 {
                    compact(&replica, target).await;
                }
            }
        }
        AutoCompaction::Periodic(retention) => {
            let interval = (retention / 10).max(Duration::from_millis(100));
            let mut ticks = tokio::time::interval(interval);
            let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
            loop {
                ticks.tick().await;
                let now = Instant::now();
                samples.push_back((now, current()));
                let mut target = None;
                while let Some(&(at, revision)) = samples.front() {
                    if now.duration_since(at) < retention {
                        break;
                    }
                    target = Some(revision);
                    samples.pop_front();
                }
                if let Some(revision) = target.filter(|r| *r > compacted()) {
                    compact(&replica, revision).await;
                }
            }
        }
    }
}

async fn compact(replica: &Replica, revision: i64) {
    if replica.leader() != Some(replica.member_id()) {
        return;
    }
    let request = CompactionRequest {
        revision,
        physical: false,
    };
    match replica.propose(Command::Compact(request.encode_to_vec())).await {
        Ok(_) => tracing::info!(revision, "auto-compaction finished"),
        Err(e) => tracing::warn!(revision, error = %e, "auto-compaction failed"),
    }
}
