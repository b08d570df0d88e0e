//! Status reports for the controller's tests and fuzz targets.

use framewire_proto::control::{Description, EdgeStatus, Stats, StatusReport, StreamInfo, StreamState};
use framewire_proto::{Features, Format, FunctionFlags, Origin, PixelFormat, StreamOpen};

fn open(name: &str, format: Format) -> StreamOpen {
    StreamOpen {
        format,
        pixel_format: PixelFormat::None,
        origin: Origin::Software,
        width: 64,
        height: 48,
        fps_num: 30,
        fps_den: 1,
        name: name.into(),
        codec_config: Default::default(),
    }
}

pub(crate) fn report(name: &str, port: u16, streams: &[(&str, Format)], edges: Vec<EdgeStatus>) -> StatusReport {
    StatusReport {
        sequence: 0,
        description: Description {
            name: name.into(),
            software: "fw".into(),
            protocol_version: 1,
            site_id: 0,
            function_flags: FunctionFlags::RELAY,
            features: Features(0),
            pid: 1,
            uptime_ms: 5,
            hostname: "h".into(),
            streams: 0,
            tcp_port: port,
        },
        streams: streams
            .iter()
            .map(|(n, f)| StreamInfo {
                open: open(n, *f),
                state: StreamState::Live,
                subscribers: 0,
                frames: 0,
            })
            .collect(),
        stats: Stats::default(),
        edges,
        accept_formats: Vec::new(),
    }
}
