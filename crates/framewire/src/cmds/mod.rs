//! One module per subcommand, each with its `Args` and `run`.

pub mod archive;
pub mod bench;
pub mod cert;
pub mod compose;
pub mod connect;
pub mod demo;
pub mod describe;
pub mod discover;
pub mod graph;
pub mod key;
pub mod latency;
pub mod ls;
pub mod manual;
pub mod monitors;
pub mod node;
pub mod recv;
pub mod ring;
pub mod snapshot;
pub mod source;
pub mod stats;
pub mod up;
pub mod user;
pub mod v4l2;
