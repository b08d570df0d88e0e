//! The archive when its storage or its ffmpeg fails: a disk that fills
//! up (a small tmpfs) without a storage policy and with each policy,
//! ffmpeg killed in the
//! middle of a segment. Every frame the archiver was offered must be in
//! the index, in a segment or in a gap: they are counted against the
//! node's stats.
//!
//! The full disk is a 24 MiB tmpfs mounted for the test (root is needed
//! to mount it; the test fails, saying so, without).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::archive::*;
use common::tmpfs::Tmpfs;
use common::*;
use framewire_archive::GapRow;

/// Fills the file system of `dir` to the last byte; the filler's path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5a_u8; 64 << 10];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    // What is left is less than a chunk: take it byte by byte.
    for _ in 0..(64 << 10) {
        if f.write_all(&[0x5a]).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
    path
}

/// Free bytes of the file system of `dir`.
fn free(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the free bytes")
}

/// Fills the file system of `dir` until about `leave` bytes are free.
fn fill_to(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5a_u8; 64 << 10];
    while free(dir) > leave + chunk.len() as u64 {
        f.write_all(&chunk).unwrap();
        f.flush().unwrap();
    }
    path
}

/// The archive output of the node at `addr`, once nothing waits in it:
/// the frames it was offered (sent + dropped).
async fn drained_output(addr: std::net::SocketAddr) -> u64 {
    let mut last = None;
    let drained = eventually_async(Duration::from_secs(20), async || {
        let s = stats(addr).await;
        let o = s
            .outputs
            .into_iter()
            .find(|o| o.peer.contains("sink:archive"))
            .expect("the archive output");
        let frames = (o.queue_frames == 0).then_some(o.frames_in);
        last = Some(o);
        frames
    })
    .await;
    drained.unwrap_or_else(|| panic!("the archive output never drained: {last:?}"))
}

/// The archive peer's label once it shows `state`, within `timeout` (or
/// the last one seen).
async fn label_once(addr: std::net::SocketAddr, dir: &Path, state: &str, timeout: Duration) -> String {
    let mut label = String::new();
    eventually_async(timeout, async || {
        label = archive_peer(addr, dir).await;
        label.contains(state).then_some(())
    })
    .await;
    label
}

/// Waits until the index has a segment with frames after the storage-full
/// gap (closed, once recording resumed).
async fn recorded_after_the_outage(dir: &Path) -> bool {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(20), || {
            let Some(end) = gaps(&dir)
                .iter()
                .find(|g| g.reason == "storage-full")
                .and_then(|g| g.end_ns)
            else {
                return false;
            };
            segments(&dir).iter().any(|s| s.start_ns >= end && s.frames > 0)
        })
    })
    .await
    .unwrap()
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Segments + gaps = frames offered, and every gap is closed.
fn assert_every_frame_accounted(dir: &Path, offered: u64) -> Vec<GapRow> {
    let segs = segments(dir);
    let g = gaps(dir);
    let in_segments: u64 = segs.iter().map(|s| s.frames).sum();
    let in_gaps: u64 = g.iter().map(|g| g.frames).sum();
    assert_eq!(
        in_segments + in_gaps,
        offered,
        "frames offered = frames in segments ({in_segments}) + frames in gaps ({in_gaps})\nsegments: {segs:#?}\ngaps: {g:#?}"
    );
    assert!(g.iter().all(|g| g.end_ns.is_some()), "no gap left open: {g:#?}");
    g
}

