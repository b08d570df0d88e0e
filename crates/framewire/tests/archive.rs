//! The archive sink with the real ffmpeg and ffprobe: formats, bit-exact
//! FFV1, ffmpeg killed or stalled, node killed, storage limits, graceful
//! shutdown, `archive ls` and `archive export`.
//!
//! ffmpeg and ffprobe are needed: a test fails, saying so, without them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::archive::*;
use common::*;
use framewire_archive::ffmpeg::probe;
use framewire_archive::{GapRow, Index};
use framewire_codec::Registry;
use framewire_proto::control::Name;
use framewire_proto::{
    DeliveryMode, Format, Message, Origin, PixelFormat, Request, Response, StreamOpen, SubscribeParams,
};

/// Every archival format gives segments that ffprobe reads with the codec
/// asked for and the frame count in the index; a graceful stop (SIGINT)
/// closes the last one playable; `archive ls --json` and `archive export`
/// work on the result.
#[test]
fn every_format_is_playable_with_the_indexed_frame_count() {
    if !have_ffmpeg() {
        return;
    }
    let root = temp_dir("archive-formats");
    let formats = ["h264", "h265", "av1", "ffv1", "prores", "passthrough"];
    let mut args = vec![
        "--name".to_owned(),
        "test:formats".to_owned(),
        "--source".to_owned(),
        "test-pattern:cam,size=320x240,fps=10,format=mjpeg".to_owned(),
    ];
    for f in formats {
        args.push("--sink".into());
        args.push(sink("cam", &root.join(f), f, ",segment=2"));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut node = spawn_node(&argv);
    // Two segments closed by time in every archive, the third open.
    assert!(
        wait_for(Duration::from_secs(40), || formats.iter().all(|f| segments(
            &root.join(f)
        )
        .iter()
        .filter(|s| s.state == "closed")
        .count()
            >= 2)),
        "segments closed; log:\n{}",
        node.log()
    );
    stop_gracefully(&mut node, "INT");
    for f in formats {
        let dir = root.join(f);
        assert_index_matches_disk(&dir);
        let segs = segments(&dir);
        assert!(segs.len() >= 3, "{f}: {segs:?}");
        let want = framewire_archive::ArchiveFormat::from_label(f).unwrap().codec();
        for s in &segs {
            assert_eq!(s.state, "closed", "{f}: {s:?}");
            assert_eq!(s.codec, want);
            let p = probe(Path::new("ffprobe"), &dir.join(&s.path)).unwrap();
            assert_eq!(p.codec, want, "{f}: codec in the file");
            // 2 s segments at 10 fps (the last one is cut short by the stop).
            assert!(s.frames <= 22, "{f}: {} frames in a 2 s segment", s.frames);
            assert!(
                (p.duration_s - s.frames as f64 / 10.0).abs() < 0.15,
                "{f}: duration {p:?} vs {s:?}"
            );
        }
        assert!(gaps(&dir).is_empty(), "{f}: no gaps: {:?}", gaps(&dir));
        let streams = Index::open_existing(&dir).unwrap().streams().unwrap();
        assert_eq!(streams[0].origin, "ffmpeg-subprocess");
        assert_eq!(streams[0].state, "stopped");
    }

    // `archive ls --json` lists what the index holds.
    let pass = root.join("passthrough");
    let out = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["archive", "ls", "--json", "--dir"])
        .arg(&pass)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["segments"].as_array().unwrap().len(), segments(&pass).len());
    assert_eq!(v["streams"][0]["archive_format"], "passthrough");
    // Its fields are the ones docs/cli.md lists.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md")).unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `framewire archive ls"))
        .expect("archive ls in docs/cli.md");
    let want: std::collections::BTreeSet<&str> = row.split(" | ").nth(2).unwrap().split(", ").collect();
    let have: std::collections::BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(have, want, "docs/cli.md: {row}");

    // Export 2.5 s that span a segment boundary: one file, frames copied.
    let segs = segments(&pass);
    let from = segs[0].start_ns + 1_000_000_000;
    let to = from + 2_500_000_000;
    let out_file = root.join("export.mkv");
    // Something planted where the concat list once went (OUT.ffconcat, a
    // symlink to a file of the user's) is neither followed nor removed:
    // the list goes to ffmpeg on its stdin.
    let victim = root.join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let planted = root.join("export.ffconcat");
    let _ = std::fs::remove_file(&planted);
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["archive", "export", "--stream", "cam", "--dir"])
        .arg(&pass)
        .args(["--from", &format!("{:.3}", from as f64 / 1e9)])
        .args(["--to", &framewire_archive::time::rfc3339(to)])
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = probe(Path::new("ffprobe"), &out_file).unwrap();
    assert_eq!(p.codec, "mjpeg");
    assert!((23..=27).contains(&p.frames), "2.5 s at 10 fps exported: {p:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(std::fs::symlink_metadata(&planted).unwrap().file_type().is_symlink());
    // No range: everything recorded, every frame of every segment.
    let all_file = root.join("all.mkv");
    let out = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["archive", "export", "--stream", "cam", "--dir"])
        .arg(&pass)
        .arg(&all_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = probe(Path::new("ffprobe"), &all_file).unwrap();
    let recorded: u64 = segs.iter().map(|s| s.frames).sum();
    assert_eq!(p.frames, recorded, "the whole recording exported");
    // The archive's directories keep others out.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pass).unwrap().permissions().mode() & 0o007;
    assert_eq!(mode, 0, "the archive directory is not open to others");
}

