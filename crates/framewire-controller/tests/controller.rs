//! The controller against real nodes on 127.0.0.1 (in this process).

mod common;

use std::time::{Duration, Instant};

use common::*;

use framewire_codec::{EncodeSpec, Registry};
use framewire_controller::{ControllerConfig, ControllerError, CurrentGraph, WantedEdge, WantedGraph, store};
use framewire_net::{Client, ClientIdentity, EdgeConfig, Node, NodeConfig};
use framewire_proto::control::{EdgeOrigin, StreamState};
use framewire_proto::{Command, Format, Message, PixelFormat, SubscribeParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_assembly_from_live_nodes() {
    bounded(async {
        let src = source("test:src", "bars", EncodeSpec::qoi()).await;
        let mut relay_cfg = NodeConfig::new("test:relay", loopback());
        relay_cfg
            .edges
            .push(EdgeConfig::new(src.local_addr().to_string(), "bars").named("bars-r"));
        let relay = Node::start(relay_cfg).await.unwrap();
        let dir = state_dir("assembly");
        let h = controller(&dir, &[&src, &relay]).await;
        let g = wait_graph(&h, "two nodes, the edge live with frames moving", |g| {
            online(g, &["test:src", "test:relay"])
                && find_edge(g, "test:relay/bars-r").is_some_and(|e| e.state == "live" && e.fps > 5.0)
        })
        .await;
        let s = g.nodes.iter().find(|n| n.name == "test:src").unwrap();
        let bars = s.streams.iter().find(|s| s.name == "bars").unwrap();
        assert_eq!((bars.format.as_str(), bars.width, bars.height), ("qoi", 64, 48));
        assert_eq!(bars.fps, 30.0);
        assert_eq!(bars.outputs.len(), 1);
        assert!(bars.outputs[0].peer.ends_with("test:relay"), "{:?}", bars.outputs[0]);
        let e = find_edge(&g, "test:relay/bars-r").unwrap();
        assert_eq!((e.upstream.as_str(), e.stream.as_str()), ("test:src", "bars"));
        assert_eq!((e.downstream.as_str(), e.local_name.as_str()), ("test:relay", "bars-r"));
        assert_eq!(e.mode, "low-latency");
        assert!(!e.wanted);
        assert!(e.mbit_s > 0.0, "{e:?}");
        let relay_view = g.nodes.iter().find(|n| n.name == "test:relay").unwrap();
        assert!(
            relay_view
                .streams
                .iter()
                .any(|s| s.name == "bars-r" && s.state == "live")
        );
        assert!(g.version > 0);
        // Counters keep moving: a later graph has a higher version.
        let v = g.version;
        wait_graph(&h, "a newer version", |g| g.version > v).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_the_controller_within_a_second() {
    bounded(async {
        let src = source("test:src", "bars", EncodeSpec::raw(PixelFormat::Bgra)).await;
        let relay = plain("test:relay").await;
        let dir = state_dir("latency");
        let h = controller(&dir, &[&src, &relay]).await;
        wait_graph(&h, "both nodes", |g| online(g, &["test:src", "test:relay"])).await;
        // Let a heartbeat pass so the change does not ride on it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut worst = Duration::ZERO;
        for i in 0..3 {
            let local = format!("bars-{i}");
            let t0 = Instant::now();
            relay
                .connect(EdgeConfig::new(src.local_addr().to_string(), "bars").named(local.clone()))
                .unwrap();
            let id = format!("test:relay/{local}");
            wait_graph(&h, "the new edge", |g| find_edge(g, &id).is_some()).await;
            let dt = t0.elapsed();
            println!("edge added -> controller graph: {:.1} ms", dt.as_secs_f64() * 1e3);
            worst = worst.max(dt);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        println!("worst push latency: {:.1} ms", worst.as_secs_f64() * 1e3);
        assert!(worst < Duration::from_secs(1), "push latency {worst:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_bad_edges_and_changes_nothing() {
    bounded(async {
        let src = source("test:src", "bars", EncodeSpec::qoi()).await;
        let mut picky_cfg = NodeConfig::new("test:picky", loopback());
        picky_cfg.accept_formats = vec![Format::Mjpeg];
        let picky = Node::start(picky_cfg).await.unwrap();
        // relay pulls from src by its own configuration: src -> relay.
        let mut relay_cfg = NodeConfig::new("test:relay", loopback());
        relay_cfg
            .edges
            .push(EdgeConfig::new(src.local_addr().to_string(), "bars"));
        let relay = Node::start(relay_cfg).await.unwrap();
        let dir = state_dir("refuse");
        let h = controller(&dir, &[&src, &picky, &relay]).await;
        wait_graph(&h, "three nodes and the config edge", |g| {
            online(g, &["test:src", "test:picky", "test:relay"]) && find_edge(g, "test:relay/bars").is_some()
        })
        .await;
        // A good document first, so "nothing changed" means something.
        let good = WantedGraph {
            edges: vec![WantedEdge {
                local_name: "b2".into(),
                ..edge("test:src", "bars", "test:relay")
            }],
            ..Default::default()
        };
        h.apply(good.clone()).await.unwrap();
        let stored = std::fs::read_to_string(dir.join(store::WANTED_FILE)).unwrap();

        let cases: Vec<(&str, WantedEdge)> = vec![
            (
                "no node named \"test:nowhere\"",
                edge("test:nowhere", "bars", "test:relay"),
            ),
            (
                "no node named \"test:nowhere\"",
                edge("test:src", "bars", "test:nowhere"),
            ),
            ("has no stream \"nope\"", edge("test:src", "nope", "test:picky")),
            ("accepts only mjpeg", edge("test:src", "bars", "test:picky")),
            (
                "closes a cycle: test:relay -> test:src -> test:relay",
                WantedEdge {
                    local_name: "loop".into(),
                    ..edge("test:relay", "bars", "test:src")
                },
            ),
            (
                "already serves its own stream \"bars\"",
                edge("test:relay", "bars", "test:src"),
            ),
            (
                "has an edge \"bars\" from its own configuration",
                WantedEdge {
                    mode: "completeness".into(),
                    ..edge("test:src", "bars", "test:relay")
                },
            ),
            (
                "not one of low-latency",
                WantedEdge {
                    mode: "fast".into(),
                    ..edge("test:src", "bars", "test:relay")
                },
            ),
            (
                "not one of drop-oldest",
                WantedEdge {
                    drop_policy: "drop-random".into(),
                    local_name: "b3".into(),
                    ..edge("test:src", "bars", "test:relay")
                },
            ),
        ];
        for (want, bad) in cases {
            let doc = WantedGraph {
                edges: vec![good.edges[0].clone(), bad.clone()],
                ..Default::default()
            };
            match h.apply(doc).await {
                Err(ControllerError::Refused(r)) => {
                    assert_eq!(r.len(), 1, "{r:?}");
                    assert_eq!(r[0].index, 1);
                    assert!(r[0].reason.contains(want), "want {want:?}, got {:?}", r[0].reason);
                    println!("refused: {}: {}", r[0].edge, r[0].reason);
                }
                other => panic!("{bad:?} should be refused, got {other:?}"),
            }
            assert_eq!(h.wanted().await, good);
            assert_eq!(std::fs::read_to_string(dir.join(store::WANTED_FILE)).unwrap(), stored);
        }
        // Duplicate local name on one downstream.
        let dup = WantedGraph {
            edges: vec![
                WantedEdge {
                    local_name: "same".into(),
                    ..edge("test:src", "bars", "test:relay")
                },
                WantedEdge {
                    local_name: "same".into(),
                    ..edge("test:src", "bars", "test:relay")
                },
            ],
            ..Default::default()
        };
        match h.apply(dup).await {
            Err(ControllerError::Refused(r)) => assert!(r[0].reason.contains("already gets a stream named"), "{r:?}"),
            other => panic!("duplicate should be refused: {other:?}"),
        }
        // The picky node never got an edge; the relay only its config edge
        // and the good one.
        assert!(picky.status_report().edges.is_empty());
        until("the good edge on the relay", || relay.status_report().edges.len() == 2).await;
        let edges = relay.status_report().edges;
        assert!(
            edges
                .iter()
                .any(|e| e.local_name == "bars" && e.origin == EdgeOrigin::Config)
        );
        assert!(
            edges
                .iter()
                .any(|e| e.local_name == "b2" && e.origin == EdgeOrigin::Connect)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_edge_goes_live_frames_flow_and_removal_disconnects() {
    bounded(async {
        let src = source("test:src", "bars", EncodeSpec::raw(PixelFormat::Bgra)).await;
        let relay = plain("test:relay").await;
        let dir = state_dir("apply");
        let h = controller(&dir, &[&src, &relay]).await;
        wait_graph(&h, "both nodes", |g| online(g, &["test:src", "test:relay"])).await;
        let id = h
            .add_edge(WantedEdge {
                local_name: "cam".into(),
                ..edge("test:src", "bars", "test:relay")
            })
            .await
            .unwrap();
        assert_eq!(id, "test:relay/cam");
        let g = wait_graph(&h, "the wanted edge live", |g| {
            find_edge(g, &id).is_some_and(|e| e.wanted && e.state == "live")
        })
        .await;
        assert_eq!(find_edge(&g, &id).unwrap().upstream, "test:src");
        // Frames flow through the relay.
        let who = ClientIdentity::tool("test:sink");
        let mut c = Client::connect(&relay.local_addr().to_string(), &who, Duration::from_secs(5))
            .await
            .unwrap();
        let ch = c.subscribe("cam", SubscribeParams::default()).await.unwrap();
        let mut n = 0;
        while n < 5 {
            match tokio::time::timeout(Duration::from_secs(5), c.next_message())
                .await
                .unwrap()
                .unwrap()
            {
                Some(Message::VideoFrame(f)) if f.channel == ch => {
                    assert_eq!(f.data.len(), 64 * 48 * 4);
                    n += 1;
                }
                Some(Message::ControlRequest(r)) if r.command == Command::StreamOpen => c.ack(&r).await.unwrap(),
                Some(_) => {}
                None => panic!("relay closed"),
            }
        }
        drop(c);
        // Removing the wanted edge disconnects it on the relay.
        h.remove_edge(&id).await.unwrap();
        until("the edge gone from the relay", || {
            relay.status_report().edges.is_empty()
        })
        .await;
        wait_graph(&h, "the edge gone", |g| find_edge(g, &id).is_none()).await;
        assert!(matches!(h.remove_edge(&id).await, Err(ControllerError::UnknownEdge(_))));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_recreates_the_edge_when_the_downstream_restarts() {
    bounded(async {
        let src = source("test:src", "bars", EncodeSpec::qoi()).await;
        let relay = plain("test:relay").await;
        let relay_addr = relay.local_addr();
        let dir = state_dir("restart");
        let h = controller(&dir, &[&src, &relay]).await;
        wait_graph(&h, "both nodes", |g| online(g, &["test:src", "test:relay"])).await;
        h.apply(WantedGraph {
            edges: vec![edge("test:src", "bars", "test:relay")],
            ..Default::default()
        })
        .await
        .unwrap();
        wait_graph(&h, "edge live", |g| {
            find_edge(g, "test:relay/bars").is_some_and(|e| e.state == "live")
        })
        .await;
        relay.shutdown().await;
        let g = wait_graph(&h, "relay offline", |g| {
            g.nodes.iter().any(|n| n.name == "test:relay" && !n.online)
        })
        .await;
        // Offline, not forgotten; the wanted edge is not live.
        assert!(g.nodes.iter().any(|n| n.name == "test:relay"));
        let t0 = Instant::now();
        let relay = Node::start(NodeConfig::new("test:relay", relay_addr)).await.unwrap();
        wait_graph(&h, "edge live again", |g| {
            online(g, &["test:relay"]) && find_edge(g, "test:relay/bars").is_some_and(|e| e.wanted && e.state == "live")
        })
        .await;
        println!(
            "restarted downstream -> edge live again: {:.0} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        let e = relay.status_report().edges;
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].origin, e[0].state), (EdgeOrigin::Connect, StreamState::Live));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wanted_graph_survives_a_controller_restart() {
    bounded(async {
        let src = source("test:src", "bars", EncodeSpec::qoi()).await;
        let relay = plain("test:relay").await;
        let dir = state_dir("persist");
        let wanted = WantedGraph {
            edges: vec![WantedEdge {
                mode: "completeness".into(),
                max_frames: 8,
                drop_policy: "drop-newest".into(),
                priority: 7,
                ..edge("test:src", "bars", "test:relay")
            }],
            ..Default::default()
        };
        {
            let h = controller(&dir, &[&src, &relay]).await;
            wait_graph(&h, "both nodes", |g| online(g, &["test:src", "test:relay"])).await;
            h.apply(wanted.clone()).await.unwrap();
            wait_graph(&h, "edge live", |g| {
                find_edge(g, "test:relay/bars").is_some_and(|e| e.wanted && e.state == "live")
            })
            .await;
        }
        let text = std::fs::read_to_string(dir.join(store::WANTED_FILE)).unwrap();
        assert!(text.contains("[[edge]]"), "{text}");
        // A new controller on the same state directory.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let h = controller(&dir, &[&src, &relay]).await;
        assert_eq!(h.wanted().await, wanted);
        let g = wait_graph(&h, "the edge recognised as wanted", |g| {
            find_edge(g, "test:relay/bars").is_some_and(|e| e.wanted && e.state == "live")
        })
        .await;
        let e = find_edge(&g, "test:relay/bars").unwrap();
        assert_eq!((e.mode.as_str(), e.priority), ("completeness", 7));
        // Nothing was re-sent: still one edge on the relay.
        assert_eq!(relay.status_report().edges.len(), 1);
        // A bad state file stops a controller from starting, with the file named.
        std::fs::write(dir.join(store::WANTED_FILE), "[[edge]]\nfrom = 3\n").unwrap();
        let err = framewire_controller::start(ControllerConfig::new("test:ctl2", dir.to_path_buf()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("wanted.toml"), "{err}");
    })
    .await;
}

async fn check_preview(encode: EncodeSpec, label: &str) {
    let src = source("test:src", "bars", encode).await;
    let dir = state_dir(&format!("preview-{label}"));
    let h = controller(&dir, &[&src]).await;
    wait_graph(&h, "the source", |g| online(g, &["test:src"])).await;
    assert!(matches!(
        h.preview("test:src", "nope").await,
        Err(ControllerError::UnknownStream(..))
    ));
    assert!(matches!(
        h.preview("test:none", "bars").await,
        Err(ControllerError::UnknownNode(_))
    ));
    let mut p = h.preview("test:src", "bars").await.unwrap();
    assert_eq!(p.open.format, Format::Mjpeg);
    assert_eq!((p.open.width, p.open.height), (64, 48));
    let registry = Registry::builtin();
    let mut decoder = registry.negotiate(&p.open).unwrap();
    let mut last = None;
    for _ in 0..5 {
        let f = tokio::time::timeout(Duration::from_secs(5), p.frames.recv())
            .await
            .expect("a preview frame")
            .expect("preview open");
        assert_eq!(&f.data[..2], &[0xff, 0xd8], "JPEG SOI");
        let pic = decoder.decode(&f.data).expect("a valid JPEG");
        assert_eq!((pic.width(), pic.height()), (64, 48));
        if let Some(l) = last {
            assert!(f.sequence > l);
        }
        last = Some(f.sequence);
    }
    // An H.264 stream is previewed through the node's `bars~mjpeg`: the
    // node's transcoder takes `bars`, the preview takes `bars~mjpeg`.
    let outputs = src.status_report().stats.outputs;
    if encode.format.is_inter_coded() {
        let mut streams: Vec<&str> = outputs.iter().map(|o| o.stream.as_str()).collect();
        streams.sort_unstable();
        assert_eq!(streams, ["bars", "bars~mjpeg"]);
    } else {
        assert_eq!(outputs.len(), 1);
    }
    drop(p);
    until("the preview unsubscribed", || {
        src.status_report().stats.outputs.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_of_qoi_is_jpeg() {
    bounded(check_preview(EncodeSpec::qoi(), "qoi")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_of_h264_is_jpeg() {
    bounded(check_preview(EncodeSpec::h264(0, 30), "h264")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_of_raw_is_jpeg() {
    bounded(check_preview(EncodeSpec::raw(PixelFormat::Bgra), "raw")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_goes_over_the_control_connection() {
    bounded(async {
        let src = source("test:src", "bars", EncodeSpec::qoi()).await;
        let dir = state_dir("request");
        let h = controller(&dir, &[&src]).await;
        wait_graph(&h, "the source", |g| online(g, &["test:src"])).await;
        match h.request("test:src", framewire_proto::Request::Describe).await.unwrap() {
            framewire_proto::Response::Describe(d) => assert_eq!(d.name, "test:src"),
            other => panic!("{other:?}"),
        }
        match h
            .request("test:src", framewire_proto::Request::Disconnect("nope".into()))
            .await
        {
            Err(ControllerError::Node { node, message }) => {
                assert_eq!(node, "test:src");
                assert!(message.contains("no edge"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            h.request("test:x", framewire_proto::Request::Describe).await,
            Err(ControllerError::UnknownNode(_))
        ));
        let sub = framewire_proto::Request::Subscribe(framewire_proto::control::Subscribe::new(
            "bars",
            SubscribeParams::default(),
        ));
        match h.request("test:src", sub).await {
            Err(ControllerError::Other(m)) => assert!(m.contains("use a preview"), "{m}"),
            other => panic!("{other:?}"),
        }
        // The connection is still good.
        assert!(
            h.request("test:src", framewire_proto::Request::ListStreams)
                .await
                .is_ok()
        );
    })
    .await;
}

#[test]
fn docs_example_parses() {
    let doc = include_str!("../../../docs/controller.md");
    let start = doc.find("```toml\n").expect("a toml block in docs/controller.md") + 8;
    let end = start + doc[start..].find("```").unwrap();
    let g: WantedGraph = store::parse(&doc[start..end], store::DocFormat::Toml).unwrap();
    assert!(g.edges.len() >= 2);
    assert!(g.edges.iter().any(|e| e.mode == "completeness"));
    assert!(g.edges.iter().any(|e| e.mode == "low-latency" && e.priority == 128));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_of_raw_zstd_is_jpeg() {
    bounded(check_preview(EncodeSpec::raw_zstd(PixelFormat::Bgra, 1), "zstd")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_of_mjpeg_passes_frames_through() {
    bounded(check_preview(EncodeSpec::mjpeg(80), "mjpeg")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_preview_reader_gets_a_recent_frame_not_a_backlog() {
    bounded(async {
        let src = source("test:src", "bars", EncodeSpec::qoi()).await;
        let dir = state_dir("preview-slow");
        let h = controller(&dir, &[&src]).await;
        wait_graph(&h, "the source", |g| online(g, &["test:src"])).await;
        let mut p = h.preview("test:src", "bars").await.unwrap();
        let a = recv(&mut p.frames).await;
        // The reader stops for a second (30 frames at 30 fps).
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = recv(&mut p.frames).await; // queued when it stopped: one frame, not thirty
        let c = recv(&mut p.frames).await;
        println!(
            "sequences: before pause {}, after {} then {}",
            a.sequence, b.sequence, c.sequence
        );
        assert!(c.sequence >= a.sequence + 25, "the source ran on: {a:?} {c:?}");
        assert!(
            c.sequence >= b.sequence + 25,
            "no backlog: {} then {}",
            b.sequence,
            c.sequence
        );
        let age_ms = (framewire_net::now_ns().saturating_sub(c.timestamp_ns)) / 1_000_000;
        assert!(age_ms < 300, "the frame after the pause is recent: {age_ms} ms old");
    })
    .await;
}

async fn recv(
    rx: &mut tokio::sync::mpsc::Receiver<framewire_controller::PreviewFrame>,
) -> framewire_controller::PreviewFrame {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a preview frame in time")
        .expect("preview open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_serialises_to_the_documented_json() {
    bounded(async {
        let src = source("test:src", "bars", EncodeSpec::qoi()).await;
        let relay = plain("test:relay").await;
        let dir = state_dir("json");
        let h = controller(&dir, &[&src, &relay]).await;
        wait_graph(&h, "both nodes", |g| online(g, &["test:src", "test:relay"])).await;
        h.add_edge(edge("test:src", "bars", "test:relay")).await.unwrap();
        // Live, and joined with the upstream's output (its figures and transport).
        let g = wait_graph(&h, "edge live", |g| {
            find_edge(g, "test:relay/bars").is_some_and(|e| e.state == "live" && !e.transport.is_empty())
        })
        .await;
        let v = serde_json::to_value(&*g).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&v), ["edges", "nodes", "updated_ms", "version"]);
        let node = &v["nodes"].as_array().unwrap()[0];
        assert_eq!(
            keys(node),
            [
                "addr",
                "error",
                "functions",
                "hostname",
                "name",
                "online",
                "site_id",
                "software",
                "streams",
                "uptime_ms",
                "v4l2"
            ]
        );
        let e = v["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == "test:relay/bars")
            .unwrap();
        assert_eq!(
            keys(e),
            [
                "alert",
                "downstream",
                "drop_share",
                "drops",
                "error",
                "fps",
                "id",
                "latency_p50_us",
                "latency_p99_us",
                "local_name",
                "mbit_s",
                "mode",
                "policy",
                "priority",
                "state",
                "stream",
                "transport",
                "upstream",
                "wanted"
            ]
        );
        // In-process nodes here have no shared memory: the edge is on TCP.
        assert_eq!(e["transport"], "tcp");
        // The JSON reads back to the same graph.
        let back: CurrentGraph = serde_json::from_value(v).unwrap();
        assert_eq!(back, *g);
        // And the wanted graph exports as JSON and TOML that read back.
        let w = h.wanted().await;
        for f in [store::DocFormat::Json, store::DocFormat::Toml] {
            let text = store::render(&w, f).unwrap();
            assert_eq!(store::parse(&text, f).unwrap(), w);
        }
    })
    .await;
}

/// A hand-written node: answers HELLO and WATCH_STATUS, then pushes a
/// report whose body does not parse, then a good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_does_not_parse_is_ignored() {
    use framewire_net::framed::{FramedRead, write_message};
    use framewire_proto::control::{AuthScheme, Hello, HelloReply};
    use framewire_proto::{ControlRequest, Decoder, Features, FunctionFlags, Request, Response};

    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            let mut r = FramedRead::new(r, Decoder::new());
            let good = {
                let n = plain("test:real").await; // borrow a real report's shape
                let mut rep = n.status_report();
                rep.description.name = "test:fake".into();
                rep
            };
            while let Ok(Some(m)) = r.next().await {
                let Message::ControlRequest(req) = m else { continue };
                match Request::decode(&req).unwrap() {
                    Request::Hello(_) => {
                        let reply = Response::Hello(HelloReply {
                            hello: Hello {
                                protocol_version: 1,
                                name: "test:fake".into(),
                                site_id: 0,
                                function_flags: FunctionFlags::RELAY,
                                features: Features(0),
                                auth_scheme: AuthScheme::None,
                                nonce: bytes::Bytes::new(),
                            },
                            proof: bytes::Bytes::new(),
                        });
                        write_message(
                            &mut w,
                            &Message::ControlResponse(reply.to_message(0, req.request_id).unwrap()),
                        )
                        .await
                        .unwrap();
                    }
                    Request::WatchStatus(_) => {
                        let ok = Response::WatchStatus.to_message(0, req.request_id).unwrap();
                        write_message(&mut w, &Message::ControlResponse(ok)).await.unwrap();
                        // A report with a list count far beyond its bytes.
                        let bad = ControlRequest {
                            channel: 0,
                            request_id: 0,
                            command: Command::StatusReport,
                            body: bytes::Bytes::from_static(&[0, 0, 0, 0, 0xff, 0xff, 1, 2, 3]),
                        };
                        write_message(&mut w, &Message::ControlRequest(bad)).await.unwrap();
                        let ok = Request::StatusReport(Box::new(good.clone())).to_message(0, 0).unwrap();
                        write_message(&mut w, &Message::ControlRequest(ok)).await.unwrap();
                    }
                    _ => {
                        let ans = Response::Describe(good.description.clone())
                            .to_message(0, req.request_id)
                            .unwrap();
                        write_message(&mut w, &Message::ControlResponse(ans)).await.unwrap();
                    }
                }
            }
        });
        let dir = state_dir("hostile");
        let mut cfg = ControllerConfig::new("test:ctl", dir.to_path_buf());
        cfg.nodes = vec![addr.to_string()];
        let h = framewire_controller::start(cfg).await.unwrap();
        let g = wait_graph(&h, "the fake node after its good report", |g| online(g, &["test:fake"])).await;
        assert_eq!(g.nodes.len(), 1);
        fake.abort();
    })
    .await;
}
