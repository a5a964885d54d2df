//! The TLS settings: the client and the peer certificate files (etcd's `--cert-file ...` and
//! `--peer-cert-file ...`), the cipher suites and TLS versions both sides use, and the checks
//! made on them: before a start (an `https` URL needs certificates, names must be known) and on
//! the files themselves (a private key must be readable by its owner only).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use url::Url;

use super::problem::{About, Problem};
use super::settings::Settings;

/// The files and choices of one side (client or peer) of TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    pub crl_file: Option<PathBuf>,
    /// Whether connecting clients must show a certificate the trusted CA signed. As in etcd, a
    /// trusted CA file alone asks for one too.
    pub client_cert_auth: bool,
    /// Serve a self-signed certificate generated at start when no files are given.
    pub auto_tls: bool,
    /// The only CN a client certificate may have (`--peer-cert-allowed-cn`).
    pub allowed_cn: Option<String>,
}

impl TlsFiles {
    /// Whether a certificate and its key are given as files.
    pub fn has_files(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }

    /// Whether this side can serve TLS: files, or a generated certificate.
    pub fn can_serve(&self) -> bool {
        self.has_files() || self.auto_tls
    }

    /// Whether connecting clients must show a verified certificate.
    pub fn requires_client_certs(&self) -> bool {
        self.client_cert_auth || self.trusted_ca_file.is_some()
    }
}

/// A TLS protocol version ferrocd can speak (rustls has no older ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// Every TLS setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub client: TlsFiles,
    pub peer: TlsFiles,
    /// etcd's (Go's) names of the TLS 1.2 cipher suites allowed; empty allows rustls's defaults.
    pub cipher_suites: Vec<String>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            client: TlsFiles::default(),
            peer: TlsFiles::default(),
            cipher_suites: Vec::new(),
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
        }
    }
}

fn path(settings: &Settings, flag: &str) -> Option<PathBuf> {
    Some(settings.text(flag)).filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// The TLS settings, with etcd's checks of cipher suite names and versions.
pub fn build(settings: &Settings) -> Result<TlsConfig, Problem> {
    let client = TlsFiles {
        cert_file: path(settings, "cert-file"),
        key_file: path(settings, "key-file"),
        trusted_ca_file: path(settings, "trusted-ca-file"),
        crl_file: path(settings, "client-crl-file"),
        client_cert_auth: settings.bool("client-cert-auth"),
        auto_tls: settings.bool("auto-tls"),
        allowed_cn: None,
    };
    let peer = TlsFiles {
        cert_file: path(settings, "peer-cert-file"),
        key_file: path(settings, "peer-key-file"),
        trusted_ca_file: path(settings, "peer-trusted-ca-file"),
        crl_file: path(settings, "peer-crl-file"),
        client_cert_auth: settings.bool("peer-client-cert-auth"),
        auto_tls: settings.bool("peer-auto-tls"),
        allowed_cn: Some(settings.text("peer-cert-allowed-cn").to_string()).filter(|cn| !cn.is_empty()),
    };
    let cipher_suites: Vec<String> = settings
        .text("cipher-suites")
        .split(',')
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect();
    for name in &cipher_suites {
        crate::tls::cipher_suite(name).map_err(|e| Problem::invalid(e, About::Flag("cipher-suites")))?;
    }
    let min_version = version(settings.text("tls-min-version"), "tls-min-version")?.unwrap_or(TlsVersion::Tls12);
    let max_version = version(settings.text("tls-max-version"), "tls-max-version")?.unwrap_or(TlsVersion::Tls13);
    if min_version > max_version {
        let text = format!(
            "min version ({}) is greater than max version ({})",
            settings.text("tls-min-version"),
            settings.text("tls-max-version")
        );
        return Err(Problem::invalid(text, About::Flag("tls-min-version")));
    }
    if min_version == TlsVersion::Tls13 && !cipher_suites.is_empty() {
        let text = "cipher suites cannot be configured when only TLS1.3 is enabled";
        return Err(Problem::invalid(text, About::Flag("cipher-suites")));
    }
    Ok(TlsConfig {
        client,
        peer,
        cipher_suites,
        min_version,
        max_version,
    })
}

/// etcd 3.5's reading of `--tls-min-version` / `--tls-max-version`; empty means the default.
fn version(text: &str, flag: &'static str) -> Result<Option<TlsVersion>, Problem> {
    match text {
        "" => Ok(None),
        "TLS1.2" => Ok(Some(TlsVersion::Tls12)),
        "TLS1.3" => Ok(Some(TlsVersion::Tls13)),
        _ => Err(Problem::invalid(
            format!("unexpected TLS version {text:?} (must be one of: TLS1.2, TLS1.3)"),
            About::Flag(flag),
        )),
    }
}

/// etcd's refusals of `https` listen URLs without certificates, checked before anything starts.
pub fn listener_problems(
    tls: &TlsConfig,
    client_urls: &[Url],
    metrics_urls: &[Url],
    peer_urls: &[Url],
) -> Vec<Problem> {
    let https = |url: &&Url| url.scheme() == "https";
    let mut problems = Vec::new();
    if !tls.client.can_serve() {
        for url in client_urls.iter().chain(metrics_urls).filter(https) {
            let url = url.as_str().trim_end_matches('/');
            let text = format!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme"
            );
            problems.push(Problem::invalid(text, About::Flag("listen-client-urls")));
        }
    }
    if !tls.peer.can_serve() {
        for url in peer_urls.iter().filter(https) {
            let host = url.host_str().unwrap_or("localhost");
            let port = url.port_or_known_default().unwrap_or(0);
            let text = format!("cannot listen on TLS for {host}:{port}: KeyFile and CertFile are not presented");
            problems.push(Problem::invalid(text, About::Flag("listen-peer-urls")));
        }
    }
    problems
}

