//! Transcoding on an output: subscribers asking for `STREAM~FORMAT` get the
//! stream in that format; one transcoder per distinct format, shared by its
//! subscribers, gone when the last leaves; a format that is not one is
//! refused with the reason.

mod common;

use std::time::Duration;

use common::*;
use framewire_proto::control::Name;
use framewire_proto::{Message, Request, Response, Status, SubscribeParams};

async fn frames(c: &mut framewire_net::Client, ch: u16, n: usize, ok: impl Fn(&[u8]) -> bool) {
    let mut got = 0;
    while got < n {
        match next(c, Duration::from_secs(10)).await.expect("frames") {
            Message::VideoFrame(f) if f.channel == ch => {
                assert!(
                    ok(&f.data),
                    "a frame of another format: {:02x?}",
                    &f.data[..8.min(f.data.len())]
                );
                got += 1;
            }
            _ => {}
        }
    }
}

async fn outputs_of(addr: std::net::SocketAddr, stream: &str) -> Vec<String> {
    let mut c = client(addr, "test:stats").await;
    let Response::GetStats(s) = c
        .request(Request::GetStats(Name { name: String::new() }))
        .await
        .unwrap()
    else {
        panic!("stats")
    };
    s.outputs
        .into_iter()
        .filter(|o| o.stream == stream)
        .map(|o| o.peer)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_the_format_they_ask_for_from_one_shared_transcoder() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let node = spawn_node(&[
            "--name",
            "test:cam",
            "--discovery",
            "off",
            "--source",
            "test-pattern:bars,size=320x240,fps=30,format=raw",
        ]);
        let jpeg = |d: &[u8]| d.starts_with(&[0xff, 0xd8]);
        let qoi = |d: &[u8]| d.starts_with(b"qoif");
        let mut a = client(node.addr, "test:a").await;
        let mut b = client(node.addr, "test:b").await;
        let mut q = client(node.addr, "test:q").await;
        let ca = subscribe(&mut a, "bars~mjpeg", SubscribeParams::default()).await;
        let cb = subscribe(&mut b, "bars~mjpeg", SubscribeParams::default()).await;
        let cq = subscribe(&mut q, "bars~qoi", SubscribeParams::default()).await;
        frames(&mut a, ca, 10, jpeg).await;
        frames(&mut b, cb, 10, jpeg).await;
        frames(&mut q, cq, 5, qoi).await;
        // Two transcoders take the raw stream, one per format; each derived
        // stream has its own subscribers.
        let mut on_bars = outputs_of(node.addr, "bars").await;
        on_bars.sort();
        assert_eq!(on_bars, ["transcode:bars~mjpeg", "transcode:bars~qoi"]);
        assert_eq!(outputs_of(node.addr, "bars~mjpeg").await.len(), 2);
        // A format that is not one, and a conversion that cannot be made.
        let mut c = client(node.addr, "test:bad").await;
        let e = c.subscribe("bars~h265", SubscribeParams::default()).await.unwrap_err();
        assert!(
            matches!(&e, framewire_net::NetError::Remote { status: Status::BadRequest, message, .. } if message.contains("not a format")),
            "{e}"
        );
        // Everybody leaves: the transcoders stop and the derived streams go.
        drop((a, b, q));
        let mut names = Vec::new();
        let gone = eventually_async(Duration::from_secs(15), async || {
            let mut c = client(node.addr, "test:ls").await;
            let Response::ListStreams(s) = c.request(Request::ListStreams).await.unwrap() else { panic!() };
            names = s.iter().map(|s| s.open.name.clone()).collect::<Vec<_>>();
            (s.len() == 1 && outputs_of(node.addr, "bars").await.is_empty()).then_some(())
        })
        .await;
        assert!(gone.is_some(), "derived streams stayed: {names:?}");
    })
    .await
    .expect("finished in time");
}