/// The frames as a subscriber saw them, decoded to tight pixels.
async fn collect_frames(addr: std::net::SocketAddr, stream: &str, open: StreamOpen, n: usize) -> Vec<Vec<u8>> {
    let mut c = client(addr, "test:collect").await;
    let params = SubscribeParams {
        mode: DeliveryMode::Completeness,
        max_frames: 256,
        ..SubscribeParams::default()
    };
    subscribe(&mut c, stream, params).await;
    let mut dec = Registry::builtin().negotiate(&open).unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        match next(&mut c, Duration::from_secs(5)).await {
            Some(Message::VideoFrame(f)) => out.push(dec.decode(&f.data).unwrap().tight_bytes().to_vec()),
            Some(_) => {}
            None => panic!("no frame from {stream}"),
        }
    }
    out
}

/// Decodes every segment of an archive, in order, to `pix_fmt` frames.
fn decode_archive(dir: &Path, pix_fmt: &str, frame_size: usize) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for s in segments(dir) {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(dir.join(&s.path))
            .args(["-f", "rawvideo", "-pix_fmt", pix_fmt, "-"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout.len() % frame_size, 0);
        frames.extend(out.stdout.chunks(frame_size).map(<[u8]>::to_vec));
    }
    frames
}

/// Frames sent raw (yuv420p) and raw+zstd (bgra) come back from the FFV1
/// archive byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffv1_decodes_bit_exactly_to_what_was_sent() {
    if !have_ffmpeg() {
        return;
    }
    let root = temp_dir("archive-ffv1");
    let (yuv, bgra) = (root.join("yuv"), root.join("bgra"));
    let mut node = spawn_node(&[
        "--name",
        "test:ffv1",
        "--source",
        "test-pattern:yuv,size=320x240,fps=10,format=raw,pixel-format=yuv420p",
        "--source",
        "test-pattern:bgra,size=320x240,fps=10,format=raw-zstd,pixel-format=bgra",
        "--sink",
        &sink("yuv", &yuv, "ffv1", ",segment=2"),
        "--sink",
        &sink("bgra", &bgra, "ffv1", ",segment=2"),
    ]);
    let open = |format, pixel_format| StreamOpen {
        format,
        pixel_format,
        origin: Origin::Unspecified,
        width: 320,
        height: 240,
        fps_num: 10,
        fps_den: 1,
        name: String::new(),
        codec_config: Default::default(),
    };
    let (sent_yuv, sent_bgra) = tokio::join!(
        collect_frames(node.addr, "yuv", open(Format::Raw, PixelFormat::Yuv420p), 30),
        collect_frames(node.addr, "bgra", open(Format::RawZstd, PixelFormat::Bgra), 30),
    );
    stop_gracefully(&mut node, "TERM");
    for (dir, pix, size, sent) in [
        (&yuv, "yuv420p", 320 * 240 * 3 / 2, &sent_yuv),
        (&bgra, "bgra", 320 * 240 * 4, &sent_bgra),
    ] {
        assert_index_matches_disk(dir);
        let archived = decode_archive(dir, pix, size);
        // The subscriber and the archive started at different frames: align
        // the later start on the other's frames.
        let (a, b) = match archived.iter().position(|f| f == &sent[0]) {
            Some(k) => (&archived[k..], &sent[..]),
            None => match sent.iter().position(|f| f == &archived[0]) {
                Some(k) => (&archived[..], &sent[k..]),
                None => panic!("{pix}: no frame sent is in the archive bit for bit"),
            },
        };
        let overlap = a.len().min(b.len());
        assert!(overlap >= 20, "{pix}: {overlap} frames compared");
        for i in 0..overlap {
            assert!(a[i] == b[i], "{pix}: frame {i} differs");
        }
    }
}

