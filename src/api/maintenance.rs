//! etcd's Maintenance service. Status is served; the other calls (alarms,
//! defragment, hashes, snapshots, leader transfer) are not served yet.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::{Context, ETCD_VERSION};
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};

pub struct MaintenanceService {
    context: Arc<Context>,
}

impl MaintenanceService {
    pub fn new(context: Arc<Context>) -> Self {
        MaintenanceService { context }
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("etcdserver: {what} is not supported by this ferrocd version"))
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let replica = &self.context.replica;
        let metrics = replica.raft().metrics();
        let (leader, raft_index, raft_term, applied, is_learner) = {
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            let is_learner = !membership.voter_ids().any(|id| id == replica.member_id());
            (
                m.current_leader.unwrap_or(0),
                m.last_log_index.unwrap_or(0),
                m.current_term,
                m.last_applied.map_or(0, |id| id.index),
                is_learner,
            )
        };
        let db_size = self.context.backend.size_on_disk() as i64;
        let mut response = StatusResponse {
            header: Some(Default::default()),
            version: ETCD_VERSION.to_string(),
            db_size,
            leader,
            raft_index,
            raft_term,
            raft_applied_index: applied,
            // sled does not report its free pages; its file is what is in use.
            db_size_in_use: db_size,
            is_learner,
            ..Default::default()
        };
        if let Some(header) = response.header.as_mut() {
            header.revision = self.context.applier.read().store().revision();
        }
        self.context.fill(&mut response.header);
        Ok(Response::new(response))
    }

    async fn alarm(&self, _: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Err(not_yet("alarm"))
    }

    async fn defragment(&self, _: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        Err(not_yet("defragment"))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(not_yet("hash"))
    }

    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(not_yet("hashkv"))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(&self, _: Request<SnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        Err(not_yet("snapshot"))
    }

    async fn move_leader(&self, _: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(not_yet("move-leader"))
    }

    async fn downgrade(&self, _: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "unknown method Downgrade for service etcdserverpb.Maintenance",
        ))
    }
}
