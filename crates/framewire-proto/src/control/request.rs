//! Every request and response, typed: [`Request`] and [`Response`] turn
//! control envelopes into these and back.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::codes::{Command, Status};
use crate::error::{BodyError, FieldError};
use crate::fields::{Fields, get_list, put_list};
use crate::message::{ControlRequest, ControlResponse};
use crate::wire::Reader;

/// A typed control request body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// HELLO.
    Hello(Hello),
    /// AUTH.
    Auth(Auth),
    /// LIST_STREAMS (no fields).
    ListStreams,
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// UNSUBSCRIBE (no fields; the header's channel names the subscription).
    Unsubscribe,
    /// STREAM_OPEN (on the stream's channel).
    StreamOpen(StreamOpen),
    /// GET_STATS: `stream string` (empty = all).
    GetStats(Name),
    /// CONNECT.
    Connect(Connect),
    /// DISCONNECT: `local_name string`.
    Disconnect(Name),
    /// DESCRIBE (no fields).
    Describe,
    /// SNAPSHOT: `stream string`.
    Snapshot(Name),
    /// SHUTDOWN.
    Shutdown(Shutdown),
    /// UPDATE_SUBSCRIPTION: SubscribeParams (on the subscription's channel).
    UpdateSubscription(SubscribeParams),
    /// REQUEST_KEYFRAME: `stream string` (empty: the stream of the
    /// subscription on the header's channel).
    RequestKeyframe(Name),
    /// V4L2_LIST_DEVICES (no fields).
    V4l2ListDevices,
    /// V4L2_LIST_CONTROLS: `device string`.
    V4l2ListControls(Name),
    /// V4L2_GET_CONTROLS.
    V4l2GetControls(GetControls),
    /// V4L2_SET_CONTROLS.
    V4l2SetControls(SetControls),
    /// LIST_MONITORS (no fields).
    ListMonitors,
    /// SOURCE_ADD.
    SourceAdd(SourceTable),
    /// SOURCE_SET.
    SourceSet(SourceTable),
    /// SOURCE_REMOVE: `name string`.
    SourceRemove(Name),
    /// SOURCE_GET: `name string`.
    SourceGet(Name),
    /// ARCHIVE_LIST.
    ArchiveList(ArchiveQuery),
    /// ARCHIVE_READ.
    ArchiveRead(ArchiveRead),
    /// ARCHIVE_SET.
    ArchiveSet(ArchiveSet),
    /// WATCH_STATUS.
    WatchStatus(WatchStatus),
    /// STATUS_REPORT (pushed by a watched node; not answered).
    StatusReport(Box<StatusReport>),
    /// TUNNEL: `node string`, another site's node (`SITE:NAMESPACE:INSTANCE`)
    /// that a gateway connects this connection to.
    Tunnel(Name),
    /// A command this build does not know (answer `unknown-command`).
    Unknown {
        /// The raw command.
        command: u16,
        /// Its fields, undecoded.
        body: Bytes,
    },
}

impl Request {
    /// The command number.
    pub fn command(&self) -> Command {
        match self {
            Request::Hello(_) => Command::Hello,
            Request::Auth(_) => Command::Auth,
            Request::ListStreams => Command::ListStreams,
            Request::Subscribe(_) => Command::Subscribe,
            Request::Unsubscribe => Command::Unsubscribe,
            Request::StreamOpen(_) => Command::StreamOpen,
            Request::GetStats(_) => Command::GetStats,
            Request::Connect(_) => Command::Connect,
            Request::Disconnect(_) => Command::Disconnect,
            Request::Describe => Command::Describe,
            Request::Snapshot(_) => Command::Snapshot,
            Request::Shutdown(_) => Command::Shutdown,
            Request::UpdateSubscription(_) => Command::UpdateSubscription,
            Request::RequestKeyframe(_) => Command::RequestKeyframe,
            Request::V4l2ListDevices => Command::V4l2ListDevices,
            Request::V4l2ListControls(_) => Command::V4l2ListControls,
            Request::V4l2GetControls(_) => Command::V4l2GetControls,
            Request::V4l2SetControls(_) => Command::V4l2SetControls,
            Request::ListMonitors => Command::ListMonitors,
            Request::SourceAdd(_) => Command::SourceAdd,
            Request::SourceSet(_) => Command::SourceSet,
            Request::SourceRemove(_) => Command::SourceRemove,
            Request::SourceGet(_) => Command::SourceGet,
            Request::ArchiveList(_) => Command::ArchiveList,
            Request::ArchiveRead(_) => Command::ArchiveRead,
            Request::ArchiveSet(_) => Command::ArchiveSet,
            Request::WatchStatus(_) => Command::WatchStatus,
            Request::StatusReport(_) => Command::StatusReport,
            Request::Tunnel(_) => Command::Tunnel,
            Request::Unknown { command, .. } => Command::from_raw(*command),
        }
    }

