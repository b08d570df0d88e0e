//! TLS between real nodes on 127.0.0.1 (docs/security.md, "TLS between
//! nodes"): an edge over TLS with certificates of a deployment CA instead
//! of a key, what a recorder on the link sees of it, and each refusal a
//! user would meet with its reason.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use framewire_codec::EncodeSpec;
use framewire_media::testpattern::TestPatternConfig;
use framewire_net::{
    Client, ClientIdentity, DeploymentKey, EdgeConfig, NetError, Node, NodeConfig, SourceConfig, TlsConfig, TlsDial,
};
use framewire_proto::{DeliveryMode, Message, Request, Response, Status, SubscribeParams};
use framewire_tls::ca::{self, Issued};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

/// A scratch directory, removed when the test ends.
fn dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fw-net-tls-{tag}-"))
        .tempdir()
        .unwrap()
}

/// A deployment CA with a certificate for each holder, for 127.0.0.1.
fn site(tag: &str, holders: &[&str]) -> (TempDir, Vec<Issued>) {
    let tmp = dir(tag);
    let d = tmp.path();
    ca::init(d, "test CA", 30, false).unwrap();
    let issued = holders
        .iter()
        .map(|h| ca::issue(d, h, &["127.0.0.1".into()], 30, false).unwrap())
        .collect();
    (tmp, issued)
}

fn tls(d: &Path, me: Option<&Issued>, require: bool) -> TlsConfig {
    TlsConfig::from_files(
        me.map(|i| i.cert.as_path()),
        me.map(|i| i.key.as_path()),
        Some(&d.join(ca::CA_CERT)),
        require,
        TlsDial::All,
    )
    .unwrap()
}

fn client_tls(d: &Path, me: Option<&Issued>) -> Arc<framewire_tls::rustls::ClientConfig> {
    framewire_tls::client_config(&d.join(ca::CA_CERT), me.map(|i| (i.cert.as_path(), i.key.as_path()))).unwrap()
}

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A node serving an MJPEG test pattern `bars`.
async fn camera(tls: Option<TlsConfig>, key: Option<DeploymentKey>) -> Node {
    let mut cfg = NodeConfig::new("lab:cam", loopback());
    cfg.sources.push(SourceConfig::from(TestPatternConfig {
        name: "bars".into(),
        width: 160,
        height: 120,
        fps_num: 50,
        fps_den: 1,
        encode: EncodeSpec::mjpeg(80),
    }));
    cfg.tls = tls;
    cfg.key = key;
    Node::start(cfg).await.unwrap()
}

/// A TCP proxy that keeps a copy of every byte it carries, both ways.
async fn recorder(target: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((a, _)) = l.accept().await {
            let Ok(b) = TcpStream::connect(target).await else {
                continue;
            };
            let (ar, aw) = a.into_split();
            let (br, bw) = b.into_split();
            tokio::spawn(copy(ar, bw, s.clone()));
            tokio::spawn(copy(br, aw, s.clone()));
        }
    });
    (addr, seen)
}

async fn copy(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
            return;
        }
        seen.lock().unwrap().extend_from_slice(&buf[..n]);
    }
}

/// Subscribes (retrying until the stream exists) and waits for `n` frames;
/// returns the last one's bytes.
async fn frames(client: &mut Client, stream: &str, n: usize) -> Vec<u8> {
    let params = SubscribeParams {
        mode: DeliveryMode::Completeness,
        max_frames: 64,
        ..SubscribeParams::default()
    };
    let channel = loop {
        match client.subscribe(stream, params).await {
            Ok(c) => break c,
            Err(NetError::Remote {
                status: Status::NotFound,
                ..
            }) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("subscribe: {e}"),
        }
    };
    let mut got = 0;
    loop {
        if let Message::VideoFrame(f) = client.next_message().await.unwrap().expect("open")
            && f.channel == channel
        {
            got += 1;
            if got == n {
                return f.data.to_vec();
            }
        }
    }
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_over_tls_with_certificates_and_nothing_in_the_clear_on_the_link() {
    timeout(T * 3, async {
        let (tmp, issued) = site("edge", &["lab:cam", "lab:relay", "lab:view"]);
        let d = tmp.path();
        // The camera takes only TLS peers with a certificate of the CA: no key.
        let cam = camera(Some(tls(d, Some(&issued[0]), true)), None).await;
        let (link, seen) = recorder(cam.local_addr()).await;
        let mut cfg = NodeConfig::new("lab:relay", loopback());
        cfg.tls = Some(tls(d, Some(&issued[1]), false));
        cfg.edges.push(EdgeConfig::new(link.to_string(), "bars"));
        let relay = Node::start(cfg).await.unwrap();

        // A viewer with its own certificate gets the relayed pictures.
        let who = ClientIdentity::tool("lab:view").with_tls(Some(client_tls(d, Some(&issued[2]))));
        let mut viewer = Client::connect(&relay.local_addr().to_string(), &who, T).await.unwrap();
        let last = frames(&mut viewer, "bars", 30).await;
        assert_eq!(&last[..2], &[0xff, 0xd8], "JPEG pictures arrive whole");

        // What crossed the link: TLS records, and none of it readable.
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() > 30 * 1000, "only {} bytes crossed", seen.len());
        assert_eq!(seen[0], 0x16, "the link starts with a TLS handshake");
        assert_eq!(count(&seen, &[0xff, 0xd8, 0xff]), 0, "a JPEG start marker in the clear");
        assert_eq!(count(&seen, b"bars"), 0, "the stream's name in the clear");
        assert_eq!(count(&seen, b"lab:relay"), 0, "a node's name in the clear");
        relay.shutdown().await;
        cam.shutdown().await;
    })
    .await
    .expect("within 30 s");
}