/// ffmpeg SIGKILLed mid-recording: the node stays up, the cut segment is
/// repaired, recording resumes in a new segment, the gap is in the index
/// with ffmpeg's exit status. Then ffmpeg stopped (SIGSTOP): the watchdog
/// kills it after the stall timeout and recording resumes again. (The
/// timeout leaves a busy machine room to start ffmpeg: a start slower than
/// the timeout would itself count as a stall.)
#[test]
fn ffmpeg_killed_or_stalled_resumes_in_a_new_segment_with_the_gap_indexed() {
    if !have_ffmpeg() {
        return;
    }
    let dir = temp_dir("archive-ffmpeg-fail");
    let mut node = spawn_node(&[
        "--name",
        "test:ffkill",
        "--source",
        "test-pattern:cam,size=320x240,fps=10,format=raw,pixel-format=bgra",
        "--sink",
        &sink("cam", &dir, "ffv1", ",segment=60,stall-timeout=3"),
    ]);
    let node_pid = node.child.id();
    assert!(wait_for(Duration::from_secs(20), || recording_pid(&dir)
        .is_some_and(|p| children(node_pid).contains(&p))
        && segments(&dir)[0].frames >= 10));
    let first = recording_pid(&dir).unwrap();
    kill(first, "KILL");
    assert!(
        wait_for(Duration::from_secs(20), || segments(&dir).len() >= 2
            && recording_pid(&dir).is_some_and(|p| p != first)
            && segments(&dir)[0].state == "recovered"),
        "a new segment after ffmpeg was killed; log:\n{}",
        node.log()
    );
    assert!(node.log().contains("restarting into a new segment"), "{}", node.log());
    // Let the second segment take frames, then freeze its ffmpeg.
    assert!(wait_for(Duration::from_secs(20), || segments(&dir)[1].frames >= 5));
    let second = recording_pid(&dir).unwrap();
    kill(second, "STOP");
    assert!(
        wait_for(Duration::from_secs(20), || segments(&dir).len() >= 3
            && recording_pid(&dir).is_some_and(|p| p != second)),
        "a new segment after ffmpeg stalled; log:\n{}",
        node.log()
    );
    assert!(wait_for(Duration::from_secs(20), || segments(&dir)[2].frames >= 5));
    stop_gracefully(&mut node, "TERM");

    assert_index_matches_disk(&dir);
    let segs = segments(&dir);
    assert_eq!(segs.len(), 3, "{segs:?}");
    assert_eq!(segs[0].state, "recovered");
    assert_eq!(segs[1].state, "recovered");
    assert_eq!(segs[2].state, "closed", "the last one closed by the graceful stop");
    let g: Vec<GapRow> = gaps(&dir)
        .into_iter()
        .filter(|g| g.reason == "ffmpeg-restart")
        .collect();
    assert_eq!(g.len(), 2, "{g:?}");
    assert!(g[0].detail.contains("signal: 9"), "{}", g[0].detail);
    assert!(g[1].detail.contains("stopped reading"), "{}", g[1].detail);
    assert!(
        g.iter().all(|g| g.end_ns.is_some_and(|e| e >= g.start_ns)),
        "gaps closed: {g:?}"
    );
    assert_eq!(
        g[0].end_ns,
        Some(segs[1].start_ns),
        "the gap ends where recording resumed"
    );
}

