//! `framewire snapshot ADDR STREAM OUT`: the latest frame of a stream as a
//! JPEG picture, and `framewire shutdown ADDR`: stop a node gracefully.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use framewire_codec::{DEFAULT_JPEG_QUALITY, Registry, frame_to_jpeg};
use framewire_proto::control::{Name, Shutdown};
use framewire_proto::{Format, Request, Response};

use crate::util;

/// Save the latest frame of a stream as a JPEG picture, whatever the
/// stream's format (MJPEG as it came; raw, QOI and raw+zstd encoded here;
/// H.264 and H.265: the latest keyframe, decoded by ffmpeg).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  framewire snapshot 127.0.0.1:7400 bars bars.jpg\n  framewire snapshot lab-pi cam - > cam.jpg"
)]
pub struct Args {
    /// The node, HOST[:PORT] (default port 7400).
    addr: String,
    /// The stream's name on that node.
    stream: String,
    /// Where to write the picture; `-` writes it to standard output.
    out: PathBuf,
    /// JPEG quality when the stream is not MJPEG already (1-100).
    #[arg(long, default_value_t = DEFAULT_JPEG_QUALITY, value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
    let node = client.peer().name.clone();
    let reply = client
        .request(Request::Snapshot(Name {
            name: args.stream.clone(),
        }))
        .await
        .with_context(|| format!("{node} gave no snapshot of `{}`", args.stream))?;
    let Response::Snapshot(snap) = reply else {
        anyhow::bail!("the node answered SNAPSHOT with something else");
    };
    let snap_open = snap.open.clone();
    let (open, data, quality) = (snap.open, snap.data, args.quality);
    let (jpeg, open) = if open.format == Format::H265 {
        // The node sends the stream's latest keyframe; ffmpeg decodes it
        // (H.264 is decoded here, below).
        let jpeg = tokio::task::spawn_blocking(move || decode_with_ffmpeg(open.format, &data, quality))
            .await
            .context("the decoder stopped")?
            .with_context(|| format!("keyframe #{} of `{}`", snap.sequence, args.stream))?;
        (bytes::Bytes::from(jpeg), snap_open)
    } else {
        let jpeg = tokio::task::spawn_blocking(move || {
            frame_to_jpeg(&Registry::builtin(), &open, &data, quality).map(|j| (j, open))
        })
        .await
        .context("the encoder stopped")?;
        jpeg.with_context(|| format!("frame #{} of `{}`", snap.sequence, args.stream))?
    };
    if args.out == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(&jpeg)
            .and_then(|()| out.flush())
            .context("cannot write to standard output")?;
        return Ok(());
    }
    write_atomically(&args.out, &jpeg)?;
    println!(
        "{} frame #{} of {node}/{} ({} {}x{}) -> {}, {} bytes",
        if open.format == framewire_proto::Format::Mjpeg {
            "saved"
        } else {
            "encoded"
        },
        snap.sequence,
        args.stream,
        open.format,
        open.width,
        open.height,
        args.out.display(),
        jpeg.len()
    );
    Ok(())
}

/// One H.265 access unit (a keyframe with its parameter sets) as a JPEG,
/// decoded by ffmpeg.
fn decode_with_ffmpeg(format: Format, unit: &[u8], quality: u8) -> anyhow::Result<Vec<u8>> {
    use std::process::{Command, Stdio};
    let demuxer = if format == Format::H264 { "h264" } else { "hevc" };
    // JPEG quality 1-100 as ffmpeg's -q:v (2 best, 31 worst).
    let q = (31 - u32::from(quality) * 29 / 100).clamp(2, 31);
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", demuxer, "-i", "pipe:0"])
        .args(["-frames:v", "1", "-q:v", &q.to_string(), "-f", "mjpeg", "pipe:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("a snapshot of H.265 is decoded by ffmpeg, which does not run here: install ffmpeg")?;
    let mut stdin = child.stdin.take().context("ffmpeg's input")?;
    let data = unit.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().context("ffmpeg")?;
    let _ = writer.join();
    if !out.status.success() || out.stdout.is_empty() {
        anyhow::bail!(
            "ffmpeg could not decode it: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Writes next to `path` and renames: a reader never sees half a picture,
/// and a failed write leaves what was there.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".part");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Stop a node: its sinks finish what they write (archives close their
/// segments), its connections close, the process exits 0.
#[derive(Debug, clap::Args)]
pub struct ShutdownArgs {
    /// The node, HOST[:PORT] (default port 7400).
    addr: String,
    /// How long in-flight frames may take, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    grace_ms: u32,
    /// Return once the node accepted, without waiting for it to close.
    #[arg(long)]
    no_wait: bool,
}

pub async fn run_shutdown(args: ShutdownArgs) -> anyhow::Result<()> {
    let mut client = util::connect(&args.addr, Duration::from_secs(5)).await?;
    let node = client.peer().name.clone();
    client
        .request(Request::Shutdown(Shutdown {
            grace_ms: args.grace_ms,
        }))
        .await?;
    if args.no_wait {
        println!("{node} is shutting down");
        return Ok(());
    }
    // The node closes every connection when it has stopped.
    let wait = Duration::from_millis(u64::from(args.grace_ms)) + Duration::from_secs(10);
    let closed = tokio::time::timeout(wait, async { while let Ok(Some(_)) = client.next_message().await {} }).await;
    match closed {
        Ok(()) => {
            println!("{node} stopped");
            Ok(())
        }
        Err(_) => anyhow::bail!("{node} accepted SHUTDOWN but still holds the connection after {wait:?}"),
    }
}
