//! Starting and stopping a member: open the data dir, start Raft and the peer
//! and client listeners, publish this member, and shut everything down in a
//! fixed order when asked.

mod accept;
mod authority;
mod bootstrap;
mod compactor;
mod listeners;
mod restore;
mod severable;
mod status;
mod stop;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use openraft::SnapshotPolicy;
use tokio::sync::watch;

pub use bootstrap::url_string;
pub use restore::{restore, restore_config, Restored};

use crate::api::{self, Context};
use crate::apply::{Command, MemberAttributes};
use crate::auth::TokenConfig;
use crate::config::Config;
use crate::raft::{
    promote_caught_up, LeaseClock, LogStore, PeerChannels, PeerNetwork, PeerNode, PeerService, Raft, Replica,
    ReplicaOptions, StateMachine,
};
use crate::storage::Backend;
use crate::system::notify::Notifier;
use crate::tls::Tls;
use severable::Stage;

/// Log entries kept after a snapshot so slow followers can catch up from the
/// log (etcd's SnapshotCatchUpEntries).
const CATCH_UP_ENTRIES: u64 = 5000;
/// How often a learner asks its peers whether it was removed.
const LEARNER_REMOVAL_CHECK: Duration = Duration::from_secs(2);

/// Runs a member until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let tls = Arc::new(Tls::load(&config)?);
    let hangups = crate::system::signals::hangups().context("cannot install the SIGHUP handler")?;
    let reloads = tokio::spawn(reload_on_hangup(tls.clone(), hangups));
    let channels = Arc::new(PeerChannels::new(tls.peer_connector.clone()));
    let backend = open_data_dir(&config.data_dir)?;
    let (identity, fresh) = bootstrap::resolve(&config, &backend, &channels).await?;
    tracing::info!(
        member_id = %format!("{:x}", identity.member_id),
        cluster_id = %format!("{:x}", identity.cluster_id),
        name = %config.name,
        data_dir = %config.data_dir.display(),
        "starting member"
    );

    let raft_config = raft_config(&config)?;
    let log_store = LogStore::open(&backend)?;
    if config.force_new_cluster && !fresh {
        let node = PeerNode {
            name: config.name.clone(),
            peer_urls: config.initial_advertise_peer_urls.iter().map(url_string).collect(),
            promote: false,
        };
        log_store
            .force_single_member(identity.member_id, node)
            .await
            .map_err(|e| anyhow::anyhow!("--force-new-cluster: {e}"))?;
        tracing::warn!(
            "--force-new-cluster: this member is now the only member of its cluster, with its data; \
             restart it without the flag, then add members with `member add`"
        );
    }
    let state_machine = StateMachine::open(&backend).map_err(|e| anyhow::anyhow!("{e}"))?;
    let applier = state_machine.applier();
    applier.write().auth_mut().set_token_ttl(config.auth_token_ttl);
    let raft = Raft::new(
        identity.member_id,
        Arc::new(raft_config),
        PeerNetwork::new(channels.clone()),
        log_store,
        state_machine,
    )
    .await
    .context("cannot start raft")?;
    if !fresh && !config.force_new_cluster {
        let known_peers = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .flat_map(|(_, node)| node.peer_urls.clone())
            .collect();
        if let Err(e) = bootstrap::verify_with_peers(&config, &identity, known_peers, &channels).await {
            let _ = raft.shutdown().await;
            return Err(e.into());
        }
    }
    if !raft.is_initialized().await? && !identity.initial_members.is_empty() {
        raft.initialize(identity.initial_members.clone())
            .await
            .context("cannot initialize the cluster")?;
    }

    crate::metrics::init(identity.member_id, api::ETCD_VERSION, "3.4", config.metrics_extensive);
    let leader_metrics = tokio::spawn(crate::metrics::follow_leader(raft.metrics()));
    let notifier = Notifier::start(status::Status {
        raft: raft.clone(),
        applier: applier.clone(),
        member_id: identity.member_id,
    });

    let request_timeout = Duration::from_secs(5) + 2 * config.election_timeout;
    let options = ReplicaOptions {
        member_id: identity.member_id,
        request_timeout,
        strict_reconfig_check: config.strict_reconfig_check,
    };
    let replica = Arc::new(Replica::new(raft.clone(), options, channels.clone(), applier.clone()));
    let promoter = tokio::spawn(promote_caught_up(replica.clone()));
    let compaction = config
        .auto_compaction
        .map(|mode| tokio::spawn(compactor::run(mode, replica.clone(), applier.clone())));
    let leases = Arc::new(LeaseClock::new(
        replica.clone(),
        applier.clone(),
        config.election_timeout,
    ));
    let lease_expiry = tokio::spawn(leases.clone().run());
    let context = Arc::new(Context {
        replica: replica.clone(),
        applier,
        backend: backend.clone(),
        cluster_id: identity.cluster_id,
        max_request_bytes: config.max_request_bytes,
        max_txn_ops: config.max_txn_ops,
        leases: leases.clone(),
        min_lease_ttl: min_lease_ttl(config.election_timeout),
        watch_progress_interval: config.watch_progress_notify_interval,
        quota_backend_bytes: config.quota_backend_bytes,
        tokens: TokenConfig::parse(&config.auth_token, config.auth_token_ttl)?,
        bcrypt_cost: config.bcrypt_cost,
    });

    let (client_stage, client_stages) = watch::channel(Stage::Serving);
    // Peers are served until Raft stops: a leadership hand-off needs them.
    let (peer_stage, peer_stages) = watch::channel(Stage::Serving);
    let peers = listeners::serve_peers(
        &config.listen_peer_urls,
        PeerService::new(replica.clone(), leases, identity.cluster_id),
        tls.peer.clone(),
        peer_stages,
    )
    .await?;
    // As etcd: client requests are served only once this member's
    // attributes are committed, so MemberList always shows a serving member.
    let client_urls = config.advertise_client_urls.iter().map(url_string).collect();
    let removed = removal(raft.clone(), identity.member_id, channels.clone());
    tokio::pin!(removed);
    let shutdown = {
        async move {
            tokio::select! {
                _ = shutdown => {}
                _ = removed => {
                    tracing::error!(
                        "the member has been permanently removed from the cluster; stopping. To bring this host back, \
                         remove its data dir and add it again with `etcdctl member add`"
                    );
                }
            }
        }
    };
    tokio::pin!(shutdown);
    let clients = tokio::select! {
        _ = publish(replica.clone(), config.name.clone(), client_urls) => {
            let client_tls = tls.client.clone();
            let mut clients = listeners::serve_clients(&config.listen_client_urls, api::client_routes(context.clone(), config.enable_v2), client_tls.clone(), client_stages.clone()).await?;
            clients.extend(listeners::serve_clients(&config.listen_metrics_urls, api::monitoring_routes(context), client_tls, client_stages).await?);
            notifier.ready();
            Some(clients)
        }
        _ = &mut shutdown => None,
    };
    if clients.is_some() {
        shutdown.await;
    }
    tracing::info!("received shutdown signal, stopping");
    notifier.stopping();
    if let Some(compaction) = compaction {
        compaction.abort();
    }
    lease_expiry.abort();
    promoter.abort();
    leader_metrics.abort();
    reloads.abort();
    stop::stop(stop::Member {
        clients: stop::Listeners {
            servers: clients.unwrap_or_default(),
            stage: client_stage,
            what: "client",
        },
        peers: stop::Listeners {
            servers: peers,
            stage: peer_stage,
            what: "peer",
        },
        raft,
        replica,
        election_timeout: config.election_timeout,
        backend,
    })
    .await
}

