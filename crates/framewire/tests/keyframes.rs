//! REQUEST_KEYFRAME: a subscriber asks for a keyframe of an H.264 stream
//! and the encoder (a transcoding output or an H.264 test pattern, with
//! OpenH264) makes the next frame one, directly and through a relay that
//! passes the request upstream; requests in a loop do not turn the stream into keyframes; a
//! stream that cannot make one on request says why.

mod common;

use std::time::{Duration, Instant};

use common::*;
use framewire_proto::control::Name;
use framewire_proto::{Message, Request, Response, Status, SubscribeParams};

/// Reads what the subscription on `c` has queued, until it is at the live
/// edge (no frame for 15 ms).
async fn drain(c: &mut framewire_net::Client) {
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(15), next(c, Duration::from_secs(1))).await {}
}

/// Frames of the subscription on `c` until a keyframe; how many came
/// before it.
async fn frames_until_keyframe(c: &mut framewire_net::Client, limit: usize) -> Option<usize> {
    for n in 0..limit {
        loop {
            match next(c, Duration::from_secs(10)).await? {
                Message::VideoFrame(f) if f.flags.is_keyframe() => return Some(n),
                Message::VideoFrame(_) => break,
                _ => {}
            }
        }
    }
    None
}

async fn ask(addr: std::net::SocketAddr, stream: &str) -> Result<Response, framewire_net::NetError> {
    let mut c = client(addr, "test:asker").await;
    c.request(Request::RequestKeyframe(Name { name: stream.into() })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyframe_on_request_directly_and_through_a_relay() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let source = spawn_node(&[
            "--name",
            "test:cam",
            "--discovery",
            "off",
            "--source",
            "test-pattern:bars,size=640x360,fps=30,format=mjpeg",
            "--source",
            "test-pattern:live,size=320x240,fps=30,format=h264,gop=600",
        ]);
        // A keyframe every 600 frames (20 s): any other is one asked for.
        let h264 = "bars~h264-g600";
        let relay = spawn_node(&[
            "--name",
            "test:relay",
            "--discovery",
            "off",
            "--upstream",
            &format!("{}/{h264},as=cam", source.addr),
        ]);
        // A transcoding output, the same through a relay, and a source
        // that encodes H.264 itself.
        for (addr, stream) in [(source.addr, h264), (relay.addr, "cam"), (source.addr, "live")] {
            let mut c = client(addr, "test:viewer").await;
            subscribe(&mut c, stream, SubscribeParams::default()).await;
            frames_until_keyframe(&mut c, 100).await.expect("a first keyframe");
            // Past the cached group of pictures, into the live stream.
            assert_eq!(
                frames_until_keyframe(&mut c, 30).await,
                None,
                "{stream}: no keyframe unasked"
            );
            for round in 0..3 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                drain(&mut c).await;
                let asked = Instant::now();
                let r = ask(addr, stream).await.expect("the request is taken");
                assert!(matches!(r, Response::RequestKeyframe), "{r:?}");
                let n = frames_until_keyframe(&mut c, 30).await.expect("a keyframe");
                eprintln!(
                    "{stream} round {round}: keyframe after {n} frames, {:?}",
                    asked.elapsed()
                );
                assert!(
                    n <= 1,
                    "{stream} round {round}: {n} frames before the keyframe ({:?})",
                    asked.elapsed()
                );
            }
        }

        // Asked in a loop: at most one forced keyframe per 250 ms.
        let mut c = client(source.addr, "test:viewer").await;
        subscribe(&mut c, h264, SubscribeParams::default()).await;
        frames_until_keyframe(&mut c, 100).await.expect("a first keyframe");
        let mut asker = client(source.addr, "test:asker").await;
        let (mut keys, mut frames) = (0, 0);
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            asker
                .request(Request::RequestKeyframe(Name { name: h264.into() }))
                .await
                .unwrap();
            while let Ok(Some(m)) =
                tokio::time::timeout(Duration::from_millis(1), next(&mut c, Duration::from_millis(1))).await
            {
                if let Message::VideoFrame(f) = m {
                    frames += 1;
                    keys += usize::from(f.flags.is_keyframe());
                }
            }
        }
        eprintln!("asked in a loop: {keys} keyframes of {frames} frames in 2 s");
        assert!(frames >= 30, "{frames} frames");
        assert!(
            (4..=10).contains(&keys),
            "{keys} keyframes of {frames} frames in 2 s of requests"
        );

        // An intra-only stream: nothing to do. Unknown: not found.
        assert!(matches!(ask(source.addr, "bars").await, Ok(Response::RequestKeyframe)));
        match ask(source.addr, "nope").await {
            Err(framewire_net::NetError::Remote { status, .. }) => assert_eq!(status, Status::NotFound),
            other => panic!("{other:?}"),
        }
    })
    .await
    .expect("within 90 s");
}

/// An H.264 stream this node passes through from a file cannot make a
/// keyframe on request: the answer says so and what to do instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_through_stream_says_it_cannot() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = temp_dir("keyframes-file");
        let file = dir.join("in.mp4");
        common::media::encode(&file, "320x240", 2, framewire_media::h26x::Codec::H264);
        let node = spawn_node(&[
            "--name",
            "test:file",
            "--discovery",
            "off",
            "--source",
            &format!("ffmpeg:clip,input={},realtime=true,loop=true", file.display()),
        ]);
        common::media::wait_frames(node.addr, "clip", Duration::from_secs(20)).await;
        match ask(node.addr, "clip").await {
            Err(framewire_net::NetError::Remote { status, message, .. }) => {
                assert_eq!(status, Status::UnsupportedFormat);
                assert!(message.contains("clip~h264"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    })
    .await
    .expect("within 60 s");
}
