//! Reading certificates, private keys, CAs and revocation lists from PEM files, with the key
//! file checks of [`crate::config::check_key_file`].

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::RootCertStore;

use super::{Result, TlsError};
use crate::config::{check_key_file, check_readable};

/// The certificates of a PEM file, the leaf first.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    check_readable(path).map_err(TlsError)?;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!("{}: no certificate found", path.display())));
    }
    Ok(certs)
}

/// The private key of a PEM file, which must be readable by its owner only.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    check_key_file(path).map_err(TlsError)?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError(format!("{}: no private key: {e}", path.display())))
}

/// The CA certificates of a file; without one, the system's.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError(format!("{}: bad CA certificate: {e}", path.display())))?;
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    Ok(roots)
}

/// The revocation lists of a file, PEM or DER (as Go's x509.ParseCRL takes either).
pub fn revocation_lists(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    check_readable(path).map_err(TlsError)?;
    let bytes = std::fs::read(path).map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    if pem.is_empty() {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    Ok(pem)
}

/// The subject CN of a DER certificate.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}
