//! TLS between nodes (docs/security.md, "TLS between nodes"): what a node
//! accepts on its port and how it dials its peers.

use std::path::Path;
use std::sync::Arc;

use framewire_tls::rustls::{ClientConfig, ServerConfig};

use super::ConfigError;

/// To whom a node dials over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsDial {
    /// Every peer: pulled edges, probes, a controller's connections.
    #[default]
    All,
    /// Only the next gateway across a site link; the site's own nodes
    /// are dialled over plain TCP (with the deployment key).
    Links,
}

impl TlsDial {
    /// `all` or `links`.
    pub fn parse(s: &str) -> Option<TlsDial> {
        match s {
            "all" => Some(TlsDial::All),
            "links" => Some(TlsDial::Links),
            _ => None,
        }
    }
}

/// A node's TLS: its certificate (to accept TLS), the deployment CA (to
/// check its peers' certificates, and to dial over TLS), and its rules.
#[derive(Clone)]
pub struct TlsConfig {
    /// Accepts TLS on the node's port with this (none: plain TCP only).
    pub server: Option<Arc<ServerConfig>>,
    /// Dials over TLS with this: it trusts the CA and shows the node's
    /// certificate to peers that ask (none: dials plain TCP).
    pub client: Option<Arc<ClientConfig>>,
    /// Peers may authenticate with a certificate of the CA instead of the
    /// deployment key.
    pub peer_certs: bool,
    /// Plain TCP is refused: every connection must be TLS.
    pub require: bool,
    /// Whom the node dials over TLS.
    pub dial: TlsDial,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server", &self.server.is_some())
            .field("client", &self.client.is_some())
            .field("peer_certs", &self.peer_certs)
            .field("require", &self.require)
            .field("dial", &self.dial)
            .finish()
    }
}

impl TlsConfig {
    /// Reads the files: `cert` and `key` (both or neither) make the node
    /// accept TLS; `ca` makes it dial over TLS and take peers'
    /// certificates of that CA as authentication.
    pub fn from_files(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
        require: bool,
        dial: TlsDial,
    ) -> Result<TlsConfig, ConfigError> {
        let err = |what: &str, e: framewire_tls::TlsError| ConfigError::new(format!("TLS {what}: {e}"));
        let server = match (cert, key) {
            (Some(c), Some(k)) => Some(framewire_tls::node_server_config(c, k, ca).map_err(|e| err("certificate", e))?),
            (None, None) => None,
            _ => {
                return Err(ConfigError::new(
                    "TLS needs both a certificate and its key (tls.cert and tls.key, or --tls-cert and --tls-key)",
                ));
            }
        };
        if require && server.is_none() {
            return Err(ConfigError::new(
                "tls.require needs the node's certificate and key (tls.cert and tls.key)",
            ));
        }
        let client = match ca {
            Some(ca) => {
                let identity = cert.zip(key);
                Some(framewire_tls::client_config(ca, identity).map_err(|e| err("CA", e))?)
            }
            None => None,
        };
        Ok(TlsConfig {
            server,
            client,
            peer_certs: ca.is_some(),
            require,
            dial,
        })
    }

    /// The client configuration to dial a peer with: `link` when the peer
    /// is the next gateway across a site link.
    pub fn for_dial(&self, link: bool) -> Option<Arc<ClientConfig>> {
        match self.dial {
            TlsDial::All => self.client.clone(),
            TlsDial::Links if link => self.client.clone(),
            TlsDial::Links => None,
        }
    }
}
