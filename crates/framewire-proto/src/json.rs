//! The protocol's values as JSON (feature `json`): one encoding, used by
//! the CLI's `--json` and by the web API alike, so a field has the same
//! name and unit in both. States and kinds are their lower-case labels;
//! a monitor's refresh rate is `refresh_hz` (a float); a V4L2 format's
//! code is its four characters (`MJPG`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::codes::{Features, FunctionFlags};
use crate::control::{
    ControlValue, Description, InputEventStats, InputStats, Monitor, OutputStats, Stats, StreamInfo, V4l2Control,
    V4l2Device, V4l2Format, V4l2FrameSize, fourcc_str,
};

/// V4L2 control flags the JSON spells out (`V4L2_CTRL_FLAG_READ_ONLY`, `_INACTIVE`).
const FLAG_READ_ONLY: u32 = 0x0004;
const FLAG_INACTIVE: u32 = 0x0010;

/// The names of a node's functions (`source`, `relay`, `sink`,
/// `controller`; an unknown bit as `0x…`).
pub fn functions(f: FunctionFlags) -> Vec<String> {
    let mut v: Vec<String> = [
        (FunctionFlags::SOURCE, "source"),
        (FunctionFlags::RELAY, "relay"),
        (FunctionFlags::SINK, "sink"),
        (FunctionFlags::CONTROLLER, "controller"),
    ]
    .into_iter()
    .filter(|(flag, _)| f.contains(*flag))
    .map(|(_, n)| n.to_owned())
    .collect();
    if f.0 & !0x000f != 0 {
        v.push(format!("0x{:x}", f.0 & !0x000f));
    }
    v
}

/// The names of a node's features (`shm`: same-host edges over shared
/// memory; `opaque`: headerless ports; an unknown bit as `0x…`).
pub fn features(f: Features) -> Vec<String> {
    let mut v: Vec<String> = [(Features::SHM, "shm"), (Features::OPAQUE, "opaque")]
        .into_iter()
        .filter(|(flag, _)| f.contains(*flag))
        .map(|(_, n)| n.to_owned())
        .collect();
    if f.0 & !0x3 != 0 {
        v.push(format!("0x{:x}", f.0 & !0x3));
    }
    v
}

/// DESCRIBE: the node in words (functions and features by name).
pub fn description(d: &Description) -> Value {
    json!({
        "name": d.name,
        "software": d.software,
        "protocol_version": d.protocol_version,
        "site_id": d.site_id,
        "functions": functions(d.function_flags),
        "features": features(d.features),
        "pid": d.pid,
        "hostname": d.hostname,
        "uptime_ms": d.uptime_ms,
        "streams": d.streams,
        "tcp_port": d.tcp_port,
    })
}

/// A stream as LIST_STREAMS describes it.
pub fn stream(s: &StreamInfo) -> Value {
    json!({
        "name": s.open.name,
        "format": s.open.format.to_string(),
        "pixel_format": s.open.pixel_format.to_string(),
        "origin": s.open.origin.to_string(),
        "width": s.open.width,
        "height": s.open.height,
        "fps_num": s.open.fps_num,
        "fps_den": s.open.fps_den,
        "state": s.state.label(),
        "subscribers": s.subscribers,
        "frames": s.frames,
    })
}

/// GET_STATS: inputs, outputs, viewers' input events, messages passed through.
pub fn stats(s: &Stats) -> Value {
    json!({
        "inputs": s.inputs.iter().map(input).collect::<Vec<_>>(),
        "outputs": s.outputs.iter().map(output).collect::<Vec<_>>(),
        "input_events": s.input_events.iter().map(input_events).collect::<Vec<_>>(),
        "pass_through": s.pass_through.iter().map(|p| json!({
            "stream": p.stream, "message_type": p.message_type, "messages": p.messages,
            "bytes": p.bytes, "dropped": p.dropped,
        })).collect::<Vec<_>>(),
    })
}

