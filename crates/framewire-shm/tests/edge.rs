//! Shared-memory edge: round trips with checksums across processes, a
//! stalled consumer, SIGKILL of either end, and peers that lie.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use framewire_shm::sock;
use framewire_shm::wire::Msg;
use framewire_shm::{Consumer, Event, FrameMeta, Plane, Producer, ProducerConfig, ShmError};

fn fnv(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for chunk in data.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Frame `seq`: a size that varies, content that depends on `seq`.
fn frame(seq: u64, size: usize) -> Vec<u8> {
    let len = size - (seq as usize % 7) * 16;
    let mut v = vec![0u8; len];
    let mut x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for c in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = c.len();
        c.copy_from_slice(&x.to_le_bytes()[..n]);
    }
    v
}

/// The checksum travels in `timestamp_ns`; the consumer recomputes it.
fn meta(seq: u64, data: &[u8]) -> FrameMeta {
    FrameMeta {
        sequence: seq,
        timestamp_ns: fnv(data),
        flags: 0,
        planes: vec![Plane { offset: 0, pitch: 64 }],
    }
}

fn sock_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("fw-shm-{}-{name}.sock", std::process::id()))
}

/// Re-runs this test binary as a child playing `role` (see `zz_child`).
fn spawn_child(role: &str, path: &Path, extra: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["zz_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("FW_SHM_ROLE", role)
        .env("FW_SHM_PATH", path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in extra {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// Reads the child's `RESULT ...` line.
fn child_result(child: &mut Child) -> String {
    // Read to the end: a child writing to a closed pipe would fail.
    let out = child.stdout.take().unwrap();
    let mut result = None;
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        if let Some((_, r)) = line.split_once("RESULT ") {
            result = Some(r.trim().to_string());
        }
    }
    result.expect("child gave no RESULT")
}

fn consume_all(c: &mut Consumer, stall_after_first: Duration) -> (u64, u64, u64, String) {
    let (mut frames, mut lost, mut bad) = (0u64, 0u64, 0u64);
    let mut kept = Vec::new();
    let end = loop {
        match c.recv(Some(Duration::from_secs(20))) {
            Ok(Event::Frame(f)) => {
                frames += 1;
                lost += f.lost;
                if fnv(&f.data) != f.meta.timestamp_ns || f.meta.planes.len() != 1 {
                    bad += 1;
                }
                if !stall_after_first.is_zero() && frames == 1 {
                    // Keep this frame and the next ones the budget allows.
                    kept.push(f);
                    let until = Instant::now() + Duration::from_secs(10);
                    while kept.len() < c.max_held() as usize && Instant::now() < until {
                        if let Ok(Event::Frame(f)) = c.recv(Some(Duration::from_secs(5))) {
                            frames += 1;
                            lost += f.lost;
                            kept.push(f);
                        }
                    }
                    println!("STALLED");
                    std::thread::sleep(stall_after_first);
                    kept.clear();
                }
            }
            Ok(Event::End) => break "end".to_string(),
            Ok(Event::Timeout) => break "timeout".to_string(),
            Err(ShmError::Interrupted) => break "interrupted".to_string(),
            Err(e) => break format!("error {e}"),
        }
    };
    (frames, lost, bad, end)
}

/// Child entry point; a no-op when run as an ordinary test.
#[test]
fn zz_child() {
    let Ok(role) = std::env::var("FW_SHM_ROLE") else { return };
    let path = PathBuf::from(std::env::var("FW_SHM_PATH").unwrap());
    match role.as_str() {
        "consumer" => {
            let stall = std::env::var("FW_SHM_STALL_MS")
                .map(|s| s.parse().unwrap())
                .unwrap_or(0);
            let mut c = Consumer::connect(&path).unwrap();
            println!("CONNECTED");
            let (frames, lost, bad, end) = consume_all(&mut c, Duration::from_millis(stall));
            println!("RESULT frames={frames} lost={lost} bad={bad} end={end}");
        }
        "producer" => {
            let mut p = Producer::bind(&path, ProducerConfig::default()).unwrap();
            println!("LISTENING");
            let start = Instant::now();
            let mut seq = 0;
            // Runs until killed (bounded at 60 s).
            while start.elapsed() < Duration::from_secs(60) {
                let d = frame(seq, 256 * 1024);
                p.publish(&meta(seq, &d), &d).unwrap();
                seq += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        _ => unreachable!(),
    }
}

fn wait_line(child: &mut Child, want: &str) -> BufReader<std::process::ChildStdout> {
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "child exited before {want}");
        if line.trim().ends_with(want) {
            return r;
        }
    }
}

fn round_trip(n: usize, frames: u64, size: usize) {
    let path = sock_path(&format!("rt{n}"));
    // A budget that no consumer reaches while it keeps up.
    let cfg = ProducerConfig {
        max_held: 8,
        ..Default::default()
    };
    let mut p = Producer::bind(&path, cfg).unwrap();
    let mut kids: Vec<Child> = (0..n).map(|_| spawn_child("consumer", &path, &[])).collect();
    assert!(
        p.wait_for_consumers(n, Duration::from_secs(30)).unwrap(),
        "consumers did not connect"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seq = 0;
    while seq < frames {
        assert!(Instant::now() < deadline);
        p.service().unwrap();
        // Lossless round trip: publish only when every consumer has room.
        if p.stats().consumers.iter().all(|c| c.held < 8) {
            let d = frame(seq, size);
            assert_eq!(p.publish(&meta(seq, &d), &d).unwrap(), n);
            seq += 1;
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    p.end();
    for k in &mut kids {
        let r = child_result(k);
        assert_eq!(r, format!("frames={frames} lost=0 bad=0 end=end"));
        assert!(k.wait().unwrap().success());
    }
    let s = p.stats();
    assert_eq!(s.published, frames);
    assert!(s.buffers <= 64);
}

#[test]
fn round_trip_checksums_one_consumer() {
    round_trip(1, 500, 1 << 20);
}

#[test]
fn round_trip_checksums_sixteen_consumers() {
    round_trip(16, 200, 512 * 1024);
}

/// A producer whose consumers all hold their budget sleeps in `wait` and
/// wakes as soon as a buffer comes back, not at its timeout.
#[test]
fn wait_sleeps_until_a_buffer_returns() {
    let mut p = Producer::unbound(ProducerConfig {
        max_held: 1,
        ..Default::default()
    });
    let (a, b) = sock::pair().unwrap();
    p.attach(a).unwrap().unwrap();
    let mut c = Consumer::on_socket(b).unwrap();
    let d = frame(0, 64 * 1024);
    assert_eq!(p.publish(&meta(0, &d), &d).unwrap(), 1);
    let Event::Frame(held) = c.recv(Some(Duration::from_secs(5))).unwrap() else {
        panic!("a frame")
    };
    assert!(!p.can_publish(), "the only consumer holds its budget");
    let t = Instant::now();
    p.wait(Duration::from_millis(50)).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(40),
        "nothing to wake for: waited the timeout"
    );
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        c
    });
    let t = Instant::now();
    p.wait(Duration::from_secs(20)).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "woken by the return, not the timeout"
    );
    assert!(p.can_publish(), "the buffer came back");
    drop(releaser.join().unwrap());
}

#[test]
fn seventeenth_consumer_is_refused() {
    let mut p = Producer::unbound(ProducerConfig::default());
    let mut keep = Vec::new();
    for _ in 0..16 {
        let (a, b) = sock::pair().unwrap();
        assert!(p.attach(a).unwrap().is_some());
        keep.push(Consumer::on_socket(b).unwrap());
    }
    let (a, b) = sock::pair().unwrap();
    assert!(p.attach(a).unwrap().is_none());
    assert!(matches!(Consumer::on_socket(b), Err(ShmError::Protocol(_))));
    assert_eq!(p.stats().refused, 1);
}

/// One consumer holds its budget for 10 s; three others get every frame at
/// full rate meanwhile; the stalled one is skipped, then told how many it missed.
#[test]
fn stalled_consumer_is_skipped_while_others_keep_full_rate() {
    let path = sock_path("stall");
    // A budget of 640 ms at this rate: room for scheduling noise on a busy
    // two-core machine; the stalled consumer holds far longer than that.
    let cfg = ProducerConfig {
        max_held: 64,
        max_buffers: 256,
        ..Default::default()
    };
    let mut p = Producer::bind(&path, cfg).unwrap();
    let mut stalled = spawn_child("consumer", &path, &[("FW_SHM_STALL_MS", "10000".into())]);
    assert!(p.wait_for_consumers(1, Duration::from_secs(30)).unwrap());
    let mut others: Vec<Child> = (0..3).map(|_| spawn_child("consumer", &path, &[])).collect();
    assert!(p.wait_for_consumers(4, Duration::from_secs(30)).unwrap());
    let stalled_slot = 0;
    // 12 s at 100 frames/s.
    let start = Instant::now();
    let mut seq = 0u64;
    let mut max_gap = Duration::ZERO;
    let mut last = Instant::now();
    while start.elapsed() < Duration::from_secs(12) {
        let d = frame(seq, 128 * 1024);
        let t = Instant::now();
        p.publish(&meta(seq, &d), &d).unwrap();
        max_gap = max_gap.max(t.elapsed());
        seq += 1;
        let next = start + Duration::from_millis(10 * seq);
        if let Some(w) = next.checked_duration_since(Instant::now()) {
            // Service while waiting so returns come back promptly.
            let until = Instant::now() + w;
            while Instant::now() < until {
                p.service().unwrap();
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        last = Instant::now();
    }
    let _ = last;
    let s = p.stats();
    let st = s.consumers.iter().find(|c| c.slot == stalled_slot).unwrap().clone();
    assert!(st.skipped > 500, "stalled consumer skipped only {}", st.skipped);
    for c in s.consumers.iter().filter(|c| c.slot != stalled_slot) {
        assert_eq!(c.skipped, 0, "a healthy consumer was skipped: {c:?}");
        assert_eq!(c.sent, seq);
    }
    // Publishing never waited on the stalled one: waiting would take its
    // whole 10 s stall; the bound leaves room for a busy machine's
    // scheduling pauses.
    assert!(max_gap < Duration::from_secs(1), "publish took {max_gap:?}");
    p.end();
    for k in &mut others {
        assert_eq!(child_result(k), format!("frames={seq} lost=0 bad=0 end=end"));
        k.wait().unwrap();
    }
    let r = child_result(&mut stalled);
    // frames + lost = everything published: every skip was counted and told.
    let kv: Vec<u64> = r
        .split(' ')
        .take(3)
        .map(|f| f.split('=').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(kv[0] + kv[1], seq, "{r}");
    assert_eq!(kv[2], 0);
    stalled.wait().unwrap();
}

#[test]
fn consumer_sigkill_returns_its_buffers() {
    let path = sock_path("ckill");
    let mut p = Producer::bind(&path, ProducerConfig::default()).unwrap();
    let mut c = spawn_child("consumer", &path, &[("FW_SHM_STALL_MS", "30000".into())]);
    assert!(p.wait_for_consumers(1, Duration::from_secs(30)).unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seq = 0;
    while p.stats().consumers[0].held < 4 {
        assert!(Instant::now() < deadline);
        let d = frame(seq, 64 * 1024);
        p.publish(&meta(seq, &d), &d).unwrap();
        seq += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut out = wait_line(&mut c, "STALLED");
    assert_eq!(p.held_buffers(), 4);
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.consumers() > 0 {
        assert!(Instant::now() < deadline, "dead consumer not noticed");
        p.service().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(p.held_buffers(), 0, "a dead consumer's buffers were not returned");
    assert_eq!(p.stats().evicted, 0);
    let d = frame(seq, 64 * 1024);
    p.publish(&meta(seq, &d), &d).unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
}

#[test]
fn producer_sigkill_interrupts_consumer_and_mapped_frames_stay_readable() {
    let path = sock_path("pkill");
    let mut prod = spawn_child("producer", &path, &[]);
    let _out = wait_line(&mut prod, "LISTENING");
    let mut c = Consumer::connect(&path).unwrap();
    let mut kept = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while kept.len() < 3 {
        assert!(Instant::now() < deadline);
        if let Event::Frame(f) = c.recv(Some(Duration::from_secs(5))).unwrap() {
            assert_eq!(fnv(&f.data), f.meta.timestamp_ns);
            kept.push(f);
        }
    }
    prod.kill().unwrap();
    prod.wait().unwrap();
    let r = loop {
        match c.recv(Some(Duration::from_secs(10))) {
            // Frames already queued on the socket still arrive.
            Ok(Event::Frame(f)) => drop(f),
            other => break other,
        }
    };
    assert!(matches!(r, Err(ShmError::Interrupted)), "{r:?}");
    // The mappings outlive the producer: still the bytes that were sent.
    for f in &kept {
        assert_eq!(fnv(&f.data), f.meta.timestamp_ns);
    }
    // Returning buffers to a dead producer is harmless (no SIGPIPE).
    drop(kept);
    // The killed producer could not remove its socket.
    let _ = std::fs::remove_file(&path);
}

// ---- peers that lie --------------------------------------------------------

fn fake_producer() -> (OwnedFd, Consumer) {
    let (a, b) = sock::pair().unwrap();
    sock::send(
        a.as_raw_fd(),
        &Msg::Hello {
            consumer: 0,
            max_held: 4,
        }
        .encode(),
        &[],
        false,
    )
    .unwrap();
    (a, Consumer::on_socket(b).unwrap())
}

fn good_buffer(size: usize) -> framewire_shm::mem::MemBuf {
    framewire_shm::mem::MemBuf::create("t", size).unwrap()
}

fn frame_msg(index: u16, len: u64) -> Vec<u8> {
    Msg::Frame {
        index,
        generation: 0,
        len,
        lost: 0,
        meta: FrameMeta::default(),
    }
    .encode()
}

fn expect_disconnect(c: &mut Consumer) -> ShmError {
    match c.recv(Some(Duration::from_secs(5))) {
        Err(e @ (ShmError::Protocol(_) | ShmError::BadFd(_))) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn bogus_producer_frame_in_unknown_buffer_disconnects() {
    let (p, mut c) = fake_producer();
    sock::send(p.as_raw_fd(), &frame_msg(3, 10), &[], false).unwrap();
    assert!(matches!(expect_disconnect(&mut c), ShmError::Protocol(_)));
}

#[test]
fn bogus_producer_frame_larger_than_buffer_disconnects() {
    let (p, mut c) = fake_producer();
    let b = good_buffer(4096);
    let m = buffer_msg(4096);
    sock::send(p.as_raw_fd(), &m, &[b.fd.as_raw_fd()], false).unwrap();
    sock::send(p.as_raw_fd(), &frame_msg(0, 4097), &[], false).unwrap();
    assert!(matches!(expect_disconnect(&mut c), ShmError::Protocol(_)));
}

#[test]
fn bogus_producer_reusing_a_held_buffer_disconnects() {
    let (p, mut c) = fake_producer();
    let b = good_buffer(4096);
    let m = buffer_msg(4096);
    sock::send(p.as_raw_fd(), &m, &[b.fd.as_raw_fd()], false).unwrap();
    sock::send(p.as_raw_fd(), &frame_msg(0, 100), &[], false).unwrap();
    sock::send(p.as_raw_fd(), &frame_msg(0, 100), &[], false).unwrap();
    let Event::Frame(_held) = c.recv(Some(Duration::from_secs(5))).unwrap() else {
        panic!()
    };
    assert!(matches!(expect_disconnect(&mut c), ShmError::Protocol(_)));
}

#[test]
fn bogus_producer_unsealed_or_foreign_fd_or_wrong_size_disconnects() {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    // Unsealed memfd: it could be shrunk under the reader.
    let (p, mut c) = fake_producer();
    let fd = memfd_create("u", MFdFlags::MFD_ALLOW_SEALING).unwrap();
    nix::unistd::ftruncate(&fd, 4096).unwrap();
    let m = buffer_msg(4096);
    sock::send(p.as_raw_fd(), &m, &[fd.as_raw_fd()], false).unwrap();
    assert!(matches!(expect_disconnect(&mut c), ShmError::BadFd(_)));
    // A regular file.
    let (p, mut c) = fake_producer();
    let f = std::fs::File::open("/proc/self/status").unwrap();
    sock::send(p.as_raw_fd(), &m, &[f.as_raw_fd()], false).unwrap();
    assert!(matches!(expect_disconnect(&mut c), ShmError::BadFd(_)));
    // Announced size larger than the file.
    let (p, mut c) = fake_producer();
    let b = good_buffer(4096);
    let m = buffer_msg(1 << 30);
    sock::send(p.as_raw_fd(), &m, &[b.fd.as_raw_fd()], false).unwrap();
    assert!(matches!(expect_disconnect(&mut c), ShmError::BadFd(_)));
    // BUFFER without an fd, and with two.
    let (p, mut c) = fake_producer();
    let m = buffer_msg(4096);
    sock::send(p.as_raw_fd(), &m, &[], false).unwrap();
    assert!(matches!(expect_disconnect(&mut c), ShmError::Protocol(_)));
    let (p, mut c) = fake_producer();
    sock::send(p.as_raw_fd(), &m, &[b.fd.as_raw_fd(), b.fd.as_raw_fd()], false).unwrap();
    assert!(matches!(expect_disconnect(&mut c), ShmError::Protocol(_)));
    // Garbage.
    let (p, mut c) = fake_producer();
    sock::send(p.as_raw_fd(), &[0xee; 40], &[], false).unwrap();
    assert!(matches!(expect_disconnect(&mut c), ShmError::Protocol(_)));
}

/// BUFFER announcing index 0, generation 0, of `size` bytes.
fn buffer_msg(size: u64) -> Vec<u8> {
    Msg::Buffer {
        index: 0,
        generation: 0,
        size,
    }
    .encode()
}

fn producer_with_fake_consumer() -> (Producer, OwnedFd) {
    let mut p = Producer::unbound(ProducerConfig::default());
    let (a, b) = sock::pair().unwrap();
    assert!(p.attach(a).unwrap().is_some());
    let d = frame(0, 4096);
    assert_eq!(p.publish(&meta(0, &d), &d).unwrap(), 1);
    assert_eq!(p.held_buffers(), 1);
    (p, b)
}

#[test]
fn bogus_consumer_releases_and_fds_disconnect() {
    let cases: Vec<(Vec<u8>, bool)> = vec![
        (
            Msg::Release {
                index: 7,
                generation: 0,
            }
            .encode(),
            false,
        ), // index it never got
        (
            Msg::Release {
                index: 0,
                generation: 9,
            }
            .encode(),
            false,
        ), // wrong generation
        (vec![0x10, 1], false),     // short
        (Msg::End.encode(), false), // not a consumer message
        (
            Msg::Release {
                index: 0,
                generation: 0,
            }
            .encode(),
            true,
        ), // fine, but with an fd
    ];
    for (msg, with_fd) in cases {
        let (mut p, c) = producer_with_fake_consumer();
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let fds = if with_fd { vec![f.as_raw_fd()] } else { vec![] };
        sock::send(c.as_raw_fd(), &msg, &fds, false).unwrap();
        p.service().unwrap();
        assert_eq!(p.consumers(), 0, "{msg:?} did not disconnect");
        assert_eq!(p.stats().evicted, 1);
        assert_eq!(p.held_buffers(), 0);
    }
    // A double release: the first is fine, the second evicts.
    let (mut p, c) = producer_with_fake_consumer();
    let m = Msg::Release {
        index: 0,
        generation: 0,
    }
    .encode();
    sock::send(c.as_raw_fd(), &m, &[], false).unwrap();
    p.service().unwrap();
    assert_eq!((p.consumers(), p.held_buffers()), (1, 0));
    sock::send(c.as_raw_fd(), &m, &[], false).unwrap();
    p.service().unwrap();
    assert_eq!(p.consumers(), 0);
}

#[test]
fn dropping_a_frame_never_waits_for_a_producer_that_does_not_read() {
    // The producer sends frames and never reads the releases: once its
    // socket is full, a release must not block whoever drops the frame
    // (a node drops frames while holding its lock).
    let (p, mut c) = fake_producer();
    let b = good_buffer(4096);
    sock::send(p.as_raw_fd(), &buffer_msg(4096), &[b.fd.as_raw_fd()], false).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let t = std::thread::spawn(move || {
        for _ in 0..20_000 {
            sock::send(p.as_raw_fd(), &frame_msg(0, 100), &[], false).unwrap();
            let Event::Frame(f) = c.recv(Some(Duration::from_secs(5))).unwrap() else {
                panic!("no frame")
            };
            drop(f); // the release
        }
        d2.store(true, std::sync::atomic::Ordering::SeqCst);
        (p, c)
    });
    let end = Instant::now() + Duration::from_secs(30);
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(Instant::now() < end, "a dropped frame waited for the producer");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(t.join().unwrap());
}
