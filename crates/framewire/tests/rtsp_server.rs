//! The node's RTSP server (`--rtsp`) against the clients people use:
//! ffprobe, ffmpeg and GStreamer's `rtspsrc`, over RTP interleaved on TCP
//! and over UDP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::media::*;
use common::*;

/// A node serving `source` as `cam` over RTSP; the RTSP URL base.
fn rtsp_node(source: &str) -> (NodeProc, String) {
    let port = free_port();
    let rtsp = format!("127.0.0.1:{port}");
    let node = spawn_node(&[
        "--name",
        "test:rtspd",
        "--discovery",
        "off",
        "--source",
        source,
        "--rtsp",
        &rtsp,
    ]);
    // The printed line, or the log's when an encoder's banner on stdout
    // cuts the printed one.
    let said = format!("rtsp at rtsp://{rtsp}/STREAM");
    let logged = format!("rtsp server local={rtsp}");
    let up = eventually(Duration::from_secs(10), || {
        let log = node.log();
        (log.contains(&said) || log.contains(&logged)).then_some(())
    });
    assert!(up.is_some(), "{}", node.log());
    (node, format!("rtsp://{rtsp}"))
}

fn ffprobe(url: &str, transport: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"]);
    if let Some(t) = transport {
        cmd.args(["-rtsp_transport", t]);
    }
    cmd.args([
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "csv=p=0",
    ])
    .arg(url);
    run(cmd, Duration::from_secs(30))
}

/// `n` frames of `url` decoded by ffmpeg over `transport`, as 8-bit grey
/// pictures.
fn decode(url: &str, transport: &str, n: u32, size: (usize, usize)) -> Vec<Vec<u8>> {
    decode_gray(&["-rtsp_transport", transport, "-i", url], n, size)
}

/// GStreamer's `rtspsrc` plays `url` with `src_args` through `decode` into
/// a fakesink that stops after 30 pictures; panics unless all 30 were
/// decoded. gst-launch may still exit with an error at the end: when the
/// sink stops, `rtspsrc` sometimes fails its own PAUSE with "Received
/// end-of-file" before writing it (seen on the wire: no PAUSE is sent, the
/// TEARDOWN that follows is answered), a race in the client; that error,
/// and only that one, is not the server's.
fn gst_plays_30(url: &str, src_args: &[&str], decode: &[&str], what: &str) {
    let mut gst = Command::new("gst-launch-1.0");
    gst.args(["-v", "rtspsrc", &format!("location={url}")])
        .args(src_args)
        .args(decode)
        .args(["!", "fakesink", "silent=false", "num-buffers=30"]);
    let out = run(gst, Duration::from_secs(40));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pictures = stdout.matches("last-message = chain").count();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let client_race = stderr.contains("Received end-of-file")
        && stderr
            .lines()
            .filter(|l| l.starts_with("ERROR:") || l.contains("gstrtspsrc.c"))
            .all(|l| l.contains("rtspsrc") || l.contains("gst_rtspsrc_try_send") || l.contains("gst_rtspsrc_pause"));
    assert!(
        pictures == 30 && (out.status.success() || client_race),
        "gst-launch-1.0 {what}: {pictures} pictures of 30, {}: {stderr}",
        out.status
    );
}

#[test]
fn ffprobe_ffmpeg_and_gstreamer_play_h264_over_rtsp() {
    let (node, base) = rtsp_node("test-pattern:cam,size=320x240,fps=30,format=h264,gop=30");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_frames(node.addr, "cam", Duration::from_secs(20)));
    let url = format!("{base}/cam");

    for transport in [Some("tcp"), Some("udp"), None] {
        let out = ffprobe(&url, transport);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "h264,320,240",
            "{transport:?}: {out:?}"
        );
    }
    for transport in ["tcp", "udp"] {
        let pics = decode(&url, transport, 60, (320, 240));
        check_bars(&pics[59], (320, 240));
    }
    for protocols in ["tcp", "udp"] {
        gst_plays_30(
            &url,
            &[&format!("protocols={protocols}"), "latency=0"],
            &["!", "rtph264depay", "!", "avdec_h264"],
            &format!("over {protocols}"),
        );
    }
    let log = node.log();
    assert!(log.contains("rtsp client plays"), "{log}");
}