    /// The body's bytes.
    pub fn encode_body(&self) -> Result<Bytes, FieldError> {
        let mut b = BytesMut::new();
        match self {
            Request::Hello(x) => x.put(&mut b)?,
            Request::Auth(x) => x.put(&mut b)?,
            Request::Subscribe(x) => x.put(&mut b)?,
            Request::StreamOpen(x) => x.put_request(&mut b)?,
            Request::GetStats(x)
            | Request::Disconnect(x)
            | Request::Snapshot(x)
            | Request::RequestKeyframe(x)
            | Request::V4l2ListControls(x)
            | Request::SourceRemove(x)
            | Request::SourceGet(x)
            | Request::Tunnel(x) => {
                x.put(&mut b)?;
            }
            Request::SourceAdd(x) | Request::SourceSet(x) => x.put(&mut b)?,
            Request::ArchiveList(x) => x.put(&mut b)?,
            Request::ArchiveRead(x) => x.put(&mut b)?,
            Request::ArchiveSet(x) => x.put(&mut b)?,
            Request::Connect(x) => x.put(&mut b)?,
            Request::Shutdown(x) => x.put(&mut b)?,
            Request::UpdateSubscription(x) => x.put(&mut b)?,
            Request::V4l2GetControls(x) => x.put(&mut b)?,
            Request::V4l2SetControls(x) => x.put(&mut b)?,
            Request::WatchStatus(x) => x.put(&mut b)?,
            Request::StatusReport(x) => x.put(&mut b)?,
            Request::ListStreams
            | Request::Unsubscribe
            | Request::Describe
            | Request::V4l2ListDevices
            | Request::ListMonitors => {}
            Request::Unknown { body, .. } => return Ok(body.clone()),
        }
        Ok(b.freeze())
    }

    /// The whole envelope for this request.
    pub fn to_message(&self, channel: u16, request_id: u16) -> Result<ControlRequest, FieldError> {
        Ok(ControlRequest {
            channel,
            request_id,
            command: self.command(),
            body: self.encode_body()?,
        })
    }

