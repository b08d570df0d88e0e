//! RTSP Digest authentication (RFC 2617, as RTSP clients speak it: MD5,
//! with or without `qop=auth`), without I/O.
//!
//! The server keeps, per user, `HA1 = MD5(user:realm:password)`, never the
//! password; a connection has its own nonce; a client answers the
//! challenge with `MD5(HA1:nonce:MD5(method:uri))` (or the `qop=auth`
//! form), which proves it knows the password without sending it.

use md5::{Digest as _, Md5};

/// The realm every challenge names (HA1 depends on it).
pub const REALM: &str = "framewire";

/// Lowercase hex MD5 of `s`.
fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `HA1 = MD5(user:realm:password)` for [`REALM`], as a server stores it.
pub fn ha1(user: &str, password: &str) -> String {
    md5_hex(&format!("{user}:{REALM}:{password}"))
}

/// Why an `Authorization` header does not let the client in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No header, or not a Digest answer.
    #[error("no Digest credentials")]
    Missing,
    /// A field is missing or does not parse.
    #[error("malformed Digest credentials: {0}")]
    Malformed(&'static str),
    /// Another realm or an old nonce.
    #[error("credentials for another challenge")]
    Stale,
    /// No such user, or the password is wrong (not told apart).
    #[error("user `{0}` unknown or the password is wrong")]
    Refused(String),
}

/// One connection's challenge.
#[derive(Debug, Clone)]
pub struct Digest {
    nonce: String,
}

impl Digest {
    /// A challenge whose nonce comes from `seed` (random, per connection).
    pub fn new(seed: u64) -> Digest {
        Digest {
            nonce: md5_hex(&format!("{seed:016x}:framewire-nonce")),
        }
    }

    /// The `WWW-Authenticate` header's value.
    pub fn challenge(&self) -> String {
        format!("Digest realm=\"{REALM}\", nonce=\"{}\"", self.nonce)
    }

    /// Checks an `Authorization` header of a `method` request; the user
    /// it names when the answer is right. `ha1_of` gives a user's HA1.
    pub fn check(
        &self,
        method: &str,
        header: Option<&str>,
        ha1_of: impl Fn(&str) -> Option<String>,
    ) -> Result<String, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let (scheme, rest) = header.trim().split_once(' ').ok_or(AuthError::Missing)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(AuthError::Missing);
        }
        let fields = params(rest).ok_or(AuthError::Malformed("the parameter list"))?;
        let get = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let user = get("username").ok_or(AuthError::Malformed("username"))?;
        let uri = get("uri").ok_or(AuthError::Malformed("uri"))?;
        let response = get("response").ok_or(AuthError::Malformed("response"))?;
        if get("realm") != Some(REALM) || get("nonce") != Some(self.nonce.as_str()) {
            return Err(AuthError::Stale);
        }
        if get("algorithm").is_some_and(|a| !a.eq_ignore_ascii_case("MD5")) {
            return Err(AuthError::Malformed("algorithm (MD5 only)"));
        }
        let refused = || AuthError::Refused(user.chars().take(64).collect());
        let ha1 = ha1_of(user).ok_or_else(refused)?;
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let expected = match get("qop") {
            None => md5_hex(&format!("{ha1}:{}:{ha2}", self.nonce)),
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc = get("nc").ok_or(AuthError::Malformed("nc"))?;
                let cnonce = get("cnonce").ok_or(AuthError::Malformed("cnonce"))?;
                md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
            }
            Some(_) => return Err(AuthError::Malformed("qop (auth only)")),
        };
        if same(&expected, &response.to_ascii_lowercase()) {
            Ok(user.to_owned())
        } else {
            Err(refused())
        }
    }
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `k=v, k="v, with commas", …` → pairs; `None` if a quote is not closed.
fn params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_owned(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((key.trim().to_owned(), value));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_and_without_qop_are_checked() {
        let d = Digest::new(7);
        let nonce = d.nonce.clone();
        let ha1_of = |u: &str| (u == "ann").then(|| ha1("ann", "secret"));
        let ha2 = md5_hex("DESCRIBE:rtsp://h/cam");
        let plain = md5_hex(&format!("{}:{nonce}:{ha2}", ha1("ann", "secret")));
        let h = format!(
            "Digest username=\"ann\", realm=\"framewire\", nonce=\"{nonce}\", uri=\"rtsp://h/cam\", response=\"{plain}\""
        );
        assert_eq!(d.check("DESCRIBE", Some(&h), ha1_of), Ok("ann".into()));
        // The same answer for another method is wrong.
        assert_eq!(d.check("PLAY", Some(&h), ha1_of), Err(AuthError::Refused("ann".into())));
        let qop = md5_hex(&format!("{}:{nonce}:00000001:c0ffee:auth:{ha2}", ha1("ann", "secret")));
        let h = format!(
            "Digest username=\"ann\",realm=\"framewire\",nonce=\"{nonce}\",uri=\"rtsp://h/cam\",qop=auth,nc=00000001,cnonce=\"c0ffee\",response=\"{qop}\",algorithm=MD5"
        );
        assert_eq!(d.check("DESCRIBE", Some(&h), ha1_of), Ok("ann".into()));
    }

    #[test]
    fn wrong_and_broken_answers_are_refused() {
        let d = Digest::new(7);
        let ha1_of = |u: &str| (u == "ann").then(|| ha1("ann", "secret"));
        let answer = |user: &str, password: &str, nonce: &str| {
            let r = md5_hex(&format!("{}:{nonce}:{}", ha1(user, password), md5_hex("DESCRIBE:/cam")));
            format!(
                "Digest username=\"{user}\", realm=\"framewire\", nonce=\"{nonce}\", uri=\"/cam\", response=\"{r}\""
            )
        };
        let n = d.nonce.clone();
        assert!(matches!(
            d.check("DESCRIBE", Some(&answer("ann", "wrong", &n)), ha1_of),
            Err(AuthError::Refused(_))
        ));
        assert!(matches!(
            d.check("DESCRIBE", Some(&answer("bob", "secret", &n)), ha1_of),
            Err(AuthError::Refused(_))
        ));
        assert_eq!(
            d.check("DESCRIBE", Some(&answer("ann", "secret", "old")), ha1_of),
            Err(AuthError::Stale)
        );
        assert_eq!(d.check("DESCRIBE", None, ha1_of), Err(AuthError::Missing));
        assert_eq!(
            d.check("DESCRIBE", Some("Basic YW5uOnNlY3JldA=="), ha1_of),
            Err(AuthError::Missing)
        );
        assert!(matches!(
            d.check("DESCRIBE", Some("Digest username=\"ann"), ha1_of),
            Err(AuthError::Malformed(_))
        ));
        assert_ne!(Digest::new(1).challenge(), Digest::new(2).challenge());
    }
}
