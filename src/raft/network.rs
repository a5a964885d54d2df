//! The client side of member-to-member traffic: one lazily connected gRPC
//! channel per peer, used by openraft's replication and by request
//! forwarding. Payloads are bincode-encoded openraft messages. Every peer
//! channel is made here, dialled by the member's [`PeerConnector`] (plain or
//! TLS by the URL's scheme).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use super::{PeerNode, TypeConfig};
use crate::proto::peer::peer_client::PeerClient;
use crate::proto::peer::Blob;
use crate::tls::PeerConnector;

/// Largest message a peer accepts or sends (a snapshot chunk or a batch of
/// entries); well above `--max-request-bytes` times openraft's batch size.
pub const MAX_PEER_MESSAGE: usize = 256 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What a member answers a removed member's Raft messages with (etcd's
/// words); the removed member stops when it hears it.
pub const REMOVED_MESSAGE: &str = "the member has been permanently removed from the cluster";

/// Channels to peers, keyed by member ID; reconnects when a peer's URL
/// changes. Also records when each peer last answered, and whether a peer
/// told this member it was removed from the cluster.
pub struct PeerChannels {
    connector: PeerConnector,
    channels: Mutex<HashMap<u64, (String, Channel)>>,
    last_answer: Mutex<HashMap<u64, Instant>>,
    removed: watch::Sender<bool>,
}

impl PeerChannels {
    pub fn new(connector: PeerConnector) -> Self {
        PeerChannels {
            connector,
            channels: Mutex::default(),
            last_answer: Mutex::default(),
            removed: watch::channel(false).0,
        }
    }

    /// New channels with the same TLS settings, none connected yet.
    pub fn fresh(&self) -> PeerChannels {
        PeerChannels::new(self.connector.clone())
    }

    /// Notes that `member_id` answered a Raft message just now.
    fn answered(&self, member_id: u64) {
        self.last_answer.lock().insert(member_id, Instant::now());
    }

    /// When `member_id` last answered a Raft message (etcd's "active since").
    pub fn last_answer(&self, member_id: u64) -> Option<Instant> {
        self.last_answer.lock().get(&member_id).copied()
    }

    /// Resolves once a peer said this member was removed from the cluster.
    pub fn removed(&self) -> watch::Receiver<bool> {
        self.removed.subscribe()
    }

    /// Records that this member is no longer part of the cluster.
    pub fn mark_removed(&self) {
        self.removed.send_replace(true);
    }

    pub fn client(&self, member_id: u64, node: &PeerNode) -> Result<PeerClient<Channel>, String> {
        let url = node
            .peer_urls
            .first()
            .ok_or_else(|| format!("member {member_id:x} has no peer URL"))?
            .clone();
        let mut channels = self.channels.lock();
        let channel = match channels.get(&member_id) {
            Some((known, channel)) if *known == url => channel.clone(),
            _ => {
                let channel = self.channel(&url)?;
                channels.insert(member_id, (url, channel.clone()));
                channel
            }
        };
        Ok(peer_client(channel))
    }

    fn channel(&self, url: &str) -> Result<Channel, String> {
        let (uri, connector) = self.connector.for_url(url);
        Ok(Endpoint::from_shared(uri)
            .map_err(|e| format!("bad peer URL {url}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_with_connector_lazy(connector))
    }

    /// Asks the member at a peer URL how it sees the cluster.
    pub async fn cluster_info(&self, url: &str) -> Result<super::ClusterInfo, String> {
        let mut client = peer_client(self.channel(url)?);
        let reply = client.membership(encode(&())).await.map_err(|e| status_text(&e))?;
        decode(reply.get_ref()).map_err(|e| e.to_string())
    }
}

/// A failed call's message, with the transport error under it (a refused TLS handshake says
/// why only there).
fn status_text(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

fn peer_client(channel: Channel) -> PeerClient<Channel> {
    PeerClient::new(channel)
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE)
}

pub fn encode<T: Serialize>(value: &T) -> Blob {
    Blob {
        data: bincode::serialize(value).expect("in-memory serialization"),
    }
}

pub fn decode<T: DeserializeOwned>(blob: &Blob) -> Result<T, bincode::Error> {
    bincode::deserialize(&blob.data)
}

/// openraft's factory of per-peer connections.
pub struct PeerNetwork {
    channels: Arc<PeerChannels>,
}

impl PeerNetwork {
    pub fn new(channels: Arc<PeerChannels>) -> Self {
        PeerNetwork { channels }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &PeerNode) -> PeerConnection {
        PeerConnection {
            target,
            client: self.channels.client(target, node),
            channels: self.channels.clone(),
        }
    }
}

pub struct PeerConnection {
    target: u64,
    client: Result<PeerClient<Channel>, String>,
    channels: Arc<PeerChannels>,
}

type RpcResult<T, E> = Result<T, RPCError<u64, PeerNode, RaftError<u64, E>>>;

impl PeerConnection {
    async fn call<Req, Resp, E>(&mut self, method: Method, body: &Req, option: &RPCOption) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = self
            .client
            .as_mut()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e.clone()))))?;
        let mut request = tonic::Request::new(encode(body));
        let (sent, started) = (request.get_ref().data.len(), std::time::Instant::now());
        request.set_timeout(option.hard_ttl());
        let reply = match method {
            Method::AppendEntries | Method::Heartbeat => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::InstallSnapshot => client.install_snapshot(request).await,
        };
        let blob = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
            tonic::Code::FailedPrecondition if status.message() == REMOVED_MESSAGE => {
                self.channels.mark_removed();
                RPCError::Network(NetworkError::new(&status))
            }
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        self.channels.answered(self.target);
        let heartbeat = matches!(method, Method::Heartbeat).then(|| started.elapsed().as_secs_f64());
        crate::metrics::peer_call(self.target, sent, blob.get_ref().data.len(), heartbeat);
        let result: Result<Resp, RaftError<u64, E>> =
            decode(blob.get_ref()).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum Method {
    AppendEntries,
    /// An AppendEntries without entries: its time is the round trip.
    Heartbeat,
    Vote,
    InstallSnapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        let method = if rpc.entries.is_empty() {
            Method::Heartbeat
        } else {
            Method::AppendEntries
        };
        self.call(method, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(Method::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, openraft::error::Infallible> {
        self.call(Method::Vote, &rpc, &option).await
    }
}