/// A relay can pull a transcoded stream: CONNECT names `STREAM~FORMAT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_pulls_a_transcoded_stream() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let node = spawn_node(&[
            "--name",
            "test:cam",
            "--discovery",
            "off",
            "--source",
            "test-pattern:bars,size=160x120,fps=30,format=qoi",
        ]);
        let up = format!("{}/bars~mjpeg-q60", node.addr);
        let relay = spawn_node(&[
            "--name",
            "test:relay",
            "--discovery",
            "off",
            "--upstream",
            &format!("{up},as=bars"),
        ]);
        let mut c = client(relay.addr, "test:viewer").await;
        let ch = subscribe(&mut c, "bars", SubscribeParams::default()).await;
        frames(&mut c, ch, 10, |d| d.starts_with(&[0xff, 0xd8])).await;
    })
    .await
    .expect("finished in time");
}

/// `STREAM~h264-RATE-gN`: MJPEG from the test pattern encoded to H.264 by
/// the node (OpenH264): parameter sets announced once known and in front
/// of every keyframe, a keyframe every N frames, every frame decodable by
/// ffprobe, near the asked bit rate; a late subscriber starts at a keyframe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_encodes_h264_with_keyframes_on_schedule() {
    use common::media::{Got, collect, probe};
    use framewire_media::h26x::{AccessUnit, Codec, ParamSets, sps_size};
    use framewire_proto::Format;
    tokio::time::timeout(Duration::from_secs(90), async {
        let node = spawn_node(&[
            "--name",
            "test:cam",
            "--discovery",
            "off",
            "--source",
            "test-pattern:bars,size=640x360,fps=30,format=mjpeg",
        ]);
        let name = "bars~h264-1Mbit-g30";
        let got: Got = collect(node.addr, name, Duration::from_secs(30), |g| g.frames.len() >= 90).await;
        assert!(got.frames.len() >= 90, "{} frames", got.frames.len());
        assert_eq!(got.opens[0].format, Format::H264);
        let open = got.opens.last().unwrap();
        let mut ps = ParamSets::default();
        ps.update(Codec::H264, &open.codec_config);
        assert!(
            ps.is_complete(Codec::H264),
            "the parameter sets follow in a format-changed: {:?} {:?}",
            got.opens,
            got.events
        );
        assert_eq!(sps_size(Codec::H264, ps.sps.as_ref().unwrap()), Some((640, 360)));
        let first = &got.frames[0];
        let au = AccessUnit::of(Codec::H264, &first.data);
        assert!(
            first.flags.is_keyframe() && au.keyframe && au.has_sps && au.has_pps,
            "{au:?}"
        );
        for f in &got.frames {
            assert_eq!(f.flags.is_keyframe(), AccessUnit::of(Codec::H264, &f.data).keyframe);
        }
        let keys: Vec<u64> = got
            .frames
            .iter()
            .filter(|f| f.flags.is_keyframe())
            .map(|f| f.sequence)
            .collect();
        assert!(keys.len() >= 3, "keyframes at {keys:?}");
        for w in keys.windows(2) {
            assert!(w[1] - w[0] <= 30, "keyframes at {keys:?}: at most 30 frames apart");
        }
        let dir = temp_dir("transcode-h264");
        let (codec, w, h, n, errors) = probe(&got.frames, &dir.join("out.h264"));
        assert_eq!((codec.as_str(), w, h), ("h264", 640, 360));
        assert_eq!(n, got.frames.len() as u64, "every frame decodes");
        assert!(errors.trim().is_empty(), "ffprobe: {errors}");
        let bytes: usize = got.frames.iter().map(|f| f.data.len()).sum();
        let secs = got.frames.len() as f64 / 30.0;
        let rate = bytes as f64 * 8.0 / secs;
        assert!(rate < 2_000_000.0, "{rate:.0} bit/s for 1 Mbit/s asked");
        // A second subscriber starts at a keyframe (the group of pictures cached).
        let late = collect(node.addr, name, Duration::from_secs(10), |g| !g.frames.is_empty()).await;
        assert!(late.frames[0].flags.is_keyframe());
    })
    .await
    .expect("within 90 s");
}
