//! etcd's cipher suite names (Go's) and the rustls crypto provider that `--cipher-suites`,
//! `--tls-min-version` and `--tls-max-version` select. rustls implements only the AEAD suites
//! with forward secrecy; the other names etcd knows are refused with a clear error.

use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};
use rustls::{CipherSuite, SupportedProtocolVersion};

use super::{Result, TlsError};
use crate::config::{TlsConfig, TlsVersion};

/// The TLS 1.2 suites rustls implements, by the names etcd 3.4 accepts.
const SUPPORTED: &[(&str, CipherSuite)] = &[
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The other suites etcd 3.4 knows by name: CBC, RC4, 3DES and static RSA key exchange.
const UNSUPPORTED: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The rustls suite etcd's `name` stands for; etcd's error for a name it does not know.
pub fn cipher_suite(name: &str) -> std::result::Result<CipherSuite, String> {
    if let Some((_, suite)) = SUPPORTED.iter().find(|(known, _)| *known == name) {
        return Ok(*suite);
    }
    if UNSUPPORTED.contains(&name) {
        return Err(format!(
            "TLS cipher suite {name:?} is not supported by ferrocd (rustls offers only AEAD suites with forward \
             secrecy: {})",
            SUPPORTED.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
        ));
    }
    Err(format!("unexpected TLS cipher suite {name:?}"))
}

/// The crypto provider and protocol versions every TLS config of a member uses.
#[derive(Clone)]
pub struct Options {
    pub provider: Arc<CryptoProvider>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
}

impl Options {
    pub fn new(config: &TlsConfig) -> Result<Options> {
        let mut provider = ring::default_provider();
        if !config.cipher_suites.is_empty() {
            let allowed = config
                .cipher_suites
                .iter()
                .map(|name| cipher_suite(name))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(TlsError)?;
            // As in Go, the list limits TLS 1.2; TLS 1.3's suites are always offered.
            provider.cipher_suites.retain(|suite| match suite {
                rustls::SupportedCipherSuite::Tls12(_) => allowed.contains(&suite.suite()),
                rustls::SupportedCipherSuite::Tls13(_) => true,
            });
        }
        let versions = [
            (TlsVersion::Tls12, &rustls::version::TLS12),
            (TlsVersion::Tls13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(version, _)| (config.min_version..=config.max_version).contains(version))
        .map(|(_, supported)| supported)
        .collect();
        Ok(Options {
            provider: Arc::new(provider),
            versions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_etcds() {
        assert_eq!(
            cipher_suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            Ok(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
        );
        assert_eq!(
            cipher_suite("FOO"),
            Err(r#"unexpected TLS cipher suite "FOO""#.to_string())
        );
        assert!(cipher_suite("TLS_RSA_WITH_RC4_128_SHA")
            .unwrap_err()
            .contains("not supported by ferrocd"));
    }

    #[test]
    fn the_list_limits_tls12_only() {
        let config = TlsConfig {
            cipher_suites: vec!["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".to_string()],
            ..TlsConfig::default()
        };
        let options = Options::new(&config).unwrap();
        let tls12: Vec<_> = options
            .provider
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, rustls::SupportedCipherSuite::Tls12(_)))
            .map(|s| s.suite())
            .collect();
        assert_eq!(tls12, [CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]);
        assert_eq!(options.versions.len(), 2);
    }
}
