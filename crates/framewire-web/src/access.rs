//! Who may ask what: identity (session cookie, bearer token, open mode),
//! roles and CSRF, and the checks every request passes first (the `Host`
//! allow-list, cross-site requests) with the headers every answer carries.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{self, Role};
use crate::{ApiError, App, CSRF_HEADER, SESSION_COOKIE};

/// Who is asking, after authentication.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) user: String,
    pub(crate) role: Role,
    /// The CSRF token to expect (cookie sessions and open mode), `None` for bearer tokens.
    pub(crate) csrf: Option<String>,
    pub(crate) open: bool,
}

/// The address of the client (none when the router is called without a
/// socket, as in tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer(
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()),
        ))
    }
}

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The host name of a `Host` header, without port or brackets, lower case.
fn host_name(host: &str) -> String {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    name.to_ascii_lowercase()
}

/// Whether a `Host` header names this machine.
pub(crate) fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.1 requires Host; its absence is not a browser.
        return true;
    };
    let name = host_name(host);
    name == "localhost" || name.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// Whether the server answers to this `Host`: `localhost`, any address
/// literal (a page can only be same-origin with an address literal if it
/// came from that address, so DNS rebinding needs a name), and the names
/// given with `--web-host`.
pub(crate) fn host_allowed(headers: &HeaderMap, names: &[String]) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else { return false };
    let name = host_name(host);
    name == "localhost" || name.parse::<IpAddr>().is_ok() || names.iter().any(|n| n.eq_ignore_ascii_case(&name))
}

/// Whether a browser made this request for a page of another site (or
/// another origin, by `Origin`).
fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    !origin_host.eq_ignore_ascii_case(host)
}

/// The content security policy of the page; other answers get [`CSP_NONE`].
pub(crate) const CSP_PAGE: &str = "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const CSP_NONE: &str = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Runs before every route: refuses a `Host` the server does not answer to
/// and requests a browser makes for another site (only a top-level
/// navigation to the page itself may come from elsewhere), then adds the
/// security headers to the answer.
pub(crate) async fn guard(State(app): State<std::sync::Arc<App>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if !host_allowed(headers, &app.hosts) {
        let host = headers
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
        tracing::warn!(host = ?host, "request for a host name this server does not answer to refused");
        return with_headers(
            ApiError::new(
                StatusCode::FORBIDDEN,
                "this server does not answer to that host name (give it with --web-host NAME)",
            )
            .into_response(),
            false,
        );
    }
    let navigation = req.method() == Method::GET
        && req.uri().path() == "/"
        && headers.get("sec-fetch-mode").is_some_and(|v| v == "navigate");
    if cross_site(headers) && !navigation {
        return with_headers(
            ApiError::new(StatusCode::FORBIDDEN, "cross-site request refused").into_response(),
            false,
        );
    }
    let api = req.uri().path().starts_with("/api/");
    with_headers(next.run(req).await, api)
}

fn with_headers(mut resp: Response, no_store: bool) -> Response {
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP_NONE));
    }
    if no_store {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A 429 with `Retry-After` (whole seconds, at least 1).
pub(crate) fn too_many(message: impl Into<String>, retry: Duration) -> ApiError {
    let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message);
    e.retry_after = Some(retry.as_secs() + u64::from(retry.subsec_nanos() > 0)).map(|s| s.max(1));
    e
}

impl App {
    /// Who is asking, or 401.
    pub(crate) fn identify(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        self.users.refresh();
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            let token = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Authorization must be 'Bearer TOKEN'"))?;
            let (user, role) = self.users.token(token.trim()).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unknown, expired or revoked API token (or its user's password or role changed)",
                )
            })?;
            return Ok(Principal {
                user,
                role,
                csrf: None,
                open: false,
            });
        }
        if self.users.is_empty() {
            if !self.allow_open {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "no users are configured and this server is not on loopback: add one (framewire user add NAME --role admin)",
                ));
            }
            if !loopback_host(headers) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "open mode (no users) answers only to loopback host names",
                ));
            }
            return Ok(Principal {
                user: "local".into(),
                role: Role::Admin,
                csrf: Some(self.open_csrf.clone()),
                open: true,
            });
        }
        let sid =
            cookie(headers, SESSION_COOKIE).ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "log in first"))?;
        let s = self
            .sessions
            .get(&sid)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "session expired: log in again"))?;
        let role = self.users.role_in_epoch(&s.user, &s.epoch).ok_or_else(|| {
            self.sessions.remove(&sid);
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "your account was removed or its password or role changed: log in again",
            )
        })?;
        Ok(Principal {
            user: s.user,
            role,
            csrf: Some(s.csrf),
            open: false,
        })
    }

    /// Authenticates, checks the role, and for state-changing methods the CSRF token.
    pub(crate) fn allow(&self, method: &Method, headers: &HeaderMap, role: Role) -> Result<Principal, ApiError> {
        let who = self.identify(headers)?;
        if who.role < role {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{} is {}; this needs {}", who.user, who.role, role),
            ));
        }
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && let Some(expected) = &who.csrf {
            let got = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !auth::tokens_equal(got, expected) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "missing or wrong x-csrf-token header",
                ));
            }
        }
        Ok(who)
    }

    /// For WebSocket upgrades: a browser's `Origin` must be this server.
    pub(crate) fn same_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if headers.contains_key(header::ORIGIN) && cross_site(headers) {
            let origin = headers
                .get(header::ORIGIN)
                .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned())
                .unwrap_or_default();
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("cross-origin WebSocket from {origin:?} refused"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn hosts_allowed_are_localhost_address_literals_and_given_names() {
        let names = vec!["ctl.lab.example".to_owned()];
        for ok in [
            "127.0.0.1:7480",
            "localhost",
            "[::1]:7480",
            "10.0.0.5:7480",
            "CTL.lab.example:7480",
        ] {
            assert!(host_allowed(&headers(&[("host", ok)]), &names), "{ok}");
        }
        for bad in ["evil.example", "127.0.0.1.evil.example:80", "ctl.lab.example.evil:1"] {
            assert!(!host_allowed(&headers(&[("host", bad)]), &names), "{bad}");
        }
    }

    #[test]
    fn cross_site_by_fetch_metadata_or_origin() {
        let host = ("host", "127.0.0.1:7480");
        assert!(!cross_site(&headers(&[host])));
        assert!(!cross_site(&headers(&[host, ("sec-fetch-site", "same-origin")])));
        assert!(!cross_site(&headers(&[host, ("sec-fetch-site", "none")])));
        assert!(cross_site(&headers(&[host, ("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[host, ("sec-fetch-site", "same-site")])));
        assert!(!cross_site(&headers(&[host, ("origin", "http://127.0.0.1:7480")])));
        assert!(cross_site(&headers(&[host, ("origin", "http://evil.example")])));
        assert!(cross_site(&headers(&[host, ("origin", "null")])));
    }

    #[test]
    fn cookies_are_parsed_from_any_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; fw_session=abc".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
