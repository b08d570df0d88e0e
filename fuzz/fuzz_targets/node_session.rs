//! A node's command session fed arbitrary sequences of messages: whatever
//! a peer sends after HELLO (requests in any order, answers nobody asked
//! for, frames, events), the node neither panics nor stops serving.
#![no_main]

use std::sync::OnceLock;

use framewire_media::testpattern::TestPatternConfig;
use framewire_net::{Node, NodeConfig, SourceConfig};
use libfuzzer_sys::fuzz_target;

struct Harness {
    rt: tokio::runtime::Runtime,
    node: Node,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = NodeConfig::new("fuzz:node", "127.0.0.1:0".parse().unwrap());
        cfg.sources.push(SourceConfig::from(TestPatternConfig {
            name: "bars".into(),
            width: 64,
            height: 48,
            fps_num: 30,
            fps_den: 1,
            encode: framewire_codec::EncodeSpec::raw(framewire_proto::PixelFormat::Bgra),
        }));
        // No shared memory socket, no discovery: nothing leaves the process.
        cfg.shm_socket = None;
        let node = rt.block_on(Node::start(cfg)).unwrap();
        Harness { rt, node }
    })
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    h.rt.block_on(framewire_net::fuzz::drive_session(&h.node, data));
    // The node still answers what it is asked.
    assert!(!h.node.status_report().description.name.is_empty());
});
