//! A site gateway's part in SUBSCRIBE: a stream named
//! `STREAM@SITE:NAMESPACE:INSTANCE` that this node does not serve is
//! pulled with an edge from the node (or the next gateway) that the peer
//! table routes to, and the subscription waits for it to appear. Edges
//! nobody takes any more are stopped after `limits.gateway_edge_idle`.

use std::sync::Arc;

use framewire_proto::control::{EdgeOrigin, Hello};
use framewire_proto::{Features, Status, SubscribeParams};
use tracing::{debug, info};

use crate::config::{EdgeConfig, EdgeTransport};
use crate::error::CommandError;
use crate::runtime::core::NodeCore;
use crate::runtime::edges::Edges;
use crate::transport::client::{Client, ClientIdentity, DEFAULT_TIMEOUT};
use crate::transport::discovery::{DiscoveryHandle, REMOTE_STREAM_WAIT, parse_remote_stream};

/// What a gateway needs to pull other sites' streams.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) core: Arc<NodeCore>,
    pub(crate) edges: Arc<Edges>,
    pub(crate) discovery: Arc<DiscoveryHandle>,
}

impl Gateway {
    /// Makes `stream` exist if it names another site's stream and a route
    /// leads there; returns when it exists, or after [`REMOTE_STREAM_WAIT`]
    /// (the subscription is then answered as for any missing stream). The
    /// other site's refusal (no such stream, forbidden, busy) comes back
    /// as the error, and the edge made for it is stopped.
    pub(crate) async fn remote_stream(&self, stream: &str, params: SubscribeParams) -> Result<(), CommandError> {
        if self.core.has_stream(stream) {
            return Ok(());
        }
        let Some((bare, site, name)) = parse_remote_stream(stream) else {
            return Ok(());
        };
        let mut changes = self.core.changes();
        let mut refused = None;
        if !self.edges.has(stream) {
            let Some(route) = self.discovery.route(site, name).await else {
                debug!(stream, "no route to {site}:{name}");
                return Ok(());
            };
            let cfg = EdgeConfig {
                upstream: route.addr.to_string(),
                stream: if route.via_gateway {
                    stream.to_owned()
                } else {
                    bare.to_owned()
                },
                local_name: stream.to_owned(),
                params,
                transport: EdgeTransport::Auto,
                weight: 1,
                max_rate: 0,
                tls: Some(route.via_gateway),
            };
            match self.edges.start_asking(cfg, EdgeOrigin::Discovery) {
                Ok((_, rx)) => {
                    info!(stream, upstream = %route.addr, "gateway: pulling a stream for another site");
                    refused = Some(rx);
                }
                Err(e) => debug!(stream, error = %e, "gateway edge not started"),
            }
        }
        let appeared = async {
            loop {
                changes.mark_unchanged();
                if self.core.has_stream(stream) {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        };
        let refusal = async {
            match refused {
                Some(rx) => match rx.await {
                    Ok(e) => e,
                    // Live, or gone without a refusal: nothing to pass on.
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = appeared => Ok(()),
            e = refusal => {
                info!(stream, status = %e.status, reason = %e.message, "gateway: the other site refused the stream; edge stopped");
                let _ = self.edges.stop(stream);
                Err(e)
            }
            () = tokio::time::sleep(REMOTE_STREAM_WAIT) => Ok(()),
        }
    }

    /// What this gateway's tunnels carry.
    pub(crate) fn tunnel_rule(&self) -> crate::config::TunnelRule {
        self.core
            .config
            .discovery
            .as_ref()
            .map(|d| d.tunnel)
            .unwrap_or_default()
    }

    /// Dials `node` (`SITE:NAMESPACE:INSTANCE`) for a tunnel: the node
    /// itself when it is on one of this gateway's site legs, or the next
    /// gateway (asked for a tunnel to the same name) when it is behind a
    /// link. Returns the connection and the node's HELLO with its site as
    /// seen from here.
    pub(crate) async fn tunnel_to(&self, node: &str) -> Result<(Client, Hello), CommandError> {
        if self.tunnel_rule() == crate::config::TunnelRule::Off {
            return Err(CommandError::new(
                Status::PermissionDenied,
                "this gateway carries no tunnels (discovery.tunnel = \"off\")",
            ));
        }
        let parsed = node
            .split_once(':')
            .and_then(|(site, name)| Some((site.parse::<u16>().ok().filter(|s| *s != 0)?, name)));
        let Some((site, name)) = parsed else {
            return Err(CommandError::new(
                Status::BadRequest,
                format!("`{node}` is not a node of another site (SITE:NAMESPACE:INSTANCE, SITE not 0)"),
            ));
        };
        let Some(route) = self.discovery.route(site, name).await else {
            return Err(CommandError::new(
                Status::NotFound,
                format!("no node {node} in this gateway's peer table"),
            ));
        };
        let core = &self.core;
        let who = ClientIdentity {
            name: core.config.name.clone(),
            function_flags: core.config.function_flags(),
            site_id: core.config.site_id,
            key: core.config.key.clone(),
            features: Features(0),
            tls: core.config.tls.as_ref().and_then(|t| t.for_dial(route.via_gateway)),
        };
        let addr = route.addr.to_string();
        let dialled = if route.via_gateway {
            Client::tunnel(&addr, node, &who, DEFAULT_TIMEOUT).await
        } else {
            Client::connect(&addr, &who, DEFAULT_TIMEOUT).await
        };
        let client = dialled.map_err(|e| {
            let status = match &e {
                crate::error::NetError::Remote { status, .. } => *status,
                _ => Status::Busy,
            };
            CommandError::new(status, format!("{node} at {addr}: {e}"))
        })?;
        let mut hello = client.peer().clone();
        hello.site_id = site;
        info!(node, via = %addr, "gateway: tunnel opened");
        Ok((client, hello))
    }

    /// Stops the edges pulled for other sites that nothing takes now.
    pub(crate) fn reap_idle(&self) {
        self.edges.reap_idle(self.core.config.limits.gateway_edge_idle);
    }
}
