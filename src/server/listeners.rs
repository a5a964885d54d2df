//! Binding the peer and client URLs and serving them until told to stop. `https` URLs get a
//! TLS handshake on each accepted connection (in its own task, so a slow or refused client
//! holds up no other) before the same gRPC / HTTP service sees the decrypted stream. Accepting
//! survives running out of file descriptors ([`super::accept`]); stopping goes through the
//! [`Stage`]s: draining stops accepting and lets requests finish, closing cuts what is left.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::service::Routes;
use tonic::transport::Server;
use url::Url;

use super::accept::Acceptor;
use super::authority::AuthorityFix;
use super::severable::{reached, Severable, Stage};
use crate::proto::peer::peer_server::PeerServer;
use crate::raft::PeerService;
use crate::system::privilege;
use crate::tls::ServerTls;

type Servers = Vec<JoinHandle<()>>;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The listener for `url` (bound before privileges were dropped, or now), accepting `what`.
async fn bind(url: &Url, what: &str) -> anyhow::Result<Acceptor> {
    let bound = match privilege::take_listener(url) {
        Some(bound) => bound,
        None => privilege::bind(url)?,
    };
    Ok(Acceptor::new(TcpListener::from_std(bound)?, format!("{what} on {url}")))
}

/// The TLS acceptor for `url`: `None` for `http`, as etcd, which ignores the certificates there.
fn tls_for(url: &Url, tls: &Option<Arc<ServerTls>>) -> anyhow::Result<Option<Arc<ServerTls>>> {
    match (url.scheme(), tls) {
        ("https", Some(tls)) => Ok(Some(tls.clone())),
        ("https", None) => anyhow::bail!("cannot listen on TLS for {url}: KeyFile and CertFile are not presented"),
        (_, Some(_)) => {
            tracing::warn!(%url, "scheme is HTTP while key and cert files are present; ignoring key and cert files");
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// The connections of `listener` that completed their TLS handshake. Accepting stops once the
/// server stops reading.
fn handshakes(mut acceptor: Acceptor, tls: Arc<ServerTls>) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (done, connections) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, remote) = tokio::select! {
                accepted = acceptor.accept() => accepted,
                _ = done.closed() => return,
            };
            let _ = stream.set_nodelay(true);
            let (tls, done) = (tls.clone(), done.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = done.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::warn!(%remote, error = %e, "rejected connection: TLS handshake failed"),
                    Err(_) => tracing::warn!(%remote, "rejected connection: TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(connections)
}

/// Plain TCP connections of `acceptor`.
fn plain(acceptor: Acceptor) -> impl tokio_stream::Stream<Item = std::io::Result<TcpStream>> {
    acceptor.into_stream().map(|accepted| {
        accepted.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    })
}

/// Wraps each connection so that the listener's closing cuts it.
fn cut_at_close<S, E>(stage: &watch::Receiver<Stage>) -> impl FnMut(Result<S, E>) -> Result<Severable<S>, E> {
    let stage = stage.clone();
    move |connection| connection.map(|connection| Severable::new(connection, stage.clone()))
}

fn spawn(
    server: impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    what: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "{what} listener failed");
        }
    })
}

pub async fn serve_peers(
    urls: &[Url],
    service: PeerService,
    tls: Option<Arc<ServerTls>>,
    stage: watch::Receiver<Stage>,
) -> anyhow::Result<Servers> {
    let service = PeerServer::new(service)
        .max_decoding_message_size(crate::raft::MAX_PEER_MESSAGE)
        .max_encoding_message_size(crate::raft::MAX_PEER_MESSAGE);
    let mut servers = Vec::new();
    for url in urls {
        let tls = tls_for(url, &tls)?;
        let acceptor = bind(url, "peers").await?;
        tracing::info!(%url, "listening for peers");
        let router = Server::builder().add_service(service.clone());
        let draining = reached(stage.clone(), Stage::Draining);
        servers.push(match tls {
            Some(tls) => {
                let connections = handshakes(acceptor, tls).map(cut_at_close(&stage));
                spawn(router.serve_with_incoming_shutdown(connections, draining), "peer")
            }
            None => {
                let connections = plain(acceptor).map(cut_at_close(&stage));
                spawn(router.serve_with_incoming_shutdown(connections, draining), "peer")
            }
        });
    }
    Ok(servers)
}

pub async fn serve_clients(
    urls: &[Url],
    routes: Routes,
    tls: Option<Arc<ServerTls>>,
    stage: watch::Receiver<Stage>,
) -> anyhow::Result<Servers> {
    let mut servers = Vec::new();
    for url in urls {
        let tls = tls_for(url, &tls)?;
        let acceptor = bind(url, "client requests").await?;
        tracing::info!(%url, "listening for client requests");
        let router = Server::builder().accept_http1(true).add_routes(routes.clone());
        let draining = reached(stage.clone(), Stage::Draining);
        servers.push(match tls {
            Some(tls) => {
                let connections = handshakes(acceptor, tls)
                    .map(|handshaken| handshaken.map(AuthorityFix::new))
                    .map(cut_at_close(&stage));
                spawn(router.serve_with_incoming_shutdown(connections, draining), "client")
            }
            None => {
                let connections = plain(acceptor)
                    .map(|accepted| accepted.map(AuthorityFix::new))
                    .map(cut_at_close(&stage));
                spawn(router.serve_with_incoming_shutdown(connections, draining), "client")
            }
        });
    }
    Ok(servers)
}

/// Stops `servers` through `stage`: no new connections, then up to `deadline` for the requests
/// and streams in flight, then whatever is still open is cut. Returns whether they drained in time.
pub async fn drain(servers: &mut Servers, stage: &watch::Sender<Stage>, deadline: Duration) -> bool {
    let _ = stage.send(Stage::Draining);
    if tokio::time::timeout(deadline, join(servers)).await.is_ok() {
        return true;
    }
    let _ = stage.send(Stage::Closed);
    // A connection is cut the next time it reads or writes; one that is not polled dies with
    // the process.
    let _ = tokio::time::timeout(CUT_WAIT, join(servers)).await;
    false
}

/// How long closing waits for cut connections to go.
const CUT_WAIT: Duration = Duration::from_secs(1);

async fn join(servers: &mut Servers) {
    for server in servers.iter_mut() {
        // A server awaited to its end before is finished; a join handle must not be polled again.
        if !server.is_finished() {
            let _ = server.await;
        }
    }
}
