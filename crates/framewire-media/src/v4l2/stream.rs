//! Memory-mapped streaming I/O: `VIDIOC_REQBUFS`, `VIDIOC_QUERYBUF`,
//! `mmap`, `VIDIOC_QBUF`, `VIDIOC_DQBUF`, `VIDIOC_STREAMON/OFF`.
//!
//! [`Capture`] owns the device while it streams. Dropping it stops the
//! stream, unmaps every buffer and closes the file descriptor, in that
//! order, so that a lost device is fully released (a driver such as
//! `vivid` brings a disconnected device back only once its last file
//! descriptor is closed).

use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::mman::{MapFlags, ProtFlags};

use super::device::{Device, PixFormat, V4l2Error, xioctl};
use super::sys::{self, zeroed};

/// One mapped driver buffer.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<std::ffi::c_void>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; it is
// only read through `&self` while the driver does not own the buffer (it
// has been dequeued and not yet queued again).
unsafe impl Send for Mapping {}

/// A dequeued buffer's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequeued {
    /// Buffer index (give it back with [`Capture::requeue`]).
    pub index: u32,
    /// Bytes of data in it.
    pub bytesused: u32,
    /// The driver's frame counter (gaps: frames the driver dropped).
    pub sequence: u32,
    /// Capture time as the driver stamped it, nanoseconds.
    pub timestamp_ns: u64,
    /// Whether the timestamp is on `CLOCK_MONOTONIC` (the usual case).
    pub monotonic: bool,
    /// The driver marked the data as corrupted (`V4L2_BUF_FLAG_ERROR`).
    pub error: bool,
}

/// A device streaming into memory-mapped buffers.
#[derive(Debug)]
pub struct Capture {
    dev: Device,
    format: PixFormat,
    maps: Vec<Mapping>,
    streaming: bool,
}

