//! A passthrough preview (the web UI's WebCodecs preview, WebRTC playback)
//! asks the source for a keyframe when its decoder needs one: a browser's
//! PLI or FIR becomes REQUEST_KEYFRAME on the preview's subscription.

mod common;

use std::time::{Duration, Instant};

use common::*;
use framewire_codec::EncodeSpec;
use framewire_proto::Format;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_preview_gets_a_keyframe_when_it_asks() {
    bounded(async {
        // A keyframe every 20 s at 30 fps: one within a second is the answer.
        let src = source("test:src", "bars", EncodeSpec::h264(0, 600)).await;
        let dir = state_dir("preview-keyframe");
        let h = controller(&dir, &[&src]).await;
        wait_graph(&h, "the source", |g| online(g, &["test:src"])).await;
        let mut p = h.preview_with("test:src", "bars", &[Format::H264]).await.unwrap();
        assert_eq!(p.open.format, Format::H264);
        let ask = p
            .keyframes
            .clone()
            .expect("a passthrough preview takes keyframe requests");
        let next = async |p: &mut framewire_controller::Preview| {
            tokio::time::timeout(Duration::from_secs(5), p.frames.recv())
                .await
                .expect("a frame within 5 s")
                .expect("preview open")
        };
        // The cached group of pictures starts at a keyframe; then deltas.
        assert_eq!(next(&mut p).await.flags & 1, 1, "the first frame is a keyframe");
        for _ in 0..10 {
            assert_eq!(next(&mut p).await.flags & 1, 0, "a keyframe before its time");
        }
        ask.send(()).await.unwrap();
        let asked = Instant::now();
        loop {
            let f = next(&mut p).await;
            if f.flags & 1 == 1 {
                break;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(2),
                "no keyframe within 2 s of asking"
            );
        }
    })
    .await;
}
