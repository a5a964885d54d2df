//! etcd's Maintenance service: status, alarms, defragmentation, hashes,
//! snapshots and leader transfer.
//!
//! Sizes and defragmentation on sled: the database size is sled's files on
//! disk (Raft log included); the size in use is the live key-value data,
//! which compaction reduces and which `--quota-backend-bytes` limits. sled
//! has no free-page list to compact (bbolt's defragmentation): it rewrites
//! sparse segments itself as it writes, so Defragment persists everything (a
//! flush) and reports; the files shrink as sled reuses and cleans segments.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::{Context, EtcdError, ETCD_VERSION};
use crate::apply::Command;
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, ResponseHeader,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::raft::counts_as_voter;
use crate::snapshot;

/// Bytes per Snapshot message (etcd sends 32 KiB chunks).
const SNAPSHOT_CHUNK: usize = 32 * 1024;

pub struct MaintenanceService {
    context: Arc<Context>,
}

impl MaintenanceService {
    pub fn new(context: Arc<Context>) -> Self {
        MaintenanceService { context }
    }

    /// etcd lets only the root role defragment, hash, snapshot and move the leader.
    async fn admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let caller = self.context.caller(request).await?;
        self.context.authorize_maintenance(&caller)
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

/// An alarm as etcd prints it in Status errors (Go's text form of AlarmMember).
fn alarm_text(member_id: u64, alarm: i32) -> String {
    let name = AlarmType::try_from(alarm).map_or("NONE", |a| a.as_str_name());
    format!("memberID:{member_id} alarm:{name} ")
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let replica = &self.context.replica;
        let metrics = replica.raft().metrics();
        let (leader, raft_index, raft_term, applied, is_learner) = {
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            (
                m.current_leader.unwrap_or(0),
                m.last_log_index.unwrap_or(0),
                m.current_term,
                m.last_applied.map_or(0, |id| id.index),
                !counts_as_voter(membership, replica.member_id()),
            )
        };
        let db_size = self.context.backend.size_on_disk() as i64;
        let (revision, errors, in_use) = {
            let applier = self.context.applier.read();
            let errors = applier
                .alarms()
                .list()
                .iter()
                .map(|a| alarm_text(a.member_id, a.alarm))
                .collect();
            (applier.store().revision(), errors, applier.store().size_in_use() as i64)
        };
        let mut response = StatusResponse {
            header: Some(Default::default()),
            version: ETCD_VERSION.to_string(),
            db_size,
            leader,
            raft_index,
            raft_term,
            raft_applied_index: applied,
            errors,
            db_size_in_use: in_use,
            is_learner,
            ..Default::default()
        };
        if let Some(header) = response.header.as_mut() {
            header.revision = revision;
        }
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn alarm(&self, request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let request = request.into_inner();
        let mut response: AlarmResponse = if request.action == AlarmAction::Get as i32 {
            self.context.replica.linearize().await?;
            AlarmResponse {
                header: self.context.header_now(),
                alarms: self.context.applier.read().alarms().list(),
            }
        } else {
            let command = Command::Alarm {
                action: request.action,
                member_id: request.member_id,
                alarm: request.alarm,
            };
            self.context.propose(command).await?
        };
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn defragment(&self, request: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        self.admin(&request).await?;
        let before = self.context.backend.size_on_disk();
        self.context
            .backend
            .flush()
            .await
            .map_err(|e| EtcdError::Internal(format!("etcdserver: {e}")))?;
        let after = self.context.backend.size_on_disk();
        tracing::info!(before, after, "defragmented (flushed) the backend");
        Ok(Response::new(DefragmentResponse {
            header: self.context.header_now(),
        }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.admin(&request).await?;
        let (hash, revision) = {
            let applier = self.context.applier.read();
            (applier.hash()?, applier.store().revision())
        };
        let mut header = Some(ResponseHeader {
            revision,
            ..Default::default()
        });
        self.context.fill(&mut header);
        Ok(Response::new(HashResponse { header, hash }))
    }

    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        self.admin(&request).await?;
        let revision = request.get_ref().revision;
        let (hash, compact_revision, current) = {
            let applier = self.context.applier.read();
            let store = applier.store();
            (store.hash_kv(revision)?, store.compact_revision(), store.revision())
        };
        let mut response = HashKvResponse {
            header: Some(ResponseHeader {
                revision: current,
                ..Default::default()
            }),
            hash,
            compact_revision: compact_revision.max(0),
            ..Default::default()
        };
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(&self, request: Request<SnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        self.admin(&request).await?;
        let contents = {
            let applier = self.context.applier.read();
            snapshot::Contents {
                revision: applier.store().revision(),
                records: applier.records()?,
            }
        };
        let header = self.context.header_now();
        let file = tokio::task::spawn_blocking(move || snapshot::encode(&contents))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(bytes = file.len(), "sending a snapshot");
        let total = file.len();
        let chunks: Vec<Result<SnapshotResponse, Status>> = file
            .chunks(SNAPSHOT_CHUNK)
            .scan(0usize, |sent, chunk| {
                *sent += chunk.len();
                Some(Ok(SnapshotResponse {
                    header,
                    remaining_bytes: (total - *sent) as u64,
                    blob: chunk.to_vec(),
                    ..Default::default()
                }))
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn move_leader(&self, request: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        self.admin(&request).await?;
        let target = request.get_ref().target_id;
        let replica = &self.context.replica;
        if replica.leader() != Some(replica.member_id()) {
            return Err(EtcdError::NotLeader.into());
        }
        let is_voter = replica
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == target);
        if !is_voter {
            return Err(EtcdError::BadLeaderTransferee.into());
        }
        if target != replica.member_id() {
            let limit = replica.request_timeout().max(Duration::from_secs(5));
            if !crate::raft::transfer_leadership(replica, target, limit).await {
                return Err(Status::unavailable(
                    "etcdserver: request timed out, leader transfer took too long",
                ));
            }
        }
        Ok(Response::new(MoveLeaderResponse {
            header: self.context.header_now(),
        }))
    }

    async fn downgrade(&self, _: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "unknown method Downgrade for service etcdserverpb.Maintenance",
        ))
    }
}
