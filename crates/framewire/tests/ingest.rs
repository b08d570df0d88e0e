//! The `ffmpeg` source against real ffmpeg: H.264 and H.265 passed through
//! from files, an SRT caller pushing MPEG-TS to the node's listener, an
//! RTMP publisher pushing to the node; the decode-to-MJPEG mode; an input
//! that ends and comes back; an input that cannot be opened. What the node
//! serves is checked with ffprobe and the H.264/H.265 parser.
//! ffmpeg and ffprobe are test dependencies (scripts/setup.sh).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::media::*;
use common::*;
use framewire_media::h26x::Codec;
use framewire_proto::{Format, Message, StreamEvent, SubscribeParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_and_h265_files_pass_through_untouched() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = temp_dir("ingest-files");
        for (codec, file, size) in [
            (Codec::H264, "in.mp4", (1280, 720)),
            (Codec::H265, "in.mkv", (640, 360)),
        ] {
            let path = dir.join(file);
            encode(&path, &format!("{}x{}", size.0, size.1), 2, codec);
            let spec = format!(
                "ffmpeg:cam,input={},codec={},realtime=true,loop=true",
                path.display(),
                codec.label()
            );
            let node = node_with("test:ingest", &spec);
            wait_frames(node.addr, "cam", Duration::from_secs(20)).await;
            // The 2 s file plays on past its end at 30 fps, with no pause
            // and no interruption at the loop point.
            let got = collect(node.addr, "cam", Duration::from_secs(4), |_| false).await;
            assert!(
                got.frames.len() >= 90 && got.events.is_empty(),
                "{codec:?}: {} frames in 4 s, events {:?}",
                got.frames.len(),
                got.events
            );
            check_passthrough(&got, codec, size, &dir);
            // A snapshot: the latest keyframe, decoded to JPEG.
            let jpg = dir.join(format!("snap-{}.jpg", codec.label()));
            let out = run_cli(&["snapshot", &node.addr.to_string(), "cam", jpg.to_str().unwrap()]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let bytes = std::fs::read(&jpg).unwrap();
            assert_eq!(framewire_net::jpeg_size(&bytes), Some(size), "snapshot of {codec:?}");
            // `recv --out` writes an elementary stream that ffprobe (and
            // ffplay) reads; a recording takes every frame (completeness).
            let es = dir.join(format!("recv.{}", codec.label()));
            let out = run_cli(&[
                "recv",
                &node.addr.to_string(),
                "cam",
                "--mode",
                "completeness",
                "--frames",
                "30",
                "--out",
                es.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let probe = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-count_frames",
                    "-show_entries",
                    "stream=nb_read_frames",
                    "-of",
                    "csv=p=0",
                ])
                .arg(&es)
                .output()
                .unwrap();
            let decoded: u64 = String::from_utf8_lossy(&probe.stdout).trim().parse().unwrap_or(0);
            assert_eq!(decoded, 30, "recv --out: {}", String::from_utf8_lossy(&probe.stderr));
            assert!(probe.stderr.is_empty(), "{}", String::from_utf8_lossy(&probe.stderr));
        }
    })
    .await
    .expect("within 90 s");
}

