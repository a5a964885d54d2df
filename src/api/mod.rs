//! The client API: one module per etcd gRPC service, the HTTP endpoints that
//! share the client port, and the context every handler works with.

mod auth;
mod caller;
mod cluster;
mod concurrency;
mod election;
mod error;
mod gateway;
pub mod go_json;
mod grpc_metrics;
mod http;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod v2members;
mod validate;
mod watch;

use std::sync::Arc;

use parking_lot::RwLock;
use prost::Message;
use tonic::service::Routes;
use tonic::Status;

pub use caller::Caller;
pub use error::EtcdError;

use crate::apply::{Applier, Command};
use crate::auth::TokenConfig;
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::auth_server::AuthServer;
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use crate::proto::etcdserverpb::{AlarmResponse, AlarmType, ResponseHeader};
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::raft::{LeaseClock, Replica};
use crate::storage::Backend;

/// etcd's gRPC servers accept this much over `--max-request-bytes` so the
/// server, not the transport, reports a request that is too large.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// The API level ferrocd implements, reported by `/version` and Status.
pub const ETCD_VERSION: &str = "3.4.0";
pub const ETCD_CLUSTER_VERSION: &str = "3.4.0";

/// What every handler needs: the replicated log, the applied state, and the
/// identity and limits of this member.
pub struct Context {
    pub replica: Arc<Replica>,
    /// Shared with the state machine, which is its only writer.
    pub applier: Arc<RwLock<Applier>>,
    pub backend: Backend,
    pub cluster_id: u64,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    /// The leader's lease expiry, asked for keep-alives and time-to-live.
    pub leases: Arc<LeaseClock>,
    /// Shortest TTL a lease is granted (etcd: 1.5 election timeouts).
    pub min_lease_ttl: i64,
    pub watch_progress_interval: std::time::Duration,
    /// `--quota-backend-bytes`, resolved (`u64::MAX`: no quota).
    pub quota_backend_bytes: u64,
    /// How tokens are issued and checked (`--auth-token`).
    pub tokens: TokenConfig,
    /// `--bcrypt-cost`.
    pub bcrypt_cost: u32,
}

impl Context {
    /// Completes a response header: identity and term, keeping the revision.
    pub fn fill(&self, header: &mut Option<ResponseHeader>) {
        let header = header.get_or_insert_with(Default::default);
        header.cluster_id = self.cluster_id;
        header.member_id = self.replica.member_id();
        header.raft_term = self.replica.term();
    }

    /// A complete header at the store's current revision.
    pub fn header_now(&self) -> Option<ResponseHeader> {
        let mut header = Some(ResponseHeader {
            revision: self.applier.read().store().revision(),
            ..Default::default()
        });
        self.fill(&mut header);
        header
    }

    /// etcd's quota check before a write that adds data: when the data would
    /// grow past the quota, raise NOSPACE for this member and refuse. The
    /// quota applies to the live key-value data (the size in use), which
    /// compaction reduces; sled's files shrink only as it cleans segments.
    pub async fn check_quota(&self, cost: usize) -> Result<(), Status> {
        let in_use = self.applier.read().store().size_in_use();
        if in_use.saturating_add(cost as u64) <= self.quota_backend_bytes {
            return Ok(());
        }
        let raise = Command::Alarm {
            action: AlarmAction::Activate as i32,
            member_id: self.replica.member_id(),
            alarm: AlarmType::Nospace as i32,
        };
        if !self.applier.read().alarms().is_active(AlarmType::Nospace) {
            tracing::warn!(
                quota = self.quota_backend_bytes,
                "database space exceeded; raising the NOSPACE alarm"
            );
            let _: AlarmResponse = self.propose(raise).await?;
        }
        Err(EtcdError::NoSpace.into())
    }

    /// Replicates a command and decodes the etcd response it produced.
    pub async fn propose<M: Message + Default>(&self, command: Command) -> Result<M, Status> {
        if command.size() > self.max_request_bytes {
            return Err(EtcdError::RequestTooLarge.into());
        }
        let applied = self.replica.propose(command).await?;
        let body = applied
            .outcome
            .ok_or_else(|| Status::internal("etcdserver: command produced no result"))??;
        M::decode(body.as_slice()).map_err(|e| Status::internal(format!("etcdserver: {e}")))
    }
}

/// Every gRPC service and HTTP endpoint of the client port: the gRPC
/// services (counted in the gRPC metrics), the JSON gateway that calls them,
/// and the plain HTTP endpoints; with `--enable-v2` (`enable_v2`), etcd's v2
/// members API too.
pub fn client_routes(context: Arc<Context>, enable_v2: bool) -> Routes {
    let max_message = context.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let (_, health) = tonic_health::server::health_reporter();
    let grpc = Routes::new(KvServer::new(kv::KvService::new(context.clone())).max_decoding_message_size(max_message))
        .add_service(ClusterServer::new(cluster::ClusterService::new(context.clone())))
        .add_service(MaintenanceServer::new(maintenance::MaintenanceService::new(
            context.clone(),
        )))
        .add_service(LeaseServer::new(lease::LeaseService::new(context.clone())))
        .add_service(WatchServer::new(watch::WatchService::new(context.clone())))
        .add_service(LockServer::new(lock::LockService::new(context.clone())))
        .add_service(ElectionServer::new(election::ElectionService::new(context.clone())))
        .add_service(AuthServer::new(auth::AuthService::new(context.clone())))
        .add_service(health)
        .into_axum_router()
        .layer(axum::middleware::from_fn(grpc_metrics::count));
    let mut router = gateway::routes(grpc.clone()).merge(grpc);
    if enable_v2 {
        router = v2members::routes(router, context.clone());
    }
    let router = http::routes(router, context)
        .layer(axum::middleware::map_response(http::oversized_as_grpc_go))
        .layer(axum::middleware::from_fn(http::cors));
    Routes::from(router)
}

/// What `--listen-metrics-urls` serves: `/metrics` and `/health`.
pub fn monitoring_routes(context: Arc<Context>) -> Routes {
    Routes::from(http::monitoring_routes(context).layer(axum::middleware::from_fn(http::cors)))
}
