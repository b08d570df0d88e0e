//! What runs a node around its state: the core (the state behind its
//! lock, wakers and signals), command dispatch, the pulled edges and a
//! gateway's remote streams, the device families a node answers about,
//! viewers' input, keyframe requests, messages passed through uninterpreted, status pushes.

pub(crate) mod commands;
pub(crate) mod core;
pub(crate) mod devices;
pub(crate) mod edges;
pub(crate) mod gateway;
pub(crate) mod input;
pub(crate) mod keyframes;
pub(crate) mod links;
pub(crate) mod passthrough;
pub(crate) mod sources;
pub(crate) mod status;
pub(crate) mod transcode;