/// An ffmpeg that pushes a live test picture to `url` as `format`.
fn publisher(url: &str, format: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=30:duration=20")
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "15",
            "-bf",
            "0",
        ])
        .args(["-f", format, url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg runs")
}

/// A publisher that stays up: ffmpeg gives up at once if the node's
/// listener is not there yet, so it is started again until it holds.
fn keep_publishing(url: &str, format: &str) -> Killed {
    for _ in 0..20 {
        let mut p = Killed(publisher(url, format));
        std::thread::sleep(Duration::from_millis(1500));
        if p.0.try_wait().ok().flatten().is_none() {
            return p;
        }
    }
    panic!("ffmpeg could not publish to {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srt_caller_and_an_rtmp_publisher_push_to_the_node() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = temp_dir("ingest-push");
        // SRT: the node listens, an encoder calls with MPEG-TS.
        let port = free_port();
        let srt = format!("srt://127.0.0.1:{port}");
        let node = node_with("test:srt", &format!("ffmpeg:feed,input={srt}?mode=listener"));
        let _push = keep_publishing(&format!("{srt}?mode=caller"), "mpegts");
        wait_frames(node.addr, "feed", Duration::from_secs(20)).await;
        let got = collect(node.addr, "feed", Duration::from_secs(20), |g| g.frames.len() >= 30).await;
        assert!(got.frames.len() >= 30, "{} frames over SRT", got.frames.len());
        check_passthrough(&got, Codec::H264, (640, 360), &dir);
        drop(node);

        // RTMP: the node waits for a publisher with a stream key.
        let port = free_port();
        let rtmp = format!("rtmp://127.0.0.1:{port}/live/key");
        let node = node_with("test:rtmp", &format!("ffmpeg:feed,input={rtmp},listen=true"));
        let _push = keep_publishing(&rtmp, "flv");
        wait_frames(node.addr, "feed", Duration::from_secs(20)).await;
        let got = collect(node.addr, "feed", Duration::from_secs(20), |g| g.frames.len() >= 30).await;
        assert!(got.frames.len() >= 30, "{} frames over RTMP", got.frames.len());
        check_passthrough(&got, Codec::H264, (640, 360), &dir);
    })
    .await
    .expect("within 90 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_ends_is_interrupted_restarted_and_resumed_with_a_gap_flag() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = temp_dir("ingest-restart");
        let path = dir.join("short.mp4");
        encode(&path, "320x240", 1, Codec::H264);
        let node = node_with(
            "test:restart",
            &format!("ffmpeg:cam,input={},realtime=true", path.display()),
        );
        wait_frames(node.addr, "cam", Duration::from_secs(20)).await;
        let got = collect(node.addr, "cam", Duration::from_secs(20), |g| {
            g.events.iter().any(|e| matches!(e, StreamEvent::Resumed(_)))
                && g.frames.iter().skip(1).any(|f| f.flags.is_discontinuity())
        })
        .await;
        let interrupted = got.events.iter().find_map(|e| match e {
            StreamEvent::Interrupted(i) => Some(i.message.clone()),
            _ => None,
        });
        let message = interrupted.expect("interrupted when the file ended");
        assert!(message.contains("end of input"), "{message}");
        let after = got
            .frames
            .iter()
            .skip(1)
            .find(|f| f.flags.is_discontinuity())
            .expect("a frame after the restart, flagged");
        assert!(after.flags.is_keyframe(), "the restart begins at a keyframe");
        let seqs: Vec<u64> = got.frames.iter().map(|f| f.sequence).collect();
        assert!(seqs.windows(2).all(|w| w[1] > w[0]), "sequence numbers go on: {seqs:?}");
    })
    .await
    .expect("within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoded_to_mjpeg_and_a_missing_input_said_plainly() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = temp_dir("ingest-mjpeg");
        let path = dir.join("in.mp4");
        encode(&path, "320x240", 2, Codec::H264);
        let node = node_with(
            "test:mjpeg",
            &format!(
                "ffmpeg:cam,input={},format=mjpeg,realtime=true,loop=true",
                path.display()
            ),
        );
        wait_frames(node.addr, "cam", Duration::from_secs(20)).await;
        let got = collect(node.addr, "cam", Duration::from_secs(20), |g| g.frames.len() >= 10).await;
        let open = got.opens.last().expect("a STREAM_OPEN");
        assert_eq!((open.format, open.width, open.height), (Format::Mjpeg, 320, 240));
        for f in &got.frames {
            assert!(f.flags.is_keyframe());
            assert_eq!(framewire_net::jpeg_size(&f.data), Some((320, 240)));
        }

        let missing: PathBuf = dir.join("nothing-here.mp4");
        let node = node_with("test:missing", &format!("ffmpeg:cam,input={}", missing.display()));
        assert!(
            node.wait_log("No such file or directory", Duration::from_secs(10)),
            "{}",
            node.log()
        );
        let s = stats(node.addr).await;
        let input = s
            .inputs
            .iter()
            .find(|i| i.stream == "cam")
            .expect("the stream is listed");
        assert_eq!(input.state.label(), "interrupted");
    })
    .await
    .expect("within 60 s");
}

