//! Compressed video in end-to-end tests: what a subscriber saw, checked
//! with ffprobe and the H.264/H.265 parser; ffmpeg encodes, GStreamer's
//! RTSP server serves.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use framewire_media::h26x::{AccessUnit, Codec, ParamSets, sps_size};
use framewire_proto::{Command as Cmd, Format, Message, Request, StreamEvent, StreamOpen, SubscribeParams, VideoFrame};

use super::*;

/// Encodes `seconds` of a test picture at `size` into `path` with ffmpeg.
pub fn encode(path: &Path, size: &str, seconds: u32, codec: Codec) {
    let encoder = match codec {
        Codec::H264 => "libx264",
        Codec::H265 => "libx265",
    };
    let out = Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30:duration={seconds}"))
        .args(["-c:v", encoder, "-preset", "ultrafast", "-g", "15", "-bf", "0"])
        .args(
            ["-x265-params", "log-level=error"]
                .iter()
                .take(if codec == Codec::H265 { 2 } else { 0 }),
        )
        .arg(path)
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
}

/// What a subscriber saw of a stream.
#[derive(Debug, Default)]
pub struct Got {
    /// The STREAM_OPEN, then each format-changed, in order.
    pub opens: Vec<StreamOpen>,
    pub frames: Vec<VideoFrame>,
    pub events: Vec<StreamEvent>,
}

/// Subscribes to `stream` and collects until `done` says so or `timeout`.
pub async fn collect(addr: std::net::SocketAddr, stream: &str, timeout: Duration, done: impl Fn(&Got) -> bool) -> Got {
    collect_with(addr, stream, SubscribeParams::default(), timeout, done).await
}

/// [`collect`] with a subscription's own parameters.
pub async fn collect_with(
    addr: std::net::SocketAddr,
    stream: &str,
    params: SubscribeParams,
    timeout: Duration,
    done: impl Fn(&Got) -> bool,
) -> Got {
    let mut c = client(addr, "test:viewer").await;
    subscribe(&mut c, stream, params).await;
    let mut got = Got::default();
    let end = Instant::now() + timeout;
    while !done(&got) {
        let Some(left) = end.checked_duration_since(Instant::now()) else {
            break;
        };
        let Ok(Ok(Some(m))) = tokio::time::timeout(left, c.next_message()).await else {
            break;
        };
        match m {
            Message::ControlRequest(req) if req.command == Cmd::StreamOpen => {
                if let Ok(Request::StreamOpen(o)) = Request::decode(&req) {
                    got.opens.push(o);
                }
                c.ack(&req).await.expect("ack");
            }
            Message::VideoFrame(f) => got.frames.push(f),
            Message::StreamEvent { event, .. } => {
                if let StreamEvent::FormatChanged(o) = &event {
                    got.opens.push(o.clone());
                }
                got.events.push(event);
            }
            _ => {}
        }
    }
    got
}

