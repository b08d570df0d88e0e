//! WATCH_STATUS and the STATUS_REPORT a watched node pushes, with its edges.

use bytes::{BufMut, BytesMut};

use super::*;
use crate::codes::Format;
use crate::error::FieldError;
use crate::fields::{Fields, get_list, put_list};
use crate::wire::{Reader, WriteExt};

/// WATCH_STATUS request: `interval_ms u32` (0 = 1000). After an ok answer
/// the node pushes a [`StatusReport`] on this connection at once, every
/// `interval_ms`, and within a few milliseconds of every change to its
/// streams, edges or outputs, until the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchStatus {
    /// Period of the heartbeat report, ms; 0 = the default (1000).
    pub interval_ms: u32,
}

impl Fields for WatchStatus {
    const MIN_LEN: usize = 4;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.interval_ms);
        Ok(())
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(WatchStatus {
            interval_ms: r.u32("interval_ms")?,
        })
    }
}

/// Where a pulled edge comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EdgeOrigin {
    /// The node's own configuration (file or command line).
    Config,
    /// A CONNECT request (a controller or a person with the CLI).
    Connect,
    /// Opened by discovery for a remote stream.
    Discovery,
    /// A value this build does not know.
    Unknown(u8),
}

impl EdgeOrigin {
    /// Wire value.
    pub fn to_raw(self) -> u8 {
        match self {
            EdgeOrigin::Config => 0,
            EdgeOrigin::Connect => 1,
            EdgeOrigin::Discovery => 2,
            EdgeOrigin::Unknown(v) => v,
        }
    }
    /// From the wire value.
    pub fn from_raw(v: u8) -> EdgeOrigin {
        match v {
            0 => EdgeOrigin::Config,
            1 => EdgeOrigin::Connect,
            2 => EdgeOrigin::Discovery,
            v => EdgeOrigin::Unknown(v),
        }
    }
}

/// One pulled edge in a [`StatusReport`]: `local_name string,
/// upstream string (host:port), stream string, origin u8, state u8,
/// failed_attempts u32`, then [`SubscribeParams`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeStatus {
    /// The name the stream is served under here.
    pub local_name: String,
    /// `host:port` of the upstream node, as given.
    pub upstream: String,
    /// The stream's name on the upstream.
    pub stream: String,
    /// Config, CONNECT or discovery.
    pub origin: EdgeOrigin,
    /// Live, interrupted (retrying), failed (retrying slowly).
    pub state: StreamState,
    /// Connection attempts that failed since the edge was last live.
    pub failed_attempts: u32,
    /// How it subscribes.
    pub params: SubscribeParams,
}

impl Fields for EdgeStatus {
    const MIN_LEN: usize = 6 + 1 + 1 + 4 + SubscribeParams::MIN_LEN;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_string("local_name", &self.local_name)?;
        b.put_string("upstream", &self.upstream)?;
        b.put_string("stream", &self.stream)?;
        b.put_u8(self.origin.to_raw());
        b.put_u8(self.state.to_raw());
        b.put_u32_le(self.failed_attempts);
        self.params.put(b)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(EdgeStatus {
            local_name: r.string("local_name")?,
            upstream: r.string("upstream")?,
            stream: r.string("stream")?,
            origin: EdgeOrigin::from_raw(r.u8("origin")?),
            state: StreamState::from_raw(r.u8("state")?),
            failed_attempts: r.u32("failed_attempts")?,
            params: SubscribeParams::get(r)?,
        })
    }
}

/// STATUS_REPORT, pushed by a watched node: `sequence u32, description
/// Description, streams list(StreamInfo), stats Stats, edges
/// list(EdgeStatus), accept_formats list(u16)`. `accept_formats` lists the
/// stream formats the node accepts on a pulled edge; empty = every format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Counts reports on this connection from 0.
    pub sequence: u32,
    /// Who the node is (as DESCRIBE answers).
    pub description: Description,
    /// Its streams (as LIST_STREAMS answers).
    pub streams: Vec<StreamInfo>,
    /// Its counters (as GET_STATS with an empty name answers).
    pub stats: Stats,
    /// Its pulled edges.
    pub edges: Vec<EdgeStatus>,
    /// Formats accepted on pulled edges (empty = all).
    pub accept_formats: Vec<Format>,
}

impl Fields for StatusReport {
    const MIN_LEN: usize = 4 + Description::MIN_LEN + 2 + Stats::MIN_LEN + 2 + 2;
    fn put(&self, b: &mut BytesMut) -> Result<(), FieldError> {
        b.put_u32_le(self.sequence);
        self.description.put(b)?;
        put_list(b, "streams", &self.streams)?;
        self.stats.put(b)?;
        put_list(b, "edges", &self.edges)?;
        let formats: Vec<u16> = self.accept_formats.iter().map(|f| f.to_raw()).collect();
        put_list(b, "accept_formats", &formats)
    }
    fn get(r: &mut Reader) -> Result<Self, FieldError> {
        Ok(StatusReport {
            sequence: r.u32("sequence")?,
            description: Description::get(r)?,
            streams: get_list(r, "streams")?,
            stats: Stats::get(r)?,
            edges: get_list(r, "edges")?,
            accept_formats: get_list::<u16>(r, "accept_formats")?
                .into_iter()
                .map(Format::from_raw)
                .collect(),
        })
    }
}
