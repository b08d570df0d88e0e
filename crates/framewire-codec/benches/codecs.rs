//! 1920x1080 encode and decode per codec on screen-like and camera-like
//! frames, and MJPEG encode against `ffmpeg -c:v mjpeg` on the same frames.
//!
//! `cargo bench -p framewire-codec --bench codecs` first prints a summary
//! table (ms per frame, compression ratio, throughput; then ours vs ffmpeg),
//! then runs divan for the detailed timings.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use divan::Bencher;
use divan::counter::BytesCount;
use framewire_codec::{EncodeSpec, PixelBuffer, Registry, testkit};
use framewire_proto::PixelFormat;

const W: u32 = 1920;
const H: u32 = 1080;
const JPEG_QUALITY: u8 = 85;
/// ffmpeg's `-q:v` for the comparison; chosen because its files come out
/// the size of ours at quality 85 (both printed, so this can be checked).
const FFMPEG_QSCALE: u32 = 2;

fn frames() -> &'static [(&'static str, PixelBuffer); 2] {
    static FRAMES: OnceLock<[(&str, PixelBuffer); 2]> = OnceLock::new();
    FRAMES.get_or_init(|| {
        [
            ("screen", testkit::screen_like(W, H, 1)),
            ("camera", testkit::camera_like(W, H, 2)),
        ]
    })
}

fn specs() -> Vec<(&'static str, EncodeSpec)> {
    let mut v = Vec::new();
    if cfg!(feature = "jpeg") {
        v.push(("mjpeg-q85", EncodeSpec::mjpeg(JPEG_QUALITY)));
    }
    if cfg!(feature = "qoi") {
        v.push(("qoi", EncodeSpec::qoi()));
    }
    if cfg!(feature = "zstd") {
        v.push(("zstd-1", EncodeSpec::raw_zstd(PixelFormat::Bgra, 1)));
    }
    v.push(("raw", EncodeSpec::raw(PixelFormat::Bgra)));
    v
}

fn spec(name: &str) -> EncodeSpec {
    specs()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
        .expect("known codec")
}

