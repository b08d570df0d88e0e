//! The record layer against rustls itself (tokio-rustls on the other
//! end) and against itself, over loopback.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{TlsReader, TlsWriter, accept, connect};
use crate::{ca, client_config, node_server_config, server_name};

struct Pki {
    _dir: tempfile::TempDir,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn pki(tag: &str) -> Pki {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("fw-tls-stream-{tag}-"))
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    ca::init(dir, "test CA", 1, false).unwrap();
    let me = ca::issue(dir, "node", &["127.0.0.1".into()], 1, false).unwrap();
    let ca_cert = dir.join(ca::CA_CERT);
    Pki {
        server: node_server_config(&me.cert, &me.key, Some(&ca_cert)).unwrap(),
        client: client_config(&ca_cert, Some((&me.cert, &me.key))).unwrap(),
        _dir: tmp,
    }
}

/// Bytes no two positions of which repeat within a record's length.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Writes `data` in writes of varying sizes (some vectored), then closes.
async fn send(mut w: impl AsyncWrite + Unpin, data: Vec<u8>) -> std::io::Result<()> {
    let mut at = 0;
    let mut k = 0usize;
    while at < data.len() {
        let n = [1, 28, 700, 16384, 16385, 200_000, 3_000_000][k % 7].min(data.len() - at);
        if k.is_multiple_of(2) && n > 1 {
            let (a, b) = data[at..at + n].split_at(n / 3);
            write_all_vectored(&mut w, a, b).await?;
        } else {
            w.write_all(&data[at..at + n]).await?;
        }
        at += n;
        k += 1;
    }
    w.shutdown().await
}

async fn write_all_vectored(w: &mut (impl AsyncWrite + Unpin), a: &[u8], b: &[u8]) -> std::io::Result<()> {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() || !b.is_empty() {
        let n = w
            .write_vectored(&[std::io::IoSlice::new(a), std::io::IoSlice::new(b)])
            .await?;
        assert!(n > 0);
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    Ok(())
}

/// Reads to the end through buffers the reader has to initialize.
async fn recv(mut r: impl AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).await?;
    Ok(out)
}

/// Reads `len` bytes into a buffer that is initialized already (as a
/// frame's is): whole records are opened straight into it.
async fn recv_into(mut r: impl AsyncRead + Unpin, len: usize) -> std::io::Result<Vec<u8>> {
    let mut out = vec![0u8; len];
    let mut have = 0;
    while have < len {
        let n = r.read(&mut out[have..(have + 100_000).min(len)]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
    }
    assert_eq!(r.read(&mut [0u8; 16]).await?, 0, "nothing after the end");
    Ok(out)
}

async fn pair_tcp() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
    (a.unwrap(), b.unwrap().0)
}

async fn ours(p: &Pki) -> ((TlsReader, TlsWriter), (TlsReader, TlsWriter, bool)) {
    let (c, s) = pair_tcp().await;
    let name = server_name("127.0.0.1").unwrap();
    let (client, server) = tokio::join!(connect(c, p.client.clone(), name), accept(s, p.server.clone()));
    (client.unwrap(), server.unwrap())
}

const BOUND: Duration = Duration::from_secs(30);