/// The node SIGKILLed while recording: after a restart the index matches
/// the disk: the unfinished segment is repaired and counted, a
/// *node-restart* gap is recorded, a truncated file nobody indexed is
/// repaired and added.
#[test]
fn node_killed_then_restarted_index_matches_disk() {
    if !have_ffmpeg() {
        return;
    }
    let dir = temp_dir("archive-node-kill");
    let args = [
        "--name",
        "test:nodekill",
        "--source",
        "test-pattern:cam,size=320x240,fps=10,format=mjpeg",
        "--sink",
        &sink("cam", &dir, "passthrough", ",segment=2"),
    ];
    let mut node = spawn_node(&args);
    assert!(wait_for(Duration::from_secs(30), || {
        let s = segments(&dir);
        s.iter().any(|s| s.state == "closed") && s.iter().any(|s| s.state == "recording" && s.frames >= 5)
    }));
    node.kill();
    let unfinished = segments(&dir).into_iter().find(|s| s.state == "recording").unwrap();
    // A half-written file the index does not know (as if the node died
    // between starting ffmpeg and committing its row).
    let closed = segments(&dir).into_iter().find(|s| s.state == "closed").unwrap();
    let bytes = std::fs::read(dir.join(&closed.path)).unwrap();
    let orphan: PathBuf = dir.join(&closed.path).with_file_name(format!(
        "cam-{}.mkv",
        framewire_archive::time::compact(closed.start_ns - 10_000_000_000)
    ));
    std::fs::write(&orphan, &bytes[..bytes.len() * 2 / 3]).unwrap();

    let mut node = spawn_node(&args);
    assert!(
        node.wait_log("archive sink attached", Duration::from_secs(30)),
        "{}",
        node.log()
    );
    let segs = segments(&dir);
    let repaired = segs.iter().find(|s| s.id == unfinished.id).unwrap();
    assert_eq!(repaired.state, "recovered", "{repaired:?}");
    assert!(repaired.frames >= unfinished.frames, "{repaired:?} vs {unfinished:?}");
    let found = segs
        .iter()
        .find(|s| dir.join(&s.path) == orphan)
        .expect("the orphan is indexed");
    assert_eq!(found.state, "recovered");
    assert!(found.frames > 0 && found.frames < closed.frames, "{found:?}");
    assert!(
        gaps(&dir)
            .iter()
            .any(|g| g.reason == "node-restart" && g.start_ns == repaired.end_ns),
        "{:?}",
        gaps(&dir)
    );
    assert!(wait_for(Duration::from_secs(20), || segments(&dir).iter().any(|s| s
        .state
        == "recording"
        && s.id > unfinished.id
        && s.frames > 0)));
    stop_gracefully(&mut node, "TERM");
    assert_index_matches_disk(&dir);
    let g = gaps(&dir);
    let restart = g.iter().find(|g| g.reason == "node-restart").unwrap();
    assert!(restart.end_ns.is_some(), "closed when recording resumed: {restart:?}");
}