/// Writes the frames as a stream file and has ffprobe decode it: codec,
/// width, height, frames decoded, and what it complained about.
pub fn probe(frames: &[VideoFrame], path: &Path) -> (String, u32, u32, u64, String) {
    let bytes: Vec<u8> = frames.iter().flat_map(|f| f.data.iter().copied()).collect();
    std::fs::write(path, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "default=nw=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_owned()
    };
    (
        field("codec_name"),
        field("width").parse().unwrap_or(0),
        field("height").parse().unwrap_or(0),
        field("nb_read_frames").parse().unwrap_or(0),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn node_with(name: &str, source: &str) -> NodeProc {
    spawn_node(&["--name", name, "--discovery", "off", "--no-shm", "--source", source])
}

/// Waits until the node has served frames of `stream` (its input counts them).
pub async fn wait_frames(addr: std::net::SocketAddr, stream: &str, timeout: Duration) {
    let served = eventually_async(timeout, async || {
        let s = stats(addr).await;
        s.inputs
            .iter()
            .any(|i| i.stream == stream && i.frames_in > 0)
            .then_some(())
    })
    .await;
    assert!(served.is_some(), "no frames of {stream} within {timeout:?}");
}

pub fn check_passthrough(got: &Got, codec: Codec, size: (u32, u32), dir: &Path) {
    let open = got.opens.last().expect("a STREAM_OPEN");
    let format = if codec == Codec::H264 {
        Format::H264
    } else {
        Format::H265
    };
    assert_eq!(open.format, format);
    assert_eq!((open.width, open.height), size);
    let mut ps = ParamSets::default();
    ps.update(codec, &open.codec_config);
    assert!(ps.is_complete(codec), "STREAM_OPEN carries every parameter set");
    assert_eq!(sps_size(codec, ps.sps.as_ref().unwrap()), Some(size));
    let first = &got.frames[0];
    assert!(
        first.flags.is_keyframe(),
        "the first frame a subscriber gets is a keyframe"
    );
    let au = AccessUnit::of(codec, &first.data);
    assert!(
        au.keyframe && au.has_sps && au.has_pps,
        "in-band parameter sets: {au:?}"
    );
    let keys = got.frames.iter().filter(|f| f.flags.is_keyframe()).count();
    assert!(keys >= 2, "a keyframe every 15 frames: {keys} in {}", got.frames.len());
    for f in &got.frames {
        assert_eq!(
            f.flags.is_keyframe(),
            AccessUnit::of(codec, &f.data).keyframe,
            "the flag says what the unit is"
        );
    }
    let (name, w, h, n, errors) = probe(&got.frames, &dir.join("got.es"));
    assert_eq!(name, if codec == Codec::H264 { "h264" } else { "hevc" });
    assert_eq!((w, h), size);
    assert_eq!(n, got.frames.len() as u64, "every frame decodes");
    assert!(errors.trim().is_empty(), "ffprobe: {errors}");
}

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GStreamer's RTSP server (crates/framewire/tests/tools/rtsp_server.py)
/// serving a live picture in `codec` on `port`; killed when dropped.
pub fn rtsp_server(port: u16, codec: &str) -> Killed {
    rtsp_server_with(port, codec, &[])
}

/// [`rtsp_server`] with more of the script's arguments (`--user N:P`).
pub fn rtsp_server_with(port: u16, codec: &str, extra: &[&str]) -> Killed {
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/rtsp_server.py");
    let mut child = Command::new(python)
        .arg(&script)
        .args([
            "--port",
            &port.to_string(),
            "--codec",
            codec,
            "--size",
            "640x360",
            "--gop",
            "15",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    if line.trim() != "ready" {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        panic!(
            "GStreamer's RTSP server did not start (scripts/setup.sh installs python3-gi, \
             gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins): {err}"
        );
    }
    Killed(child)
}

/// Runs `cmd` with a time limit; its output.
pub fn run(mut cmd: Command, limit: Duration) -> std::process::Output {
    cmd.stdin(std::process::Stdio::null());
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the client runs (scripts/setup.sh installs it)");
    let pid = child.id();
    let (done, ended) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        // Woken as soon as the client ends (the sender dropped), or killed at the limit.
        if ended.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let out = child.wait_with_output().expect("wait");
    drop(done);
    out
}

/// Decodes `n` pictures of `size` from what `input` (ffmpeg's input
/// options and `-i URL`) gives, as grey levels, one `Vec` per picture; the
/// decoder must say nothing.
pub fn decode_gray(input: &[&str], n: u32, size: (usize, usize)) -> Vec<Vec<u8>> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error"])
        .args(input)
        .args(["-frames:v", &n.to_string()])
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"]);
    let out = run(cmd, Duration::from_secs(40));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "ffmpeg {input:?}: {err}");
    let frame = size.0 * size.1;
    assert_eq!(out.stdout.len(), frame * n as usize, "{n} whole frames");
    out.stdout.chunks(frame).map(<[u8]>::to_vec).collect()
}

/// The test pattern's picture: colour bars across, so the grey levels of
/// its columns differ widely (a blank or broken picture's do not).
pub fn check_bars(pic: &[u8], (w, h): (usize, usize)) {
    let column = |x: usize| (0..h / 2).map(|y| u32::from(pic[y * w + x])).sum::<u32>() / (h as u32 / 2);
    let levels: Vec<u32> = (0..8).map(|i| column(i * w / 8 + w / 16)).collect();
    let (lo, hi) = (levels.iter().min().unwrap(), levels.iter().max().unwrap());
    assert!(hi - lo > 100, "the columns' grey levels {levels:?} are not bars");
}
