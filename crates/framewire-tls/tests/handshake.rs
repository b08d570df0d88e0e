//! The deployment CA's files in real TLS 1.3 handshakes (rustls over an
//! in-memory pipe): a server the client trusts, mutual authentication,
//! and the refusals a user would meet, each with its reason.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use framewire_tls::ca::{self, Issued};
use framewire_tls::{TlsAcceptor, TlsConnector, client_config, server_config, server_name};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A scratch directory, removed when the test ends.
fn dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fw-tls-{tag}-"))
        .tempdir()
        .unwrap()
}

fn site(tag: &str) -> (TempDir, Issued, Issued) {
    let tmp = dir(tag);
    let d = tmp.path();
    ca::init(d, "test CA", 30, false).unwrap();
    let server = ca::issue(d, "lab:cam", &["127.0.0.1".into(), "localhost".into()], 30, false).unwrap();
    let client = ca::issue(d, "lab:view", &[], 30, false).unwrap();
    (tmp, server, client)
}

/// One handshake and a byte each way; the error on either side as text.
async fn talk(
    server: std::sync::Arc<framewire_tls::rustls::ServerConfig>,
    client: std::sync::Arc<framewire_tls::rustls::ClientConfig>,
    name: &str,
) -> Result<(), String> {
    let (a, b) = tokio::io::duplex(1 << 16);
    let serve = async move {
        let mut s = TlsAcceptor::from(server)
            .accept(a)
            .await
            .map_err(|e| format!("server: {e}"))?;
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.map_err(|e| format!("server: {e}"))?;
        s.write_all(&buf).await.map_err(|e| format!("server: {e}"))?;
        s.flush().await.map_err(|e| format!("server: {e}"))?;
        Ok::<(), String>(())
    };
    let name = server_name(name).unwrap();
    let dial = async move {
        let mut c = TlsConnector::from(client)
            .connect(name, b)
            .await
            .map_err(|e| format!("client: {e}"))?;
        c.write_all(b"hello").await.map_err(|e| format!("client: {e}"))?;
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.map_err(|e| format!("client: {e}"))?;
        assert_eq!(&buf, b"hello");
        Ok::<(), String>(())
    };
    let (s, c) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(serve, dial) })
        .await
        .expect("a handshake within 10 s");
    c.and(s)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_certificate_of_the_deployment_ca_is_trusted_by_name() {
    let (tmp, server, _) = site("trust");
    let d = tmp.path();
    assert_eq!(mode(&d.join(ca::CA_KEY)), 0o600);
    assert_eq!(mode(&server.key), 0o600);
    assert_eq!(server.cert, d.join("lab_cam.pem"));
    let s = server_config(&server.cert, &server.key, None).unwrap();
    let c = client_config(&d.join(ca::CA_CERT), None).unwrap();
    talk(s.clone(), c.clone(), "127.0.0.1").await.unwrap();
    talk(s.clone(), c.clone(), "localhost").await.unwrap();
    let e = talk(s, c, "10.9.9.9").await.unwrap_err();
    assert!(
        e.contains("client:") && e.contains("not valid for name \"10.9.9.9\""),
        "{e}"
    );
}

#[tokio::test]
async fn mutual_authentication_refuses_a_client_without_a_certificate_of_the_ca() {
    let (tmp, server, client) = site("mutual");
    let d = tmp.path();
    let ca = d.join(ca::CA_CERT);
    let s = server_config(&server.cert, &server.key, Some(&ca)).unwrap();
    talk(
        s.clone(),
        client_config(&ca, Some((&client.cert, &client.key))).unwrap(),
        "127.0.0.1",
    )
    .await
    .unwrap();
    let e = talk(s.clone(), client_config(&ca, None).unwrap(), "127.0.0.1")
        .await
        .unwrap_err();
    // The server asks for it; the client learns why it was refused.
    assert!(e.contains("CertificateRequired"), "{e}");
    // A client of another CA is refused too.
    let (other, _, stranger) = site("mutual-other");
    let e = talk(
        s,
        client_config(&ca, Some((&stranger.cert, &stranger.key))).unwrap(),
        "127.0.0.1",
    )
    .await
    .unwrap_err();
    // The server refuses it and says so to the client.
    assert!(e.contains("UnknownCA"), "{e}");
    drop(other);
}

