//! TLS for framewire (docs/security.md, "TLS"): certificate and key files
//! read into rustls configurations, TLS 1.3 only, with the aws-lc-rs
//! provider; and a small deployment CA ([`ca`]) that makes the files for
//! a site that has none (`framewire cert init` and `issue`).
//!
//! A server may ask its clients for a certificate of the deployment CA
//! (mutual authentication); a client always checks the server's against
//! the CA it is given, and its name (an address or a DNS name) against the
//! certificate's subject alternative names.
//!
//! Node connections ([`stream`]) take rustls's handshake and then protect
//! their records with [`record`]: sealed from the caller's bytes straight
//! into the socket's buffer, opened in place in the buffer the socket was
//! read into. The web UI's HTTPS stays with rustls's own connection.

#![forbid(unsafe_code)]

pub mod ca;
pub mod record;
pub mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use rustls;
pub use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// Why a TLS file or configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no PEM certificate.
    #[error("{} holds no certificate (PEM `BEGIN CERTIFICATE`)", .0.display())]
    NoCertificate(PathBuf),
    /// A file holds no PEM private key.
    #[error("{} holds no private key (PEM `BEGIN PRIVATE KEY`)", .0.display())]
    NoKey(PathBuf),
    /// A file is there and is not to be overwritten.
    #[error("{} exists: give --force to replace it", .0.display())]
    Exists(PathBuf),
    /// rustls refused the certificates or keys.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// A client certificate verifier could not be made from the CA.
    #[error("TLS: the client CA: {0}")]
    ClientCa(String),
    /// A certificate could not be made.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A name is neither an address nor a DNS name.
    #[error("`{0}` is neither an IP address nor a DNS name")]
    BadName(String),
}

/// The certificates of a PEM file, in order (the first is the holder's).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoKey(path.to_owned()))
}

fn roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c)?;
    }
    Ok(roots)
}

/// A TLS 1.3 server with the certificate chain and key of these files;
/// with `client_ca`, clients must show a certificate that CA issued.
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13]);
    let builder = match client_ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots(ca)?))
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(load_certs(cert)?, load_key(key)?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS 1.3 server for node-to-node connections: the certificate chain
/// and key of these files, no ALPN. With `peer_ca`, a client may show a
/// certificate of that CA: one that does not verify (another CA, expired)
/// fails the handshake; a client that shows none gets through, and the
/// node decides (a deployment key, or a refusal).
pub fn node_server_config(cert: &Path, key: &Path, peer_ca: Option<&Path>) -> Result<Arc<ServerConfig>, TlsError> {
    let builder =
        ServerConfig::builder_with_provider(node_provider()).with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match peer_ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots(ca)?))
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(load_certs(cert)?, load_key(key)?)?;
    // Node connections hand their keys to [`stream`] after the handshake
    // and never resume a session.
    config.enable_secret_extraction = true;
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The cryptography of node connections: aws-lc-rs, with AES-128-GCM
/// preferred to AES-256-GCM (a seventh less CPU per byte on this
/// machine's AES instructions, and one pass of it on every hop: the
/// relay bench's TLS cases, docs/benchmarks.md); ChaCha20-Poly1305 last.
fn node_provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider};
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..default_provider()
    })
}

/// A TLS 1.3 client that trusts the certificates of `ca`; with
/// `identity` (certificate, key), it shows that certificate to servers
/// that ask.
pub fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(node_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca)?);
    let mut config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?,
        None => builder.with_no_client_auth(),
    };
    // For [`stream`]: the keys are handed over after the handshake.
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// A server's name as a client checks it: an IP address or a DNS name.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::BadName(name.to_owned()))
}

/// Writes `bytes` to a new file of mode 0600 (`O_EXCL|O_NOFOLLOW`, so
/// nothing planted there is followed or overwritten).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)
}
