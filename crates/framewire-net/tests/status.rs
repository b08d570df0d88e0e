//! WATCH_STATUS: the pushed status report, and the accepted-formats rule.

use std::time::{Duration, Instant};

use framewire_codec::EncodeSpec;
use framewire_media::testpattern::TestPatternConfig;
use framewire_net::{Client, ClientIdentity, EdgeConfig, Node, NodeConfig, SourceConfig};
use framewire_proto::control::{EdgeOrigin, StatusReport, StreamState, WatchStatus};
use framewire_proto::{Command, Format, Message, Request, Response};

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn pattern(name: &str) -> SourceConfig {
    SourceConfig::from(TestPatternConfig {
        name: name.into(),
        width: 64,
        height: 48,
        fps_num: 30,
        fps_den: 1,
        encode: EncodeSpec::qoi(),
    })
}

async fn next_report(c: &mut Client) -> StatusReport {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), c.next_message())
            .await
            .expect("a report within 5 s")
            .unwrap()
            .expect("open");
        if let Message::ControlRequest(req) = m
            && req.command == Command::StatusReport
        {
            assert_eq!((req.request_id, req.channel), (0, 0));
            match Request::decode(&req).unwrap() {
                Request::StatusReport(r) => return *r,
                other => panic!("{other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_status_pushes_at_once_periodically_and_on_change() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut cfg = NodeConfig::new("test:src", loopback());
        cfg.sources.push(pattern("bars"));
        let src = Node::start(cfg).await.unwrap();
        let relay = Node::start(NodeConfig::new("test:relay", loopback())).await.unwrap();
        let who = ClientIdentity::tool("test:ctl");
        let mut c = Client::connect(&relay.local_addr().to_string(), &who, Duration::from_secs(5))
            .await
            .unwrap();
        let r = c
            .request(Request::WatchStatus(WatchStatus { interval_ms: 200 }))
            .await
            .unwrap();
        assert_eq!(r, Response::WatchStatus);
        let first = next_report(&mut c).await;
        assert_eq!(first.sequence, 0);
        assert_eq!(first.description.name, "test:relay");
        assert!(first.edges.is_empty() && first.streams.is_empty());
        assert!(first.accept_formats.is_empty());
        // The heartbeat: the next report ~200 ms later.
        let t = Instant::now();
        let second = next_report(&mut c).await;
        assert_eq!(second.sequence, 1);
        let dt = t.elapsed();
        assert!(
            dt > Duration::from_millis(100) && dt < Duration::from_millis(600),
            "{dt:?}"
        );
        // A change: pushed long before the next heartbeat.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        relay
            .connect(EdgeConfig::new(src.local_addr().to_string(), "bars"))
            .unwrap();
        let r = loop {
            let r = next_report(&mut c).await;
            if !r.edges.is_empty() {
                break r;
            }
        };
        let dt = t.elapsed();
        println!("edge added -> report: {:.2} ms", dt.as_secs_f64() * 1e3);
        assert!(dt < Duration::from_millis(100), "{dt:?}");
        assert_eq!(r.edges[0].origin, EdgeOrigin::Connect);
        assert_eq!(r.edges[0].upstream, src.local_addr().to_string());
        // Then the stream goes live, also pushed.
        let r = loop {
            let r = next_report(&mut c).await;
            if r.streams.iter().any(|s| s.open.name == "bars") && r.edges[0].state == StreamState::Live {
                break r;
            }
        };
        assert_eq!(r.streams[0].open.format, Format::Qoi);
        assert!(r.stats.inputs.iter().any(|i| i.stream == "bars"));
        // The source's report shows the relay as an output.
        let s = src.status_report();
        assert_eq!(s.stats.outputs.len(), 1);
        assert!(s.stats.outputs[0].peer.ends_with(" test:relay"));
        // A report pushed at a node is not answered and changes nothing.
        c.send(&Message::ControlRequest(
            Request::StatusReport(Box::new(s)).to_message(0, 0).unwrap(),
        ))
        .await
        .unwrap();
        assert_eq!(c.request(Request::Describe).await.unwrap().command(), Command::Describe);
    })
    .await
    .expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_formats_it_does_not_accept_on_pulled_edges() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut cfg = NodeConfig::new("test:src", loopback());
        cfg.sources.push(pattern("bars"));
        let src = Node::start(cfg).await.unwrap();
        let mut picky = NodeConfig::new("test:picky", loopback());
        picky.accept_formats = vec![Format::Mjpeg];
        let picky = Node::start(picky).await.unwrap();
        assert_eq!(picky.status_report().accept_formats, vec![Format::Mjpeg]);
        picky
            .connect(EdgeConfig::new(src.local_addr().to_string(), "bars"))
            .unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let r = picky.status_report();
            if r.edges[0].failed_attempts >= 2 {
                assert_ne!(r.edges[0].state, StreamState::Live);
                assert!(r.streams.is_empty(), "a refused stream is not served");
                break;
            }
            assert!(Instant::now() < end, "the edge should keep failing: {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        picky.disconnect("bars").unwrap();
        assert!(picky.status_report().edges.is_empty());
    })
    .await
    .expect("in time");
}
