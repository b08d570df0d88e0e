//! A TCP proxy on loopback that holds every chunk of bytes for a set time
//! before passing it on, both ways: a link with a known added delay, and
//! optionally jitter (each chunk held a random extra time, in order, as a
//! TCP stream over a jittery path arrives).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Listens on 127.0.0.1 and forwards each connection to `target`, every
/// chunk `delay` after it was read; returns the proxy's address.
pub fn delay_proxy(target: SocketAddr, delay: Duration) -> SocketAddr {
    delay_proxy_at("127.0.0.1:0".parse().unwrap(), target, delay, None)
}

/// Bytes a proxy carried, both ways (what a capture on the link sees).
pub type Record = Arc<Mutex<Vec<u8>>>;

/// As [`delay_proxy`], listening on `listen` (in the network namespace of
/// the calling thread), keeping a copy of every byte in `record`.
pub fn delay_proxy_at(listen: SocketAddr, target: SocketAddr, delay: Duration, record: Option<Record>) -> SocketAddr {
    impaired_proxy_at(listen, target, delay, Duration::ZERO, record)
}

/// As [`delay_proxy_at`], each chunk held `delay` plus a random time up
/// to `jitter` (never before the chunk ahead of it).
pub fn impaired_proxy_at(
    listen: SocketAddr,
    target: SocketAddr,
    delay: Duration,
    jitter: Duration,
    record: Option<Record>,
) -> SocketAddr {
    let listener = TcpListener::bind(listen).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { return };
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            pipe(
                client.try_clone().unwrap(),
                server.try_clone().unwrap(),
                (delay, jitter),
                record.clone(),
            );
            pipe(server, client, (delay, jitter), record.clone());
        }
    });
    addr
}

/// Copies `from` to `to`, each chunk `delay` (and up to `jitter` more)
/// after it arrived, in order.
fn pipe(mut from: TcpStream, mut to: TcpStream, (delay, jitter): (Duration, Duration), record: Option<Record>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut rng = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos() as u64
            ^ 0x9e37_79b9_7f4a_7c15)
            | 1;
        let mut last = Instant::now();
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some(r) = &record {
                        r.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let extra = if jitter.is_zero() {
                        Duration::ZERO
                    } else {
                        Duration::from_nanos(rng % jitter.as_nanos() as u64)
                    };
                    last = last.max(Instant::now() + delay + extra);
                    if tx.send((last, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for (due, chunk) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