#[tokio::test]
async fn both_ends_ours_carry_bytes_both_ways_through_key_updates() {
    tokio::time::timeout(BOUND, async {
        let p = pki("ours");
        let ((cr, mut cw), (sr, mut sw, certified)) = ours(&p).await;
        assert!(certified, "the client's certificate was shown and verified");
        // A key update every 5 records each way.
        cw.set_key_update_after(5);
        sw.set_key_update_after(5);
        let (up, down) = (pattern(6_000_000, 1), pattern(4_000_000, 2));
        let (a, b, c, d) = tokio::join!(
            send(cw, up.clone()),
            recv_into(sr, up.len()),
            send(sw, down.clone()),
            recv(cr)
        );
        a.unwrap();
        c.unwrap();
        assert!(b.unwrap() == up, "client to server bytes differ");
        assert!(d.unwrap() == down, "server to client bytes differ");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_rustls_server_reads_ours_and_answers_with_a_key_update() {
    tokio::time::timeout(BOUND, async {
        let p = pki("rustls-server");
        let (c, s) = pair_tcp().await;
        let acceptor = tokio_rustls::TlsAcceptor::from(p.server.clone());
        let name = server_name("127.0.0.1").unwrap();
        let (client, server) = tokio::join!(connect(c, p.client.clone(), name), acceptor.accept(s));
        let (cr, mut cw) = client.unwrap();
        let server = server.unwrap();
        cw.set_key_update_after(7);
        let (up, down) = (pattern(3_000_000, 3), pattern(3_000_000, 4));
        let (mut sr, mut sw) = tokio::io::split(server);
        let down2 = down.clone();
        let rustls_side = async move {
            let mut got = vec![0u8; up.len()];
            sr.read_exact(&mut got).await.unwrap();
            assert!(got == up, "rustls read other bytes than were sent");
            // rustls changes its key halfway through its answer.
            sw.write_all(&down2[..1_000_000]).await.unwrap();
            sw.flush().await.unwrap();
            let mut joined = sr.unsplit(sw);
            joined.get_mut().1.refresh_traffic_keys().unwrap();
            joined.write_all(&down2[1_000_000..]).await.unwrap();
            joined.shutdown().await.unwrap();
        };
        let (_, sent, got) = tokio::join!(rustls_side, send(cw, pattern(3_000_000, 3)), recv(cr));
        sent.unwrap();
        assert!(got.unwrap() == down, "our reader got other bytes than rustls sent");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_rustls_client_talks_to_our_server() {
    tokio::time::timeout(BOUND, async {
        let p = pki("rustls-client");
        let (c, s) = pair_tcp().await;
        let connector = tokio_rustls::TlsConnector::from(p.client.clone());
        let name = server_name("127.0.0.1").unwrap();
        let (client, server) = tokio::join!(connector.connect(name, c), accept(s, p.server.clone()));
        let (sr, sw, certified) = server.unwrap();
        assert!(certified);
        let (cr, cw) = tokio::io::split(client.unwrap());
        let (up, down) = (pattern(2_500_000, 5), pattern(2_500_000, 6));
        let (a, b, c, d) = tokio::join!(send(cw, up.clone()), recv(sr), send(sw, down.clone()), recv(cr));
        a.unwrap();
        c.unwrap();
        assert!(b.unwrap() == up);
        assert!(d.unwrap() == down);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_server_of_another_ca_is_refused_with_rustls_reason() {
    tokio::time::timeout(BOUND, async {
        let ours_pki = pki("ca-a");
        let theirs = pki("ca-b");
        let (c, s) = pair_tcp().await;
        let name = server_name("127.0.0.1").unwrap();
        let (client, server) = tokio::join!(
            connect(c, ours_pki.client.clone(), name),
            accept(s, theirs.server.clone())
        );
        let e = client.unwrap_err();
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
        assert!(
            matches!(inner, Some(rustls::Error::InvalidCertificate(_))),
            "the client says why: {e}"
        );
        // The client told the server why (an alert), which ends its side.
        let e = server.unwrap_err();
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
        assert!(matches!(inner, Some(rustls::Error::AlertReceived(_))), "server: {e}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_altered_record_on_the_wire_fails_the_reader() {
    tokio::time::timeout(BOUND, async {
        let p = pki("altered");
        // The server behind a relay that flips one byte 100 KB into what
        // the client sends (well after the handshake).
        let server_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server_l.local_addr().unwrap();
        let relay_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay_addr = relay_l.local_addr().unwrap();
        tokio::spawn(async move {
            let (client, _) = relay_l.accept().await.unwrap();
            let server = TcpStream::connect(server_addr).await.unwrap();
            let (mut from_c, mut to_c) = client.into_split();
            let (mut from_s, mut to_s) = server.into_split();
            let up = async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = 0usize;
                loop {
                    let n = from_c.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    if seen <= 100_000 && seen + n > 100_000 {
                        buf[100_000 - seen] ^= 1;
                    }
                    seen += n;
                    if to_s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            };
            let down = async move {
                let _ = tokio::io::copy(&mut from_s, &mut to_c).await;
            };
            tokio::join!(up, down);
        });
        let server = async {
            let (s, _) = server_l.accept().await.unwrap();
            accept(s, p.server.clone()).await
        };
        let c = TcpStream::connect(relay_addr).await.unwrap();
        let name = server_name("127.0.0.1").unwrap();
        let (client, server) = tokio::join!(connect(c, p.client.clone(), name), server);
        let (_cr, cw) = client.unwrap();
        let (sr, _sw, _) = server.unwrap();
        let (_, got) = tokio::join!(send(cw, pattern(1_000_000, 7)), recv(sr));
        let e = got.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains("failed to decrypt"), "{e}");
    })
    .await
    .unwrap();
}