#[test]
fn mjpeg_goes_as_rfc_2435_when_it_can_and_as_h264_when_it_cannot() {
    // The test pattern's JPEG (baseline 4:2:0, standard tables) goes as it is.
    let (node, base) = rtsp_node("test-pattern:cam,size=320x240,fps=30");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_frames(node.addr, "cam", Duration::from_secs(20)));
    let url = format!("{base}/cam");
    for transport in ["tcp", "udp"] {
        let out = ffprobe(&url, Some(transport));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "mjpeg,320,240", "{out:?}");
        let pics = decode(&url, transport, 30, (320, 240));
        check_bars(&pics[29], (320, 240));
    }
    gst_plays_30(
        &url,
        &["protocols=tcp", "latency=0"],
        &["!", "rtpjpegdepay", "!", "jpegdec"],
        "as RFC 2435 JPEG",
    );
    let out = ffprobe(&format!("{base}/nothing"), Some("tcp"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404 Not Found"),
        "{out:?}"
    );
    drop(node);
    // 2048 pixels wide is past what RFC 2435 can say: H.264, never broken.
    // So is a stream that is not JPEG at all.
    for (source, size) in [
        ("test-pattern:cam,size=2048x64,fps=30", (2048, 64)),
        ("test-pattern:cam,size=320x240,fps=30,format=qoi", (320, 240)),
    ] {
        let (node, base) = rtsp_node(source);
        rt.block_on(wait_frames(node.addr, "cam", Duration::from_secs(20)));
        let out = ffprobe(&format!("{base}/cam"), Some("tcp"));
        let want = format!("h264,{},{}", size.0, size.1);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "{source}: {out:?}");
        let pics = decode(&format!("{base}/cam"), "tcp", 10, size);
        check_bars(&pics[9], size);
    }
}

/// Sends `req` on `s` and reads one response head.
fn exchange(s: &mut TcpStream, req: &str) -> String {
    s.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => got.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn garbage_and_a_client_that_never_reads_hurt_only_themselves() {
    // Every frame a keyframe: the stuck client's socket buffers fill in a
    // second or two.
    let (node, base) = rtsp_node("test-pattern:cam,size=640x360,fps=30,format=h264,gop=1,bitrate=20000000");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_frames(node.addr, "cam", Duration::from_secs(20)));
    let addr = base.trim_start_matches("rtsp://").to_owned();

    // Garbage: a 400, then the connection closes.
    let mut g = TcpStream::connect(&addr).unwrap();
    g.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = exchange(&mut g, "\x16\x03\x01 not rtsp at all\r\n\r\n");
    assert!(r.starts_with("RTSP/1.0 400 Bad Request"), "{r:?}");
    let mut rest = Vec::new();
    assert_eq!(g.read_to_end(&mut rest).unwrap_or(0), 0, "closed after the answer");
    // An endless header line: refused within bounds.
    let mut g = TcpStream::connect(&addr).unwrap();
    g.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = exchange(&mut g, &format!("OPTIONS * RTSP/1.0\r\nX: {}", "y".repeat(64 << 10)));
    assert!(r.starts_with("RTSP/1.0 400 Bad Request"), "{r:?}");

    // A client that plays and never reads (with a small receive buffer,
    // so the node's socket fills soon).
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let to: std::net::SocketAddr = addr.parse().unwrap();
    sock.connect(&to.into()).unwrap();
    let mut stuck: TcpStream = sock.into();
    stuck.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let url = format!("{base}/cam");
    let r = exchange(
        &mut stuck,
        &format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"),
    );
    let session = r
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|s| s.split(';').next())
        .expect("a session")
        .to_owned();
    let r = exchange(
        &mut stuck,
        &format!("PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"),
    );
    assert!(r.starts_with("RTSP/1.0 200 OK"), "{r:?}");

    // Its output drops (in its own queue), and others play on.
    let mut outputs = Vec::new();
    let dropped = eventually_every(Duration::from_secs(15), Duration::from_millis(200), || {
        outputs = rt.block_on(stats(node.addr)).outputs;
        let dropped: u64 = outputs
            .iter()
            .filter(|o| o.peer.starts_with("rtsp:"))
            .flat_map(|o| o.drops.iter().map(|d| d.count))
            .sum();
        (dropped > 0).then_some(())
    });
    assert!(
        dropped.is_some(),
        "the stuck client's output never dropped: {outputs:?}"
    );
    let pics = decode(&url, "tcp", 30, (640, 360));
    check_bars(&pics[29], (640, 360));
    drop(stuck);
}

