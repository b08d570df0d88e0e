//! A local sink, configured: the stream it takes, how, and any kind of
//! sink ([`crate::sinks::KINDS`]) behind one type.

use std::fmt;
use std::sync::Arc;

use framewire_proto::SubscribeParams;

use crate::api::SinkSpec;

/// How long a node's shutdown waits for its sinks to finish (an archive
/// closes its open segment).
pub const SINK_FINALIZE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Where a local sink puts frames: one kind's configuration (see
/// `SinkKind::null`, `file`, `stdout`, `archive`).
#[derive(Clone)]
pub struct SinkKind(pub(crate) Arc<dyn SinkSpec>);

impl SinkKind {
    /// A sink of any kind.
    pub fn new(spec: impl SinkSpec) -> SinkKind {
        SinkKind(Arc::new(spec))
    }

    /// The kind (`null`, `file`, `stdout`, `archive`, ...).
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// How its output is named in statistics.
    pub fn label(&self) -> String {
        self.0.label()
    }

    /// The kind's own configuration, if it is a `T`.
    pub fn downcast_ref<T: SinkSpec>(&self) -> Option<&T> {
        (self.0.as_ref() as &dyn std::any::Any).downcast_ref::<T>()
    }
}

impl fmt::Debug for SinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A local sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The stream consumed.
    pub stream: String,
    /// Where its frames go.
    pub kind: SinkKind,
    /// Delivery mode and budgets of its output.
    pub params: SubscribeParams,
}