/// The error of connecting `who` to `node`, as text.
async fn refusal(node: &Node, who: &ClientIdentity) -> String {
    match Client::connect(&node.local_addr().to_string(), who, T).await {
        Ok(mut c) => match c.request(Request::ListStreams).await {
            Ok(Response::ListStreams(_)) => panic!("{} was let in", who.name),
            Ok(other) => panic!("{other:?}"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_expired_or_missing_certificates_are_refused_with_the_reason() {
    timeout(T * 3, async {
        let (tmp, issued) = site("refuse", &["lab:cam", "lab:view"]);
        let d = tmp.path();
        let (other, strangers) = site("refuse-other", &["lab:view"]);
        let old = ca::issue_valid(
            d,
            "lab:old",
            &["127.0.0.1".into()],
            (
                time::OffsetDateTime::now_utc() - time::Duration::days(10),
                time::OffsetDateTime::now_utc() - time::Duration::days(1),
            ),
            false,
        )
        .unwrap();
        let cam = camera(Some(tls(d, Some(&issued[0]), false)), None).await;

        // The right certificate: in.
        let good = ClientIdentity::tool("lab:view").with_tls(Some(client_tls(d, Some(&issued[1]))));
        let mut c = Client::connect(&cam.local_addr().to_string(), &good, T).await.unwrap();
        assert!(matches!(
            c.request(Request::ListStreams).await,
            Ok(Response::ListStreams(_))
        ));

        // TLS without a certificate, to a node that has no key: refused at HELLO.
        let bare = ClientIdentity::tool("lab:view").with_tls(Some(client_tls(d, None)));
        let e = refusal(&cam, &bare).await;
        assert!(e.contains("certificate of its deployment CA"), "{e}");
        // Plain TCP, the same.
        let e = refusal(&cam, &ClientIdentity::tool("lab:view")).await;
        assert!(e.contains("certificate of its deployment CA"), "{e}");
        // A certificate of another CA: the node ends the handshake.
        let stranger = ClientIdentity::tool("lab:view").with_tls(Some(client_tls(d, Some(&strangers[0]))));
        let e = refusal(&cam, &stranger).await;
        assert!(e.contains("TLS with") && e.contains("UnknownCA"), "{e}");
        // An expired certificate of the right CA: the same, saying so.
        let expired = ClientIdentity::tool("lab:old").with_tls(Some(client_tls(d, Some(&old))));
        let e = refusal(&cam, &expired).await;
        assert!(e.contains("CertificateExpired"), "{e}");
        // A node whose certificate another CA issued: the client refuses it.
        let distrust = ClientIdentity::tool("lab:view").with_tls(Some(client_tls(other.path(), Some(&strangers[0]))));
        let e = refusal(&cam, &distrust).await;
        assert!(
            e.contains("its certificate is refused") && e.contains("UnknownIssuer"),
            "{e}"
        );
        // A node with an expired certificate: refused, saying it expired.
        let stale = camera(Some(tls(d, Some(&old), false)), None).await;
        let e = refusal(&stale, &good).await;
        assert!(
            e.contains("its certificate is refused") && e.to_lowercase().contains("expired"),
            "{e}"
        );
        stale.shutdown().await;
        cam.shutdown().await;
    })
    .await
    .expect("within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_refuses_plain_tcp_and_the_key_still_works_over_tls() {
    timeout(T * 3, async {
        let (tmp, issued) = site("require", &["lab:cam"]);
        let d = tmp.path();
        let key = DeploymentKey::from_bytes(&[7; 32]).unwrap();
        let cam = camera(Some(tls(d, Some(&issued[0]), true)), Some(key.clone())).await;
        // Plain TCP with the right key: refused, TLS only.
        let plain = ClientIdentity::tool("lab:view").with_key(Some(key.clone()));
        let e = refusal(&cam, &plain).await;
        assert!(e.contains("TLS connections only"), "{e}");
        // TLS without a certificate, with the key: in.
        let keyed = plain.with_tls(Some(client_tls(d, None)));
        let mut c = Client::connect(&cam.local_addr().to_string(), &keyed, T).await.unwrap();
        let last = frames(&mut c, "bars", 5).await;
        assert_eq!(&last[..2], &[0xff, 0xd8]);
        // A certificate of the CA and another site's key: the certificate
        // authenticates, the keys need not match.
        let more = ca::issue(d, "far:gw", &["127.0.0.1".into()], 30, false).unwrap();
        let far = ClientIdentity::tool("far:gw")
            .with_key(Some(DeploymentKey::from_bytes(&[9; 32]).unwrap()))
            .with_tls(Some(client_tls(d, Some(&more))));
        let mut c = Client::connect(&cam.local_addr().to_string(), &far, T).await.unwrap();
        assert!(matches!(
            c.request(Request::ListStreams).await,
            Ok(Response::ListStreams(_))
        ));
        // TLS without a certificate or the key: refused by the key's rule.
        let e = refusal(
            &cam,
            &ClientIdentity::tool("lab:view").with_tls(Some(client_tls(d, None))),
        )
        .await;
        assert!(e.contains("requires authentication with the deployment key"), "{e}");
        cam.shutdown().await;
    })
    .await
    .expect("within 30 s");
}