    /// Parses a request envelope's body.
    pub fn decode(req: &ControlRequest) -> Result<Request, BodyError> {
        let mut r = Reader::new(req.body.clone());
        let err = |source| BodyError {
            command: req.command,
            source,
        };
        Ok(match req.command {
            Command::Hello => Request::Hello(Hello::get(&mut r).map_err(err)?),
            Command::Auth => Request::Auth(Auth::get(&mut r).map_err(err)?),
            Command::ListStreams => Request::ListStreams,
            Command::Subscribe => Request::Subscribe(Subscribe::get(&mut r).map_err(err)?),
            Command::Unsubscribe => Request::Unsubscribe,
            Command::StreamOpen => Request::StreamOpen(StreamOpen::get_request(&mut r).map_err(err)?),
            Command::GetStats => Request::GetStats(Name::get(&mut r).map_err(err)?),
            Command::Connect => Request::Connect(Connect::get(&mut r).map_err(err)?),
            Command::Disconnect => Request::Disconnect(Name::get(&mut r).map_err(err)?),
            Command::Describe => Request::Describe,
            Command::Snapshot => Request::Snapshot(Name::get(&mut r).map_err(err)?),
            Command::Shutdown => Request::Shutdown(Shutdown::get(&mut r).map_err(err)?),
            Command::UpdateSubscription => Request::UpdateSubscription(SubscribeParams::get(&mut r).map_err(err)?),
            Command::RequestKeyframe => Request::RequestKeyframe(Name::get(&mut r).map_err(err)?),
            Command::V4l2ListDevices => Request::V4l2ListDevices,
            Command::V4l2ListControls => Request::V4l2ListControls(Name::get(&mut r).map_err(err)?),
            Command::V4l2GetControls => Request::V4l2GetControls(GetControls::get(&mut r).map_err(err)?),
            Command::V4l2SetControls => Request::V4l2SetControls(SetControls::get(&mut r).map_err(err)?),
            Command::ListMonitors => Request::ListMonitors,
            Command::SourceAdd => Request::SourceAdd(SourceTable::get(&mut r).map_err(err)?),
            Command::SourceSet => Request::SourceSet(SourceTable::get(&mut r).map_err(err)?),
            Command::SourceRemove => Request::SourceRemove(Name::get(&mut r).map_err(err)?),
            Command::SourceGet => Request::SourceGet(Name::get(&mut r).map_err(err)?),
            Command::ArchiveList => Request::ArchiveList(ArchiveQuery::get(&mut r).map_err(err)?),
            Command::ArchiveRead => Request::ArchiveRead(ArchiveRead::get(&mut r).map_err(err)?),
            Command::ArchiveSet => Request::ArchiveSet(ArchiveSet::get(&mut r).map_err(err)?),
            Command::WatchStatus => Request::WatchStatus(WatchStatus::get(&mut r).map_err(err)?),
            Command::StatusReport => Request::StatusReport(Box::new(StatusReport::get(&mut r).map_err(err)?)),
            Command::Tunnel => Request::Tunnel(Name::get(&mut r).map_err(err)?),
            Command::Unknown(command) => Request::Unknown {
                command,
                body: req.body.clone(),
            },
        })
    }
}

/// A typed body of a successful control response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// HELLO.
    Hello(HelloReply),
    /// AUTH (no fields).
    Auth,
    /// LIST_STREAMS: `streams list(StreamInfo)`.
    ListStreams(Vec<StreamInfo>),
    /// SUBSCRIBE.
    Subscribe(SubscribeReply),
    /// UNSUBSCRIBE (no fields).
    Unsubscribe,
    /// STREAM_OPEN accepted (no fields).
    StreamOpen,
    /// GET_STATS.
    GetStats(Stats),
    /// CONNECT: `local_name string`, the name the stream is served under.
    Connect(Name),
    /// DISCONNECT (no fields).
    Disconnect,
    /// DESCRIBE.
    Describe(Description),
    /// SNAPSHOT.
    Snapshot(Snapshot),
    /// SHUTDOWN accepted (no fields).
    Shutdown,
    /// UPDATE_SUBSCRIPTION applied (no fields).
    UpdateSubscription,
    /// REQUEST_KEYFRAME taken (no fields): the stream's maker will send a
    /// keyframe, or the request went on upstream.
    RequestKeyframe,
    /// V4L2_LIST_DEVICES: `devices list(V4l2Device)`.
    V4l2ListDevices(Vec<V4l2Device>),
    /// V4L2_LIST_CONTROLS: `controls list(V4l2Control)`.
    V4l2ListControls(Vec<V4l2Control>),
    /// V4L2_GET_CONTROLS: `values list(ControlValue)`.
    V4l2GetControls(Vec<ControlValue>),
    /// V4L2_SET_CONTROLS: `values list(ControlValue)`, as applied.
    V4l2SetControls(Vec<ControlValue>),
    /// LIST_MONITORS: `monitors list(Monitor)`.
    ListMonitors(Vec<Monitor>),
    /// SOURCE_ADD: `name string`, the stream the source serves.
    SourceAdd(Name),
    /// SOURCE_SET: `name string`, the stream the source serves.
    SourceSet(Name),
    /// SOURCE_REMOVE (no fields).
    SourceRemove,
    /// SOURCE_GET: `table string`, the source's table as it runs.
    SourceGet(SourceTable),
    /// ARCHIVE_LIST: `archives list(ArchivedStream)`.
    ArchiveList(ArchiveListing),
    /// ARCHIVE_READ: `total u64, data blob32`.
    ArchiveRead(ArchiveChunk),
    /// ARCHIVE_SET (no fields).
    ArchiveSet,
    /// WATCH_STATUS accepted (no fields).
    WatchStatus,
    /// TUNNEL: the far node's HELLO, its site as seen from the gateway.
    Tunnel(Hello),
    /// A command this build does not know.
    Unknown {
        /// The raw command.
        command: u16,
        /// Its fields, undecoded.
        body: Bytes,
    },
}

