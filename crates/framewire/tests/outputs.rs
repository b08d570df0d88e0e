//! The node's standard outputs (`srt`, `hls` and `push` sinks, docs/outputs.md)
//! read by the tools people use: ffmpeg and ffprobe calling an SRT
//! listener, listening for an SRT or RTMP push, and reading an HLS
//! playlist.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::media::*;
use common::*;

/// A UDP port free on loopback (bound then released).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const H264_BARS: &str = "test-pattern:cam,size=320x240,fps=30,format=h264,gop=15";
const SIZE: (usize, usize) = (320, 240);

fn node(source: &str, sink: &str) -> NodeProc {
    node_with(source, &["--sink", sink])
}

/// A node serving `source` as `cam`, with more arguments.
fn node_with(source: &str, more: &[&str]) -> NodeProc {
    let mut args = vec!["--name", "test:out", "--discovery", "off", "--source", source];
    args.extend_from_slice(more);
    spawn_node(&args)
}

/// Whether something listens on UDP `port` on loopback (an SRT listener:
/// the port cannot be bound again).
fn udp_in_use(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()
}

/// How many times the node's ffmpeg has ended (each end is logged with
/// when it starts again).
fn ended(node: &NodeProc) -> usize {
    node.log().matches("retry_in").count()
}

/// Waits until the node's SRT listener takes a caller again: its ffmpeg
/// ended more than `before` times, and the next one listens.
fn listening_again(node: &NodeProc, port: u16, before: usize) {
    let up = eventually(Duration::from_secs(20), || {
        (ended(node) > before && udp_in_use(port)).then_some(())
    });
    assert!(up.is_some(), "the SRT listener did not listen again:\n{}", node.log());
}

/// Decodes `n` pictures from the node's SRT listener on `port` (`url`),
/// calling again (ffmpeg may still be starting its listener) for up to 20 s;
/// with how many times ffmpeg had ended before that caller.
fn decode_when_up(node: &NodeProc, port: u16, url: &str, n: u32) -> (Vec<Vec<u8>>, usize) {
    let mut before = 0;
    let mut out = None;
    let probed = eventually_every(Duration::from_secs(20), Duration::from_millis(200), || {
        before = ended(node);
        let mut cmd = Command::new("ffprobe");
        cmd.args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            url,
        ]);
        let o = out.insert(run(cmd, Duration::from_secs(10)));
        o.status.success().then_some(())
    });
    let out = out.expect("tried");
    assert!(probed.is_some(), "no SRT listener at {url}: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .all(|l| l.is_empty() || l == "h264"),
        "{out:?}"
    );
    // The listener takes one caller at a time: the next once ffmpeg is
    // started again.
    listening_again(node, port, before);
    let before = ended(node);
    (decode_gray(&["-i", url], n, SIZE), before)
}

#[test]
fn an_srt_listener_serves_callers_one_after_another_with_its_passphrase() {
    let port = free_udp_port();
    let sink = format!("srt:cam,url=srt://127.0.0.1:{port},latency=80,passphrase=correct-horse");
    let node = node(H264_BARS, &sink);
    let url = format!("srt://127.0.0.1:{port}?mode=caller&passphrase=correct-horse");
    let (pics, before) = decode_when_up(&node, port, &url, 30);
    check_bars(&pics[29], SIZE);
    // A caller without the passphrase is refused (by a listener that is
    // there to refuse it).
    listening_again(&node, port, before);
    let mut cmd = Command::new("ffprobe");
    cmd.args([
        "-v",
        "error",
        &format!("srt://127.0.0.1:{port}?mode=caller&connect_timeout=2000"),
    ]);
    let out = run(cmd, Duration::from_secs(15));
    assert!(!out.status.success(), "a caller without the passphrase was let in");
}

#[test]
fn mjpeg_is_pushed_over_srt_as_h264_to_a_listening_ffmpeg() {
    let port = free_udp_port();
    let listen = format!("srt://127.0.0.1:{port}?mode=listener");
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-v",
        "error",
        "-i",
        &listen,
        "-frames:v",
        "30",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "gray",
        "-",
    ]);
    let server = std::thread::spawn(move || run(cmd, Duration::from_secs(40)));
    let listens = eventually(Duration::from_secs(10), || udp_in_use(port).then_some(()));
    assert!(listens.is_some(), "ffmpeg did not listen on {port}");
    // The test pattern's own format is MJPEG: the output takes cam~h264.
    let _node = node(
        "test-pattern:cam,size=320x240,fps=30",
        &format!("push:cam,url=srt://127.0.0.1:{port}"),
    );
    let out = server.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let frame = SIZE.0 * SIZE.1;
    assert_eq!(out.stdout.len(), 30 * frame);
    check_bars(&out.stdout[29 * frame..], SIZE);
}

