//! The self-signed certificate of `--auto-tls` / `--peer-auto-tls`, generated at start as etcd
//! does: an ECDSA P-256 key, the listen URLs' hosts as names, valid for a year.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{Result, TlsError};

/// A generated certificate and its key.
#[derive(Clone)]
pub struct Generated {
    pub cert: CertificateDer<'static>,
    pub key_pkcs8: Vec<u8>,
}

impl Generated {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

/// Generates a self-signed certificate for `hosts` (names or IP addresses).
pub fn generate(hosts: Vec<String>) -> Result<Generated> {
    let failed = |e: rcgen::Error| TlsError(format!("cannot generate a self-signed certificate: {e}"));
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(hosts).map_err(failed)?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "ferrocd");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365);
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok(Generated {
        cert: cert.der().clone(),
        key_pkcs8: key.serialize_der(),
    })
}
