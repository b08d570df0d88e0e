//! Device families: the commands a node answers about the devices around
//! it (V4L2 controls, X11 monitors, and whatever comes next). Each family
//! is given to the node when it starts; the connection code knows only
//! this trait, never a device module.

use std::fmt::Debug;
use std::sync::Arc;

use framewire_proto::control::{Request, Response};
use framewire_proto::{Command, Status};

use crate::error::CommandError;

/// A family of devices that answers some control commands.
pub(crate) trait DeviceFamily: Debug + Send + Sync + 'static {
    /// Whether this family answers `command`.
    fn answers(&self, command: Command) -> bool;

    /// Answers one request. Called on a blocking thread: it may do ioctls
    /// or X11 round trips.
    fn handle(&self, req: Request) -> Result<Response, CommandError>;
}

/// The families a node was given.
#[derive(Debug, Clone, Default)]
pub(crate) struct Devices(Arc<[Arc<dyn DeviceFamily>]>);

impl Devices {
    pub(crate) fn new(families: Vec<Arc<dyn DeviceFamily>>) -> Devices {
        Devices(families.into())
    }

    /// Answers `req` if a family takes its command; `None` otherwise.
    pub(crate) async fn handle(&self, req: Request) -> Option<Result<Response, CommandError>> {
        let command = req.command();
        let family = self.0.iter().find(|f| f.answers(command))?.clone();
        Some(
            tokio::task::spawn_blocking(move || family.handle(req))
                .await
                .unwrap_or_else(|e| Err(CommandError::new(Status::Internal, format!("{command} failed: {e}")))),
        )
    }
}