#[test]
fn five_hundred_idle_connections_keep_no_player_out() {
    let (node, base) = rtsp_node("test-pattern:cam,size=320x240,fps=30,format=h264,gop=30");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_frames(node.addr, "cam", Duration::from_secs(20)));
    let addr = base.trim_start_matches("rtsp://").to_owned();
    let idle: Vec<TcpStream> = (0..500).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // The node has taken them all once it closed those beyond its 256.
    for s in &idle {
        s.set_nonblocking(true).unwrap();
    }
    let shut = || {
        idle.iter()
            .filter(|s| matches!((&**s).read(&mut [0u8; 1]), Ok(0)))
            .count()
    };
    eventually(Duration::from_secs(10), || (shut() >= 500 - 256).then_some(()));
    for s in &idle {
        s.set_nonblocking(false).unwrap();
    }
    // A player still gets in (the oldest idle connection makes room) and
    // plays whole.
    let pics = decode(&format!("{base}/cam"), "tcp", 30, (320, 240));
    check_bars(&pics[29], (320, 240));
    // Every idle connection beyond the node's 256 was closed, and the
    // node is well.
    let closed = idle
        .iter()
        .filter(|s| {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            matches!((&**s).read(&mut [0u8; 1]), Ok(0) | Err(_))
                && s.take_error().ok().flatten().is_none()
                && matches!((&**s).read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert!(closed >= 500 - 256, "{closed} of 500 idle connections closed");
    rt.block_on(wait_frames(node.addr, "cam", Duration::from_secs(5)));
}

#[test]
fn a_node_pulls_another_nodes_stream_with_its_rtsp_source() {
    let (cam, base) = rtsp_node("test-pattern:cam,size=320x240,fps=30,format=h264,gop=15");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_frames(cam.addr, "cam", Duration::from_secs(20)));
    let source = format!("rtsp:copy,url={base}/cam");
    let pull = spawn_node(&["--name", "test:pull", "--discovery", "off", "--source", &source]);
    let got = rt.block_on(collect(pull.addr, "copy", Duration::from_secs(30), |g| {
        g.frames.len() >= 45
    }));
    let dir = temp_dir("rtsp-server-pull");
    check_passthrough(&got, framewire_media::h26x::Codec::H264, (320, 240), &dir);
    assert!(
        got.frames.windows(2).all(|w| w[1].timestamp_ns > w[0].timestamp_ns),
        "capture times go forward"
    );
}

#[test]
fn h265_goes_out_as_rfc_7798_and_ffmpeg_decodes_it() {
    let dir = temp_dir("rtsp-server-h265");
    let path = dir.join("in.mkv");
    encode(&path, "640x360", 2, framewire_media::h26x::Codec::H265);
    let (node, base) = rtsp_node(&format!(
        "ffmpeg:cam,input={},codec=h265,realtime=true,loop=true",
        path.display()
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_frames(node.addr, "cam", Duration::from_secs(20)));
    let url = format!("{base}/cam");
    for transport in ["tcp", "udp"] {
        let out = ffprobe(&url, Some(transport));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hevc,640,360", "{out:?}");
    }
    let pics = decode(&url, "tcp", 30, (640, 360));
    check_bars(&pics[29], (640, 360));
}

/// `framewire user add NAME --role viewer [--rtsp] --state-dir DIR` with the password on stdin.
fn add_user(dir: &std::path::Path, name: &str, password: &str, rtsp: bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["user", "add", name, "--role", "viewer"])
        .args(rtsp.then_some("--rtsp"))
        .arg("--state-dir")
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn players_log_in_as_a_web_ui_user_or_with_the_key() {
    let dir = std::env::temp_dir().join(format!("fw-rtsp-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    add_user(&dir, "ann", "s3cret-pass", true);
    // A user without RTSP access keeps no MD5 digest and cannot play.
    add_user(&dir, "bob", "bob-password", false);
    let users_text = std::fs::read_to_string(dir.join("users.json")).unwrap();
    assert_eq!(users_text.matches("rtsp_ha1").count(), 1, "{users_text}");
    let key = dir.join("key");
    assert!(run_cli(&["key", "gen", key.to_str().unwrap()]).status.success());
    let out = run_cli(&["--key-file", key.to_str().unwrap(), "key", "rtsp-password"]);
    let key_password = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(key_password.len(), 32, "{out:?}");
    // Credentials asked of players on this host too (the others' rule).
    let port = free_port();
    let rtsp = format!("127.0.0.1:{port}");
    let users = dir.join("users.json");
    let node = spawn_node(&[
        "--name",
        "test:rtspd",
        "--discovery",
        "off",
        "--key-file",
        key.to_str().unwrap(),
        "--source",
        "test-pattern:cam,size=320x240,fps=30,format=h264,gop=30",
        "--rtsp",
        &rtsp,
        "--rtsp-users",
        users.to_str().unwrap(),
        "--rtsp-auth-local",
    ]);
    // Up once ann's ffprobe sees the stream (the node's own port needs the key).
    let ann = format!("rtsp://ann:s3cret-pass@{rtsp}/cam");
    let mut out = None;
    let seen = eventually_every(Duration::from_secs(20), Duration::from_millis(200), || {
        let o = out.insert(ffprobe(&ann, Some("tcp")));
        o.status.success().then_some(())
    });
    let out = out.expect("tried");
    assert!(seen.is_some(), "{out:?}\n{}", node.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "h264,320,240", "{out:?}");
    let out = ffprobe(&format!("rtsp://{rtsp}/cam"), Some("tcp"));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
    let out = ffprobe(&format!("rtsp://ann:wrong@{rtsp}/cam"), Some("tcp"));
    assert!(!out.status.success(), "a wrong password plays: {out:?}");
    let out = ffprobe(&format!("rtsp://bob:bob-password@{rtsp}/cam"), Some("tcp"));
    assert!(!out.status.success(), "a user without RTSP access plays: {out:?}");
    let pics = decode(
        &format!("rtsp://framewire:{key_password}@{rtsp}/cam"),
        "udp",
        30,
        (320, 240),
    );
    check_bars(&pics[29], (320, 240));
    gst_plays_30(
        &format!("rtsp://{rtsp}/cam"),
        &["protocols=tcp", "user-id=ann", "user-pw=s3cret-pass"],
        &["!", "rtph264depay", "!", "avdec_h264"],
        "as ann",
    );
    let log = node.log();
    assert!(
        log.contains("user=\"ann\"") && log.contains("user=\"framewire\""),
        "{log}"
    );
    assert!(!log.contains("s3cret-pass") && !log.contains(&key_password));
    // Guessing across connections: ten wrong answers, and the address and
    // the user are refused for a minute, the right password too.
    for _ in 0..10 {
        let out = ffprobe(&format!("rtsp://ann:guess@{rtsp}/cam"), Some("tcp"));
        assert!(!out.status.success());
    }
    let out = ffprobe(&ann, Some("tcp"));
    assert!(!out.status.success(), "still guessing after ten wrong answers: {out:?}");
    assert!(node.log().contains("refused for a minute"), "{}", node.log());
    let _ = std::fs::remove_dir_all(&dir);
}