/// Mean time of `f` over enough runs to fill about half a second.
fn time_per_call(mut f: impl FnMut()) -> Duration {
    f();
    let t0 = Instant::now();
    let mut n = 0u32;
    while t0.elapsed() < Duration::from_millis(500) || n < 5 {
        f();
        n += 1;
    }
    t0.elapsed() / n
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary() {
    let registry = Registry::builtin();
    println!(
        "\n| codec | content | encode ms/frame | decode ms/frame | size bytes | ratio | encode MB/s | decode MB/s |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (codec, spec) in specs() {
        for (content, frame) in frames() {
            let mut enc = registry.encoder(&spec).expect("encoder");
            let payload = enc.encode(frame).expect("encode");
            let mut dec = registry
                .negotiate(&enc.stream_open(W, H, 30, 1, "bench"))
                .expect("decoder");
            let te = time_per_call(|| {
                divan::black_box(enc.encode(frame).expect("encode"));
            });
            let td = time_per_call(|| {
                divan::black_box(dec.decode(&payload).expect("decode"));
            });
            let raw = frame.frame_size() as f64;
            // Raw shares the frame's bytes: no per-byte work to rate.
            let rate = |t: Duration| {
                if t < Duration::from_micros(1) {
                    "shared".to_owned()
                } else {
                    format!("{:.0}", raw / t.as_secs_f64() / 1e6)
                }
            };
            println!(
                "| {codec} | {content} | {:.2} | {:.2} | {} | {:.2}:1 | {} | {} |",
                ms(te),
                ms(td),
                payload.len(),
                raw / payload.len() as f64,
                rate(te),
                rate(td),
            );
        }
    }
    if cfg!(feature = "jpeg") {
        ffmpeg_comparison(&registry);
    }
}

/// Runs ffmpeg over `frames` copies of `frame` (BGRA) and returns wall time
/// and output bytes.
fn ffmpeg_run(
    input: &std::path::Path,
    output: &std::path::Path,
    count: usize,
    threads: &str,
) -> Option<(Duration, u64)> {
    let t0 = Instant::now();
    let status = Command::new("ffmpeg")
        .args([
            "-nostdin", "-v", "error", "-y", "-threads", threads, "-f", "rawvideo", "-pix_fmt", "bgra",
        ])
        .args(["-s", &format!("{W}x{H}"), "-i"])
        .arg(input)
        .args(["-frames:v", &count.to_string(), "-threads", threads, "-c:v", "mjpeg"])
        .args(["-q:v", &FFMPEG_QSCALE.to_string(), "-f", "mjpeg"])
        .arg(output)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .ok()?;
    let elapsed = t0.elapsed();
    status
        .success()
        .then(|| (elapsed, std::fs::metadata(output).map(|m| m.len()).unwrap_or(0)))
}

fn ffmpeg_comparison(registry: &Registry) {
    const N: usize = 60;
    let have = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        println!("\nMJPEG vs ffmpeg: skipped: ffmpeg not found");
        return;
    }
    println!(
        "\nMJPEG encode, 1920x1080 BGRA in: ours (libjpeg-turbo q{JPEG_QUALITY} 4:2:0) vs `ffmpeg -c:v mjpeg -q:v {FFMPEG_QSCALE}` \
         ({N} frames from a raw file; ffmpeg per-frame time = (t({N}) - t(1)) / {}, so its start-up is not counted)",
        N - 1
    );
    println!(
        "\n| content | ours ms/frame | ours bytes/frame | ffmpeg 1 thread ms/frame | ffmpeg auto threads ms/frame | ffmpeg bytes/frame | ffmpeg 1 thread / ours |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let dir = std::env::temp_dir().join(format!("framewire-codec-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for (content, frame) in frames() {
        let input = dir.join(format!("{content}.bgra"));
        let output = dir.join(format!("{content}.mjpeg"));
        {
            let mut f = std::fs::File::create(&input).expect("temp file");
            for _ in 0..N {
                f.write_all(&frame.tight_bytes()).expect("write frames");
            }
        }
        let mut enc = registry.encoder(&EncodeSpec::mjpeg(JPEG_QUALITY)).expect("encoder");
        let ours_size = enc.encode(frame).expect("encode").len();
        let ours = time_per_call(|| {
            divan::black_box(enc.encode(frame).expect("encode"));
        });
        let per_frame = |threads: &str| -> Option<(Duration, u64)> {
            // Warm the page cache, then take the best of three of each.
            ffmpeg_run(&input, &output, N, threads)?;
            let best = |count| (0..3).filter_map(|_| ffmpeg_run(&input, &output, count, threads)).min();
            let (t_n, bytes) = best(N)?;
            let (t_1, _) = best(1)?;
            Some((t_n.saturating_sub(t_1) / (N as u32 - 1), bytes / N as u64))
        };
        match (per_frame("1"), per_frame("0")) {
            (Some((one, bytes)), Some((auto, _))) => println!(
                "| {content} | {:.2} | {ours_size} | {:.2} | {:.2} | {bytes} | {:.2}x |",
                ms(ours),
                ms(one),
                ms(auto),
                one.as_secs_f64() / ours.as_secs_f64()
            ),
            _ => println!("| {content} | {:.2} | {ours_size} | ffmpeg failed | | | |", ms(ours)),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` and divan's listing: no summary.
        divan::main();
        return;
    }
    summary();
    println!();
    divan::main();
}

// CONTENT: 0 = screen-like, 1 = camera-like.
#[divan::bench(args = ["mjpeg-q85", "qoi", "zstd-1", "raw"], consts = [0, 1])]
fn encode<const CONTENT: usize>(bencher: Bencher<'_, '_>, codec: &str) {
    let Some(_) = specs().iter().find(|(n, _)| *n == codec) else {
        return;
    };
    let (_, frame) = &frames()[CONTENT];
    let mut enc = Registry::builtin().encoder(&spec(codec)).expect("encoder");
    bencher
        .counter(BytesCount::new(frame.frame_size()))
        .bench_local(|| enc.encode(frame).expect("encode"));
}

#[divan::bench(args = ["mjpeg-q85", "qoi", "zstd-1", "raw"], consts = [0, 1])]
fn decode<const CONTENT: usize>(bencher: Bencher<'_, '_>, codec: &str) {
    let Some(_) = specs().iter().find(|(n, _)| *n == codec) else {
        return;
    };
    let (_, frame) = &frames()[CONTENT];
    let registry = Registry::builtin();
    let mut enc = registry.encoder(&spec(codec)).expect("encoder");
    let payload: Bytes = enc.encode(frame).expect("encode");
    let mut dec = registry
        .negotiate(&enc.stream_open(W, H, 30, 1, "bench"))
        .expect("decoder");
    bencher
        .counter(BytesCount::new(frame.frame_size()))
        .bench_local(|| dec.decode(&payload).expect("decode"));
}
