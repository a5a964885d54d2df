//! Binding the peer and client URLs and serving them until told to stop.

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tonic::service::Routes;
use tonic::transport::Server;
use url::Url;

use super::authority::AuthorityFix;
use crate::proto::peer::peer_server::PeerServer;
use crate::raft::PeerService;
use crate::system::privilege;

type Servers = Vec<JoinHandle<()>>;

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

pub async fn serve_peers(urls: &[Url], service: PeerService, stop: watch::Receiver<bool>) -> anyhow::Result<Servers> {
    let service = PeerServer::new(service)
        .max_decoding_message_size(crate::raft::MAX_PEER_MESSAGE)
        .max_encoding_message_size(crate::raft::MAX_PEER_MESSAGE);
    let mut servers = Vec::new();
    for url in urls {
        let listener = bind(url).await?;
        tracing::info!(%url, "listening for peers");
        let server = Server::builder()
            .tcp_nodelay(true)
            .add_service(service.clone())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped(stop.clone()));
        servers.push(tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "peer listener failed");
            }
        }));
    }
    Ok(servers)
}

pub async fn serve_clients(urls: &[Url], routes: Routes, stop: watch::Receiver<bool>) -> anyhow::Result<Servers> {
    let mut servers = Vec::new();
    for url in urls {
        let listener = bind(url).await?;
        tracing::info!(%url, "listening for client requests");
        let connections = TcpListenerStream::new(listener).map(|accepted| {
            accepted.map(|stream| {
                let _ = stream.set_nodelay(true);
                AuthorityFix::new(stream)
            })
        });
        let server = Server::builder()
            .accept_http1(true)
            .add_routes(routes.clone())
            .serve_with_incoming_shutdown(connections, stopped(stop.clone()));
        servers.push(tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "client listener failed");
            }
        }));
    }
    Ok(servers)
}

pub async fn join(servers: Servers) {
    for server in servers {
        let _ = server.await;
    }
}