/// No storage policy, and the disk fills up: the archive enters
/// *storage-failed* (in stats), says so once, keeps counting, resumes by
/// itself when space comes back, and the index holds one storage-full gap
/// with the frames that were not written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_state_one_gap_and_recording_resumes() {
    have_ffmpeg();
    let fs = Tmpfs::mount("archive-fullfs", 24);
    let dir = fs.0.join("archive");
    let mut source = spawn_node(&[
        "--name",
        "test:cam",
        "--source",
        "test-pattern:cam,size=320x240,fps=25,format=mjpeg",
    ]);
    let up = format!("{}/cam", source.addr);
    let mut archive = spawn_node(&[
        "--name",
        "test:archive",
        "--upstream",
        &up,
        "--sink",
        &sink("cam", &dir, "passthrough", ",segment=2"),
    ]);
    let d = dir.clone();
    let started = tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(20), || {
            segments(&d).iter().map(|s| s.frames).sum::<u64>() >= 60
        })
    })
    .await
    .unwrap();
    assert!(started, "recording started; log:\n{}", archive.log());

    let filler = fill(&fs.0);
    let label = label_once(archive.addr, &dir, "STORAGE FAILED", Duration::from_secs(10)).await;
    assert!(
        label.contains("STORAGE FAILED"),
        "the state shows in stats: {label}\n{}",
        archive.log()
    );
    // Frames keep coming for a while: counted, not logged one by one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = archive.log();
    assert_eq!(count(&log, "archive storage failed"), 1, "said once:\n{log}");
    assert_eq!(count(&log, "cannot record a gap"), 0, "{log}");
    assert!(count(&log, "ERROR") <= 3, "a few error lines, not a flood:\n{log}");

    std::fs::remove_file(&filler).unwrap();
    let label = label_once(archive.addr, &dir, "[recording", Duration::from_secs(40)).await;
    assert!(
        label.contains("[recording"),
        "recording resumed by itself: {label}\n{}",
        archive.log()
    );
    assert!(
        archive.log().contains("archive storage works again"),
        "{}",
        archive.log()
    );
    assert!(
        recorded_after_the_outage(&dir).await,
        "nothing recorded after the outage; log:\n{}",
        archive.log()
    );

    // Stop the source, let the archiver take what is queued, count.
    stop_gracefully(&mut source, "TERM");
    let offered = drained_output(archive.addr).await;
    stop_gracefully(&mut archive, "TERM");

    assert_index_matches_disk(&dir);
    let g = assert_every_frame_accounted(&dir, offered);
    let full: Vec<&GapRow> = g.iter().filter(|g| g.reason == "storage-full").collect();
    assert_eq!(full.len(), 1, "one gap for the outage: {g:#?}");
    assert!(
        full[0].frames >= 25,
        "3 s and more at 25 fps not written: {:?}",
        full[0]
    );
    let span = full[0].end_ns.unwrap() - full[0].start_ns;
    assert!(span >= 3_000_000_000, "the gap spans the outage: {:?}", full[0]);
    let segs = segments(&dir);
    assert!(
        segs.iter()
            .any(|s| s.start_ns >= full[0].end_ns.unwrap() && s.frames > 0),
        "a segment after the outage: {segs:#?}"
    );
    assert!(segs.iter().all(|s| s.state != "recording"), "{segs:#?}");
    assert!(
        !dir.join(framewire_archive::RESERVE_FILE).exists(),
        "the reserve is given back when the archiver stops"
    );
}

/// ffmpeg SIGKILLed in the middle of a segment: the frames it had taken
/// but not written, and those that came while it restarted, are one gap
/// with their count, starting where the repaired file ends, and its
/// detail says how ffmpeg ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_killed_mid_segment_loses_only_what_its_gap_counts() {
    have_ffmpeg();
    let dir = temp_dir("archive-ffkill-count");
    let mut source = spawn_node(&[
        "--name",
        "test:cam",
        "--source",
        "test-pattern:cam,size=320x240,fps=25,format=raw,pixel-format=bgra",
    ]);
    let up = format!("{}/cam", source.addr);
    let mut archive = spawn_node(&[
        "--name",
        "test:archive",
        "--upstream",
        &up,
        "--sink",
        &sink("cam", &dir, "ffv1", ",segment=60"),
    ]);
    let node_pid = archive.child.id();
    let d = dir.clone();
    let first = tokio::task::spawn_blocking(move || {
        assert!(wait_for(Duration::from_secs(20), || recording_pid(&d)
            .is_some_and(|p| children(node_pid).contains(&p))
            && segments(&d)[0].frames >= 25));
        recording_pid(&d).unwrap()
    })
    .await
    .unwrap();
    kill(first, "KILL");
    let d = dir.clone();
    let restarted = tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(20), || {
            segments(&d).len() >= 2 && segments(&d)[1].frames >= 25 && segments(&d)[0].state == "recovered"
        })
    })
    .await
    .unwrap();
    assert!(restarted, "a new segment; log:\n{}", archive.log());
    stop_gracefully(&mut source, "TERM");
    let offered = drained_output(archive.addr).await;
    stop_gracefully(&mut archive, "TERM");

    assert_index_matches_disk(&dir);
    let g = assert_every_frame_accounted(&dir, offered);
    let restart: Vec<&GapRow> = g.iter().filter(|g| g.reason == "ffmpeg-restart").collect();
    assert_eq!(restart.len(), 1, "{g:#?}");
    let (gap, segs) = (restart[0], segments(&dir));
    assert!(gap.frames > 0, "{gap:?}");
    assert!(gap.detail.contains("signal: 9"), "{}", gap.detail);
    assert!(
        !gap.detail.contains("swscaler"),
        "the reason, not warnings: {}",
        gap.detail
    );
    assert!(
        gap.start_ns <= segs[0].end_ns,
        "the gap starts where the file ends: {gap:?} {:?}",
        segs[0]
    );
    assert_eq!(gap.end_ns, Some(segs[1].start_ns), "and ends where recording resumed");
}

