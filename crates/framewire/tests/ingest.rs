//! The `ffmpeg` source against real ffmpeg: H.264 and H.265 passed through
//! from files, an SRT caller pushing MPEG-TS to the node's listener, an
//! RTMP publisher pushing to the node; the decode-to-MJPEG mode; an input
//! that ends and comes back; an input that cannot be opened. What the node
//! serves is checked with ffprobe and the H.264/H.265 parser.
//! ffmpeg and ffprobe are test dependencies (scripts/setup.sh).

mod common;

use std::path::{Path, PathBuf};
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
            let got = collect(node.addr, "cam", Duration::from_secs(20), |g| g.frames.len() >= 40).await;
            assert!(got.frames.len() >= 40, "{} frames", got.frames.len());
            check_passthrough(&got, codec, size, &dir);
            // A snapshot: the latest keyframe, decoded to JPEG.
            let jpg = dir.join(format!("snap-{}.jpg", codec.label()));
            let out = run_cli(&["snapshot", &node.addr.to_string(), "cam", jpg.to_str().unwrap()]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let bytes = std::fs::read(&jpg).unwrap();
            assert_eq!(framewire_net::jpeg_size(&bytes), Some(size), "snapshot of {codec:?}");
            // `recv --out` writes an elementary stream that ffprobe (and ffplay) reads.
            let es = dir.join(format!("recv.{}", codec.label()));
            let out = run_cli(&[
                "recv",
                &node.addr.to_string(),
                "cam",
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
            if mode == framewire_proto::DeliveryMode::Completeness {
                // The rest of the group follows at once: the current picture.
                let mut n = 1;
                let burst = Instant::now();
                while n < 20 && burst.elapsed() < Duration::from_millis(500) {
                    if let Some(Message::VideoFrame(_)) = next(&mut c, Duration::from_millis(500)).await {
                        n += 1;
                    }
                }
                assert!(n >= 20, "only {n} frames of the group came in a burst");
            }
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

/// ffmpeg pushing a live picture to `url` as `format`, with `extra`
/// output options; killed when dropped.
fn publishing(url: &str, format: &str, extra: &[&str]) -> Killed {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=30:duration=60")
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"])
        .args(["-g", "15", "-bf", "0"])
        .args(extra)
        .args(["-f", format, url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg runs");
    Killed(child)
}

/// The node as an SRT caller (an encoder listening), MPEG-TS over UDP,
/// and HLS over HTTP (ffmpeg writing a live playlist, Python's HTTP
/// server serving it on loopback); a UDP feed that wedges (its sender
/// stopped) is restarted after `stall` and resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_caller_udp_mpegts_hls_and_a_wedged_feed() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let dir = temp_dir("ingest-more");

        // SRT: the encoder listens, the node calls it.
        let port = free_port();
        let _enc = publishing(&format!("srt://127.0.0.1:{port}?mode=listener"), "mpegts", &[]);
        let node = node_with(
            "test:srt-caller",
            &format!("ffmpeg:feed,input=srt://127.0.0.1:{port}?mode=caller"),
        );
        wait_frames(node.addr, "feed", Duration::from_secs(30)).await;
        let got = collect(node.addr, "feed", Duration::from_secs(20), |g| g.frames.len() >= 30).await;
        assert!(got.frames.len() >= 30, "{} frames over SRT (caller)", got.frames.len());
        check_passthrough(&got, Codec::H264, (640, 360), &dir);
        drop(node);

        // MPEG-TS over UDP, then the sender stops (SIGSTOP): the feed is
        // stalled, restarted, and resumes when the sender goes on.
        let port = free_port();
        let node = node_with(
            "test:udp",
            &format!("ffmpeg:feed,input=udp://127.0.0.1:{port}?overrun_nonfatal=1,stall=2"),
        );
        let sender = publishing(&format!("udp://127.0.0.1:{port}?pkt_size=1316"), "mpegts", &[]);
        wait_frames(node.addr, "feed", Duration::from_secs(30)).await;
        let got = collect(node.addr, "feed", Duration::from_secs(20), |g| g.frames.len() >= 30).await;
        assert!(got.frames.len() >= 30, "{} frames over UDP", got.frames.len());
        check_passthrough(&got, Codec::H264, (640, 360), &dir);
        let mut c = client(node.addr, "test:viewer").await;
        subscribe(&mut c, "feed", SubscribeParams::default()).await;
        let pid = sender.0.id().to_string();
        Command::new("kill").args(["-STOP", &pid]).status().unwrap();
        let end = Instant::now() + Duration::from_secs(15);
        let info = loop {
            assert!(Instant::now() < end, "no interrupted event: {}", node.log());
            if let Some(Message::StreamEvent {
                event: StreamEvent::Interrupted(i),
                ..
            }) = next(&mut c, Duration::from_secs(15)).await
            {
                break i;
            }
        };
        assert_eq!(info.reason, framewire_proto::EventReason::Stalled, "{info:?}");
        Command::new("kill").args(["-CONT", &pid]).status().unwrap();
        // (A frame queued before the stall may still come after the event.)
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < end, "not resumed: {}", node.log());
            if let Some(Message::StreamEvent {
                event: StreamEvent::Resumed(_),
                ..
            }) = next(&mut c, Duration::from_secs(20)).await
            {
                break;
            }
        }
        loop {
            assert!(Instant::now() < end, "no frame after resuming: {}", node.log());
            if let Some(Message::VideoFrame(f)) = next(&mut c, Duration::from_secs(20)).await {
                assert!(f.flags.is_keyframe() && f.flags.is_discontinuity(), "{:?}", f.flags);
                break;
            }
        }
        drop((c, node, sender));

        // HLS: a live playlist over HTTP.
        let hls = dir.join("hls");
        std::fs::create_dir_all(&hls).unwrap();
        let _enc = publishing(
            hls.join("live.m3u8").to_str().unwrap(),
            "hls",
            &["-hls_time", "1", "-hls_list_size", "6", "-hls_flags", "delete_segments"],
        );
        let port = free_port();
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let _http = Killed(
            Command::new(python)
                .args([
                    "-m",
                    "http.server",
                    "--bind",
                    "127.0.0.1",
                    &port.to_string(),
                    "--directory",
                ])
                .arg(&hls)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 runs"),
        );
        // The playlist exists once the first segment is written.
        let end = Instant::now() + Duration::from_secs(20);
        while !hls.join("live.m3u8").exists() {
            assert!(Instant::now() < end, "ffmpeg wrote no playlist");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let node = node_with(
            "test:hls",
            // Paced at the stream's rate (-re): a live playlist comes a segment at a time.
            &format!("ffmpeg:feed,input=http://127.0.0.1:{port}/live.m3u8,realtime=true"),
        );
        wait_frames(node.addr, "feed", Duration::from_secs(30)).await;
        // Segments still come in bursts: every frame is taken (a
        // low-latency subscriber would skip to the next keyframe).
        let every = SubscribeParams {
            mode: framewire_proto::DeliveryMode::Completeness,
            max_frames: 120,
            ..SubscribeParams::default()
        };
        let got = collect_with(node.addr, "feed", every, Duration::from_secs(20), |g| {
            g.frames.len() >= 30
        })
        .await;
        assert!(got.frames.len() >= 30, "{} frames over HLS", got.frames.len());
        check_passthrough(&got, Codec::H264, (640, 360), &dir);
    })
    .await
    .expect("within 150 s");
}
