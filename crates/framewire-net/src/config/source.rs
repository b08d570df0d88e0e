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
pub struct SourceConfig(Arc<dyn SourceSpec>);

impl SourceConfig {
    /// A source of any kind.
    pub fn new(spec: impl SourceSpec) -> SourceConfig {
        SourceConfig(Arc::new(spec))
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// The source's kind (`test-pattern`, `file`, `v4l2`, `x11`, ...).
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// The kind's own configuration, if it is a `T`.
    pub fn downcast_ref<T: SourceSpec>(&self) -> Option<&T> {
        (self.0.as_ref() as &dyn Any).downcast_ref::<T>()
    }

    pub(crate) fn spec(&self) -> &dyn SourceSpec {
        self.0.as_ref()
    }
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
