//! A TCP proxy on loopback that holds every chunk of bytes for a set time
//! before passing it on, both ways: a link with a known added delay.

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
                delay,
                record.clone(),
            );
            pipe(server, client, delay, record.clone());
        }
    });
    addr
}

/// Copies `from` to `to`, each chunk `delay` after it arrived, in order.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration, record: Option<Record>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some(r) = &record {
                        r.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
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
