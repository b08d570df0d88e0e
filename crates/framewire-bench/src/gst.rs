//! The GStreamer relay the benchmark compares against, with the topology of
//! the peer baseline script (`gst-relay.sh`):
//!
//! ```text
//! source:   <frames> ! gdppay ! tcpclientsink port=P0 sync=false
//! relay:    tcpserversrc port=P0 ! gdpdepay ! tee name=t
//!             t. ! queue ! gdppay ! tcpserversink port=Pi sync=false     (one branch per output)
//! consumer: tcpclientsrc port=Pi ! gdpdepay ! fpsdisplaysink video-sink=fakesink sync=false
//! ```
//!
//! The MJPEG source is `multifilesrc loop=true` over the same JPEG files
//! framewire replays; the raw source is one picture repeated
//! (`videotestsrc num-buffers=1 ! imagefreeze`). Consumers run with `-v`;
//! their `fpsdisplaysink` prints `rendered: N` once a second, and a
//! consumer's rate is the growth of N between the first and last report
//! inside the measured window, over the time between those reports.

use std::path::Path;
use std::process::Command;

use crate::frames::{Kind, Workload};
use crate::procs::{self, Capture, Proc};

/// The program.
pub(crate) const GST_LAUNCH: &str = "gst-launch-1.0";

/// The GStreamer version line, when `gst-launch-1.0` runs and has the
/// elements the relay needs.
pub(crate) fn version() -> Option<String> {
    let out = Command::new(GST_LAUNCH).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let inspect = Command::new("gst-inspect-1.0").arg("gdppay").output().ok()?;
    if !inspect.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).lines().nth(1).map(str::to_owned)
}

fn caps(w: &Workload) -> String {
    let (width, height) = w.size;
    match w.kind {
        Kind::Mjpeg => format!("image/jpeg,width={width},height={height},framerate=30/1"),
        Kind::RawI420 => format!("video/x-raw,format=I420,width={width},height={height},framerate=30/1"),
        Kind::RawBgra => format!("video/x-raw,format=BGRA,width={width},height={height},framerate=30/1"),
    }
}

/// The source pipeline, sending to `port`.
pub(crate) fn source_pipeline(w: &Workload, port: u16) -> String {
    let sink = format!("gdppay ! tcpclientsink host=127.0.0.1 port={port} sync=false");
    match (&w.jpg_dir, w.kind) {
        (Some(dir), Kind::Mjpeg) => format!(
            "multifilesrc location={}/f%05d.jpg loop=true ! {} ! {sink}",
            dir.display(),
            caps(w)
        ),
        _ => format!(
            "videotestsrc is-live=false pattern=smpte num-buffers=1 ! {} ! imagefreeze ! {sink}",
            caps(w)
        ),
    }
}

/// The relay pipeline: input on `input`, one output branch per port.
pub(crate) fn relay_pipeline(input: u16, outputs: &[u16]) -> String {
    let mut p = format!("tcpserversrc host=127.0.0.1 port={input} ! gdpdepay ! tee name=t");
    for port in outputs {
        p.push_str(&format!(
            " t. ! queue ! gdppay ! tcpserversink host=127.0.0.1 port={port} sync=false"
        ));
    }
    p
}

/// A consumer pipeline reading `port`.
pub(crate) fn consumer_pipeline(port: u16) -> String {
    format!(
        "tcpclientsrc host=127.0.0.1 port={port} ! gdpdepay ! fpsdisplaysink video-sink=fakesink \
         text-overlay=false sync=false fps-update-interval=1000"
    )
}

/// Starts `gst-launch-1.0` with a pipeline (split on spaces; no quoting).
pub(crate) fn launch(label: &str, pipeline: &str, verbose: bool, capture: Capture, log: &Path) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(GST_LAUNCH);
    cmd.arg(if verbose { "-v" } else { "-q" });
    cmd.args(pipeline.split_whitespace());
    procs::spawn(label, &mut cmd, capture, Some(log))
}

/// Frames per second from `fpsdisplaysink` reports `(arrival ns, line)`
/// inside `[start, end]`: growth of `rendered` over the time between the
/// first and the last report. None with fewer than two reports.
pub(crate) fn rate(lines: &[(u64, String)], start: u64, end: u64) -> Option<f64> {
    let pts: Vec<(u64, u64)> = lines
        .iter()
        .filter(|(t, _)| (start..=end).contains(t))
        .filter_map(|(t, l)| {
            let n = l
                .split("rendered:")
                .nth(1)?
                .split(',')
                .next()?
                .trim()
                .parse::<u64>()
                .ok()?;
            Some((*t, n))
        })
        .collect();
    let (first, last) = (pts.first()?, pts.last()?);
    if last.0 <= first.0 {
        return None;
    }
    Some(last.1.saturating_sub(first.1) as f64 / ((last.0 - first.0) as f64 / 1e9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_from_reports() {
        let l = |t: u64, n: u64| {
            (
                t * 1_000_000_000,
                format!(
                    "/GstPipeline:pipeline0/GstFPSDisplaySink:fpsdisplaysink0: last-message = rendered: {n}, dropped: 0, current: 1.0, average: 1.0"
                ),
            )
        };
        let lines = vec![l(1, 10), l(2, 110), l(3, 230), l(4, 330)];
        assert_eq!(rate(&lines, 2_000_000_000, 4_000_000_000), Some(110.0));
        assert_eq!(rate(&lines[..1], 0, u64::MAX), None);
    }
}
