//! A small HTTP/1.1 client for the CLI (`framewire graph apply|export`)
//! and tests: one request per connection, `http://` only (the web UI
//! listens on loopback or behind a TLS proxy).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What can go wrong talking to the web API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not `http://HOST:PORT[/]`.
    #[error(
        "bad URL {0:?}: expected http://HOST:PORT (https: put a local proxy in front, or use the loopback address)"
    )]
    BadUrl(String),
    /// Connecting, sending or reading failed.
    #[error("{url}: {error}")]
    Io {
        /// Where.
        url: String,
        /// Why.
        error: std::io::Error,
    },
    /// No answer in time.
    #[error("{0}: no answer within {1:?}")]
    Timeout(String, Duration),
    /// Not HTTP.
    #[error("{0}: the answer is not HTTP/1.1")]
    BadResponse(String),
}

/// One answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The API's `{"error": "..."}` message, or the body.
    pub fn error_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| self.text())
    }
}

/// `http://host:port/anything` → `host:port`.
pub fn authority(base: &str) -> Result<String, ClientError> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| ClientError::BadUrl(base.to_owned()))?;
    let auth = rest.split('/').next().unwrap_or("");
    if auth.is_empty() || !auth.contains(':') {
        return Err(ClientError::BadUrl(base.to_owned()));
    }
    Ok(auth.to_owned())
}

/// Sends one request to `base` (`http://HOST:PORT`) and reads the whole answer.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse, ClientError> {
    let auth = authority(base)?;
    let url = format!("http://{auth}{path}");
    let io = |error| ClientError::Io {
        url: url.clone(),
        error,
    };
    let run = async {
        let mut s = tokio::net::TcpStream::connect(&auth).await.map_err(io)?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {auth}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await.map_err(io)?;
        s.write_all(body).await.map_err(io)?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(io)?;
        parse(&url, &buf)
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| ClientError::Timeout(url.clone(), timeout))?
}

fn parse(url: &str, buf: &[u8]) -> Result<HttpResponse, ClientError> {
    let bad = || ClientError::BadResponse(url.to_owned());
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(bad)?;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(bad)?;
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let raw = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(raw).ok_or_else(bad)?
    } else {
        raw.to_vec()
    };
    Ok(HttpResponse { status, headers, body })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked() {
        let r = parse("u", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello").unwrap();
        assert_eq!(
            (r.status, r.text().as_str(), r.header("content-type")),
            (200, "hello", Some("text/plain"))
        );
        let r = parse(
            "u",
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.text().as_str()), (404, "abcde"));
        assert!(parse("u", b"garbage").is_err());
        assert!(authority("https://x:1").is_err());
        assert_eq!(authority("http://127.0.0.1:7480/").unwrap(), "127.0.0.1:7480");
    }
}
