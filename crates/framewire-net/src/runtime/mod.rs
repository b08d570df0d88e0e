//! What runs a node around its state: command dispatch, the device
//! families it answers about, status pushes.

pub(crate) mod commands;
pub(crate) mod devices;
pub(crate) mod input;
pub(crate) mod status;
