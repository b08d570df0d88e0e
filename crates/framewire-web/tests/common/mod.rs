//! A fake controller for the web server's routing, access and push tests.
//! It records what it was asked and answers like a small graph would.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use framewire_controller::{
    ControllerError, CurrentGraph, EdgeView, NodeView, Preview, PreviewFrame, StreamView, WantedEdge, WantedGraph,
};
use framewire_proto::codes::{ControlType, Features, Format, FrameFlags, FunctionFlags, Origin, PixelFormat};
use framewire_proto::control::{
    ControlValue, Description, MenuItem, Monitor, Request, Response, Snapshot, SourceTable, StreamOpen, V4l2Control,
    V4l2Device,
};
use framewire_web::auth::{Role, UsersFile};
use framewire_web::backend::{Backend, BoxFut};
use tokio::sync::{mpsc, watch};

pub const JPEG: &[u8] = b"\xff\xd8fake-jpeg\xff\xd9";

/// Looks at `f` every 20 ms until it gives `Some` (that value), for at
/// most `timeout` (then `None`): a wait for what a test expects, not for
/// a fixed time.
pub async fn eventually<T>(timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let end = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if std::time::Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug)]
pub struct Fake {
    pub graph_tx: watch::Sender<Arc<CurrentGraph>>,
    pub wanted: Mutex<WantedGraph>,
    pub requests: Mutex<Vec<(String, Request)>>,
    /// Offline nodes it knows (not in the graph it pushes): `gone`.
    pub offline: Mutex<Vec<String>>,
}

