//! [`PeerConnector`]: how this member dials its peers, for tonic's channels. `http` peer URLs
//! get a plain TCP connection; `https` ones a TLS connection that checks the peer's certificate
//! against `--peer-trusted-ca-file` (the system's CAs without one) and shows this member's peer
//! certificate as its client certificate. With `--peer-auto-tls` the peers' certificates are
//! self-signed, so, as etcd, it does not verify them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use parking_lot::RwLock;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::auto::Generated;
use super::files;
use super::suites::Options;
use super::{Result, TlsError};
use crate::config::TlsFiles;

/// A connection to a peer, plain or TLS.
pub trait PeerIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> PeerIo for T {}

/// Dials peers by URL; cheap to clone (every clone shares the TLS config, which
/// [`PeerConnector::reload`] replaces).
#[derive(Clone)]
pub struct PeerConnector {
    tls: Arc<ClientTls>,
    /// TLS for every connection, whatever the URI's scheme: tonic is given
    /// `http` URIs, since with its own TLS features enabled it refuses an
    /// `https` URI it has no TLS configuration of its own for.
    https: bool,
}

struct ClientTls {
    files: TlsFiles,
    options: Options,
    generated: Option<Generated>,
    current: RwLock<Arc<ClientConfig>>,
}

impl PeerConnector {
    /// A connector with the peer TLS settings; `generated` is this member's auto TLS
    /// certificate, if it has one.
    pub fn new(files: &TlsFiles, options: &Options, generated: Option<Generated>) -> Result<PeerConnector> {
        let config = build(files, options, generated.as_ref())?;
        let tls = ClientTls {
            files: files.clone(),
            options: options.clone(),
            generated,
            current: RwLock::new(Arc::new(config)),
        };
        Ok(PeerConnector {
            tls: Arc::new(tls),
            https: false,
        })
    }

    /// This connector for a peer URL: the URI to give tonic, and the
    /// connector that dials it with TLS when the URL is `https`.
    pub fn for_url(&self, url: &str) -> (String, PeerConnector) {
        match url.strip_prefix("https://") {
            Some(rest) => (
                format!("http://{rest}"),
                PeerConnector {
                    tls: self.tls.clone(),
                    https: true,
                },
            ),
            None => (url.to_string(), self.clone()),
        }
    }

    /// Reads the peer certificate files again; new connections use them.
    pub fn reload(&self) -> Result<()> {
        let tls = &self.tls;
        let config = build(&tls.files, &tls.options, tls.generated.as_ref())?;
        *self.tls.current.write() = Arc::new(config);
        Ok(())
    }

    async fn connect(self, uri: http::Uri) -> std::io::Result<TokioIo<Box<dyn PeerIo>>> {
        let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{uri}: {why}"));
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let https = self.https || uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let stream = TcpStream::connect((host.as_str(), port)).await?;
        stream.set_nodelay(true)?;
        if !https {
            return Ok(TokioIo::new(Box::new(stream)));
        }
        let name = ServerName::try_from(host).map_err(|_| invalid("bad host name"))?;
        let config = self.tls.current.read().clone();
        let stream = TlsConnector::from(config).connect(name, stream).await?;
        Ok(TokioIo::new(Box::new(stream)))
    }
}

/// A rustls client config from the files as they are now.
fn build(files: &TlsFiles, options: &Options, generated: Option<&Generated>) -> Result<ClientConfig> {
    let failed = |e: rustls::Error| TlsError(format!("peer TLS: {e}"));
    let builder = ClientConfig::builder_with_provider(options.provider.clone())
        .with_protocol_versions(&options.versions)
        .map_err(failed)?;
    let builder = match (&generated, &files.trusted_ca_file) {
        (Some(_), None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(options.provider.clone()))),
        (_, ca_file) => builder.with_root_certificates(files::roots(ca_file.as_deref())?),
    };
    let mut config = match (&generated, &files.cert_file, &files.key_file) {
        (Some(generated), _, _) => builder
            .with_client_auth_cert(vec![generated.cert.clone()], generated.key())
            .map_err(failed)?,
        (None, Some(cert), Some(key)) => builder
            .with_client_auth_cert(files::certificates(cert)?, files::private_key(key)?)
            .map_err(failed)?,
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

impl tower::Service<http::Uri> for PeerConnector {
    type Response = TokioIo<Box<dyn PeerIo>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// Accepts any server certificate but still checks that the handshake is signed by its key:
/// peers with auto TLS (every member's certificate is self-signed), and ferrocdctl's
/// `--insecure-skip-tls-verify`.
#[derive(Debug)]
pub struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl AnyCertificate {
    pub fn new(provider: Arc<rustls::crypto::CryptoProvider>) -> AnyCertificate {
        AnyCertificate(provider)
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
