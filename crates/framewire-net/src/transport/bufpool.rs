//! Recycled allocations for large received messages (video frames).
//!
//! A frame read off a socket needs an allocation of its own size. A fresh
//! allocation of a few hundred KiB comes from `mmap` (or from heap pages
//! the allocator has given back), and the first write to each of its pages
//! is a page fault: about 50 for a 200 KB MJPEG frame, 2,000 for an 8 MB
//! raw one. On a relay those faults sat on every hop's critical path
//! (docs/benchmarks.md, "Latency"). Here a frame's buffer comes back when
//! the last reference to the frame drops, and the next frame of a similar
//! size reuses it, its pages already mapped.
//!
//! Bounds: a buffer is reused only for a frame at most a quarter (plus
//! 16 KiB) smaller than it, so a queued frame never holds much more memory
//! than its own bytes (byte budgets count frame bytes); at most
//! [`MAX_BUFFERS`] buffers and [`MAX_BYTES`] bytes wait here, per process.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// Free buffers kept at most.
pub const MAX_BUFFERS: usize = 32;

/// Bytes of free buffers kept at most.
pub const MAX_BYTES: usize = 48 << 20;

/// Buffers smaller than this are not worth keeping.
const MIN_POOLED: usize = 64 * 1024;

/// New buffers are rounded up to this, so frames of similar sizes share them.
const ROUND: usize = 16 * 1024;

struct Pool {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

/// A pool of free buffers; the process has one, [`global`].
pub(crate) struct BufPool(Mutex<Pool>);

static GLOBAL: BufPool = BufPool::new();

/// The process's pool.
pub(crate) fn global() -> &'static BufPool {
    &GLOBAL
}

/// Free buffers waiting in the process's pool, and their bytes.
pub fn pooled() -> (usize, usize) {
    GLOBAL.pooled()
}

/// Whether a buffer of capacity `cap` may carry `len` bytes.
fn fits(cap: usize, len: usize) -> bool {
    cap >= len && cap <= len + len / 4 + ROUND
}

impl BufPool {
    const fn new() -> BufPool {
        BufPool(Mutex::new(Pool {
            bufs: Vec::new(),
            bytes: 0,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An empty buffer with room for `len` bytes: a returned one that fits
    /// (the smallest), else a new one. Nothing is written to it here, so a
    /// new buffer's pages become resident only as bytes are read into it:
    /// a peer's claim of a large payload costs nothing until the bytes come.
    #[cfg(test)]
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let mut buf = self.reuse(len);
        buf.clear();
        buf
    }

    /// As [`BufPool::take`], but a returned buffer keeps the bytes of its
    /// earlier frame (at most `len` of them), so a reader can read into
    /// them without zeroing them first. The caller overwrites every byte
    /// it keeps; none of the earlier frame may show.
    pub(crate) fn reuse(&self, len: usize) -> Vec<u8> {
        let reused = {
            let mut pool = self.lock();
            let best = pool
                .bufs
                .iter()
                .enumerate()
                .filter(|(_, b)| fits(b.capacity(), len))
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            best.map(|i| {
                let b = pool.bufs.swap_remove(i);
                pool.bytes -= b.capacity();
                b
            })
        };
        let mut buf = reused.unwrap_or_else(|| Vec::with_capacity(len.next_multiple_of(ROUND)));
        buf.truncate(len);
        buf
    }

    /// `buf` as shared bytes that come back here when the last clone drops.
    pub(crate) fn share(&'static self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled { buf, pool: self })
    }

    fn give_back(&self, buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap < MIN_POOLED {
            return;
        }
        let mut pool = self.lock();
        if pool.bufs.len() < MAX_BUFFERS && pool.bytes + cap <= MAX_BYTES {
            pool.bytes += cap;
            pool.bufs.push(buf);
        }
    }

    fn pooled(&self) -> (usize, usize) {
        let pool = self.lock();
        (pool.bufs.len(), pool.bytes)
    }
}

struct Pooled {
    buf: Vec<u8>,
    pool: &'static BufPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> &'static BufPool {
        Box::leak(Box::new(BufPool::new()))
    }

    /// A buffer from `p` filled with `len` bytes of `v`.
    fn filled(p: &BufPool, len: usize, v: u8) -> Vec<u8> {
        let mut b = p.take(len);
        assert!(b.is_empty() && b.capacity() >= len);
        b.resize(len, v);
        b
    }

    #[test]
    fn a_dropped_frame_buffer_is_reused_only_for_a_similar_size() {
        let p = pool();
        let len = 200_000;
        let a = p.share(filled(p, len, 1));
        let ptr = a.as_ptr();
        assert_eq!(a.len(), len);
        let slice = a.slice(100..200);
        drop(a);
        assert_eq!(p.pooled().0, 0, "a slice keeps the buffer alive");
        drop(slice);
        assert_eq!(p.pooled().0, 1);
        // The same allocation comes back for a frame a little smaller...
        let b = filled(p, len - 10_000, 2);
        assert_eq!(b.as_ptr(), ptr, "the returned buffer is reused");
        assert_eq!(b.len(), len - 10_000);
        drop(p.share(b));
        // ...but not for one much smaller (it would hold too much memory)
        // nor for a larger one.
        let c = filled(p, len / 2, 3);
        assert_ne!(c.as_ptr(), ptr);
        let big = filled(p, len + 100_000, 4);
        assert_ne!(big.as_ptr(), ptr);
        drop(p.share(c));
        drop(p.share(big));
        assert_eq!(p.pooled().0, 3);
        // A reused buffer comes back empty: nothing of an older frame shows.
        let e = p.take(len);
        assert_eq!(e.as_ptr(), ptr);
        assert!(e.is_empty());
    }

    #[test]
    fn the_pool_keeps_at_most_its_bounds() {
        let p = pool();
        let held: Vec<Bytes> = (0..MAX_BUFFERS + 8).map(|_| p.share(filled(p, 100_000, 0))).collect();
        drop(held);
        assert_eq!(p.pooled().0, MAX_BUFFERS);
        let p = pool();
        let held: Vec<Bytes> = (0..8).map(|_| p.share(filled(p, 8 << 20, 0))).collect();
        drop(held);
        let (n, bytes) = p.pooled();
        assert!(
            bytes <= MAX_BYTES && n == MAX_BYTES / (8 << 20),
            "{n} buffers, {bytes} bytes"
        );
        // Small buffers are not kept.
        drop(p.share(filled(p, 1000, 0)));
        assert_eq!(p.pooled().0, n);
    }
}