/// A storage policy on a file system filled by someone else: with
/// `on-full=stop`, the free-space floor stops recording before the disk
/// is full (FULL in stats, said once), the outage is one storage-full gap
/// counting every frame not written, and recording resumes when space
/// comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_with_on_full_stop_is_one_counted_gap() {
    have_ffmpeg();
    let fs = Tmpfs::mount("archive-fullfs-stop", 24);
    let dir = fs.0.join("archive");
    let mut source = spawn_node(&[
        "--name",
        "test:cam",
        "--source",
        "test-pattern:cam,size=320x240,fps=25,format=mjpeg",
    ]);
    let up = format!("{}/cam", source.addr);
    let floor = 6u64 << 20;
    let mut archive = spawn_node(&[
        "--name",
        "test:archive",
        "--upstream",
        &up,
        "--sink",
        &sink(
            "cam",
            &dir,
            "passthrough",
            &format!(",segment=2,min-free-bytes={floor},on-full=stop"),
        ),
    ]);
    let d = dir.clone();
    let started = tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(20), || {
            segments(&d).iter().map(|s| s.frames).sum::<u64>() >= 60
        })
    })
    .await
    .unwrap();
    assert!(started, "recording started; log:\n{}", archive.log());

    let filler = fill_to(&fs.0, floor / 2);
    let label = label_once(archive.addr, &dir, "FULL", Duration::from_secs(10)).await;
    assert!(
        label.contains("FULL"),
        "the state shows in stats: {label}\n{}",
        archive.log()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = archive.log();
    assert_eq!(count(&log, "archive full: recording stops"), 1, "said once:\n{log}");
    assert_eq!(
        count(&log, "archive storage failed"),
        0,
        "the floor acts before the disk is full:\n{log}"
    );
    assert_eq!(count(&log, "ERROR"), 0, "{log}");

    std::fs::remove_file(&filler).unwrap();
    let label = label_once(archive.addr, &dir, "[recording", Duration::from_secs(10)).await;
    assert!(
        label.contains("[recording"),
        "recording resumed by itself: {label}\n{}",
        archive.log()
    );
    assert!(
        recorded_after_the_outage(&dir).await,
        "nothing recorded after the outage; log:\n{}",
        archive.log()
    );
    stop_gracefully(&mut source, "TERM");
    let offered = drained_output(archive.addr).await;
    stop_gracefully(&mut archive, "TERM");

    assert_index_matches_disk(&dir);
    let g = assert_every_frame_accounted(&dir, offered);
    let full: Vec<&GapRow> = g.iter().filter(|g| g.reason == "storage-full").collect();
    assert_eq!(full.len(), 1, "one gap for the outage: {g:#?}");
    assert!(
        full[0].frames >= 25,
        "3 s and more at 25 fps not written: {:?}",
        full[0]
    );
    assert!(
        full[0].end_ns.unwrap() - full[0].start_ns >= 3_000_000_000,
        "the gap spans the outage: {:?}",
        full[0]
    );
}

/// A storage policy on a file system the archive fills itself: with
/// `on-full=delete-oldest`, the oldest segments go, the disk never
/// fills, recording never stops, and the index matches the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_with_delete_oldest_keeps_recording_on_a_small_disk() {
    have_ffmpeg();
    let fs = Tmpfs::mount("archive-fullfs-delete", 16);
    let dir = fs.0.join("archive");
    let mut source = spawn_node(&[
        "--name",
        "test:cam",
        "--source",
        "test-pattern:cam,size=1280x720,fps=25,format=mjpeg,quality=95",
    ]);
    let up = format!("{}/cam", source.addr);
    let floor = 10u64 << 20;
    let mut archive = spawn_node(&[
        "--name",
        "test:archive",
        "--upstream",
        &up,
        "--sink",
        &sink(
            "cam",
            &dir,
            "passthrough",
            &format!(",segment=1,min-free-bytes={floor},on-full=delete-oldest"),
        ),
    ]);
    // Free space looked at all along, until several segments were written
    // and deleted.
    let mut lowest = u64::MAX;
    let deleted = eventually_async(Duration::from_secs(30), async || {
        lowest = lowest.min(free(&fs.0));
        (count(&archive.log(), "oldest segment deleted") >= 3).then_some(())
    })
    .await;
    assert!(
        deleted.is_some(),
        "not 3 segments deleted in 30 s; log:\n{}",
        archive.log()
    );
    let label = archive_peer(archive.addr, &dir).await;
    assert!(label.contains("[recording"), "still recording: {label}");
    stop_gracefully(&mut source, "TERM");
    stop_gracefully(&mut archive, "TERM");
    let log = archive.log();
    assert!(count(&log, "oldest segment deleted") >= 2, "{log}");
    assert_eq!(count(&log, "archive storage failed"), 0, "{log}");
    assert_eq!(count(&log, "recording stops"), 0, "{log}");
    assert!(
        lowest > floor / 2,
        "the disk never came near full: {lowest} bytes free at the lowest"
    );
    assert_index_matches_disk(&dir);
    let g = gaps(&dir);
    assert!(
        g.iter().all(|g| g.reason != "storage-full" && g.end_ns.is_some()),
        "{g:#?}"
    );
}