#[test]
fn rtmp_push_reaches_a_server_started_after_the_node() {
    let port = free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/key");
    // The node first finds nobody listening, and keeps trying.
    let push = format!("cam={url}");
    let node = node_with(H264_BARS, &["--push", &push]);
    assert!(node.wait_log("retry_in", Duration::from_secs(10)), "{}", node.log());
    let pics = decode_gray(&["-listen", "1", "-i", &url], 30, SIZE);
    check_bars(&pics[29], SIZE);
    let log = node.log();
    assert!(!log.contains("/live/key"), "the stream key stays out of the log: {log}");
}

/// The segment files of an HLS directory.
fn segments(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".ts"))
                .collect()
        })
        .unwrap_or_default()
}

/// A GET on loopback: the status line and headers, lowercased.
fn get_head(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_lowercase();
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

#[test]
fn hls_keeps_a_playlist_of_recent_segments_that_the_web_server_serves() {
    let root = std::env::temp_dir().join(format!("fw-hls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("cam");
    let web = free_port();
    let (web_addr, state) = (format!("127.0.0.1:{web}"), root.join("state"));
    let sink = format!("hls:cam,dir={},segment=1,list-size=3", dir.display());
    let _node = node_with(
        H264_BARS,
        &[
            "--sink",
            &sink,
            "--controller",
            "--state-dir",
            state.to_str().unwrap(),
            "--web",
            &web_addr,
            "--web-hls",
            root.to_str().unwrap(),
        ],
    );
    let playlist = dir.join("index.m3u8");
    // Past list-size: old segments are deleted as new ones come. Segments
    // are numbered from the clock (a restart never reuses a name).
    let mut first = None;
    let mut text = String::new();
    let moved_on = eventually_every(Duration::from_secs(30), Duration::from_millis(100), || {
        text = std::fs::read_to_string(&playlist).unwrap_or_default();
        let n = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .and_then(|n| n.trim().parse::<u64>().ok())?;
        let f = *first.get_or_insert(n);
        assert!(f > 1_000_000_000_000_000, "numbered from the clock (µs): {f}");
        (n >= f + 3).then_some(())
    });
    assert!(moved_on.is_some(), "playlist: {text}");
    assert_eq!(text.matches("#EXTINF").count(), 3, "{text}");
    assert!(!text.contains("#EXT-X-ENDLIST"), "a live playlist: {text}");
    assert!(segments(&dir).len() <= 5, "{:?}", segments(&dir));
    let oldest = format!("segment-{:06}.ts", first.unwrap());
    assert!(
        !segments(&dir).contains(&oldest),
        "{oldest} not deleted: {:?}",
        segments(&dir)
    );
    let pics = decode_gray(&["-i", playlist.to_str().unwrap()], 30, SIZE);
    check_bars(&pics[29], SIZE);
    // The same through the web server, with cache headers for each.
    let url = format!("http://{web_addr}/hls/cam/index.m3u8");
    let pics = decode_gray(&["-i", &url], 30, SIZE);
    check_bars(&pics[29], SIZE);
    let head = get_head(web, "/hls/cam/index.m3u8");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: application/vnd.apple.mpegurl"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    let text = std::fs::read_to_string(&playlist).unwrap();
    let seg = text.lines().rfind(|l| l.ends_with(".ts")).unwrap();
    let head = get_head(web, &format!("/hls/cam/{seg}"));
    assert!(head.contains("content-type: video/mp2t"), "{head}");
    assert!(head.contains("max-age=86400"), "{head}");
    for bad in [
        "/hls/cam/..%2Fstate%2Fusers.json",
        "/hls/../state/x.ts",
        "/hls/cam/index.txt",
        "/hls/cam/.x.ts",
    ] {
        let head = get_head(web, bad);
        assert!(head.starts_with("http/1.1 404"), "{bad}: {head}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
