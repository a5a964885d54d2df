//! Binding the peer and client URLs and serving them until told to stop. `https` URLs get a
//! TLS handshake on each accepted connection (in its own task, so a slow or refused client
//! holds up no other) before the same gRPC / HTTP service sees the decrypted stream.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::StreamExt;
use tonic::service::Routes;
use tonic::transport::Server;
use url::Url;

use super::authority::AuthorityFix;
use crate::proto::peer::peer_server::PeerServer;
use crate::raft::PeerService;
use crate::system::privilege;
use crate::tls::ServerTls;

type Servers = Vec<JoinHandle<()>>;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The listener for `url`: bound before privileges were dropped, or now.
async fn bind(url: &Url) -> anyhow::Result<TcpListener> {
    let bound = match privilege::take_listener(url) {
        Some(bound) => bound,
        None => privilege::bind(url)?,
    };
    Ok(TcpListener::from_std(bound)?)
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
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
fn handshakes(
    listener: TcpListener,
    tls: Arc<ServerTls>,
) -> ReceiverStream<std::io::Result<TlsStream<tokio::net::TcpStream>>> {
    let (done, connections) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
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
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Servers> {
    let service = PeerServer::new(service)
        .max_decoding_message_size(crate::raft::MAX_PEER_MESSAGE)
        .max_encoding_message_size(crate::raft::MAX_PEER_MESSAGE);
    let mut servers = Vec::new();
    for url in urls {
        let acceptor = tls_for(url, &tls)?;
        let listener = bind(url).await?;
        tracing::info!(%url, "listening for peers");
        let router = Server::builder().tcp_nodelay(true).add_service(service.clone());
        servers.push(match acceptor {
            Some(tls) => spawn(
                router.serve_with_incoming_shutdown(handshakes(listener, tls), stopped(stop.clone())),
                "peer",
            ),
            None => spawn(
                router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped(stop.clone())),
                "peer",
            ),
        });
    }
    Ok(servers)
}

pub async fn serve_clients(
    urls: &[Url],
    routes: Routes,
    tls: Option<Arc<ServerTls>>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Servers> {
    let mut servers = Vec::new();
    for url in urls {
        let acceptor = tls_for(url, &tls)?;
        let listener = bind(url).await?;
        tracing::info!(%url, "listening for client requests");
        let router = Server::builder().accept_http1(true).add_routes(routes.clone());
        servers.push(match acceptor {
            Some(tls) => {
                let connections = handshakes(listener, tls).map(|handshaken| handshaken.map(AuthorityFix::new));
                spawn(
                    router.serve_with_incoming_shutdown(connections, stopped(stop.clone())),
                    "client",
                )
            }
            None => {
                let connections = TcpListenerStream::new(listener).map(|accepted| {
                    accepted.map(|stream| {
                        let _ = stream.set_nodelay(true);
                        AuthorityFix::new(stream)
                    })
                });
                spawn(
                    router.serve_with_incoming_shutdown(connections, stopped(stop.clone())),
                    "client",
                )
            }
        });
    }
    Ok(servers)
}

pub async fn join(servers: Servers) {
    for server in servers {
        let _ = server.await;
    }
}
