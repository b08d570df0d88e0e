//! A node's recordings over the wire, with the real ffmpeg: ARCHIVE_LIST
//! lists its archive sinks' segments and gaps in a window, and an
//! `archive` source plays a range of one as a live stream, at its
//! recorded rate, its JPEG frames as they were stored, and ARCHIVE_READ
//! gives the range as one file, in chunks; ARCHIVE_SET pauses and
//! resumes the recording.
//!
//! ffmpeg is needed: the test fails, saying so, without it.

mod common;

use std::time::{Duration, Instant};

use common::archive::*;
use common::*;
use framewire_proto::control::{ArchiveQuery, ArchiveRead, ArchiveSet, Name, SourceTable};
use framewire_proto::{Message, Request, Response, Status, SubscribeParams};

fn now_ns() -> u64 {
    framewire_archive::time::now_ns()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_listed_and_a_range_plays_back_as_a_stream() {
    if !have_ffmpeg() {
        return;
    }
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = temp_dir("archive-remote");
        // The node's own temporary directory: what it leaves there is seen.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let started = now_ns();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_framewire"));
        cmd.args(["node", "--listen", "127.0.0.1:0", "--name", "test:rec"])
            .args(["--source", "test-pattern:cam,size=160x120,fps=10"])
            .args(["--sink", &sink("cam", &dir, "passthrough", ",segment=1")])
            .env("TMPDIR", &tmp);
        let mut node = spawn_command(cmd, Duration::from_secs(20));
        // Three closed one-second segments.
        assert!(
            wait_for(Duration::from_secs(30), || segments(&dir)
                .iter()
                .filter(|s| s.state == "closed")
                .count()
                >= 3),
            "{}",
            node.log()
        );
        let mut c = client(node.addr, "archive-remote").await;
        let q = |stream: &str, from_ns, to_ns| {
            Request::ArchiveList(ArchiveQuery {
                stream: stream.into(),
                from_ns,
                to_ns,
            })
        };
        let Response::ArchiveList(all) = c.request(q("", 0, u64::MAX)).await.unwrap() else {
            panic!("not an ARCHIVE_LIST answer")
        };
        assert_eq!(all.archives.len(), 1);
        let a = &all.archives[0];
        assert_eq!(
            (a.stream.as_str(), a.codec.as_str(), a.state.as_str()),
            ("cam", "mjpeg", "recording")
        );
        assert_eq!(a.dir, dir.display().to_string());
        assert!(!a.truncated);
        let closed: Vec<_> = a.segments.iter().filter(|s| s.state == "closed").collect();
        assert!(closed.len() >= 3, "{:?}", a.segments);
        assert!(
            closed
                .iter()
                .all(|s| s.start_ns >= started && s.end_ns > s.start_ns && s.frames >= 5 && s.bytes > 0)
        );
        // The index's own rows, as `archive ls` reads them.
        let rows = segments(&dir);
        assert_eq!(a.segments.len(), rows.len());
        assert_eq!(a.segments[0].start_ns, rows[0].start_ns);

        // A window in the middle of the second segment lists it alone (a
        // segment's end is its first frame's time plus its frames' periods:
        // it may overlap the next one's start by a little).
        let second = closed[1];
        let mid = second.start_ns / 2 + second.end_ns / 2;
        let Response::ArchiveList(w) = c.request(q("cam", mid - 1_000_000, mid + 1_000_000)).await.unwrap() else {
            panic!("not an ARCHIVE_LIST answer")
        };
        assert_eq!(w.archives[0].segments.len(), 1, "{:?}", w.archives[0].segments);
        assert_eq!(w.archives[0].segments[0].start_ns, second.start_ns);
        // A stream the node does not archive.
        let e = c.request(q("nothing", 0, u64::MAX)).await.unwrap_err().to_string();
        assert!(e.contains("archives no stream named `nothing`"), "{e}");
        assert!(e.contains(&Status::NotFound.to_string()), "{e}");

        // Play the first two closed seconds back as the stream `replay`.
        let (from, to) = (closed[0].start_ns, closed[1].end_ns);
        let table = format!(
            "kind = \"archive\"\nname = \"replay\"\nstream = \"cam\"\nfrom = \"{}\"\nto = \"{}\"\n",
            framewire_archive::time::rfc3339(from),
            framewire_archive::time::rfc3339(to)
        );
        let Response::SourceAdd(Name { name }) = c.request(Request::SourceAdd(SourceTable { table })).await.unwrap()
        else {
            panic!("not a SOURCE_ADD answer")
        };
        assert_eq!(name, "replay");
        let ch = c.subscribe("replay", SubscribeParams::default()).await.unwrap();
        let (mut frames, mut first) = (0u32, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while frames < 15 && Instant::now() < deadline {
            if let Some(Message::VideoFrame(f)) = next(&mut c, Duration::from_secs(10)).await
                && f.channel == ch
            {
                assert_eq!(&f.data[..2], &[0xff, 0xd8], "a JPEG as it was stored");
                first.get_or_insert(Instant::now());
                frames += 1;
            }
        }
        assert_eq!(frames, 15, "the range did not play: {}", node.log());
        assert_eq!(temp_files(&tmp, "framewire-play-"), 1, "the playing range's list");
        // At the recorded rate (10 fps), not as fast as ffmpeg reads.
        let took = first.unwrap().elapsed();
        assert!(
            took >= Duration::from_millis(1000),
            "15 frames in {took:?}: not real time"
        );

        // The same range as one file, read in 64 KiB chunks: what
        // `archive export` writes, every frame of both segments.
        let mut file = Vec::new();
        let mut total = None;
        while total.is_none_or(|t| (file.len() as u64) < t) {
            let read = Request::ArchiveRead(ArchiveRead {
                stream: "cam".into(),
                from_ns: from,
                to_ns: to,
                offset: file.len() as u64,
                max_len: 65_536,
            });
            let Response::ArchiveRead(chunk) = c.request(read).await.unwrap() else {
                panic!("not an ARCHIVE_READ answer")
            };
            assert!(!chunk.data.is_empty() && chunk.data.len() <= 65_536);
            total = Some(chunk.total);
            file.extend_from_slice(&chunk.data);
        }
        assert_eq!(&file[..4], &[0x1a, 0x45, 0xdf, 0xa3], "a Matroska file");
        assert_eq!(temp_files(&tmp, "framewire-export-"), 1, "the export being read");
        let path = dir.join("range.mkv");
        std::fs::write(&path, &file).unwrap();
        let p = framewire_archive::ffmpeg::probe(std::path::Path::new("ffprobe"), &path).unwrap();
        assert_eq!(p.codec, "mjpeg");
        let want = closed[0].frames + closed[1].frames;
        assert!(
            p.frames.abs_diff(want) <= 1,
            "{} frames, the segments hold {want}",
            p.frames
        );
        // An offset past what is being read starts nothing; an unknown range is refused.
        let read = |stream: &str, offset| {
            Request::ArchiveRead(ArchiveRead {
                stream: stream.into(),
                from_ns: 1_000,
                to_ns: 2_000,
                offset,
                max_len: 10,
            })
        };
        let e = c.request(read("cam", 10)).await.unwrap_err().to_string();
        assert!(e.contains("start again at offset 0"), "{e}");
        let e = c.request(read("cam", 0)).await.unwrap_err().to_string();
        assert!(e.contains("no finished recording of `cam`"), "{e}");
        let e = c.request(read("other", 0)).await.unwrap_err().to_string();
        assert!(e.contains("archives no stream named `other`"), "{e}");

        // Recording paused and resumed at run time: the index says `paused`
        // meanwhile, and the pause is one `paused` gap, nothing counted lost.
        let set = |stream: &str, recording| {
            Request::ArchiveSet(ArchiveSet {
                stream: stream.into(),
                recording,
            })
        };
        assert_eq!(c.request(set("cam", false)).await.unwrap(), Response::ArchiveSet);
        let paused = eventually_async(Duration::from_secs(10), async || {
            (listed(&mut c, q("cam", 0, u64::MAX)).await.state == "paused").then_some(())
        })
        .await;
        assert!(paused.is_some(), "not paused: {}", node.log());
        let before = listed(&mut c, q("cam", 0, u64::MAX)).await.segments.len();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            listed(&mut c, q("cam", 0, u64::MAX)).await.segments.len(),
            before,
            "no segment while paused"
        );
        assert_eq!(c.request(set("cam", true)).await.unwrap(), Response::ArchiveSet);
        let mut last = None;
        let a = eventually_async(Duration::from_secs(10), async || {
            let a = listed(&mut c, q("cam", 0, u64::MAX)).await;
            if a.state == "recording" && a.segments.len() > before {
                return Some(a);
            }
            last = Some(a);
            None
        })
        .await
        .unwrap_or_else(|| panic!("not recording again: {last:?}"));
        let paused: Vec<_> = a.gaps.iter().filter(|g| g.reason == "paused").collect();
        assert_eq!(paused.len(), 1, "{:?}", a.gaps);
        assert!(
            paused[0].end_ns >= paused[0].start_ns + 1_400_000_000,
            "{:?}",
            paused[0]
        );
        assert!(
            a.gaps.iter().all(|g| g.reason != "budget-drops"),
            "frames let go while paused are not lost: {:?}",
            a.gaps
        );
        let e = c.request(set("other", false)).await.unwrap_err().to_string();
        assert!(e.contains("archives no stream named `other`"), "{e}");

        // A range with nothing recorded is refused with the reason; a path is never taken.
        let table = "kind = \"archive\"\nname = \"old\"\nstream = \"cam\"\nfrom = 1000\nto = 2000\n".to_owned();
        let e = c
            .request(Request::SourceAdd(SourceTable { table }))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no finished recording of `cam`"), "{e}");
        let table = "kind = \"archive\"\nname = \"x\"\nstream = \"cam\"\nfrom = 1\nto = 2\ndir = \"/etc\"\n".to_owned();
        let e = c
            .request(Request::SourceAdd(SourceTable { table }))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("dir"), "{e}");

        // Stopped, the node removes its temporary files: the playing
        // range's list and the export (kept for a minute for more reads).
        drop(c);
        node.signal("TERM");
        assert_eq!(node.wait_exit(Duration::from_secs(10)), Some(0), "{}", node.log());
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "the node left {left:?} in its temporary directory");
    })
    .await
    .expect("within 90 s");
}

/// How many files in `dir` have names starting with `prefix`.
fn temp_files(dir: &std::path::Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(prefix))
        .count()
}

/// The one archive an ARCHIVE_LIST answer holds.
async fn listed(c: &mut framewire_net::Client, req: Request) -> framewire_proto::control::ArchivedStream {
    match c.request(req).await.unwrap() {
        Response::ArchiveList(mut l) => l.archives.remove(0),
        other => panic!("{other:?}"),
    }
}
