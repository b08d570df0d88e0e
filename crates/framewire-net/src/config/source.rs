//! A source, configured: any kind ([`crate::sources::KINDS`]) behind one
//! type, so the node's configuration names none of them.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::api::SourceSpec;

/// A stream produced inside the node: one kind's configuration
/// (`TestPatternConfig`, `ReplayConfig`, `V4l2SourceConfig`,
/// `X11SourceConfig`, ... convert into it with `.into()`).
#[derive(Clone)]
pub struct SourceConfig {
    spec: Arc<dyn SourceSpec>,
    /// The table it was made from (`kind` included), when it was.
    table: Option<Arc<toml::Table>>,
}

impl SourceConfig {
    /// A source of any kind.
    pub fn new(spec: impl SourceSpec) -> SourceConfig {
        SourceConfig {
            spec: Arc::new(spec),
            table: None,
        }
    }

    /// The same, remembering the table it was made from (SOURCE_GET
    /// answers it).
    pub(crate) fn with_table(mut self, table: toml::Table) -> SourceConfig {
        self.table = Some(Arc::new(table));
        self
    }

    /// The table it was made from, if it was made from one.
    pub fn table(&self) -> Option<&toml::Table> {
        self.table.as_deref()
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        self.spec.name()
    }

    /// The source's kind (`test-pattern`, `file`, `v4l2`, `x11`, ...).
    pub fn kind(&self) -> &'static str {
        self.spec.kind()
    }

    /// The kind's own configuration, if it is a `T`.
    pub fn downcast_ref<T: SourceSpec>(&self) -> Option<&T> {
        (self.spec.as_ref() as &dyn Any).downcast_ref::<T>()
    }

    pub(crate) fn spec(&self) -> &dyn SourceSpec {
        self.spec.as_ref()
    }
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.spec.fmt(f)
    }
}

/// What stands for a masked secret.
pub const MASK: &str = "***";

/// Whether a key (of a table, or of a URL's query) names a secret.
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "passwd", "passphrase", "secret", "token", "credential"]
        .iter()
        .any(|s| k.contains(s))
        || k == "key"
        || k.ends_with("_key")
        || k.ends_with("-key")
}

/// A URL with the password of its user part and the values of secret
/// query parameters masked; other strings as they are.
fn mask_url(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_owned();
    };
    let (head, rest) = s.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:{MASK}@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let path = match path.split_once('?') {
        Some((p, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if is_secret(k) => format!("{k}={MASK}"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{p}?{}", q.join("&"))
        }
        None => path.to_owned(),
    };
    format!("{head}{authority}{path}")
}

/// `table` with its secrets masked: the values of secret keys, passwords
/// in URLs and secret query parameters, at any depth.
pub fn masked(table: &toml::Table) -> toml::Table {
    fn value(key: Option<&str>, v: &toml::Value) -> toml::Value {
        match v {
            toml::Value::String(_) if key.is_some_and(is_secret) => toml::Value::String(MASK.into()),
            toml::Value::String(s) => toml::Value::String(mask_url(s)),
            toml::Value::Array(a) => toml::Value::Array(a.iter().map(|v| value(key, v)).collect()),
            toml::Value::Table(t) => toml::Value::Table(masked(t)),
            other => other.clone(),
        }
    }
    table.iter().map(|(k, v)| (k.clone(), value(Some(k), v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_the_rest_kept() {
        let t: toml::Table = toml::from_str(
            "kind = \"rtsp\"\nname = \"cam\"\nurl = \"rtsp://admin:hunter2@10.0.0.9:554/live?token=abc&x=1\"\n\
             password = \"p\"\nstream_key = \"k\"\ngop = 30\ninputs = [\"srt://h:1?passphrase=s3cret\", \"a\"]\n\
             [auth]\nsecret = \"s\"\n",
        )
        .unwrap();
        let m = toml::to_string(&masked(&t)).unwrap();
        for gone in ["hunter2", "token=abc", "\"p\"", "\"k\"", "s3cret", "\"s\""] {
            assert!(!m.contains(gone), "{gone} in {m}");
        }
        for kept in [
            "rtsp://admin:***@10.0.0.9:554/live?token=***&x=1",
            "gop = 30",
            "srt://h:1?passphrase=***",
            "\"a\"",
            "name = \"cam\"",
        ] {
            assert!(m.contains(kept), "{kept} not in {m}");
        }
    }
}
