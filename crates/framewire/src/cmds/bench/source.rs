//! `framewire bench source` (internal): a node serving a replayed stream of
//! prepared frames: the JPEGs of an `.mjpeg` file, or fixed-size raw frames.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use framewire_media::jpeg_split;
use framewire_net::{Node, NodeConfig, ReplayConfig, SourceConfig};
use framewire_proto::{Format, Origin, PixelFormat, StreamOpen};

/// A source node replaying prepared frames (used by `bench relay`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Stream name.
    #[arg(long)]
    stream: String,
    /// The frames: an `.mjpeg` file, or raw frames back to back.
    #[arg(long)]
    file: PathBuf,
    /// Size of one raw frame in bytes; 0: the file holds JPEGs.
    #[arg(long, default_value_t = 0)]
    raw_frame_size: usize,
    /// Pixel format of raw frames (yuv420p, bgra).
    #[arg(long, default_value = "yuv420p")]
    pixel_format: String,
    /// Picture width.
    #[arg(long, default_value_t = 1920)]
    width: u32,
    /// Picture height.
    #[arg(long, default_value_t = 1080)]
    height: u32,
    /// Frames per second; 0: as fast as the fastest subscriber takes them.
    #[arg(long, default_value_t = 0.0)]
    fps: f64,
    /// Exit after this many seconds at the latest.
    #[arg(long, default_value_t = 600.0)]
    max_seconds: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let data = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let (format, pixel_format, frames) = match data.len().checked_div(args.raw_frame_size) {
        None => {
            let (frames, _) = jpeg_split::split_all(&data, jpeg_split::DEFAULT_MAX_IMAGE);
            (Format::Mjpeg, PixelFormat::None, frames)
        }
        Some(n) => {
            let pf = PixelFormat::from_label(&args.pixel_format)
                .with_context(|| format!("unknown pixel format `{}`", args.pixel_format))?;
            let size = args.raw_frame_size;
            let all = Bytes::from(data);
            let frames = (0..n).map(|i| all.slice(i * size..(i + 1) * size)).collect();
            (Format::Raw, pf, frames)
        }
    };
    if frames.is_empty() {
        bail!("{} holds no frame", args.file.display());
    }
    let mut cfg = NodeConfig::new("bench:source", args.listen);
    cfg.sources.push(SourceConfig::from(ReplayConfig {
        open: StreamOpen {
            format,
            pixel_format,
            origin: Origin::Unspecified,
            width: args.width,
            height: args.height,
            fps_num: (args.fps * 1000.0).round().clamp(0.0, 1e8) as u32,
            fps_den: 1000,
            name: args.stream.clone(),
            codec_config: Default::default(),
        },
        frames,
        fps: args.fps,
        looped: true,
    }));
    // Subscribers (`bench sub`) authenticate with the same --key-file.
    cfg.key = crate::util::key()?;
    // And over TLS with the global --tls-* flags (`bench relay --tls`).
    cfg.tls = crate::util::node_tls()?;
    let node = Node::start(cfg).await.context("cannot start the source node")?;
    let mut shutdown = node.shutdown_signal();
    tokio::select! {
        () = crate::cmds::node::wait_for_stop(&mut shutdown) => {}
        () = tokio::time::sleep(Duration::from_secs_f64(args.max_seconds.max(1.0))) => {}
    }
    node.shutdown().await;
    Ok(())
}
