//! What the web server needs from a controller, as a small trait, so the
//! routing and access checks are tested without a running graph.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use framewire_controller::{ControllerError, ControllerHandle, CurrentGraph, Preview, WantedEdge, WantedGraph};
use framewire_proto::Format;
use framewire_proto::control::{Request, Response};
use tokio::sync::watch;

/// A boxed future, so the trait is usable as `dyn Backend`.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The controller operations the web server calls. [`ControllerHandle`]
/// implements it; see its methods for the contract of each.
pub trait Backend: Send + Sync + 'static {
    /// The current graph, waking on every change.
    fn graph(&self) -> watch::Receiver<Arc<CurrentGraph>>;
    /// The wanted graph as stored.
    fn wanted(&self) -> BoxFut<'_, WantedGraph>;
    /// Replace the wanted graph (all or nothing), only if it is still at
    /// version `if_match` when one is given; returns the new version.
    fn apply(&self, wanted: WantedGraph, if_match: Option<String>) -> BoxFut<'_, Result<String, ControllerError>>;
    /// Forget an offline node.
    fn forget_node<'a>(&'a self, node: &'a str) -> BoxFut<'a, Result<(), ControllerError>>;
    /// Add one wanted edge; returns its id.
    fn add_edge(&self, edge: WantedEdge) -> BoxFut<'_, Result<String, ControllerError>>;
    /// Remove one wanted edge by id.
    fn remove_edge<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), ControllerError>>;
    /// One control request to a node.
    fn request<'a>(&'a self, node: &'a str, req: Request) -> BoxFut<'a, Result<Response, ControllerError>>;
    /// A live JPEG preview of a stream, or the stream as it comes when its
    /// format is one of `passthrough`.
    fn preview<'a>(
        &'a self,
        node: &'a str,
        stream: &'a str,
        passthrough: &'a [Format],
    ) -> BoxFut<'a, Result<Preview, ControllerError>>;
}

impl Backend for ControllerHandle {
    fn graph(&self) -> watch::Receiver<Arc<CurrentGraph>> {
        ControllerHandle::graph(self)
    }
    fn wanted(&self) -> BoxFut<'_, WantedGraph> {
        Box::pin(ControllerHandle::wanted(self))
    }
    fn apply(&self, wanted: WantedGraph, if_match: Option<String>) -> BoxFut<'_, Result<String, ControllerError>> {
        Box::pin(ControllerHandle::apply_if(self, wanted, if_match))
    }
    fn forget_node<'a>(&'a self, node: &'a str) -> BoxFut<'a, Result<(), ControllerError>> {
        Box::pin(ControllerHandle::forget_node(self, node))
    }
    fn add_edge(&self, edge: WantedEdge) -> BoxFut<'_, Result<String, ControllerError>> {
        Box::pin(ControllerHandle::add_edge(self, edge))
    }
    fn remove_edge<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), ControllerError>> {
        Box::pin(ControllerHandle::remove_edge(self, id))
    }
    fn request<'a>(&'a self, node: &'a str, req: Request) -> BoxFut<'a, Result<Response, ControllerError>> {
        Box::pin(ControllerHandle::request(self, node, req))
    }
    fn preview<'a>(
        &'a self,
        node: &'a str,
        stream: &'a str,
        passthrough: &'a [Format],
    ) -> BoxFut<'a, Result<Preview, ControllerError>> {
        Box::pin(ControllerHandle::preview_with(self, node, stream, passthrough))
    }
}