pub fn sample_graph(version: u64) -> CurrentGraph {
    CurrentGraph {
        version,
        updated_ms: 0,
        nodes: vec![
            NodeView {
                name: "cam".into(),
                online: true,
                v4l2: true,
                streams: vec![StreamView {
                    name: "bars".into(),
                    format: "mjpeg".into(),
                    width: 64,
                    height: 48,
                    fps: 30.0,
                    state: "live".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            NodeView {
                name: "sink".into(),
                online: true,
                ..Default::default()
            },
        ],
        edges: vec![EdgeView {
            id: "sink/bars".into(),
            upstream: "cam".into(),
            stream: "bars".into(),
            downstream: "sink".into(),
            local_name: "bars".into(),
            mode: "low-latency".into(),
            state: "live".into(),
            wanted: true,
            ..Default::default()
        }],
    }
}

impl Fake {
    pub fn new() -> Arc<Fake> {
        let (graph_tx, _) = watch::channel(Arc::new(sample_graph(1)));
        Arc::new(Fake {
            graph_tx,
            wanted: Mutex::new(WantedGraph::default()),
            requests: Mutex::new(Vec::new()),
            offline: Mutex::new(vec!["gone".into()]),
        })
    }

    fn node(&self, node: &str) -> Result<(), ControllerError> {
        if self.graph_tx.borrow().nodes.iter().any(|n| n.name == node) {
            Ok(())
        } else {
            Err(ControllerError::UnknownNode(node.into()))
        }
    }
}

impl Backend for Fake {
    fn graph(&self) -> watch::Receiver<Arc<CurrentGraph>> {
        self.graph_tx.subscribe()
    }
    fn wanted(&self) -> BoxFut<'_, WantedGraph> {
        Box::pin(async move { self.wanted.lock().unwrap().clone() })
    }
    fn apply(&self, wanted: WantedGraph, if_match: Option<String>) -> BoxFut<'_, Result<String, ControllerError>> {
        Box::pin(async move {
            let mut w = self.wanted.lock().unwrap();
            let current = w.version();
            if let Some(expected) = if_match
                && expected != current
            {
                return Err(ControllerError::Stale { expected, current });
            }
            *w = wanted;
            Ok(w.version())
        })
    }
    fn forget_node<'a>(&'a self, node: &'a str) -> BoxFut<'a, Result<(), ControllerError>> {
        Box::pin(async move {
            let mut offline = self.offline.lock().unwrap();
            if let Some(i) = offline.iter().position(|n| n == node) {
                offline.remove(i);
                return Ok(());
            }
            self.node(node)?;
            Err(ControllerError::Online(node.into()))
        })
    }
    fn add_edge(&self, edge: WantedEdge) -> BoxFut<'_, Result<String, ControllerError>> {
        Box::pin(async move {
            self.node(&edge.from)?;
            self.node(&edge.to)?;
            let name = if edge.local_name.is_empty() {
                edge.stream.clone()
            } else {
                edge.local_name.clone()
            };
            let id = format!("{}/{}", edge.to, name);
            self.wanted.lock().unwrap().edges.push(edge);
            Ok(id)
        })
    }
    fn remove_edge<'a>(&'a self, id: &'a str) -> BoxFut<'a, Result<(), ControllerError>> {
        Box::pin(async move {
            let mut w = self.wanted.lock().unwrap();
            let before = w.edges.len();
            w.edges.retain(|e| {
                let name = if e.local_name.is_empty() {
                    &e.stream
                } else {
                    &e.local_name
                };
                format!("{}/{}", e.to, name) != id
            });
            if w.edges.len() == before && id != "sink/bars" {
                return Err(ControllerError::UnknownEdge(id.into()));
            }
            Ok(())
        })
    }
    fn request<'a>(&'a self, node: &'a str, req: Request) -> BoxFut<'a, Result<Response, ControllerError>> {
        Box::pin(async move {
            self.node(node)?;
            self.requests.lock().unwrap().push((node.to_owned(), req.clone()));
            Ok(match req {
                Request::Describe => Response::Describe(Description {
                    name: node.into(),
                    software: "framewire test".into(),
                    protocol_version: 1,
                    site_id: 0,
                    function_flags: FunctionFlags(1),
                    features: Features(0),
                    pid: 1,
                    uptime_ms: 5,
                    hostname: "here".into(),
                    streams: 1,
                    tcp_port: 1,
                }),
                Request::V4l2ListDevices => Response::V4l2ListDevices(vec![V4l2Device {
                    path: "/dev/video0".into(),
                    card: "Fake cam".into(),
                    driver: "fake".into(),
                    bus: "platform".into(),
                    capabilities: 0,
                    formats: vec![],
                }]),
                Request::V4l2ListControls(_) => Response::V4l2ListControls(vec![
                    ctl(1, ControlType::Integer, "Brightness", vec![]),
                    ctl(2, ControlType::Boolean, "Mirror", vec![]),
                    ctl(
                        3,
                        ControlType::Menu,
                        "Power line",
                        vec![
                            MenuItem {
                                index: 0,
                                name: "off".into(),
                                value: 0,
                            },
                            MenuItem {
                                index: 1,
                                name: "50 Hz".into(),
                                value: 0,
                            },
                        ],
                    ),
                    ctl(4, ControlType::Button, "Reset", vec![]),
                    ctl(5, ControlType::CtrlClass, "User Controls", vec![]),
                ]),
                Request::V4l2GetControls(_) => Response::V4l2GetControls(vec![
                    ControlValue { id: 1, value: 128 },
                    ControlValue { id: 2, value: 1 },
                    ControlValue { id: 3, value: 1 },
                ]),
                Request::V4l2SetControls(s) => Response::V4l2SetControls(s.values),
                Request::ListMonitors => Response::ListMonitors(vec![Monitor {
                    name: "HDMI-1".into(),
                    x: 0,
                    y: 0,
                    width: 1920,
                    height: 1080,
                    width_mm: 527,
                    height_mm: 296,
                    refresh_mhz: 60_000,
                    primary: true,
                }]),
                Request::SourceRemove(n) if n.name == "wall" || n.name.starts_with("play-") => Response::SourceRemove,
                Request::SourceAdd(t) if t.table.contains("kind = \"archive\"") => {
                    Response::SourceAdd(framewire_proto::control::Name { name: "play".into() })
                }
                Request::ArchiveRead(r) => {
                    // A "file" of its offsets' low bytes, in chunks: 2.5 MiB
                    // for a range of today, 100 bytes for one near 1970.
                    let total = if r.from_ns > 1 << 60 { 5 << 19 } else { 100 };
                    let end = (r.offset + u64::from(r.max_len)).min(total);
                    Response::ArchiveRead(framewire_proto::control::ArchiveChunk {
                        total,
                        data: (r.offset..end).map(|i| i as u8).collect(),
                    })
                }
                Request::ArchiveSet(_) => Response::ArchiveSet,
                Request::ArchiveList(_) => Response::ArchiveList(framewire_proto::control::ArchiveListing {
                    archives: vec![framewire_proto::control::ArchivedStream {
                        stream: "bars".into(),
                        codec: "mjpeg".into(),
                        segments: vec![framewire_proto::control::ArchiveSegment {
                            start_ns: 1_000_000_000_000,
                            end_ns: 2_000_000_000_000,
                            frames: 10,
                            bytes: 100,
                            state: "closed".into(),
                        }],
                        ..Default::default()
                    }],
                }),
                Request::SourceGet(n) if n.name == "wall" => Response::SourceGet(SourceTable {
                    table: "kind = \"compose\"\nname = \"wall\"\ninputs = [\"bars\"]\n".into(),
                }),
                // An 8x8 raw BGR frame: the server must encode it as JPEG.
                Request::Snapshot(n) if n.name == "bars" => Response::Snapshot(Snapshot {
                    open: StreamOpen {
                        format: Format::Raw,
                        pixel_format: PixelFormat::Bgr,
                        origin: Origin::Software,
                        width: 8,
                        height: 8,
                        fps_num: 30,
                        fps_den: 1,
                        name: "bars".into(),
                        codec_config: Default::default(),
                    },
                    sequence: 42,
                    timestamp_ns: 1_000,
                    flags: FrameFlags(1),
                    data: Bytes::from(vec![200u8; 8 * 8 * 3]),
                }),
                Request::Snapshot(n) => {
                    return Err(ControllerError::Node {
                        node: node.into(),
                        message: format!("no frame of a stream named `{}` yet", n.name),
                    });
                }
                Request::Shutdown(_) => Response::Shutdown,
                other => {
                    return Err(ControllerError::Other(format!(
                        "fake: unexpected {:?}",
                        other.command()
                    )));
                }
            })
        })
    }
    fn preview<'a>(
        &'a self,
        node: &'a str,
        stream: &'a str,
        _: &'a [framewire_proto::Format],
    ) -> BoxFut<'a, Result<Preview, ControllerError>> {
        Box::pin(async move {
            self.node(node)?;
            if stream != "bars" {
                return Err(ControllerError::UnknownStream(node.into(), stream.into()));
            }
            let (tx, rx) = mpsc::channel(2);
            tokio::spawn(async move {
                for sequence in 0..1_000u64 {
                    let f = PreviewFrame {
                        sequence,
                        timestamp_ns: 1_000 + sequence,
                        flags: 1,
                        data: Bytes::from_static(JPEG),
                    };
                    if tx.send(f).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
            Ok(Preview {
                open: StreamOpen {
                    format: Format::Mjpeg,
                    pixel_format: PixelFormat::None,
                    origin: Origin::LibjpegTurbo,
                    width: 64,
                    height: 48,
                    fps_num: 30,
                    fps_den: 1,
                    name: stream.into(),
                    codec_config: Default::default(),
                },
                frames: rx,
                keyframes: None,
            })
        })
    }
}

fn ctl(id: u32, t: ControlType, name: &str, menu: Vec<MenuItem>) -> V4l2Control {
    V4l2Control {
        id,
        class: 0x0098_0000,
        ctrl_type: t,
        name: name.into(),
        min: 0,
        max: 255,
        step: 1,
        default: 128,
        flags: 0,
        menu,
    }
}

/// A users file with one user per role and one token each; returns it and
/// the tokens (viewer, operator, admin).
pub fn users() -> (UsersFile, [String; 3]) {
    let mut f = UsersFile::default();
    let mut tokens = Vec::new();
    for (name, role) in [("vera", Role::Viewer), ("otto", Role::Operator), ("ada", Role::Admin)] {
        f.add_user(name, role, &format!("{name}-password")).unwrap();
        tokens.push(f.add_token(name, None).unwrap());
    }
    (f, tokens.try_into().unwrap())
}