fn input(i: &InputStats) -> Value {
    json!({
        "stream": i.stream, "state": i.state.label(), "upstream": i.upstream,
        "frames_in": i.frames_in, "bytes_in": i.bytes_in, "reconnects": i.reconnects,
    })
}

fn output(o: &OutputStats) -> Value {
    json!({
        "channel": o.channel, "stream": o.stream, "peer": o.peer, "mode": o.mode.to_string(),
        "transport": o.transport.to_string(), "priority": o.priority,
        "frames_in": o.frames_in, "frames_sent": o.frames_sent, "bytes_sent": o.bytes_sent,
        "drops": o.drops.iter().map(|d| (d.reason.label(), d.count)).collect::<BTreeMap<_, _>>(),
        "queue_frames": o.queue_frames, "queue_bytes": o.queue_bytes,
        "max_frames": o.max_frames, "max_bytes": o.max_bytes, "oldest_age_us": o.oldest_age_us,
        "latency_p50_us": o.latency_p50_us, "latency_p99_us": o.latency_p99_us,
        "latency_max_us": o.latency_max_us, "waiting_keyframe": o.waiting_keyframe,
    })
}

fn input_events(e: &InputEventStats) -> Value {
    json!({
        "stream": e.stream, "received": e.received, "injected": e.injected, "forwarded": e.forwarded,
        "kinds": e.kinds.iter().map(|k| (k.kind.label(), k.count)).collect::<BTreeMap<_, _>>(),
    })
}

/// A monitor of LIST_MONITORS.
pub fn monitor(m: &Monitor) -> Value {
    json!({
        "name": m.name, "x": m.x, "y": m.y, "width": m.width, "height": m.height,
        "width_mm": m.width_mm, "height_mm": m.height_mm,
        "refresh_hz": f64::from(m.refresh_mhz) / 1000.0, "primary": m.primary,
    })
}

/// A V4L2 device of LIST_DEVICES, with its formats, sizes and intervals.
pub fn v4l2_device(d: &V4l2Device) -> Value {
    json!({
        "path": d.path, "card": d.card, "driver": d.driver, "bus": d.bus,
        "capabilities": d.capabilities,
        "formats": d.formats.iter().map(v4l2_format).collect::<Vec<_>>(),
    })
}

fn v4l2_format(f: &V4l2Format) -> Value {
    json!({
        "fourcc": fourcc_str(f.fourcc), "description": f.description, "flags": f.flags,
        "sizes": f.sizes.iter().map(frame_size).collect::<Vec<_>>(),
    })
}

fn frame_size(s: &V4l2FrameSize) -> Value {
    json!({
        "kind": s.kind, "width": s.width, "height": s.height,
        "max_width": s.max_width, "max_height": s.max_height,
        "step_width": s.step_width, "step_height": s.step_height,
        "intervals": s.intervals,
    })
}

/// A V4L2 control of LIST_CONTROLS with its current value, if read.
pub fn v4l2_control(c: &V4l2Control, value: Option<i64>) -> Value {
    json!({
        "id": c.id, "class": c.class, "name": c.name, "type": c.ctrl_type.label(),
        "min": c.min, "max": c.max, "step": c.step, "default": c.default,
        "flags": c.flags,
        "read_only": c.flags & FLAG_READ_ONLY != 0,
        "inactive": c.flags & FLAG_INACTIVE != 0,
        "menu": c.menu.iter().map(|m| json!({"index": m.index, "name": m.name, "value": m.value})).collect::<Vec<_>>(),
        "value": value,
    })
}

/// A control's value (GET_CONTROLS, SET_CONTROLS).
pub fn control_value(v: &ControlValue) -> Value {
    json!({"id": v.id, "value": v.value})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monitor_has_its_rate_in_hertz() {
        let m = Monitor {
            name: "DP-1".into(),
            x: 0,
            y: 0,
            width: 1920,
            height: 1080,
            width_mm: 530,
            height_mm: 300,
            refresh_mhz: 59_940,
            primary: true,
        };
        let v = monitor(&m);
        assert_eq!(v["refresh_hz"], 59.94);
        assert!(v.get("refresh_mhz").is_none());
    }
}
