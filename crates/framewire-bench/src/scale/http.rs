//! Plain HTTP/1.1 requests and a WebSocket reader, enough for the web
//! UI's API, `/metrics` and `/ws/state` on loopback.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection to `addr`, from the loopback address `from` when given
/// (the web server caps connections per address).
pub(crate) async fn connect(addr: &str, from: Option<IpAddr>) -> anyhow::Result<TcpStream> {
    let to: SocketAddr = addr.parse().with_context(|| format!("`{addr}` is not host:port"))?;
    let s = TcpSocket::new_v4()?;
    if let Some(ip) = from {
        s.bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("cannot bind {ip}"))?;
    }
    Ok(tokio::time::timeout(Duration::from_secs(10), s.connect(to))
        .await
        .context("no connection within 10 s")??)
}

/// One request on its own connection: the status and the body.
pub(crate) async fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<(u16, String)> {
    request_with(addr, method, path, body, &[]).await
}

/// [`request`] with more headers.
pub(crate) async fn request_with(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, String)> {
    let mut s = connect(addr, None).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    if let Some(b) = body {
        req += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len());
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).await?;
    if let Some(b) = body {
        s.write_all(b.as_bytes()).await?;
    }
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .with_context(|| format!("{method} {path}: no whole answer within 30 s"))??;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("{method} {path}: not an HTTP answer"))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        unchunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn unchunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// A sample of Prometheus text: the value of the first line starting
/// with `name` (labels included in `name` when given).
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A WebSocket opened on `path`; `Err` carries the HTTP status and body
/// line of a refusal.
pub(crate) async fn websocket(addr: &str, path: &str, from: Option<IpAddr>) -> anyhow::Result<Ws> {
    let mut s = connect(addr, from).await?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: c2NhbGUtc2NhbGUtc2NhbGUh\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b))
            .await
            .context("no answer to the upgrade within 10 s")??;
        if n == 0 || head.len() > 16 << 10 {
            bail!(
                "closed before answering the upgrade: {}",
                String::from_utf8_lossy(&head)
            );
        }
        head.push(b[0]);
    }
    let line = String::from_utf8_lossy(&head);
    if !line.starts_with("HTTP/1.1 101") {
        let mut rest = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_millis(500), s.read(&mut rest))
            .await
            .map_or(0, |r| r.unwrap_or(0));
        bail!(
            "{} {}",
            line.lines().next().unwrap_or(""),
            String::from_utf8_lossy(&rest[..n]).trim()
        );
    }
    Ok(Ws { s })
}

/// The reading side of a WebSocket (the server's frames are not masked).
#[derive(Debug)]
pub(crate) struct Ws {
    s: TcpStream,
}

impl Ws {
    /// The next whole text or binary message; `None` at a close.
    pub(crate) async fn next(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        let mut msg = Vec::new();
        loop {
            let mut h = [0u8; 2];
            if self.s.read_exact(&mut h).await.is_err() {
                return Ok(None);
            }
            let (fin, op) = (h[0] & 0x80 != 0, h[0] & 0x0f);
            let len = match h[1] & 0x7f {
                126 => u64::from(self.s.read_u16().await?),
                127 => self.s.read_u64().await?,
                n => u64::from(n),
            };
            if len > 256 << 20 {
                bail!("a WebSocket frame of {len} bytes");
            }
            let mut data = vec![0u8; len as usize];
            self.s.read_exact(&mut data).await?;
            match op {
                0x8 => return Ok(None),
                0x9 | 0xA => continue,
                _ => msg.extend_from_slice(&data),
            }
            if fin {
                return Ok(Some(msg));
            }
        }
    }
}
