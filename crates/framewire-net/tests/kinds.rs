//! A source kind reached only through its config table and the registry
//! (`kind = "solid"`), end to end: a node built from it serves its frames.

use std::time::Duration;

use framewire_net::{Client, ClientIdentity, Node, NodeConfig};
use framewire_proto::{Command, Message, PixelFormat, SubscribeParams};

fn table(s: &str) -> toml::Table {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_solid_source_from_its_table_serves_its_colour() {
    let source = framewire_net::sources::from_table(table(
        "kind = \"solid\"\nname = \"grey\"\nsize = \"8x4\"\nfps = 50\ncolor = \"102030\"",
    ))
    .unwrap();
    let mut cfg = NodeConfig::new("test:solid", "127.0.0.1:0".parse().unwrap());
    cfg.sources.push(source);
    let node = Node::start(cfg).await.unwrap();

    let who = ClientIdentity::tool("test:check");
    let mut client = Client::connect(&node.local_addr().to_string(), &who, Duration::from_secs(5))
        .await
        .unwrap();
    let channel = client.subscribe("grey", SubscribeParams::default()).await.unwrap();
    let mut opened = false;
    let frame = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match client.next_message().await.unwrap().expect("connection open") {
                Message::ControlRequest(req) if req.command == Command::StreamOpen => {
                    let framewire_proto::Request::StreamOpen(open) = framewire_proto::Request::decode(&req).unwrap()
                    else {
                        panic!("not a STREAM_OPEN");
                    };
                    assert_eq!((open.width, open.height, open.pixel_format), (8, 4, PixelFormat::Bgra));
                    opened = true;
                    client.ack(&req).await.unwrap();
                }
                Message::VideoFrame(f) if f.channel == channel => break f,
                _ => {}
            }
        }
    })
    .await
    .expect("a frame within 5 s");
    assert!(opened, "STREAM_OPEN comes before the first frame");
    assert_eq!(frame.data.len(), 8 * 4 * 4);
    assert_eq!(&frame.data[..4], &[0x30, 0x20, 0x10, 0xff], "BGRA of #102030");
    node.shutdown().await;
}

#[test]
fn a_solid_source_refuses_a_bad_colour_or_size_with_the_reason() {
    let e = framewire_net::sources::from_table(table("kind = \"solid\"\nname = \"x\"\ncolor = \"red\""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`red` is not RRGGBB"), "{e}");
    let e = framewire_net::sources::from_table(table("kind = \"solid\"\nname = \"x\"\nsize = \"0x10\""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of range"), "{e}");
    let e = framewire_net::sources::from_table(table("kind = \"solid\"\nname = \"x\"\nshade = 1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("shade"), "{e}");
}
