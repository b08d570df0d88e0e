//! SOCK_SEQPACKET Unix sockets: one message per packet, fds by SCM_RIGHTS.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, accept4, bind,
    connect, listen, recvmsg, sendmsg, socket,
};

use crate::wire::MAX_MESSAGE;

/// At most this many fds are accepted with one packet; more is a protocol error.
const MAX_FDS: usize = 4;

/// Listening socket at `path` (an existing socket file there is replaced).
pub fn listen_at(path: &Path) -> io::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen(&fd, Backlog::new(64)?)?;
    Ok(fd)
}

/// Accepts one pending connection (non-blocking); `Ok(None)` when none waits.
pub fn accept(listener: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    match accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK) {
        // SAFETY: accept4 returned a fresh fd that nothing else owns.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(nix::errno::Errno::EAGAIN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Connects to a producer's socket (blocking mode).
pub fn connect_to(path: &Path) -> io::Result<OwnedFd> {
    let fd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

/// A connected pair (tests, in-process use).
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Sends one packet with optional fds. Never raises SIGPIPE. With
/// `dont_wait`, a full socket gives `ErrorKind::WouldBlock`.
pub fn send(fd: RawFd, packet: &[u8], fds: &[RawFd], dont_wait: bool) -> io::Result<()> {
    let iov = [IoSlice::new(packet)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if dont_wait {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    sendmsg::<()>(fd, &iov, cmsgs, flags, None)?;
    Ok(())
}

/// What one `recv` returned.
#[derive(Debug)]
pub enum Recv {
    /// A packet and the fds that came with it (owned: closed if dropped).
    Packet(Vec<u8>, Vec<OwnedFd>),
    /// The peer closed.
    Closed,
    /// Nothing within the time allowed.
    Empty,
}

/// Receives one packet. `timeout` `Some(ZERO)` polls, `None` blocks.
/// A truncated packet or truncated fd list is an error (the fds that did
/// arrive are closed).
pub fn recv(fd: RawFd, timeout: Option<Duration>) -> io::Result<Recv> {
    // `Some(ZERO)` needs no poll: the receive itself does not wait.
    if timeout != Some(Duration::ZERO) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::BorrowedFd;
        // SAFETY: `fd` is open for the duration of this call (the caller owns it).
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut fds = [PollFd::new(bfd, PollFlags::POLLIN)];
        let ms = match timeout {
            Some(t) => PollTimeout::try_from(t.min(Duration::from_secs(3600))).unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        loop {
            match poll(&mut fds, ms) {
                Ok(0) => return Ok(Recv::Empty),
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut cspace = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (n, flags, mut fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let flags = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT;
        let msg = match recvmsg::<()>(fd, &mut iov, Some(&mut cspace), flags) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) => return Ok(Recv::Empty),
            Err(e) => return Err(e.into()),
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for r in raw {
                    // SAFETY: the kernel just installed these fds in this
                    // process for us; nothing else owns them.
                    fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                }
            }
        }
        (msg.bytes, msg.flags, fds)
    };
    if flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC) {
        fds.clear();
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated packet or fd list",
        ));
    }
    if n == 0 && fds.is_empty() {
        return Ok(Recv::Closed);
    }
    buf.truncate(n);
    Ok(Recv::Packet(buf, fds))
}
