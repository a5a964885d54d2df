//! TLS with rustls for the client and peer ports: the server side (an acceptor whose
//! certificates SIGHUP reloads), the client side of peer connections, etcd's cipher suite
//! names, and the self-signed certificates of `--auto-tls` / `--peer-auto-tls`.
//!
//! # Layout
//! - `files`: reading certificates, keys, CAs and CRLs from PEM files.
//! - `suites`: etcd's (Go's) cipher suite names and the rustls provider they select.
//! - `auto`: the self-signed certificate generated at start.
//! - `server`: [`ServerTls`], the acceptor of one listening side.
//! - `client`: [`PeerConnector`], how this member dials its peers.

mod auto;
mod client;
mod files;
mod server;
mod suites;

use std::sync::Arc;

pub use client::{AnyCertificate, PeerConnector};
pub use server::ServerTls;
pub use suites::cipher_suite;

use crate::config::Config;

/// Why a TLS setting could not be put to use; the text names the file or setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

pub type Result<T> = std::result::Result<T, TlsError>;

/// The TLS state of a member: what its listeners serve and how it dials peers.
pub struct Tls {
    /// Serves `https` client (and metrics) URLs; `None` when no client TLS is configured.
    pub client: Option<Arc<ServerTls>>,
    /// Serves `https` peer URLs; `None` when no peer TLS is configured.
    pub peer: Option<Arc<ServerTls>>,
    pub peer_connector: PeerConnector,
}

impl Tls {
    /// Reads every certificate and key the configuration names, or generates them for
    /// auto TLS; refuses key files others can read.
    pub fn load(config: &Config) -> Result<Tls> {
        let options = suites::Options::new(&config.tls)?;
        let hosts = |urls: &[url::Url]| -> Vec<String> {
            let mut hosts: Vec<String> = urls
                .iter()
                .filter_map(|url| url.host_str())
                .map(|host| host.trim_start_matches('[').trim_end_matches(']').to_string())
                .collect();
            hosts.sort();
            hosts.dedup();
            hosts
        };
        let client = if config.tls.client.can_serve() {
            let client_hosts = hosts(&[config.listen_client_urls.clone(), config.listen_metrics_urls.clone()].concat());
            let server = ServerTls::new(
                "client",
                &config.tls.client,
                &options,
                client_hosts,
                server::CLIENT_ALPN,
            )?;
            Some(Arc::new(server))
        } else {
            None
        };
        let (peer, peer_connector) = if config.tls.peer.can_serve() {
            let server = ServerTls::new(
                "peer",
                &config.tls.peer,
                &options,
                hosts(&config.listen_peer_urls),
                server::PEER_ALPN,
            )?;
            let connector = PeerConnector::new(&config.tls.peer, &options, server.generated())?;
            (Some(Arc::new(server)), connector)
        } else {
            (None, PeerConnector::new(&config.tls.peer, &options, None)?)
        };
        Ok(Tls {
            client,
            peer,
            peer_connector,
        })
    }

    /// Reads the certificate files again (SIGHUP): connections made from now on use them.
    /// A side whose files do not load keeps its certificates, and the error says why.
    pub fn reload(&self) -> Vec<TlsError> {
        let mut errors = Vec::new();
        for server in self.client.iter().chain(&self.peer) {
            if let Err(e) = server.reload() {
                errors.push(e);
            }
        }
        if let Err(e) = self.peer_connector.reload() {
            errors.push(e);
        }
        errors
    }
}
