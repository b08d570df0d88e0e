//! Sealed memfd buffers and their mappings. All of this crate's `unsafe`
//! lives here and in `sock.rs`.

use std::ffi::c_void;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// Seals every buffer carries; a consumer refuses an fd without them.
pub const REQUIRED_SEALS: SealFlag = SealFlag::F_SEAL_SHRINK.union(SealFlag::F_SEAL_GROW);

/// A shared mapping of a whole memfd. Unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is plain memory owned by this value; the raw pointer is
// only dereferenced through `&self`/`&mut self` methods that borrow-check
// access from Rust. Cross-process writers are the protocol's business (a
// producer writes a buffer only while no consumer holds it).
unsafe impl Send for Mapping {}
// SAFETY: see `Send`; shared access is read-only (`as_slice`).
unsafe impl Sync for Mapping {}

impl Mapping {
    pub(crate) fn map_fd(fd: &OwnedFd, len: usize, writable: bool) -> io::Result<Mapping> {
        Mapping::map(fd, len, writable)
    }

    fn map(fd: &OwnedFd, len: usize, writable: bool) -> io::Result<Mapping> {
        let nz = NonZeroUsize::new(len).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty buffer"))?;
        let prot = if writable {
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
        } else {
            ProtFlags::PROT_READ
        };
        // SAFETY: a fresh mapping at an address the kernel picks, of `len`
        // bytes of a memfd whose size is at least `len` (the callers check
        // it, and F_SEAL_SHRINK keeps it so); it aliases no Rust object.
        let ptr = unsafe { mmap(None, nz, prot, MapFlags::MAP_SHARED, fd.as_fd(), 0) }?;
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
            writable,
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: mappings are at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is a live mapping owned by `self` for as
        // long as the borrow; the file cannot shrink under it (sealed).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable (producer side only).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(self.writable, "read-only mapping");
        // SAFETY: as `as_slice`, and `&mut self` makes the access exclusive
        // within this process; the mapping was made with PROT_WRITE.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; no borrow of
        // the slice outlives `self`.
        let _ = unsafe { munmap(self.ptr.cast::<c_void>(), self.len) };
    }
}

/// A producer's buffer: a sealed memfd mapped read-write.
#[derive(Debug)]
pub struct MemBuf {
    /// The memfd, passed to consumers.
    pub fd: OwnedFd,
    /// Producer's writable mapping.
    pub map: Mapping,
}

impl MemBuf {
    /// Creates a memfd of `size` bytes, maps it, and seals it against
    /// shrinking and growing (and against new writable mappings where the
    /// kernel has F_SEAL_FUTURE_WRITE: consumers can only map it read-only).
    pub fn create(name: &str, size: usize) -> io::Result<MemBuf> {
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
        nix::unistd::ftruncate(&fd, size as libc::off_t)?;
        let map = Mapping::map(&fd, size, true)?;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(REQUIRED_SEALS))?;
        // Best effort: older kernels lack it.
        let _ = fcntl(&fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_FUTURE_WRITE));
        fcntl(&fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SEAL))?;
        Ok(MemBuf { fd, map })
    }
}

/// Why a consumer refused an fd.
#[derive(Debug, thiserror::Error)]
pub enum FdRefused {
    /// Not a sealable memfd, or not sealed against resizing.
    #[error("fd is not sealed against shrink/grow")]
    NotSealed,
    /// The file's size is not the announced size.
    #[error("fd size {actual} differs from announced {announced}")]
    Size {
        /// What the BUFFER message said.
        announced: u64,
        /// What fstat says.
        actual: u64,
    },
    /// mmap failed.
    #[error("mmap: {0}")]
    Map(io::Error),
}

/// Consumer side: checks an fd received from a producer and maps it read-only.
pub fn map_received(fd: &OwnedFd, announced: u64) -> Result<Mapping, FdRefused> {
    let seals = fcntl(fd, FcntlArg::F_GET_SEALS).map_err(|_| FdRefused::NotSealed)?;
    if !SealFlag::from_bits_truncate(seals).contains(REQUIRED_SEALS) {
        return Err(FdRefused::NotSealed);
    }
    let st = nix::sys::stat::fstat(fd).map_err(|e| FdRefused::Map(e.into()))?;
    if st.st_size as u64 != announced || announced == 0 || announced > isize::MAX as u64 {
        return Err(FdRefused::Size {
            announced,
            actual: st.st_size as u64,
        });
    }
    Mapping::map(fd, announced as usize, false).map_err(FdRefused::Map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_sealed_and_map_read_only() {
        let mut b = MemBuf::create("t", 4096).unwrap();
        b.map.as_mut_slice()[..3].copy_from_slice(b"abc");
        // A peer cannot resize it.
        assert!(nix::unistd::ftruncate(&b.fd, 10).is_err());
        assert!(nix::unistd::ftruncate(&b.fd, 8192).is_err());
        // No further seals can be removed or added.
        assert!(fcntl(&b.fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_WRITE)).is_err());
        let m = map_received(&b.fd, 4096).unwrap();
        assert_eq!(&m.as_slice()[..3], b"abc");
        assert!(matches!(map_received(&b.fd, 4095), Err(FdRefused::Size { .. })));
        // F_SEAL_FUTURE_WRITE: a peer can only map it read-only.
        assert!(Mapping::map(&b.fd, 4096, true).is_err());
    }

    #[test]
    fn unsealed_memfd_and_other_files_are_refused() {
        let fd = memfd_create("u", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING).unwrap();
        nix::unistd::ftruncate(&fd, 4096).unwrap();
        assert!(matches!(map_received(&fd, 4096), Err(FdRefused::NotSealed)));
        let f: OwnedFd = std::fs::File::open("/proc/self/status").unwrap().into();
        assert!(matches!(map_received(&f, 4096), Err(FdRefused::NotSealed)));
    }
}