/// A tiny size limit: `delete-oldest` keeps recording and deletes the
/// oldest segments; `stop` closes the segment, records the gap and stops.
/// Both states show in the node's stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_limit_applies_the_configured_policy() {
    if !have_ffmpeg() {
        return;
    }
    let root = temp_dir("archive-full");
    let (del, stop) = (root.join("delete"), root.join("stop"));
    // About 60 kB per 1 s segment; 200 kB holds three or so.
    let limit = 200_000u64;
    let mut node = spawn_node(&[
        "--name",
        "test:full",
        "--source",
        "test-pattern:cam,size=320x240,fps=10,format=mjpeg",
        "--sink",
        &sink(
            "cam",
            &del,
            "passthrough",
            &format!(",segment=1,max-total-bytes={limit}"),
        ),
        "--sink",
        &sink(
            "cam",
            &stop,
            "passthrough",
            &format!(",segment=1,max-total-bytes={limit},on-full=stop"),
        ),
    ]);
    let (d2, s2) = (del.clone(), stop.clone());
    let full = tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(40), || {
            Index::open_existing(&s2)
                .and_then(|i| i.streams())
                .is_ok_and(|s| s.first().is_some_and(|s| s.state.starts_with("full")))
        }) && wait_for(Duration::from_secs(40), || {
            let first_kept = segments(&s2).first().map_or(u64::MAX, |s| s.start_ns);
            segments(&d2)
                .first()
                .is_some_and(|s| s.start_ns > first_kept.saturating_add(2_000_000_000))
        })
    })
    .await
    .unwrap();
    assert!(full, "both policies acted; log:\n{}", node.log());
    // Visible in stats, within the label refresh.
    let mut label = String::new();
    eventually_async(Duration::from_secs(5), async || {
        label = archive_peer(node.addr, &stop).await;
        label.contains("FULL").then_some(())
    })
    .await;
    assert!(label.contains("FULL"), "stop policy in stats: {label}");
    let label = archive_peer(node.addr, &del).await;
    assert!(
        label.contains("recording") && !label.contains("FULL"),
        "delete-oldest in stats: {label}"
    );
    assert!(node.log().contains("oldest segment deleted"), "{}", node.log());
    assert!(node.log().contains("archive full: recording stops"), "{}", node.log());
    let segments_at_full = segments(&stop).len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_gracefully(&mut node, "TERM");

    for d in [&del, &stop] {
        assert_index_matches_disk(d);
    }
    let total = |d: &Path| segments(d).iter().map(|s| s.bytes).sum::<u64>();
    // The limit is checked once a second and only closed segments can be
    // deleted: the open segment and those still closing (a couple under
    // load) may sit above it. Without deletion this archive would hold
    // every segment of the run, well over a megabyte.
    let largest = segments(&del).iter().map(|s| s.bytes).max().unwrap_or(0);
    assert!(
        total(&del) <= limit + 3 * largest,
        "delete-oldest stays near the limit: {} bytes, limit {limit}, largest segment {largest}",
        total(&del)
    );
    assert_eq!(
        segments(&stop).len(),
        segments_at_full,
        "stop: no segment after the limit"
    );
    let g = gaps(&stop);
    assert!(g.iter().any(|g| g.reason == "storage-full" && g.frames > 0), "{g:?}");
    assert!(
        g.iter().all(|g| g.end_ns.is_some()),
        "the stop policy's gap is closed at shutdown, not left ongoing: {g:?}"
    );
    assert!(
        gaps(&del).iter().all(|g| g.reason != "storage-full"),
        "{:?}",
        gaps(&del)
    );
}

/// ffmpeg frozen while frames keep coming: the archiver's relay output
/// overflows its small budget, and every frame it drops is in the index as
/// a *budget-drops* gap with its reason, matching the node's stats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_overflow_drops_are_counted_in_the_index() {
    if !have_ffmpeg() {
        return;
    }
    let dir = temp_dir("archive-drops");
    let mut node = spawn_node(&[
        "--name",
        "test:drops",
        "--source",
        "test-pattern:cam,size=320x240,fps=20,format=raw,pixel-format=bgra",
        "--sink",
        &sink("cam", &dir, "ffv1", ",segment=60,stall-timeout=30,max-frames=4"),
    ]);
    let d = dir.clone();
    let pid = tokio::task::spawn_blocking(move || {
        assert!(wait_for(Duration::from_secs(20), || segments(&d)
            .first()
            .is_some_and(|s| s.frames >= 5)));
        recording_pid(&d).unwrap()
    })
    .await
    .unwrap();
    kill(pid, "STOP");
    tokio::time::sleep(Duration::from_secs(2)).await;
    kill(pid, "CONT");
    let d = dir.clone();
    let recorded = tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(20), || {
            gaps(&d).iter().any(|g| g.reason == "budget-drops")
        })
    })
    .await
    .unwrap();
    assert!(recorded, "no budget-drops gap; log:\n{}", node.log());
    let label = archive_peer(node.addr, &dir).await;
    assert!(label.contains("recording"), "{label}");
    let mut c = client(node.addr, "test:stats").await;
    let Response::GetStats(st) = c
        .request(Request::GetStats(Name { name: String::new() }))
        .await
        .unwrap()
    else {
        panic!("stats")
    };
    let out = st.outputs.iter().find(|o| o.peer.contains("sink:archive")).unwrap();
    let dropped: u64 = out.drops.iter().map(|d| d.count).sum();
    assert!(
        dropped >= 10,
        "2 s frozen at 20 fps with 4 + 8 frames of room: {dropped} dropped"
    );
    stop_gracefully(&mut node, "TERM");
    let g: Vec<GapRow> = gaps(&dir).into_iter().filter(|g| g.reason == "budget-drops").collect();
    assert_eq!(
        g.iter().map(|g| g.frames).sum::<u64>(),
        dropped,
        "every drop recorded: {g:?}"
    );
    assert!(g.iter().all(|g| g.detail.starts_with("frame-budget=")), "{g:?}");
    // Drops in one burst share a row (a busy machine may make two bursts).
    assert!(g.len() <= 3, "{g:?}");
    assert_index_matches_disk(&dir);
}

