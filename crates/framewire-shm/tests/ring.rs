//! The ring: frames with checksums, per-reader cursors, skip-and-count, the
//! wait with timeout, and a reader written in C attaching to the layout.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use framewire_shm::{FrameMeta, RingGeometry, RingRead, RingReader, RingWriter};

fn fnv(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for chunk in data.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn frame(n: u64) -> (FrameMeta, Vec<u8>) {
    let len = 1000 + (n as usize * 37) % 3000;
    let data: Vec<u8> = (0..len).map(|i| (i as u64 ^ n.wrapping_mul(31)) as u8).collect();
    (
        FrameMeta {
            sequence: n,
            timestamp_ns: fnv(&data),
            flags: 0,
            planes: vec![],
        },
        data,
    )
}

fn ring_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("fw-ring-{}-{name}", std::process::id()))
}

#[test]
fn readers_with_own_cursors_get_every_frame_intact() {
    let path = ring_path("cursors");
    let mut w = RingWriter::create(&path, RingGeometry::for_frames(120, 4096)).unwrap();
    let mut a = RingReader::open(&path).unwrap();
    let mut b = RingReader::open(&path).unwrap();
    for n in 0..50 {
        let (m, d) = frame(n);
        w.write(&m, &d).unwrap();
    }
    // `a` reads as it goes; `b` reads later; each has its own cursor.
    for n in 0..50 {
        let RingRead::Frame(f) = a.read(Duration::from_secs(1)) else {
            panic!()
        };
        assert_eq!((f.index, f.lost, f.meta.sequence), (n, 0, n));
        assert_eq!(fnv(&f.data), f.meta.timestamp_ns);
    }
    assert!(matches!(a.read(Duration::from_millis(50)), RingRead::Timeout));
    for n in 0..50 {
        let RingRead::Frame(f) = b.read(Duration::from_secs(1)) else {
            panic!()
        };
        assert_eq!((f.meta.sequence, f.lost), (n, 0));
    }
    w.close();
    assert!(matches!(a.read(Duration::from_secs(1)), RingRead::Closed));
}

#[test]
fn reader_more_than_a_ring_behind_skips_and_counts() {
    let path = ring_path("skip");
    let mut w = RingWriter::create(&path, RingGeometry::for_frames(120, 4096)).unwrap();
    let mut r = RingReader::open(&path).unwrap();
    for n in 0..300 {
        let (m, d) = frame(n);
        w.write(&m, &d).unwrap();
    }
    let RingRead::Frame(f) = r.read(Duration::from_secs(1)) else {
        panic!()
    };
    // 300 written, 119 still safely readable: 181 missed, told once.
    assert_eq!((f.meta.sequence, f.lost), (181, 181));
    assert_eq!(fnv(&f.data), f.meta.timestamp_ns);
    for n in 182..300 {
        let RingRead::Frame(f) = r.read(Duration::from_secs(1)) else {
            panic!()
        };
        assert_eq!((f.meta.sequence, f.lost), (n, 0));
    }
    assert_eq!(r.lost(), 181);
}

#[test]
fn wait_times_out_then_wakes_on_a_write() {
    let path = ring_path("wait");
    let mut w = RingWriter::create(&path, RingGeometry::for_frames(8, 4096)).unwrap();
    let mut r = RingReader::open(&path).unwrap();
    let t = Instant::now();
    assert!(matches!(r.read(Duration::from_millis(200)), RingRead::Timeout));
    assert!(t.elapsed() >= Duration::from_millis(190) && t.elapsed() < Duration::from_secs(2));
    let h = std::thread::spawn(move || {
        let t = Instant::now();
        let got = r.read(Duration::from_secs(10));
        (got, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    let (m, d) = frame(0);
    w.write(&m, &d).unwrap();
    let (got, took) = h.join().unwrap();
    assert!(matches!(got, RingRead::Frame(_)));
    assert!(took < Duration::from_secs(2), "woke after {took:?}");
}

#[test]
fn concurrent_writer_and_slow_reader_never_see_torn_frames() {
    let path = ring_path("torn");
    let mut w = RingWriter::create(&path, RingGeometry::for_frames(4, 4096)).unwrap();
    let mut r = RingReader::open(&path).unwrap();
    let h = std::thread::spawn(move || {
        for n in 0..20_000 {
            let (m, d) = frame(n);
            w.write(&m, &d).unwrap();
        }
    });
    let (mut got, mut lost, mut last) = (0u64, 0u64, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline);
        match r.read(Duration::from_secs(2)) {
            RingRead::Frame(f) => {
                assert_eq!(fnv(&f.data), f.meta.timestamp_ns, "torn frame {}", f.meta.sequence);
                if let Some(l) = last {
                    assert_eq!(f.meta.sequence, l + 1 + f.lost);
                }
                last = Some(f.meta.sequence);
                got += 1;
                lost += f.lost;
            }
            RingRead::Closed => break,
            RingRead::Timeout => panic!("writer stalled"),
        }
    }
    h.join().unwrap();
    assert!(got > 0);
    assert!(last.unwrap() < 20_000 && got + lost <= 20_000);
}

#[test]
fn foreign_c_reader_reads_the_ring() {
    let dir = std::env::temp_dir().join(format!("fw-ring-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c/ring_reader.c");
    let bin = dir.join("ring_reader");
    let st = Command::new("cc")
        .args(["-O2", "-std=c11", "-D_DEFAULT_SOURCE", "-Wall", "-Werror"])
        // The header as installed with the project (include/framewire).
        .arg(concat!("-I", env!("CARGO_MANIFEST_DIR"), "/../../include/framewire"))
        .arg("-o")
        .arg(&bin)
        .arg(src)
        .status()
        .expect("a C compiler (cc) is needed: scripts/setup.sh installs gcc");
    assert!(st.success(), "ring_reader.c did not compile");
    let path = ring_path("c");
    let mut w = RingWriter::create(&path, RingGeometry::for_frames(120, 4096)).unwrap();
    let child = Command::new(&bin)
        .arg(&path)
        .args(["200", "20000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // 200 frames at ~1 kHz, then wait for the reader.
    for n in 0..400 {
        let (m, d) = frame(n);
        w.write(&m, &d).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "C reader: {text}");
    assert!(
        text.starts_with("frames=200 ") && text.trim_end().ends_with("bad=0"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