impl Capture {
    /// Requests `count` buffers, maps and queues them all, and starts
    /// streaming. The device must already have its format set.
    pub fn start(dev: Device, count: u32) -> Result<Capture, V4l2Error> {
        let format = dev.format()?;
        let mut cap = Capture {
            dev,
            format,
            maps: Vec::new(),
            streaming: false,
        };
        let path = cap.dev.path().to_path_buf();
        let mut req = sys::v4l2_requestbuffers {
            count: count.max(2),
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            memory: sys::MEMORY_MMAP,
            ..Default::default()
        };
        // SAFETY: `req` is a valid v4l2_requestbuffers, live across the call.
        xioctl(&path, "VIDIOC_REQBUFS", || unsafe {
            sys::vidioc_reqbufs(cap.dev.raw(), &mut req)
        })?;
        if req.count < 2 {
            return Err(V4l2Error::Unsupported {
                path: path.display().to_string(),
                message: format!("the driver granted {} buffers; streaming needs at least 2", req.count),
            });
        }
        for index in 0..req.count {
            let mut b: sys::v4l2_buffer = zeroed();
            b.index = index;
            b.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
            b.memory = sys::MEMORY_MMAP;
            // SAFETY: `b` is a valid v4l2_buffer, live across the call.
            xioctl(&path, "VIDIOC_QUERYBUF", || unsafe {
                sys::vidioc_querybuf(cap.dev.raw(), &mut b)
            })?;
            let len = NonZeroUsize::new(b.length as usize).ok_or_else(|| V4l2Error::Unsupported {
                path: path.display().to_string(),
                message: format!("buffer {index} has length 0"),
            })?;
            // SAFETY: for MMAP buffers the kernel filled `m.offset`.
            let offset = unsafe { b.m.offset };
            // SAFETY: maps `len` bytes of the driver's buffer at the offset
            // QUERYBUF gave, shared, on our open fd. The mapping is owned
            // by `cap.maps` and unmapped exactly once in `Drop`.
            let ptr = unsafe {
                nix::sys::mman::mmap(
                    None,
                    len,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_SHARED,
                    cap.dev.as_fd(),
                    i64::from(offset),
                )
            }
            .map_err(|errno| V4l2Error::Sys {
                path: path.display().to_string(),
                op: "mmap",
                errno,
            })?;
            cap.maps.push(Mapping { ptr, len: len.get() });
        }
        for index in 0..req.count {
            cap.requeue(index)?;
        }
        let ty: i32 = sys::BUF_TYPE_VIDEO_CAPTURE as i32;
        // SAFETY: STREAMON reads one int, `ty`, live across the call.
        xioctl(&path, "VIDIOC_STREAMON", || unsafe {
            sys::vidioc_streamon(cap.dev.raw(), &ty)
        })?;
        cap.streaming = true;
        Ok(cap)
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// The format being captured.
    pub fn format(&self) -> PixFormat {
        self.format
    }

    /// Buffers mapped.
    pub fn buffer_count(&self) -> usize {
        self.maps.len()
    }

    /// Waits up to `timeout` for a filled buffer. `Ok(None)` on timeout.
    pub fn dequeue(&mut self, timeout: Duration) -> Result<Option<Dequeued>, V4l2Error> {
        let path = self.dev.path().to_path_buf();
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.dev.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok(None),
            Err(errno) => {
                return Err(V4l2Error::Sys {
                    path: path.display().to_string(),
                    op: "poll",
                    errno,
                });
            }
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        let mut b: sys::v4l2_buffer = zeroed();
        b.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
        b.memory = sys::MEMORY_MMAP;
        // SAFETY: `b` is a valid v4l2_buffer, live across the call.
        match xioctl(&path, "VIDIOC_DQBUF", || unsafe {
            sys::vidioc_dqbuf(self.dev.raw(), &mut b)
        }) {
            Ok(()) => {}
            Err(V4l2Error::Sys {
                errno: Errno::EAGAIN, ..
            }) => {
                if revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
                    // Nothing to dequeue and the driver flags an error:
                    // the device is gone or stopped streaming.
                    return Err(V4l2Error::Sys {
                        path: path.display().to_string(),
                        op: "poll",
                        errno: Errno::EIO,
                    });
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let tv = b.timestamp;
        let ns = u64::try_from(tv.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(tv.tv_usec).unwrap_or(0) * 1000;
        Ok(Some(Dequeued {
            index: b.index,
            bytesused: b.bytesused,
            sequence: b.sequence,
            timestamp_ns: ns,
            monotonic: b.flags & sys::BUF_FLAG_TIMESTAMP_MASK == sys::BUF_FLAG_TIMESTAMP_MONOTONIC,
            error: b.flags & sys::BUF_FLAG_ERROR != 0,
        }))
    }

    /// The bytes of a dequeued buffer (`bytesused` of them, clamped to the
    /// mapping). Valid until the buffer is queued again.
    pub fn data(&self, d: &Dequeued) -> &[u8] {
        let Some(m) = self.maps.get(d.index as usize) else {
            return &[];
        };
        let len = (d.bytesused as usize).min(m.len);
        // SAFETY: the mapping is `m.len` bytes of readable shared memory,
        // alive as long as `self`; `len <= m.len`. The buffer is dequeued,
        // so the driver does not write it until `requeue`, which needs
        // `&mut self` and so cannot run while this borrow lives.
        unsafe { std::slice::from_raw_parts(m.ptr.as_ptr().cast::<u8>(), len) }
    }

    /// Gives a buffer back to the driver.
    pub fn requeue(&mut self, index: u32) -> Result<(), V4l2Error> {
        let mut b: sys::v4l2_buffer = zeroed();
        b.index = index;
        b.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
        b.memory = sys::MEMORY_MMAP;
        let path = self.dev.path().to_path_buf();
        // SAFETY: `b` is a valid v4l2_buffer, live across the call.
        xioctl(&path, "VIDIOC_QBUF", || unsafe {
            sys::vidioc_qbuf(self.dev.raw(), &mut b)
        })
    }

    /// Stops streaming, unmaps and closes (what `Drop` does), reporting errors.
    pub fn stop(mut self) -> Result<(), V4l2Error> {
        self.stream_off()
    }

    fn stream_off(&mut self) -> Result<(), V4l2Error> {
        if !self.streaming {
            return Ok(());
        }
        self.streaming = false;
        let ty: i32 = sys::BUF_TYPE_VIDEO_CAPTURE as i32;
        let path = self.dev.path().to_path_buf();
        // SAFETY: STREAMOFF reads one int, `ty`, live across the call.
        xioctl(&path, "VIDIOC_STREAMOFF", || unsafe {
            sys::vidioc_streamoff(self.dev.raw(), &ty)
        })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.stream_off();
        for m in self.maps.drain(..) {
            // SAFETY: `m` was returned by mmap with this length and is
            // unmapped once; no slice into it outlives `&self`.
            let _ = unsafe { nix::sys::mman::munmap(m.ptr, m.len) };
        }
        // Free the driver's buffers (REQBUFS 0) so the device can be
        // reconfigured by the next opener; errors are moot on a lost device.
        let mut req = sys::v4l2_requestbuffers {
            count: 0,
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            memory: sys::MEMORY_MMAP,
            ..Default::default()
        };
        let path = self.dev.path().to_path_buf();
        // SAFETY: `req` is a valid v4l2_requestbuffers, live across the call.
        let _ = xioctl(&path, "VIDIOC_REQBUFS", || unsafe {
            sys::vidioc_reqbufs(self.dev.raw(), &mut req)
        });
        // The fd closes when `self.dev` drops, after this.
    }
}