/// What is wrong with the certificate files, found by reading them: each must be readable, and
/// a private key readable by its owner only.
pub fn file_problems(tls: &TlsConfig) -> Vec<Problem> {
    let sides = [
        (
            &tls.client,
            ["cert-file", "key-file", "trusted-ca-file", "client-crl-file"],
        ),
        (
            &tls.peer,
            [
                "peer-cert-file",
                "peer-key-file",
                "peer-trusted-ca-file",
                "peer-crl-file",
            ],
        ),
    ];
    let mut problems = Vec::new();
    for (files, [cert, key, ca, crl]) in sides {
        let readable = [
            (&files.cert_file, cert),
            (&files.trusted_ca_file, ca),
            (&files.crl_file, crl),
        ];
        for (file, flag) in readable {
            if let Some(Err(e)) = file.as_deref().map(check_readable) {
                problems.push(Problem::invalid(e, About::Flag(flag)));
            }
        }
        if let Some(Err(e)) = files.key_file.as_deref().map(check_key_file) {
            problems.push(Problem::invalid(e, About::Flag(key)));
        }
    }
    problems
}

/// Whether `path` can be opened for reading; the error names the file.
pub fn check_readable(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| format!("open {}: {}", path.display(), io_text(&e)))
}

/// A private key file must be readable, and not by everyone: a key others can read is no longer
/// private.
pub fn check_key_file(path: &Path) -> Result<(), String> {
    check_readable(path)?;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("stat {}: {}", path.display(), io_text(&e)))?
        .permissions()
        .mode();
    if mode & 0o004 != 0 {
        return Err(format!(
            "private key file {} is readable by every user (mode {:04o}); restrict it with chmod 600 {}",
            path.display(),
            mode & 0o7777,
            path.display()
        ));
    }
    Ok(())
}

/// An I/O error as Go prints it: lower case, no error number.
pub(super) fn io_text(e: &std::io::Error) -> String {
    if let Some(code) = e.raw_os_error() {
        let text = nix::errno::Errno::from_raw(code).desc();
        let mut chars = text.chars();
        return chars
            .next()
            .map_or(String::new(), |first| first.to_lowercase().chain(chars).collect());
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_must_be_private_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = check_key_file(&key).unwrap_err();
        assert!(error.contains("is readable by every user (mode 0644)"), "{error}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(check_key_file(&key), Ok(()));
        let missing = dir.path().join("none.pem");
        assert_eq!(
            check_key_file(&missing).unwrap_err(),
            format!("open {}: no such file or directory", missing.display())
        );
    }

    #[test]
    fn versions_use_etcds_names() {
        assert_eq!(version("TLS1.3", "tls-min-version").unwrap(), Some(TlsVersion::Tls13));
        assert_eq!(version("", "tls-min-version").unwrap(), None);
        let Err(problem) = version("TLS1.1", "tls-max-version") else {
            panic!("accepted TLS1.1");
        };
        assert_eq!(
            problem.to_string(),
            r#"error: unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)"#
        );
    }
}
