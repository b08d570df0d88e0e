//! Moving bytes: connections a node accepts and the writer that owns each
//! socket, pulled edges and the client they dial with, framing and the
//! buffer pool, opaque ports, shared-memory edges, and the discovery
//! driver's sockets.

pub mod bufpool;
pub(crate) mod client;
pub(crate) mod conn;
pub mod discovery;
pub(crate) mod edge;
pub mod framed;
pub(crate) mod opaque;
pub(crate) mod shm_edge;
pub(crate) mod socket;
pub(crate) mod stream;
pub(crate) mod tunnel;
pub(crate) mod writer;
