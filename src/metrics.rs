//! Every Prometheus series ferrocd exports, with etcd's names, labels, types
//! and help texts, in one process-wide registry (as etcd's default one).
//! Code elsewhere records with one-line calls; values that are a reading of
//! the current state (leader, revisions, sizes) are set when `/metrics` is
//! scraped (see `api::http`). A series ferrocd cannot compute honestly is not
//! here at all.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::{
    exponential_buckets, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let registry = Registry::new();
    // CPU, memory, file descriptors and start time of this process.
    registry
        .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
        .expect("process collector registers once");
    registry
});

fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    REGISTRY
        .register(Box::new(metric.clone()))
        .expect("each series is registered once");
    metric
}

fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help).expect("valid gauge"))
}

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).expect("valid counter"))
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid histogram"))
}

/// etcd's disk latency buckets: 1 ms to 8 s, doubling.
fn disk_buckets() -> Vec<f64> {
    exponential_buckets(0.001, 2.0, 14).expect("valid buckets")
}

pub static HAS_LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
    )
});
pub static IS_LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
    )
});
pub static IS_LEARNER: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise.",
    )
});
pub static LEADER_CHANGES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen.",
    )
});
pub static PROPOSALS_COMMITTED: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
    )
});
pub static PROPOSALS_APPLIED: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
    )
});
pub static PROPOSALS_PENDING: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
    )
});
pub static PROPOSALS_FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen.",
    )
});
pub static HEALTH_SUCCESS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "etcd_server_health_success",
        "The total number of successful health checks",
    )
});
pub static HEALTH_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "etcd_server_health_failures",
        "The total number of failed health checks",
    )
});

pub static WAL_FSYNC: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
        disk_buckets(),
    )
});
pub static BACKEND_COMMIT: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
        disk_buckets(),
    )
});

pub static DB_TOTAL_SIZE: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
    )
});
pub static DB_SIZE_IN_USE: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
    )
});
pub static QUOTA_BACKEND_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes.",
    )
});
pub static KEYS: LazyLock<IntGauge> =
    LazyLock::new(|| gauge("etcd_debugging_mvcc_keys_total", "Total number of keys."));
pub static CURRENT_REVISION: LazyLock<IntGauge> =
    LazyLock::new(|| gauge("etcd_debugging_mvcc_current_revision", "The current revision of store."));
pub static COMPACT_REVISION: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_debugging_mvcc_compact_revision",
        "The revision of the last compaction in store.",
    )
});

pub static PEER_SENT_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "etcd_network_peer_sent_bytes_total",
                "The total number of bytes sent to peers.",
            ),
            &["To"],
        )
        .expect("valid counter"),
    )
});
pub static PEER_RECEIVED_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "etcd_network_peer_received_bytes_total",
                "The total number of bytes received from peers.",
            ),
            &["From"],
        )
        .expect("valid counter"),
    )
});
pub static PEER_ROUND_TRIP: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "etcd_network_peer_round_trip_time_seconds",
                "Round-Trip-Time histogram between peers",
            )
            .buckets(exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")),
            &["To"],
        )
        .expect("valid histogram"),
    )
});
pub static CLIENT_RECEIVED_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "etcd_network_client_grpc_received_bytes_total",
        "The total number of bytes received from grpc clients.",
    )
});
pub static CLIENT_SENT_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "etcd_network_client_grpc_sent_bytes_total",
        "The total number of bytes sent to grpc clients.",
    )
});

const GRPC_LABELS: &[&str] = &["grpc_type", "grpc_service", "grpc_method"];

pub static GRPC_STARTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
            ),
            GRPC_LABELS,
        )
        .expect("valid counter"),
    )
});
pub static GRPC_HANDLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
            ),
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )
        .expect("valid counter"),
    )
});
/// Registered only with `--metrics=extensive`, as etcd does.
static GRPC_HANDLING: LazyLock<HistogramVec> = LazyLock::new(|| {
    HistogramVec::new(
        HistogramOpts::new(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
        ),
        GRPC_LABELS,
    )
    .expect("valid histogram")
});
static EXTENSIVE: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// gRPC status code names as grpc-go prints them.
pub const GRPC_CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// Creates every series at its zero value, and the per-method gRPC series
/// for every client RPC (as grpc-prometheus does), so dashboards see them
/// before the first event. `extensive` adds gRPC handling-time histograms.
pub fn init(member_id: u64, server_version: &str, cluster_version: &str, extensive: bool) {
    for gauge in [
        &HAS_LEADER,
        &IS_LEADER,
        &IS_LEARNER,
        &PROPOSALS_COMMITTED,
        &PROPOSALS_APPLIED,
        &PROPOSALS_PENDING,
        &DB_TOTAL_SIZE,
        &DB_SIZE_IN_USE,
        &KEYS,
        &CURRENT_REVISION,
        &COMPACT_REVISION,
    ] {
        LazyLock::force(gauge);
    }
    for counter in [
        &LEADER_CHANGES,
        &PROPOSALS_FAILED,
        &HEALTH_SUCCESS,
        &HEALTH_FAILURES,
        &CLIENT_RECEIVED_BYTES,
        &CLIENT_SENT_BYTES,
    ] {
        LazyLock::force(counter);
    }
    LazyLock::force(&WAL_FSYNC);
    LazyLock::force(&BACKEND_COMMIT);
    LazyLock::force(&PEER_SENT_BYTES);
    LazyLock::force(&PEER_RECEIVED_BYTES);
    LazyLock::force(&PEER_ROUND_TRIP);
    if extensive && EXTENSIVE.set(()).is_ok() {
        let _ = REGISTRY.register(Box::new(GRPC_HANDLING.clone()));
    }
    for (service, method, kind) in crate::proto::methods::GRPC_METHODS {
        GRPC_STARTED.with_label_values(&[kind, service, method]);
        for code in GRPC_CODES {
            GRPC_HANDLED.with_label_values(&[kind, service, method, code]);
        }
        if extensive {
            GRPC_HANDLING.with_label_values(&[kind, service, method]);
        }
    }
    info_gauge(
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        "server_id",
        &format!("{member_id:x}"),
    );
    info_gauge(
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        "server_version",
        server_version,
    );
    info_gauge(
        "etcd_cluster_version",
        "Which version is running. 1 for 'cluster_version' label with current cluster version",
        "cluster_version",
        cluster_version,
    );
}