#[test]
fn bad_ffmpeg_specs_are_refused_with_the_reason() {
    for (spec, want) in [
        ("ffmpeg:cam", "missing field `input`"),
        ("ffmpeg:cam,input=x,codec=vp9", "h264, h265, mjpeg"),
        ("ffmpeg:cam,input=x,format=raw", "copy"),
    ] {
        let out = run_cli(&[
            "node",
            "--name",
            "test:bad",
            "--discovery",
            "off",
            "--listen",
            "127.0.0.1:0",
            "--source",
            spec,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{spec} was accepted");
        assert!(err.contains(want), "{spec}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscriber_starts_from_the_cached_group_of_pictures() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // A keyframe every 4 s: without the cache a subscriber would wait
        // for the next one.
        let dir = temp_dir("ingest-gop");
        let path = dir.join("long-gop.mp4");
        let out = Command::new("ffmpeg")
            .args(["-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=320x240:rate=30:duration=8")
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "120", "-bf", "0"])
            .arg(&path)
            .output()
            .expect("ffmpeg runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let node = node_with(
            "test:gop",
            &format!("ffmpeg:cam,input={},realtime=true,loop=true", path.display()),
        );
        wait_frames(node.addr, "cam", Duration::from_secs(20)).await;
        // One second into the group.
        tokio::time::sleep(Duration::from_secs(1)).await;
        for mode in [
            framewire_proto::DeliveryMode::Completeness,
            framewire_proto::DeliveryMode::LowLatency,
        ] {
            let mut c = client(node.addr, "test:late").await;
            let t = Instant::now();
            let params = SubscribeParams {
                mode,
                ..SubscribeParams::default()
            };
            subscribe(&mut c, "cam", params).await;
            let first = loop {
                match next(&mut c, Duration::from_secs(10)).await {
                    Some(Message::VideoFrame(f)) => break f,
                    Some(_) => {}
                    None => panic!("no frame"),
                }
            };
            let waited = t.elapsed();
            eprintln!("{mode:?}: first frame after {waited:?}");
            assert!(first.flags.is_keyframe());
            assert!(
                waited < Duration::from_millis(1500),
                "{mode:?}: waited {waited:?} for a picture"
            );
            // Either mode: the rest of the group follows at once (the
            // current picture), and then the live frames, none missed.
            let mut last = first.sequence;
            let burst = Instant::now();
            let mut in_burst = 1;
            for _ in 0..60 {
                let f = loop {
                    match next(&mut c, Duration::from_secs(2)).await {
                        Some(Message::VideoFrame(f)) => break f,
                        Some(_) => {}
                        None => panic!("{mode:?}: the frames stopped after {last}"),
                    }
                };
                assert_eq!(f.sequence, last + 1, "{mode:?}: a gap after {last}");
                assert!(!f.flags.is_discontinuity(), "{mode:?}: {:?}", f.flags);
                last = f.sequence;
                if burst.elapsed() < Duration::from_millis(300) {
                    in_burst += 1;
                }
            }
            assert!(
                in_burst >= 20,
                "{mode:?}: only {in_burst} frames of the group came in a burst"
            );
        }
    })
    .await
    .expect("within 60 s");
}

/// RTSP cameras through the ffmpeg source: a real RTSP server (GStreamer's)
/// serving H.264 over TCP and UDP, H.265, and MJPEG; the video passed
/// through and decodable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_from_gstreamers_server_in_h264_h265_and_mjpeg() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = temp_dir("ingest-rtsp");
        for (codec, transport) in [("h264", "tcp"), ("h264", "udp"), ("h265", "tcp"), ("mjpeg", "udp")] {
            let port = free_port();
            let _server = rtsp_server(port, codec);
            let spec = format!("ffmpeg:cam,input=rtsp://127.0.0.1:{port}/cam,codec={codec},rtsp_transport={transport}");
            let node = node_with("test:rtsp", &spec);
            wait_frames(node.addr, "cam", Duration::from_secs(30)).await;
            let got = collect(node.addr, "cam", Duration::from_secs(20), |g| g.frames.len() >= 30).await;
            assert!(
                got.frames.len() >= 30,
                "{codec}/{transport}: {} frames",
                got.frames.len()
            );
            match codec {
                "h264" => check_passthrough(&got, Codec::H264, (640, 360), &dir),
                "h265" => check_passthrough(&got, Codec::H265, (640, 360), &dir),
                _ => {
                    let open = got.opens.last().expect("a STREAM_OPEN");
                    assert_eq!((open.format, open.width, open.height), (Format::Mjpeg, 640, 360));
                    assert!(
                        got.frames
                            .iter()
                            .all(|f| framewire_net::jpeg_size(&f.data) == Some((640, 360)))
                    );
                }
            }
        }
    })
    .await
    .expect("within 120 s");
}
