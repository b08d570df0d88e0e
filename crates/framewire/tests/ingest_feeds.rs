//! The `ffmpeg` source fed over the network by real ffmpeg on loopback:
//! the node as an SRT caller, MPEG-TS over UDP (and a sender that wedges),
//! HLS over HTTP. Apart from ingest.rs so that its encoders do not run
//! beside that file's tests (tests of one file run in parallel).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::media::*;
use common::*;
use framewire_media::h26x::Codec;
use framewire_proto::{Message, StreamEvent, SubscribeParams};

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
        let playlist = eventually_async(Duration::from_secs(20), async || {
            hls.join("live.m3u8").exists().then_some(())
        });
        assert!(playlist.await.is_some(), "ffmpeg wrote no playlist");
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
