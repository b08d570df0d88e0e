//! Servers a node runs beside its own protocol, for the tools people
//! already use: RTSP (`--rtsp`).

pub(crate) mod rtsp;