/// A constant 1 whose label says something (etcd's version and ID series).
fn info_gauge(name: &str, help: &str, label: &str, value: &str) {
    if let Ok(gauge) = GaugeVec::new(Opts::new(name, help), &[label]) {
        gauge.with_label_values(&[value]).set(1.0);
        // A second server in one process (tests) keeps the first's labels.
        let _ = REGISTRY.register(Box::new(gauge));
    }
}

/// One gRPC call, from its start to its status; a call dropped before it
/// has one was cancelled.
pub struct GrpcCall {
    labels: [&'static str; 3],
    started: Instant,
    finished: bool,
}

impl GrpcCall {
    /// Counts a call to `path` (`/package.Service/Method`); `None` for a
    /// path that is not a client RPC.
    pub fn start(path: &str) -> Option<GrpcCall> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        let &(service, method, kind) = crate::proto::methods::GRPC_METHODS
            .iter()
            .find(|(s, m, _)| *s == service && *m == method)?;
        GRPC_STARTED.with_label_values(&[kind, service, method]).inc();
        Some(GrpcCall {
            labels: [kind, service, method],
            started: Instant::now(),
            finished: false,
        })
    }

    /// Counts the call as handled with the numeric gRPC `code`.
    pub fn finish(mut self, code: usize) {
        self.record(code);
    }

    fn record(&mut self, code: usize) {
        self.finished = true;
        let [kind, service, method] = self.labels;
        let code = GRPC_CODES.get(code).copied().unwrap_or("Unknown");
        GRPC_HANDLED.with_label_values(&[kind, service, method, code]).inc();
        if EXTENSIVE.get().is_some() {
            GRPC_HANDLING
                .with_label_values(&self.labels)
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

impl Drop for GrpcCall {
    fn drop(&mut self) {
        if !self.finished {
            self.record(1);
        }
    }
}

/// Bytes exchanged with peer `member_id` in one call, and, for a heartbeat
/// (a call that carries no entries), its round trip.
pub fn peer_call(member_id: u64, sent: usize, received: usize, heartbeat_round_trip: Option<f64>) {
    let id = format!("{member_id:x}");
    PEER_SENT_BYTES.with_label_values(&[&id]).inc_by(sent as u64);
    PEER_RECEIVED_BYTES.with_label_values(&[&id]).inc_by(received as u64);
    if let Some(seconds) = heartbeat_round_trip {
        PEER_ROUND_TRIP.with_label_values(&[&id]).observe(seconds);
    }
}

/// Bytes of a request peer `member_id` sent to this member.
pub fn peer_request(member_id: u64, bytes: usize) {
    PEER_RECEIVED_BYTES
        .with_label_values(&[&format!("{member_id:x}")])
        .inc_by(bytes as u64);
}

/// Marks one proposal as pending until the guard is dropped.
pub fn proposal_pending() -> impl Drop {
    struct Pending;
    impl Drop for Pending {
        fn drop(&mut self) {
            PROPOSALS_PENDING.dec();
        }
    }
    PROPOSALS_PENDING.inc();
    Pending
}

/// Runs `f` and records how long it took in `histogram`.
pub fn timed<T>(histogram: &Histogram, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = f();
    histogram.observe(started.elapsed().as_secs_f64());
    result
}

/// The registry in Prometheus text format 0.0.4, and its content type.
pub fn render() -> (String, Vec<u8>) {
    let encoder = TextEncoder::new();
    let mut text = Vec::new();
    if let Err(e) = encoder.encode(&REGISTRY.gather(), &mut text) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    (encoder.format_type().to_string(), text)
}

/// Keeps the process-wide leader series in step with Raft: counts a change
/// each time a new leader becomes known (as etcd does, the first election
/// included).
pub async fn follow_leader(
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, crate::raft::PeerNode>>,
) {
    let mut last_leader = None;
    loop {
        let leader = metrics.borrow_and_update().current_leader;
        if leader.is_some() && leader != last_leader {
            LEADER_CHANGES.inc();
        }
        if leader.is_some() {
            last_leader = leader;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
