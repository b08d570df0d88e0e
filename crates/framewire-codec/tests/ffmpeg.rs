//! Interop: files our encoders write are decoded by the real ffmpeg, and
//! our YUV conversions agree with ffmpeg's. They fail, saying so, when
//! ffmpeg is not installed.
// With some codec features off, helpers for them go unused.
#![cfg_attr(not(all(feature = "jpeg", feature = "qoi", feature = "zstd")), allow(unused))]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use framewire_codec::{EncodeSpec, PixelBuffer, PixelLayout, Registry, testkit};
use framewire_proto::PixelFormat;

const TIMEOUT: Duration = Duration::from_secs(60);

fn tool(name: &str) -> bool {
    let ok = Command::new(name)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{name} is needed by these tests (scripts/setup.sh installs it)");
    ok
}

/// Runs a command with a deadline and returns its stdout; panics with its
/// stderr when it fails.
fn run(cmd: &mut Command) -> Vec<u8> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} took longer than {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "{cmd:?} failed: {err}");
    reader.join().expect("reader").expect("read stdout")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("framewire-codec-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ffmpeg_to(path: &Path, pix_fmt: &str) -> Vec<u8> {
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]))
}

fn ffprobe(path: &Path) -> String {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path));
    String::from_utf8_lossy(&out).trim().to_owned()
}

#[cfg(feature = "jpeg")]
#[test]
fn ffmpeg_decodes_our_jpeg() {
    if !tool("ffmpeg") || !tool("ffprobe") {
        return;
    }
    let dir = TempDir::new("jpeg");
    let src = testkit::natural(320, 240, 21);
    let mut enc = Registry::builtin().encoder(&EncodeSpec::mjpeg(85)).unwrap();
    let path = dir.file("frame.jpg", &enc.encode(&src).unwrap());
    assert_eq!(ffprobe(&path), "mjpeg,320,240");
    let theirs = PixelBuffer::new(PixelLayout::Rgba, 320, 240, ffmpeg_to(&path, "rgba")).unwrap();
    let db = testkit::psnr(&src, &theirs).unwrap();
    eprintln!("ffmpeg decode of our q85 JPEG: {db:.2} dB");
    assert!(db > 35.0, "{db:.2} dB");
}

#[cfg(feature = "qoi")]
#[test]
fn ffmpeg_decodes_our_qoi_exactly_with_the_right_colours() {
    if !tool("ffmpeg") || !tool("ffprobe") {
        return;
    }
    let dir = TempDir::new("qoi");
    let mut enc = Registry::builtin().encoder(&EncodeSpec::qoi()).unwrap();
    // BGRA source, with alpha that varies, so a channel mix-up shows.
    let mut bgra = testkit::screen_like(320, 240, 22).data().to_vec();
    for (i, p) in bgra.chunks_exact_mut(4).enumerate() {
        p[3] = (i % 251) as u8;
    }
    let src = PixelBuffer::new(PixelLayout::Bgra, 320, 240, bgra).unwrap();
    let path = dir.file("frame.qoi", &enc.encode(&src).unwrap());
    assert_eq!(ffprobe(&path), "qoi,320,240");
    let theirs = ffmpeg_to(&path, "rgba");
    let ours = src.convert(PixelLayout::Rgba).unwrap();
    assert!(theirs == ours.data()[..], "ffmpeg's RGBA differs from our source");
    // A BGR source becomes an RGB QOI.
    let bgr = testkit::natural(64, 32, 2).convert(PixelLayout::Bgr).unwrap();
    let path = dir.file("rgb.qoi", &enc.encode(&bgr).unwrap());
    assert!(ffmpeg_to(&path, "rgb24") == bgr.convert(PixelLayout::Rgb).unwrap().data()[..]);
}

/// Our raw YUV payloads, read by ffmpeg as rawvideo, give the colours our
/// own conversion gives (BT.601 limited range is ffmpeg's default too).
#[test]
fn ffmpeg_reads_our_raw_yuv_with_the_same_colours() {
    if !tool("ffmpeg") {
        return;
    }
    let dir = TempDir::new("yuv");
    let src = testkit::natural(320, 240, 23);
    for (pf, name) in [
        (PixelFormat::Yuv420p, "yuv420p"),
        (PixelFormat::Yuv422Packed, "yuyv422"),
    ] {
        let mut enc = Registry::builtin().encoder(&EncodeSpec::raw(pf)).unwrap();
        let payload = enc.encode(&src).unwrap();
        let path = dir.file(&format!("frame.{name}"), &payload);
        let theirs = run(Command::new("ffmpeg")
            .args([
                "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", name, "-s", "320x240", "-i",
            ])
            .arg(&path)
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]));
        let theirs = PixelBuffer::new(PixelLayout::Rgb, 320, 240, theirs).unwrap();
        let ours = PixelBuffer::new(PixelLayout::from_wire(pf).unwrap(), 320, 240, payload)
            .unwrap()
            .convert(PixelLayout::Rgb)
            .unwrap();
        let db = testkit::psnr(&ours, &theirs).unwrap();
        eprintln!("{name}: our RGB vs ffmpeg's RGB {db:.2} dB");
        assert!(db > 40.0, "{name}: {db:.2} dB");
        // And the source survives the trip through ffmpeg's conversion.
        assert!(testkit::psnr(&src, &theirs).unwrap() > 35.0);
    }
}