#[tokio::test]
async fn a_server_of_another_ca_or_an_expired_one_is_refused_with_the_reason() {
    let (tmp, server, _) = site("refuse");
    let d = tmp.path();
    let (other, _, _) = site("refuse-other");
    let s = server_config(&server.cert, &server.key, None).unwrap();
    let e = talk(
        s,
        client_config(&other.path().join(ca::CA_CERT), None).unwrap(),
        "127.0.0.1",
    )
    .await
    .unwrap_err();
    assert!(e.contains("client:") && e.contains("UnknownIssuer"), "{e}");

    let now = time::OffsetDateTime::now_utc();
    let old = ca::issue_valid(
        d,
        "lab:old",
        &["127.0.0.1".into()],
        (now - time::Duration::days(10), now - time::Duration::days(1)),
        false,
    )
    .unwrap();
    let s = server_config(&old.cert, &old.key, None).unwrap();
    let e = talk(s, client_config(&d.join(ca::CA_CERT), None).unwrap(), "127.0.0.1")
        .await
        .unwrap_err();
    assert!(e.contains("client:") && e.contains("certificate expired"), "{e}");
}

#[test]
fn files_are_not_replaced_without_force_and_bad_names_are_refused() {
    let (tmp, _, _) = site("files");
    let d = tmp.path();
    let e = ca::init(d, "again", 30, false).unwrap_err().to_string();
    assert!(e.contains("ca.pem exists: give --force"), "{e}");
    let e = ca::issue(d, "lab:cam", &[], 30, false).unwrap_err().to_string();
    assert!(e.contains("lab_cam.pem exists"), "{e}");
    ca::issue(d, "lab:cam", &["127.0.0.1".into()], 30, true).unwrap();
    let e = ca::issue(d, "x", &["not a name!".into()], 30, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`not a name!` is neither an IP address nor a DNS name"),
        "{e}"
    );
    let e = ca::issue(dir("no-ca").path(), "x", &[], 30, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read") && e.contains("ca.key"), "{e}");
    let e = framewire_tls::load_certs(&d.join(ca::CA_KEY)).unwrap_err().to_string();
    assert!(e.contains("holds no certificate"), "{e}");
}

/// The cipher suite a handshake between these configurations settles on.
async fn suite(
    server: std::sync::Arc<framewire_tls::rustls::ServerConfig>,
    client: std::sync::Arc<framewire_tls::rustls::ClientConfig>,
) -> framewire_tls::rustls::CipherSuite {
    let (a, b) = tokio::io::duplex(1 << 16);
    let serve = async move {
        let mut s = TlsAcceptor::from(server).accept(a).await.unwrap();
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).await.unwrap();
    };
    let dial = async move {
        let mut c = TlsConnector::from(client)
            .connect(server_name("127.0.0.1").unwrap(), b)
            .await
            .unwrap();
        c.write_all(b"x").await.unwrap();
        c.flush().await.unwrap();
        c.get_ref().1.negotiated_cipher_suite().unwrap().suite()
    };
    let (_, s) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(serve, dial) })
        .await
        .expect("a handshake within 10 s");
    s
}

#[tokio::test]
async fn node_connections_prefer_aes_128_gcm_and_take_a_peers_choice() {
    use framewire_tls::rustls::{self, CipherSuite};
    let (tmp, server, _) = site("suite");
    let d = tmp.path();
    let ca = d.join(ca::CA_CERT);
    let s = framewire_tls::node_server_config(&server.cert, &server.key, Some(&ca)).unwrap();
    let ours = client_config(&ca, None).unwrap();
    assert_eq!(suite(s.clone(), ours).await, CipherSuite::TLS13_AES_128_GCM_SHA256);
    // A client of rustls's defaults, which put AES-256-GCM first, gets it.
    let mut roots = rustls::RootCertStore::empty();
    for c in framewire_tls::load_certs(&ca).unwrap() {
        roots.add(c).unwrap();
    }
    let mut theirs =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    theirs.enable_secret_extraction = true;
    assert_eq!(
        suite(s, std::sync::Arc::new(theirs)).await,
        CipherSuite::TLS13_AES_256_GCM_SHA384
    );
}