impl Response {
    /// The command answered.
    pub fn command(&self) -> Command {
        match self {
            Response::Hello(_) => Command::Hello,
            Response::Auth => Command::Auth,
            Response::ListStreams(_) => Command::ListStreams,
            Response::Subscribe(_) => Command::Subscribe,
            Response::Unsubscribe => Command::Unsubscribe,
            Response::StreamOpen => Command::StreamOpen,
            Response::GetStats(_) => Command::GetStats,
            Response::Connect(_) => Command::Connect,
            Response::Disconnect => Command::Disconnect,
            Response::Describe(_) => Command::Describe,
            Response::Snapshot(_) => Command::Snapshot,
            Response::Shutdown => Command::Shutdown,
            Response::UpdateSubscription => Command::UpdateSubscription,
            Response::RequestKeyframe => Command::RequestKeyframe,
            Response::V4l2ListDevices(_) => Command::V4l2ListDevices,
            Response::V4l2ListControls(_) => Command::V4l2ListControls,
            Response::V4l2GetControls(_) => Command::V4l2GetControls,
            Response::V4l2SetControls(_) => Command::V4l2SetControls,
            Response::ListMonitors(_) => Command::ListMonitors,
            Response::SourceAdd(_) => Command::SourceAdd,
            Response::SourceSet(_) => Command::SourceSet,
            Response::SourceRemove => Command::SourceRemove,
            Response::SourceGet(_) => Command::SourceGet,
            Response::ArchiveList(_) => Command::ArchiveList,
            Response::ArchiveRead(_) => Command::ArchiveRead,
            Response::ArchiveSet => Command::ArchiveSet,
            Response::WatchStatus => Command::WatchStatus,
            Response::Tunnel(_) => Command::Tunnel,
            Response::Unknown { command, .. } => Command::from_raw(*command),
        }
    }

    /// The body's bytes.
    pub fn encode_body(&self) -> Result<Bytes, FieldError> {
        let mut b = BytesMut::new();
        match self {
            Response::Hello(x) => x.put(&mut b)?,
            Response::Tunnel(x) => x.put(&mut b)?,
            Response::ListStreams(x) => put_list(&mut b, "streams", x)?,
            Response::Subscribe(x) => x.put(&mut b)?,
            Response::GetStats(x) => {
                x.put(&mut b)?;
                // Appended later, and only here (a status report's stats
                // end with `input_events`): written when not empty.
                if !x.pass_through.is_empty() {
                    put_list(&mut b, "pass_through", &x.pass_through)?;
                }
            }
            Response::Connect(x) | Response::SourceAdd(x) | Response::SourceSet(x) => x.put(&mut b)?,
            Response::SourceGet(x) => x.put(&mut b)?,
            Response::ArchiveList(x) => x.put(&mut b)?,
            Response::ArchiveRead(x) => x.put(&mut b)?,
            Response::Describe(x) => x.put(&mut b)?,
            Response::Snapshot(x) => x.put(&mut b)?,
            Response::V4l2ListDevices(x) => put_list(&mut b, "devices", x)?,
            Response::V4l2ListControls(x) => put_list(&mut b, "controls", x)?,
            Response::V4l2GetControls(x) | Response::V4l2SetControls(x) => put_list(&mut b, "values", x)?,
            Response::ListMonitors(x) => put_list(&mut b, "monitors", x)?,
            Response::Auth
            | Response::Unsubscribe
            | Response::StreamOpen
            | Response::Disconnect
            | Response::Shutdown
            | Response::UpdateSubscription
            | Response::RequestKeyframe
            | Response::SourceRemove
            | Response::ArchiveSet
            | Response::WatchStatus => {}
            Response::Unknown { body, .. } => return Ok(body.clone()),
        }
        Ok(b.freeze())
    }

