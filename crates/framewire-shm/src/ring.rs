//! A ring of frame slots in one shared region, for readers that come and go
//! (seed 001's frame cache). One writer; any number of readers, each with
//! its own cursor, none of which the writer waits for. A reader that falls
//! more than the ring behind skips ahead and counts what it missed.
//!
//! The layout is C-compatible and documented in `docs/shm.md`
//! (`fw_ring_header`, `fw_ring_slot`). Each slot is a seqlock: the writer
//! marks it busy, writes, then publishes the frame number; a reader copies
//! the frame out and checks the slot still holds the frame it wanted.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use crate::mem::Mapping;
use crate::wire::FrameMeta;

/// `"FWRG"` read as a little-endian u32.
pub const RING_MAGIC: u32 = u32::from_le_bytes(*b"FWRG");
/// Layout version.
pub const RING_VERSION: u16 = 1;
/// Bytes of the region header.
pub const HEADER_SIZE: usize = 128;
/// Bytes of each slot's header (the frame follows).
pub const SLOT_HEADER_SIZE: usize = 64;
/// Default slot count (seed 001).
pub const DEFAULT_SLOTS: u32 = 120;
/// A slot's `commit` while the writer is filling it.
pub const BUSY: u64 = u64::MAX;

// Region header offsets.
const H_MAGIC: usize = 0;
const H_VERSION: usize = 4;
const H_HEADER_SIZE: usize = 6;
const H_SLOT_COUNT: usize = 8;
const H_SLOT_SIZE: usize = 12;
const H_REGION_SIZE: usize = 16;
const H_WRITE_CURSOR: usize = 24;
const H_NOTIFY: usize = 32;
const H_CLOSED: usize = 36;
// Slot header offsets.
const S_COMMIT: usize = 0;
const S_SEQUENCE: usize = 8;
const S_TIMESTAMP: usize = 16;
const S_FLAGS: usize = 24;
const S_LEN: usize = 28;

/// Ring geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingGeometry {
    /// Slots in the ring.
    pub slots: u32,
    /// Bytes per slot, header included (a multiple of 64).
    pub slot_size: u32,
}

impl RingGeometry {
    /// A ring of `slots` slots that hold frames of up to `max_frame` bytes.
    pub fn for_frames(slots: u32, max_frame: usize) -> RingGeometry {
        let slot_size = (SLOT_HEADER_SIZE + max_frame).next_multiple_of(64) as u32;
        RingGeometry {
            slots: slots.max(2),
            slot_size,
        }
    }
    /// Largest frame a slot holds.
    pub fn max_frame(&self) -> usize {
        self.slot_size as usize - SLOT_HEADER_SIZE
    }
    fn region_size(&self) -> usize {
        HEADER_SIZE + self.slots as usize * self.slot_size as usize
    }
}

/// A frame read from the ring.
#[derive(Debug, Clone)]
pub struct RingFrame {
    /// Frame number in the ring (0 for the first frame written).
    pub index: u64,
    /// Header.
    pub meta: FrameMeta,
    /// Frames this reader missed just before this one.
    pub lost: u64,
    /// The bytes (copied out of the ring).
    pub data: Vec<u8>,
}

/// What [`RingReader::read`] returns.
#[derive(Debug)]
pub enum RingRead {
    /// The next frame.
    Frame(RingFrame),
    /// Nothing new within the timeout.
    Timeout,
    /// The writer closed the ring and the reader has read everything.
    Closed,
}

struct Region {
    map: Mapping,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("len", &self.map.len()).finish()
    }
}

impl Region {
    fn base(&self) -> *const u8 {
        self.map.as_slice().as_ptr()
    }
    fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.map.as_slice()[off..off + 4].try_into().expect("4 bytes"))
    }
    fn atomic64(&self, off: usize) -> &AtomicU64 {
        assert!(off.is_multiple_of(8) && off + 8 <= self.map.len());
        // SAFETY: in bounds and 8-aligned (the mapping is page-aligned and
        // `off` a multiple of 8); every process touches this word only
        // through atomics; the reference lives no longer than `self`.
        unsafe { &*(self.base().add(off) as *const AtomicU64) }
    }
    fn atomic32(&self, off: usize) -> &AtomicU32 {
        assert!(off.is_multiple_of(4) && off + 4 <= self.map.len());
        // SAFETY: as `atomic64`, 4-aligned.
        unsafe { &*(self.base().add(off) as *const AtomicU32) }
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned u32 in a shared mapping
    // (no FUTEX_PRIVATE flag: waiters are in other processes).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: FUTEX_WAIT on a valid, aligned u32 in a shared mapping; the
    // kernel only reads it; `ts` outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            &ts as *const libc::timespec,
        );
    }
}

/// The writing end of a ring.
#[derive(Debug)]
pub struct RingWriter {
    region: Region,
    geo: RingGeometry,
    next: u64,
    path: Option<PathBuf>,
}

