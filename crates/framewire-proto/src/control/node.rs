//! A node as a whole: DESCRIBE, CONNECT, SNAPSHOT and SHUTDOWN.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::codes::{Command, Features, FrameFlags, FunctionFlags};
use crate::error::{EncodeError, FieldError};
use crate::fields::Fields;
use crate::message::Encoded;
use crate::wire::{Reader, WriteExt};

/// CONNECT request: `upstream string (host:port), stream string,
/// local_name string`, then [`SubscribeParams`], then optionally `weight
/// u16` and `max_rate u64` (as in SUBSCRIBE, which they are passed on to).
/// The receiver dials the
/// upstream, subscribes, and re-serves the stream as `local_name` (the
/// upstream's name when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// `host:port` of the upstream node.
    pub upstream: String,
    /// The stream's name on the upstream node.
    pub stream: String,
    /// The name to re-serve it under; empty = the same name.
    pub local_name: String,
    /// How to subscribe.
    pub params: SubscribeParams,
    /// The subscription's weight on the upstream's link (1: the default).
    pub weight: u16,
    /// Bytes per second the upstream may send of it (0: no cap).
    pub max_rate: u64,
}

impl Fields for Connect {
    const MIN_LEN: usize = 6 + SubscribeParams::MIN_LEN;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("upstream", &self.upstream)?;
        b.put_string("stream", &self.stream)?;
        b.put_string("local_name", &self.local_name)?;
        self.params.put(b)?;
        super::streams::put_share(b, self.weight, self.max_rate);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        let upstream = r.string("upstream")?;
        let stream = r.string("stream")?;
        let local_name = r.string("local_name")?;
        let params = SubscribeParams::get(r)?;
        let (weight, max_rate) = super::streams::get_share(r)?;
        Ok(Connect {
            upstream,
            stream,
            local_name,
            params,
            weight,
            max_rate,
        })
    }
}

/// DESCRIBE response: `name string, software string, protocol_version u8,
/// site_id u16, function_flags u16, features u32, pid u32, uptime_ms u64,
/// hostname string, streams u16, tcp_port u16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// `namespace:instance`.
    pub name: String,
    /// Software name and version.
    pub software: String,
    /// Wire format version.
    pub protocol_version: u8,
    /// Site id.
    pub site_id: u16,
    /// What the node does.
    pub function_flags: FunctionFlags,
    /// Optional capabilities.
    pub features: Features,
    /// Process id.
    pub pid: u32,
    /// Milliseconds since the node started.
    pub uptime_ms: u64,
    /// The host's name.
    pub hostname: String,
    /// Streams served.
    pub streams: u16,
    /// The TCP port the node listens on.
    pub tcp_port: u16,
}

impl Fields for Description {
    const MIN_LEN: usize = 2 + 2 + 1 + 2 + 2 + 4 + 4 + 8 + 2 + 2 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("name", &self.name)?;
        b.put_string("software", &self.software)?;
        b.put_u8(self.protocol_version);
        b.put_u16_le(self.site_id);
        b.put_u16_le(self.function_flags.0);
        b.put_u32_le(self.features.0);
        b.put_u32_le(self.pid);
        b.put_u64_le(self.uptime_ms);
        b.put_string("hostname", &self.hostname)?;
        b.put_u16_le(self.streams);
        b.put_u16_le(self.tcp_port);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Description {
            name: r.string("name")?,
            software: r.string("software")?,
            protocol_version: r.u8("protocol_version")?,
            site_id: r.u16("site_id")?,
            function_flags: FunctionFlags(r.u16("function_flags")?),
            features: Features(r.u32("features")?),
            pid: r.u32("pid")?,
            uptime_ms: r.u64("uptime_ms")?,
            hostname: r.string("hostname")?,
            streams: r.u16("streams")?,
            tcp_port: r.u16("tcp_port")?,
        })
    }
}

/// SNAPSHOT response: the stream's [`StreamOpen`], then `sequence u64,
/// timestamp_ns u64, flags u32, data blob32` (the latest frame, encoded as
/// the stream carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// How to decode `data`.
    pub open: StreamOpen,
    /// The frame's sequence number.
    pub sequence: u64,
    /// Its capture time.
    pub timestamp_ns: u64,
    /// Its flags.
    pub flags: FrameFlags,
    /// The frame, as carried.
    pub data: Bytes,
}

impl Fields for Snapshot {
    const MIN_LEN: usize = StreamOpen::MIN_LEN + 8 + 8 + 4 + 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        self.open.put(b)?;
        b.put_u64_le(self.sequence);
        b.put_u64_le(self.timestamp_ns);
        b.put_u32_le(self.flags.0);
        b.put_blob32("data", &self.data)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Snapshot {
            open: StreamOpen::get(r)?,
            sequence: r.u64("sequence")?,
            timestamp_ns: r.u64("timestamp_ns")?,
            flags: FrameFlags(r.u32("flags")?),
            data: r.blob32("data")?,
        })
    }
}

impl Snapshot {
    /// The whole SNAPSHOT answer (status ok) with the frame's bytes in
    /// [`Encoded::body`], shared rather than copied: the same bytes as
    /// `Message::ControlResponse(Response::Snapshot(..).to_message(..))`.
    pub fn encode_response(&self, channel: u16, request_id: u16) -> Result<Encoded, EncodeError> {
        let mut fields = BytesMut::new();
        self.open.put(&mut fields)?;
        fields.put_u64_le(self.sequence);
        fields.put_u64_le(self.timestamp_ns);
        fields.put_u32_le(self.flags.0);
        let len = u32::try_from(self.data.len()).map_err(|_| FieldError::TooLong {
            field: "data",
            len: self.data.len(),
            max: u32::MAX as usize,
        })?;
        fields.put_u32_le(len);
        crate::message::response_encoded(channel, request_id, Command::Snapshot, &fields, self.data.clone())
    }
}

/// SHUTDOWN request: `grace_ms u32`, how long in-flight frames may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// Milliseconds to finish in-flight work before closing.
    pub grace_ms: u32,
}

impl Fields for Shutdown {
    const MIN_LEN: usize = 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.grace_ms);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(Shutdown {
            grace_ms: r.u32("grace_ms")?,
        })
    }
}
