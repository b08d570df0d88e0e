//! `framewire node --controller` as a process: it loads the wanted graph
//! from its state directory and makes it true on nodes it finds by a
//! static list or by discovery.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use framewire_proto::{FunctionFlags, Message, Request, Response, SubscribeParams};

const WANTED: &str = r#"
[[edge]]
from = "test:src"
stream = "bars"
to = "test:relay"
local_name = "cam"
"#;

/// Waits until `relay` serves `cam` pulled from `src`; then checks frames flow.
async fn wait_edge(relay: SocketAddr, src: SocketAddr, what: &str) {
    let mut s = None;
    let made = eventually_async(Duration::from_secs(20), async || {
        let now = s.insert(stats(relay).await);
        now.inputs
            .iter()
            .any(|i| i.stream == "cam" && i.upstream == format!("{src}/bars"))
            .then_some(())
    })
    .await;
    assert!(made.is_some(), "{what}: the controller never made the edge: {s:?}");
    let mut c = client(relay, "test:sink").await;
    let ch = subscribe(&mut c, "cam", SubscribeParams::default()).await;
    let mut frames = 0;
    while frames < 3 {
        match next(&mut c, Duration::from_secs(5)).await {
            Some(Message::VideoFrame(f)) if f.channel == ch => frames += 1,
            Some(_) => {}
            None => panic!("{what}: no frames through the controller's edge"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_with_a_static_node_list_reconciles_the_stored_graph() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let src = spawn_node(&[
            "--name",
            "test:src",
            "--discovery",
            "off",
            "--source",
            "test-pattern:bars,size=64x48,fps=30,format=qoi",
        ]);
        let relay = spawn_node(&["--name", "test:relay", "--discovery", "off"]);
        let dir = temp_dir("ctl-static");
        std::fs::write(dir.join("wanted.toml"), WANTED).unwrap();
        let (s, r) = (src.addr.to_string(), relay.addr.to_string());
        let ctl = spawn_node(&[
            "--name",
            "test:ctl",
            "--discovery",
            "off",
            "--controller",
            "--no-web",
            "--controller-node",
            &s,
            "--controller-node",
            &r,
            "--state-dir",
            dir.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
        ]);
        assert!(ctl.wait_log("controller on", Duration::from_secs(5)), "{}", ctl.log());
        let mut c = client(ctl.addr, "test:who").await;
        match c.request(Request::Describe).await.unwrap() {
            Response::Describe(d) => assert!(d.function_flags.contains(FunctionFlags::CONTROLLER), "{d:?}"),
            other => panic!("{other:?}"),
        }
        wait_edge(relay.addr, src.addr, "static list").await;
        // The controller's /metrics: its nodes, and the edge's drop share
        // and alert gauges beside the node's own families.
        let edge = "edge=\"test:relay/cam\",from=\"test:src\",stream=\"bars\",to=\"test:relay\"";
        let want = [
            "framewire_controller_nodes{state=\"online\"} 3".to_owned(),
            "framewire_controller_alerts 0".to_owned(),
            format!("framewire_controller_edge_alert{{{edge}}} 0"),
            format!("framewire_controller_edge_drop_share{{{edge}}} 0"),
        ];
        let mut text = String::new();
        let all = eventually_async(Duration::from_secs(10), async || {
            text = scrape_metrics(&ctl);
            want.iter().all(|w| text.lines().any(|l| l == w)).then_some(())
        })
        .await;
        assert!(all.is_some(), "not all of {want:?} in\n{text}");
        assert!(text.contains("framewire_node_info{node=\"test:ctl\""), "{text}");
        // The relay is killed and started again on its address: the
        // controller makes the edge again.
        let mut relay = relay;
        relay.kill();
        let t0 = Instant::now();
        let again = spawn_node(&["--name", "test:relay", "--discovery", "off", "--listen", &r]);
        wait_edge(again.addr, src.addr, "after the relay restarted").await;
        println!(
            "relay killed and restarted -> edge again with frames: {:.0} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        drop(relay);
    })
    .await
    .expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_finds_nodes_by_discovery() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let port = free_port().to_string();
        let disc = [
            "--discovery-group",
            "239.255.42.99",
            "--discovery-port",
            &port,
            "--announce-interval",
            "200ms",
        ];
        let with = |extra: &[&str]| -> Vec<String> { extra.iter().chain(disc.iter()).map(|s| s.to_string()).collect() };
        let a = with(&[
            "--name",
            "test:src",
            "--source",
            "test-pattern:bars,size=64x48,fps=30,format=raw",
        ]);
        let src = spawn_node(&a.iter().map(String::as_str).collect::<Vec<_>>());
        let b = with(&["--name", "test:relay"]);
        let relay = spawn_node(&b.iter().map(String::as_str).collect::<Vec<_>>());
        let dir = temp_dir("ctl-discovery");
        std::fs::write(dir.join("wanted.toml"), WANTED).unwrap();
        let d = dir.to_str().unwrap().to_owned();
        let c = with(&["--name", "test:ctl", "--controller", "--no-web", "--state-dir", &d]);
        let _ctl = spawn_node(&c.iter().map(String::as_str).collect::<Vec<_>>());
        wait_edge(relay.addr, src.addr, "discovery").await;
    })
    .await
    .expect("in time");
}

#[test]
fn controller_flags_need_controller() {
    // A node that started instead of refusing is killed after 20 s.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_framewire"));
    // (--state-dir alone is a node's own: camera controls are kept there.)
    cmd.args(["node", "--controller-node", "127.0.0.1:1", "--listen", "127.0.0.1:0"]);
    let out = common::media::run(cmd, Duration::from_secs(20));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--controller"), "{err}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["node", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--controller",
        "--controller-node",
        "--state-dir",
        "--accept-format",
        "docs/controller.md",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
