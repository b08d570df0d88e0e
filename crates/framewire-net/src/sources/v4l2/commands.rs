//! The V4L2 control commands: LIST_DEVICES, LIST_CONTROLS, GET_CONTROLS
//! and SET_CONTROLS, on a short-lived fd of their own.

use crate::error::CommandError;
use std::path::{Path, PathBuf};

use framewire_media::v4l2::device::{device_paths, list_devices};
use framewire_media::v4l2::sys::{CTRL_FLAG_EXECUTE_ON_WRITE, CTRL_FLAG_WRITE_ONLY, CTRL_TYPE_BUTTON};
use framewire_media::v4l2::{Device, V4l2Error};
use framewire_proto::Status;
use framewire_proto::control::{Request, Response};

use super::V4l2Registry;

fn status_of(e: &V4l2Error) -> Status {
    match e {
        V4l2Error::Control(_) | V4l2Error::Unsupported { .. } => Status::BadRequest,
        V4l2Error::Sys { op: "open", .. } => Status::NotFound,
        V4l2Error::Sys { errno, .. } if *errno == nix::errno::Errno::EBUSY => Status::Busy,
        _ => Status::Internal,
    }
}

fn err(e: &V4l2Error) -> CommandError {
    CommandError::new(status_of(e), e.to_string())
}

/// A device named by path (`/dev/videoN`) or by the stream that captures it.
fn resolve(registry: &V4l2Registry, device: &str) -> Result<PathBuf, CommandError> {
    let reg = registry.lock();
    if let Some((p, _)) = reg.iter().find(|(_, e)| e.stream == device) {
        return Ok(p.clone());
    }
    let p = Path::new(device);
    if reg.contains_key(p) || device_paths().iter().any(|d| d == p) {
        return Ok(p.to_path_buf());
    }
    let names: Vec<String> = device_paths()
        .iter()
        .map(|d| d.display().to_string())
        .chain(reg.values().map(|e| e.stream.clone()))
        .collect();
    Err(CommandError::new(
        Status::NotFound,
        format!(
            "no V4L2 device `{device}` here (devices and streams: {})",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        ),
    ))
}

pub(super) fn blocking(registry: &V4l2Registry, req: Request) -> Result<Response, CommandError> {
    match req {
        Request::V4l2ListDevices => Ok(Response::V4l2ListDevices(list_devices())),
        Request::V4l2ListControls(n) => {
            let path = resolve(registry, &n.name)?;
            let dev = Device::open(&path).map_err(|e| err(&e))?;
            Ok(Response::V4l2ListControls(dev.controls().map_err(|e| err(&e))?))
        }
        Request::V4l2GetControls(g) => {
            let path = resolve(registry, &g.device)?;
            let dev = Device::open(&path).map_err(|e| err(&e))?;
            Ok(Response::V4l2GetControls(
                dev.get_controls(&g.ids).map_err(|e| err(&e))?,
            ))
        }
        Request::V4l2SetControls(s) => {
            let path = resolve(registry, &s.device)?;
            let dev = Device::open(&path).map_err(|e| err(&e))?;
            // Before setting: a control may take the device away (vivid's
            // Disconnect), and nothing could be queried afterwards.
            let infos = dev.control_infos().map_err(|e| err(&e))?;
            let applied = dev.set_controls(&s.values).map_err(|e| err(&e))?;
            drop(dev);
            // Remember values (not actions: buttons, write-only or
            // execute-on-write controls) for the device's source, to
            // re-apply when a lost device comes back.
            let mut devices = registry.lock();
            if let Some(entry) = devices.get_mut(&path) {
                for v in &s.values {
                    let state = infos.iter().any(|c| {
                        c.control.id == v.id
                            && c.raw_type != CTRL_TYPE_BUTTON
                            && c.control.flags & (CTRL_FLAG_WRITE_ONLY | CTRL_FLAG_EXECUTE_ON_WRITE) == 0
                    });
                    if !state {
                        continue;
                    }
                    entry.remembered.retain(|r| r.id != v.id);
                    entry.remembered.push(*v);
                }
                let values = entry.remembered.clone();
                drop(devices);
                // And kept for the node's next start.
                registry.keep(&path, &values);
            }
            Ok(Response::V4l2SetControls(applied))
        }
        _ => Err(CommandError::new(Status::UnknownCommand, "not a V4L2 command")),
    }
}