/// On every SIGHUP, reopens the log files (log rotation) and reloads the TLS certificates
/// (certificate rotation).
async fn reload_on_hangup(tls: Arc<Tls>, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        crate::system::telemetry::reopen_log_files();
        let errors = tls.reload();
        let serves_tls = tls.client.is_some() || tls.peer.is_some();
        if errors.is_empty() && serves_tls {
            tracing::info!("SIGHUP: TLS certificates reloaded");
        }
        for error in errors {
            tracing::error!(error = %error, "SIGHUP: cannot reload TLS certificates; keeping the current ones");
        }
    }
}

/// Resolves once this member is no longer part of the cluster: a peer said
/// so, or the membership it applied no longer lists it.
async fn removal(raft: Raft, member_id: u64, channels: Arc<PeerChannels>) {
    let mut told = channels.removed();
    let mut metrics = raft.metrics();
    let left = async {
        let mut listed = false;
        loop {
            let (membership, applied) = {
                let m = metrics.borrow_and_update();
                (m.membership_config.clone(), m.last_applied.map_or(0, |id| id.index))
            };
            let listed_now = membership.membership().get_node(&member_id).is_some();
            // Only once committed: a leader removing itself first replicates the change.
            let committed = membership.log_id().is_some_and(|id| id.index <= applied);
            if listed && !listed_now && committed {
                return;
            }
            listed |= listed_now;
            if metrics.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = told.wait_for(|removed| *removed) => {}
        _ = left => {}
        _ = removed_as_learner(raft.clone(), member_id, channels.clone()) => {}
    }
}

/// Resolves once a peer lists this member, while a learner, as removed. A
/// voter hears of its removal (it is in the joint configuration, or its votes
/// are refused), but the leader simply stops replicating to a learner it
/// removes, so a learner asks.
async fn removed_as_learner(raft: Raft, member_id: u64, channels: Arc<PeerChannels>) {
    let mut ticks = tokio::time::interval(LEARNER_REMOVAL_CHECK);
    loop {
        ticks.tick().await;
        let membership = raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        if membership.voter_ids().any(|voter| voter == member_id) {
            continue;
        }
        let peers: Vec<String> = membership
            .nodes()
            .filter(|(id, _)| **id != member_id)
            .filter_map(|(_, node)| node.peer_urls.first().cloned())
            .collect();
        for url in peers {
            let answer = tokio::time::timeout(LEARNER_REMOVAL_CHECK, channels.cluster_info(&url)).await;
            if let Ok(Ok(info)) = answer {
                if info.removed.contains(&member_id) {
                    return;
                }
            }
        }
    }
}

/// etcd's minimum lease TTL: one and a half election timeouts, in whole
/// seconds rounded up.
fn min_lease_ttl(election_timeout: Duration) -> i64 {
    (election_timeout.as_secs_f64() * 1.5).ceil() as i64
}

fn open_data_dir(data_dir: &Path) -> anyhow::Result<Backend> {
    let member_dir = data_dir.join("member");
    std::fs::create_dir_all(&member_dir)
        .with_context(|| format!("cannot access data directory: mkdir {}", member_dir.display()))?;
    set_private(data_dir)?;
    Backend::open(&member_dir.join("db"))
        .with_context(|| format!("cannot open the database in {}", member_dir.display()))
}

/// The data dir is readable by its owner only, as etcd makes it.
fn set_private(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot access data directory: chmod {}", dir.display()))
}

fn raft_config(config: &Config) -> anyhow::Result<openraft::Config> {
    let heartbeat = config.heartbeat_interval.as_millis() as u64;
    let election = config.election_timeout.as_millis() as u64;
    openraft::Config {
        cluster_name: config.initial_cluster_token.clone(),
        heartbeat_interval: heartbeat,
        election_timeout_min: election,
        election_timeout_max: election * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_count),
        max_in_snapshot_log_to_keep: CATCH_UP_ENTRIES.min(config.snapshot_count),
        ..Default::default()
    }
    .validate()
    .context("invalid raft timing")
}

/// Announces this member's name and client URLs through the log (etcd's
/// publish), retrying until it is committed; then the member is ready.
async fn publish(replica: Arc<Replica>, name: String, client_urls: Vec<String>) {
    let member_id = replica.member_id();
    let attributes = MemberAttributes { name, client_urls };
    loop {
        let command = Command::Publish {
            member_id,
            attributes: attributes.clone(),
        };
        match replica.propose(command).await {
            Ok(_) => break,
            Err(e) => {
                tracing::debug!(error = %e, "publish not committed yet; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::info!(member_id = %format!("{member_id:x}"), "published member attributes");
    tracing::info!("ready to serve client requests");
}