impl RingWriter {
    /// Creates the ring as a file at `path` (normally under `/dev/shm`),
    /// readable by readers that open the path.
    pub fn create(path: &Path, geo: RingGeometry) -> io::Result<RingWriter> {
        let _ = std::fs::remove_file(path);
        let f = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        let mut w = RingWriter::on_file(f.into(), geo)?;
        w.path = Some(path.to_owned());
        Ok(w)
    }

    /// Creates the ring in an anonymous memfd (readers get the fd by SCM_RIGHTS).
    pub fn create_memfd(geo: RingGeometry) -> io::Result<(RingWriter, OwnedFd)> {
        use nix::sys::memfd::{MFdFlags, memfd_create};
        let fd = memfd_create("framewire-ring", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
        let dup = fd.try_clone()?;
        let w = RingWriter::on_file(fd, geo)?;
        let seals = crate::mem::REQUIRED_SEALS;
        nix::fcntl::fcntl(&dup, nix::fcntl::FcntlArg::F_ADD_SEALS(seals))?;
        Ok((w, dup))
    }

    fn on_file(fd: OwnedFd, geo: RingGeometry) -> io::Result<RingWriter> {
        let size = geo.region_size();
        nix::unistd::ftruncate(&fd, size as libc::off_t)?;
        let mut map = Mapping::map_fd(&fd, size, true)?;
        let b = map.as_mut_slice();
        b[H_MAGIC..H_MAGIC + 4].copy_from_slice(&RING_MAGIC.to_le_bytes());
        b[H_VERSION..H_VERSION + 2].copy_from_slice(&RING_VERSION.to_le_bytes());
        b[H_HEADER_SIZE..H_HEADER_SIZE + 2].copy_from_slice(&(HEADER_SIZE as u16).to_le_bytes());
        b[H_SLOT_COUNT..H_SLOT_COUNT + 4].copy_from_slice(&geo.slots.to_le_bytes());
        b[H_SLOT_SIZE..H_SLOT_SIZE + 4].copy_from_slice(&geo.slot_size.to_le_bytes());
        b[H_REGION_SIZE..H_REGION_SIZE + 8].copy_from_slice(&(size as u64).to_le_bytes());
        for i in 0..geo.slots as usize {
            let off = HEADER_SIZE + i * geo.slot_size as usize + S_COMMIT;
            b[off..off + 8].copy_from_slice(&BUSY.to_le_bytes());
        }
        Ok(RingWriter {
            region: Region { map },
            geo,
            next: 0,
            path: None,
        })
    }

    /// Geometry.
    pub fn geometry(&self) -> RingGeometry {
        self.geo
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.next
    }

    /// Writes one frame into the next slot, overwriting the oldest. Never
    /// waits for readers. Frames larger than a slot are refused.
    pub fn write(&mut self, meta: &FrameMeta, data: &[u8]) -> io::Result<u64> {
        if data.len() > self.geo.max_frame() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame larger than a ring slot",
            ));
        }
        let n = self.next;
        let slot = HEADER_SIZE + (n % self.geo.slots as u64) as usize * self.geo.slot_size as usize;
        let commit = self.region.atomic64(slot + S_COMMIT);
        commit.store(BUSY, Ordering::Relaxed);
        fence(Ordering::Release);
        {
            // Plain writes to the slot's fields and bytes: readers only trust
            // them after seeing `commit == n` before and after their copy.
            let base = self.region.map.as_mut_slice();
            base[slot + S_SEQUENCE..slot + S_SEQUENCE + 8].copy_from_slice(&meta.sequence.to_le_bytes());
            base[slot + S_TIMESTAMP..slot + S_TIMESTAMP + 8].copy_from_slice(&meta.timestamp_ns.to_le_bytes());
            base[slot + S_FLAGS..slot + S_FLAGS + 4].copy_from_slice(&meta.flags.to_le_bytes());
            base[slot + S_LEN..slot + S_LEN + 4].copy_from_slice(&(data.len() as u32).to_le_bytes());
            let d = slot + SLOT_HEADER_SIZE;
            base[d..d + data.len()].copy_from_slice(data);
        }
        self.region.atomic64(slot + S_COMMIT).store(n, Ordering::Release);
        self.region.atomic64(H_WRITE_CURSOR).store(n + 1, Ordering::Release);
        let notify = self.region.atomic32(H_NOTIFY);
        notify.fetch_add(1, Ordering::Release);
        futex_wake(notify);
        self.next = n + 1;
        Ok(n)
    }

    /// Marks the ring closed (readers see [`RingRead::Closed`] once caught up).
    pub fn close(&mut self) {
        self.region.atomic32(H_CLOSED).store(1, Ordering::Release);
        let notify = self.region.atomic32(H_NOTIFY);
        notify.fetch_add(1, Ordering::Release);
        futex_wake(notify);
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        self.close();
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A reader with its own cursor.
#[derive(Debug)]
pub struct RingReader {
    region: Region,
    geo: RingGeometry,
    cursor: u64,
    lost_total: u64,
}

impl RingReader {
    /// Attaches to the ring file at `path`, read-only. The cursor starts at
    /// the newest frame written (a reader that comes late does not replay
    /// the backlog; use [`RingReader::seek`] for that).
    pub fn open(path: &Path) -> io::Result<RingReader> {
        let f = File::open(path)?;
        RingReader::on_fd(f.into())
    }

    /// Attaches to a ring passed as an fd.
    pub fn on_fd(fd: OwnedFd) -> io::Result<RingReader> {
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        let size = nix::sys::stat::fstat(&fd)?.st_size as usize;
        if size < HEADER_SIZE {
            return Err(bad("ring smaller than its header"));
        }
        let map = Mapping::map_fd(&fd, size, false)?;
        let region = Region { map };
        if region.u32_at(H_MAGIC) != RING_MAGIC {
            return Err(bad("not a framewire ring (magic)"));
        }
        let b = region.map.as_slice();
        if u16::from_le_bytes([b[H_VERSION], b[H_VERSION + 1]]) != RING_VERSION {
            return Err(bad("unsupported ring version"));
        }
        let geo = RingGeometry {
            slots: region.u32_at(H_SLOT_COUNT),
            slot_size: region.u32_at(H_SLOT_SIZE),
        };
        if geo.slots < 2
            || geo.slot_size as usize <= SLOT_HEADER_SIZE
            || !geo.slot_size.is_multiple_of(64)
            || (geo.slots as u64) * (geo.slot_size as u64) + HEADER_SIZE as u64 > size as u64
        {
            return Err(bad("ring geometry does not fit the region"));
        }
        let cursor = region
            .atomic64(H_WRITE_CURSOR)
            .load(Ordering::Acquire)
            .saturating_sub(1);
        Ok(RingReader {
            region,
            geo,
            cursor,
            lost_total: 0,
        })
    }

    /// Geometry.
    pub fn geometry(&self) -> RingGeometry {
        self.geo
    }

    /// Moves the cursor (to 0 to read the oldest frame still in the ring).
    pub fn seek(&mut self, index: u64) {
        self.cursor = index;
    }

    /// Frames this reader has missed in all.
    pub fn lost(&self) -> u64 {
        self.lost_total
    }

    /// Next frame, waiting up to `timeout`.
    pub fn read(&mut self, timeout: Duration) -> RingRead {
        let deadline = Instant::now() + timeout;
        let slots = self.geo.slots as u64;
        let mut lost = 0;
        loop {
            let notify = self.region.atomic32(H_NOTIFY);
            let seen = notify.load(Ordering::Acquire);
            let w = self.region.atomic64(H_WRITE_CURSOR).load(Ordering::Acquire);
            if self.cursor < w {
                // The slot of frame `w` may be being written: frames older
                // than `w - (slots - 1)` are gone.
                let oldest = w.saturating_sub(slots - 1);
                if self.cursor < oldest {
                    lost += oldest - self.cursor;
                    self.cursor = oldest;
                }
                match self.copy_slot(self.cursor) {
                    Some((meta, data)) => {
                        let index = self.cursor;
                        self.cursor += 1;
                        self.lost_total += lost;
                        return RingRead::Frame(RingFrame {
                            index,
                            meta,
                            lost,
                            data,
                        });
                    }
                    // Overwritten while copying: the writer lapped us.
                    None => continue,
                }
            }
            if self.region.atomic32(H_CLOSED).load(Ordering::Acquire) != 0 {
                return RingRead::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                self.lost_total += lost;
                return RingRead::Timeout;
            }
            futex_wait(notify, seen, (deadline - now).min(Duration::from_millis(100)));
        }
    }

    fn copy_slot(&self, n: u64) -> Option<(FrameMeta, Vec<u8>)> {
        let slot = HEADER_SIZE + (n % self.geo.slots as u64) as usize * self.geo.slot_size as usize;
        let commit = self.region.atomic64(slot + S_COMMIT);
        if commit.load(Ordering::Acquire) != n {
            return None;
        }
        let b = self.region.map.as_slice();
        let rd = |o: usize, w: usize| {
            let mut a = [0u8; 8];
            a[..w].copy_from_slice(&b[slot + o..slot + o + w]);
            u64::from_le_bytes(a)
        };
        let len = (rd(S_LEN, 4) as usize).min(self.geo.max_frame());
        let meta = FrameMeta {
            sequence: rd(S_SEQUENCE, 8),
            timestamp_ns: rd(S_TIMESTAMP, 8),
            flags: rd(S_FLAGS, 4) as u32,
            planes: vec![],
        };
        let d = slot + SLOT_HEADER_SIZE;
        let data = b[d..d + len].to_vec();
        fence(Ordering::Acquire);
        (commit.load(Ordering::Relaxed) == n).then_some((meta, data))
    }
}
