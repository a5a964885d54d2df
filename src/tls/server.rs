//! [`ServerTls`]: the TLS acceptor of one side (client or peer). Its rustls config is built
//! from the files at start and again on [`ServerTls::reload`]; each handshake uses the config
//! current when it starts, so a reload changes the certificate new connections see without
//! touching open ones. With client certificate authentication a client without a certificate
//! signed by the trusted CA fails the handshake; a peer whose certificate lacks the allowed CN
//! is dropped right after it.

use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::auto::{self, Generated};
use super::files;
use super::suites::Options;
use super::{Result, TlsError};
use crate::config::TlsFiles;

/// What the client port speaks: gRPC and the HTTP endpoints, over HTTP/2 or HTTP/1.1.
pub const CLIENT_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];
/// What the peer port speaks: gRPC only.
pub const PEER_ALPN: &[&[u8]] = &[b"h2"];

pub struct ServerTls {
    source: Source,
    /// The config handshakes start with; replaced whole on reload.
    current: RwLock<Arc<ServerConfig>>,
}

/// Where a side's rustls config comes from.
struct Source {
    /// "client" or "peer", for messages.
    side: &'static str,
    files: TlsFiles,
    options: Options,
    alpn: &'static [&'static [u8]],
    /// The certificate of auto TLS, generated once at start, when no files are given.
    generated: Option<Generated>,
}

impl ServerTls {
    pub fn new(
        side: &'static str,
        files: &TlsFiles,
        options: &Options,
        hosts: Vec<String>,
        alpn: &'static [&'static [u8]],
    ) -> Result<ServerTls> {
        let generated = if files.has_files() {
            if files.auto_tls {
                tracing::warn!(side, "ignoring auto TLS since certificate and key files are given");
            }
            None
        } else {
            tracing::info!(side, ?hosts, "generating a self-signed certificate (auto TLS)");
            Some(auto::generate(hosts)?)
        };
        let source = Source {
            side,
            files: files.clone(),
            options: options.clone(),
            alpn,
            generated,
        };
        let current = RwLock::new(Arc::new(source.build()?));
        Ok(ServerTls { source, current })
    }

    /// The generated certificate of auto TLS, if that is what this side serves.
    pub fn generated(&self) -> Option<Generated> {
        self.source.generated.clone()
    }

    /// Reads the files again; new connections use them. On error the old config stays.
    pub fn reload(&self) -> Result<()> {
        let config = self.source.build()?;
        *self.current.write() = Arc::new(config);
        tracing::info!(side = self.source.side, "reloaded TLS certificates");
        Ok(())
    }

    /// The TLS handshake of an accepted connection, then the allowed-CN check.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        let config = self.current.read().clone();
        let stream = TlsAcceptor::from(config).accept(stream).await?;
        if let Some(allowed) = &self.source.files.allowed_cn {
            let (_, session) = stream.get_ref();
            let cn = session
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(files::common_name);
            if cn.as_deref() != Some(allowed.as_str()) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "client certificate CN {:?} is not the allowed CN {allowed:?}",
                        cn.unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(stream)
    }
}

impl Source {
    /// A rustls config from the files as they are now.
    fn build(&self) -> Result<ServerConfig> {
        let failed = |e: rustls::Error| TlsError(format!("{} TLS: {e}", self.side));
        let builder = ServerConfig::builder_with_provider(self.options.provider.clone())
            .with_protocol_versions(&self.options.versions)
            .map_err(failed)?;
        let builder = if self.files.requires_client_certs() {
            let roots = files::roots(self.files.trusted_ca_file.as_deref())?;
            let crls = match &self.files.crl_file {
                Some(path) => files::revocation_lists(path)?,
                None => Vec::new(),
            };
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), self.options.provider.clone())
                .with_crls(crls)
                .build()
                .map_err(|e| TlsError(format!("{} TLS: client certificate verifier: {e}", self.side)))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let (certs, key) = match (&self.generated, &self.files.cert_file, &self.files.key_file) {
            (Some(generated), _, _) => (vec![generated.cert.clone()], generated.key()),
            (None, Some(cert), Some(key)) => (files::certificates(cert)?, files::private_key(key)?),
            _ => return Err(TlsError(format!("{} TLS: no certificate and key given", self.side))),
        };
        let mut config = builder.with_single_cert(certs, key).map_err(failed)?;
        config.alpn_protocols = self.alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}