    /// The whole envelope of a successful response.
    pub fn to_message(&self, channel: u16, request_id: u16) -> Result<ControlResponse, FieldError> {
        Ok(ControlResponse {
            channel,
            request_id,
            status: Status::Ok,
            command: self.command(),
            body: self.encode_body()?,
        })
    }

    /// Parses the body of a response whose status is ok. (For an error
    /// status use [`ControlResponse::error_message`].)
    pub fn decode(resp: &ControlResponse) -> Result<Response, BodyError> {
        let mut r = Reader::new(resp.body.clone());
        let err = |source| BodyError {
            command: resp.command,
            source,
        };
        Ok(match resp.command {
            Command::Hello => Response::Hello(HelloReply::get(&mut r).map_err(err)?),
            Command::Auth => Response::Auth,
            Command::ListStreams => Response::ListStreams(get_list(&mut r, "streams").map_err(err)?),
            Command::Subscribe => Response::Subscribe(SubscribeReply::get(&mut r).map_err(err)?),
            Command::Unsubscribe => Response::Unsubscribe,
            Command::StreamOpen => Response::StreamOpen,
            Command::GetStats => {
                let mut stats = Stats::get(&mut r).map_err(err)?;
                if r.remaining() > 0 {
                    stats.pass_through = get_list(&mut r, "pass_through").map_err(err)?;
                }
                Response::GetStats(stats)
            }
            Command::Connect => Response::Connect(Name::get(&mut r).map_err(err)?),
            Command::Disconnect => Response::Disconnect,
            Command::Describe => Response::Describe(Description::get(&mut r).map_err(err)?),
            Command::Snapshot => Response::Snapshot(Snapshot::get(&mut r).map_err(err)?),
            Command::Shutdown => Response::Shutdown,
            Command::UpdateSubscription => Response::UpdateSubscription,
            Command::RequestKeyframe => Response::RequestKeyframe,
            Command::V4l2ListDevices => Response::V4l2ListDevices(get_list(&mut r, "devices").map_err(err)?),
            Command::V4l2ListControls => Response::V4l2ListControls(get_list(&mut r, "controls").map_err(err)?),
            Command::V4l2GetControls => Response::V4l2GetControls(get_list(&mut r, "values").map_err(err)?),
            Command::V4l2SetControls => Response::V4l2SetControls(get_list(&mut r, "values").map_err(err)?),
            Command::ListMonitors => Response::ListMonitors(get_list(&mut r, "monitors").map_err(err)?),
            Command::SourceAdd => Response::SourceAdd(Name::get(&mut r).map_err(err)?),
            Command::SourceSet => Response::SourceSet(Name::get(&mut r).map_err(err)?),
            Command::SourceRemove => Response::SourceRemove,
            Command::SourceGet => Response::SourceGet(SourceTable::get(&mut r).map_err(err)?),
            Command::ArchiveList => Response::ArchiveList(ArchiveListing::get(&mut r).map_err(err)?),
            Command::ArchiveRead => Response::ArchiveRead(ArchiveChunk::get(&mut r).map_err(err)?),
            Command::ArchiveSet => Response::ArchiveSet,
            Command::WatchStatus => Response::WatchStatus,
            Command::Tunnel => Response::Tunnel(Hello::get(&mut r).map_err(err)?),
            // A report is pushed, never answered: an answer to one is carried undecoded.
            Command::StatusReport => Response::Unknown {
                command: Command::StatusReport.to_raw(),
                body: resp.body.clone(),
            },
            Command::Unknown(command) => Response::Unknown {
                command,
                body: resp.body.clone(),
            },
        })
    }
}