/// A raw stream cannot be archived as passthrough: the sink says why and
/// the node keeps running.
#[test]
fn passthrough_of_a_raw_stream_is_refused_clearly() {
    if !have_ffmpeg() {
        return;
    }
    let dir = temp_dir("archive-refused");
    let mut node = spawn_node(&[
        "--name",
        "test:refused",
        "--source",
        "test-pattern:cam,size=64x48,fps=5,format=raw",
        "--sink",
        &sink("cam", &dir, "passthrough", ""),
    ]);
    assert!(
        node.wait_log("choose ffv1 for a lossless archive", Duration::from_secs(20)),
        "{}",
        node.log()
    );
    stop_gracefully(&mut node, "TERM");
}

/// Whether the first picture of `file` is a keyframe, by ffprobe.
fn starts_with_keyframe(file: &Path) -> bool {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1"])
        .args(["-show_entries", "frame=key_frame", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().next().map(str::trim) == Some("1")
}

/// An H.264 stream (ingested by the ffmpeg source, a keyframe every 20
/// frames at 30 fps, so 1 s segments cut by time alone would not) archived as it came (passthrough) and re-encoded
/// (FFV1): passthrough segments hold H.264 untouched, each starting at a
/// keyframe; the index matches the disk; export joins them.
#[test]
fn h264_is_archived_as_it_came_in_segments_that_start_at_keyframes() {
    let root = temp_dir("archive-h264");
    let input = root.join("in.mp4");
    let out = Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=30:duration=4")
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "20", "-bf", "0"])
        .arg(&input)
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (pass, ffv1) = (root.join("passthrough"), root.join("ffv1"));
    let source = format!("ffmpeg:cam,input={},realtime=true,loop=true", input.display());
    let mut node = spawn_node(&[
        "--name",
        "test:h264",
        "--source",
        &source,
        "--sink",
        &sink("cam", &pass, "passthrough", ",segment=1"),
        "--sink",
        &sink("cam", &ffv1, "ffv1", ",segment=1"),
    ]);
    assert!(
        wait_for(Duration::from_secs(40), || [&pass, &ffv1].iter().all(|d| segments(d)
            .iter()
            .filter(|s| s.state == "closed")
            .count()
            >= 3)),
        "segments closed; log:\n{}",
        node.log()
    );
    stop_gracefully(&mut node, "INT");
    for (dir, codec) in [(&pass, "h264"), (&ffv1, "ffv1")] {
        assert_index_matches_disk(dir);
        let segs = segments(dir);
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(s.state, "closed", "{s:?}");
            assert_eq!(s.codec, codec);
            let file = dir.join(&s.path);
            let p = probe(Path::new("ffprobe"), &file).unwrap();
            assert_eq!((p.codec.as_str(), p.frames), (codec, s.frames), "{s:?}");
            assert!(
                starts_with_keyframe(&file),
                "segment {i} of {codec} starts with a keyframe"
            );
            if codec == "h264" && i + 1 < segs.len() {
                // Cut at keyframes: whole groups of pictures.
                assert_eq!(s.frames % 20, 0, "segment {i}: {} frames", s.frames);
            }
        }
        assert!(gaps(dir).is_empty(), "{codec}: {:?}", gaps(dir));
    }
    let segs = segments(&pass);
    let out_file = root.join("export.mkv");
    let out = Command::new(env!("CARGO_BIN_EXE_framewire"))
        .args(["archive", "export", "--stream", "cam", "--dir"])
        .arg(&pass)
        .args(["--from", &format!("{:.3}", segs[0].start_ns as f64 / 1e9)])
        .args([
            "--to",
            &format!("{:.3}", segs.last().unwrap().end_ns as f64 / 1e9 + 0.1),
        ])
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = probe(Path::new("ffprobe"), &out_file).unwrap();
    let total: u64 = segs.iter().map(|s| s.frames).sum();
    assert_eq!(p.codec, "h264");
    assert!(p.frames + 2 >= total, "exported {} of {total} frames", p.frames);
}
