//! The netlink engine, transport only, shared by every netlink user here
//! (sock_diag in [`sockdiag`], ctnetlink in `collect::conntrack`): one
//! socket type over `netlink-sys`, one receive, one walker over the messages
//! of a datagram, one dump loop, one error type. What the messages *mean*
//! is the callers' business: they hand the engine a request and a decoder
//! for one message.
//!
//! The kernel's side is `include/uapi/linux/netlink.h` and
//! `net/netlink/af_netlink.c` (`netlink_dump()`, `netlink_ack()`). Kernel
//! events (multicast groups) come through the same socket type, from
//! [`NetlinkSocket::subscribe`].

pub mod sockdiag;

#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use netlink_sys::{Socket as RawSocket, SocketAddr};

pub use netlink_sys::protocols::{NETLINK_NETFILTER, NETLINK_SOCK_DIAG};
pub use sockdiag::{DiagSocket, Replay, SockDiag, request_bytes};

use crate::error::reason;

/// `sizeof(struct nlmsghdr)`, already aligned (`NLMSG_HDRLEN`).
pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_DUMP_INTR: u16 = 0x10;

/// The kernel fills at most about 32 KiB per datagram (`netlink_dump()`
/// caps its allocation there); 64 KiB leaves room, and `MSG_TRUNC` tells us
/// if a datagram still did not fit.
pub const RECV_BUF: usize = 64 * 1024;

/// How often a dump interrupted by a table change (`NLM_F_DUMP_INTR`) is
/// started again before we give up.
pub const DUMP_RETRIES: usize = 5;

/// What the bytes of a datagram can be wrong with, or say went wrong: the
/// error of the walker and of the pure decoders built on it. Plain data, so
/// tests compare it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated netlink message ({0})")]
    Truncated(&'static str),
    #[error("the kernel answered with error {errno}: {}", kernel_reason(*errno))]
    Kernel { errno: i32 },
    #[error("unknown address family {0} in a sock_diag message")]
    Family(u8),
    #[error("unknown socket state {0} in a sock_diag message")]
    State(u8),
    #[error("a ctnetlink message lacks {0}")]
    Missing(&'static str),
}

/// Everything a netlink exchange can end with.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be made, bound, connected or joined to its
    /// groups (no such protocol, a seccomp filter, no privilege).
    #[error("cannot open a netlink socket: {}", reason(.0))]
    Open(io::Error),
    #[error("{}", reason(.0))]
    Io(io::Error),
    /// An `NLMSG_ERROR`, or an `NLMSG_DONE` carrying an errno.
    #[error("the kernel answered with error {errno}: {}", kernel_reason(*errno))]
    Kernel { errno: i32 },
    /// A message cut short, or a datagram with none at all.
    #[error("truncated netlink message ({0})")]
    Truncated(&'static str),
    /// A datagram of this many bytes, longer than [`RECV_BUF`]: `MSG_TRUNC`
    /// cut it.
    #[error("a datagram of {0} bytes did not fit the receive buffer")]
    Oversized(usize),
    /// A whole message whose content does not decode.
    #[error("{0}")]
    Malformed(DecodeError),
    /// Every one of this many dumps in a row was interrupted.
    #[error("the kernel's table kept changing during {0} dumps in a row")]
    Interrupted(usize),
    /// `ENOBUFS` on a subscribed socket: the kernel had more events than
    /// the receive buffer holds, and dropped some. The socket stays usable.
    #[error("the kernel dropped events: the receive buffer overran")]
    Overrun,
}

impl From<DecodeError> for NetlinkError {
    fn from(e: DecodeError) -> NetlinkError {
        match e {
            DecodeError::Kernel { errno } => NetlinkError::Kernel { errno },
            DecodeError::Truncated(what) => NetlinkError::Truncated(what),
            other => NetlinkError::Malformed(other),
        }
    }
}

/// "No such file or directory" for 2; any i32 has a text.
fn kernel_reason(errno: i32) -> String {
    reason(&io::Error::from_raw_os_error(errno))
}

/// Where a dump stands after one datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// `NLMSG_DONE` was seen: the dump is complete.
    pub done: bool,
    /// A message carried `NLM_F_DUMP_INTR`: the tables changed during the
    /// dump, so it may have missed or repeated entries and must be redone.
    pub interrupted: bool,
}

/// One netlink message: its header's fields and what follows the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    pub payload: &'a [u8],
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// The errno at the start of a payload: `struct nlmsgerr` begins with the
/// negated errno, and so does `NLMSG_DONE`'s `int`. `wrapping_neg` because
/// `-i32::MIN` does not exist.
fn errno_at(payload: &[u8]) -> Option<i32> {
    (payload.len() >= 4).then(|| (u32_at(payload, 0) as i32).wrapping_neg())
}

/// Walks the messages of one datagram, handing each to `each`, and says
/// whether the dump ended and whether it was interrupted:
///
/// - `NLMSG_ERROR` with an errno is `Kernel { errno }`; with 0 it is an
///   acknowledgement, which a dump does not ask for but which is harmless.
/// - `NLMSG_DONE` ends the dump; what follows it is not read. With an errno
///   it is `Kernel { errno }`: a dump the kernel could not start (no handler
///   for the protocol: `inet_diag_dumpit()`'s -ENOENT) ends that way, not
///   with `NLMSG_ERROR`.
/// - `NLM_F_DUMP_INTR` on any message marks the datagram interrupted.
/// - A message that runs past the datagram, or is shorter than its header,
///   is `Truncated`: a datagram ends between messages.
///
/// Every other message goes to `each`, which picks the types it knows.
pub fn walk(
    datagram: &[u8],
    each: impl FnMut(Message<'_>) -> Result<(), DecodeError>,
) -> Result<Progress, DecodeError> {
    walk_from(datagram, None, each).map(|(progress, _)| progress)
}

/// [`walk`], skipping messages whose sequence number is not `seq` (left
/// over from an abandoned dump), and saying how many bytes it consumed:
/// up to and including the `NLMSG_DONE` message, or all of them.
pub(crate) fn walk_from(
    bytes: &[u8],
    seq: Option<u32>,
    mut each: impl FnMut(Message<'_>) -> Result<(), DecodeError>,
) -> Result<(Progress, usize), DecodeError> {
    let mut progress = Progress::default();
    let mut off = 0;
    while off < bytes.len() {
        let rest = &bytes[off..];
        if rest.len() < NLMSG_HDRLEN {
            return Err(DecodeError::Truncated("header"));
        }
        let len = u32_at(rest, 0) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(DecodeError::Truncated("length"));
        }
        let message = Message {
            kind: u16_at(rest, 4),
            flags: u16_at(rest, 6),
            seq: u32_at(rest, 8),
            pid: u32_at(rest, 12),
            payload: &rest[NLMSG_HDRLEN..len],
        };
        // Messages are aligned to 4 bytes (NLMSG_ALIGN); the last one of a
        // datagram need not be padded.
        let next = (off + len.next_multiple_of(4)).min(bytes.len());
        if seq.is_some_and(|seq| seq != message.seq) {
            off = next;
            continue;
        }
        progress.interrupted |= message.flags & NLM_F_DUMP_INTR != 0;
        match message.kind {
            NLMSG_DONE => {
                if let Some(errno) = errno_at(message.payload).filter(|&e| e != 0) {
                    return Err(DecodeError::Kernel { errno });
                }
                progress.done = true;
                return Ok((progress, next));
            }
            NLMSG_ERROR => match errno_at(message.payload) {
                None => return Err(DecodeError::Truncated("error")),
                Some(0) => {}
                Some(errno) => return Err(DecodeError::Kernel { errno }),
            },
            _ => each(message)?,
        }
        off = next;
    }
    Ok((progress, bytes.len()))
}

/// Where datagrams come from and requests go: the kernel, or in tests a
/// script.
pub(crate) trait Transport {
    fn send(&mut self, request: &[u8]) -> Result<(), NetlinkError>;
    fn recv(&mut self) -> Result<&[u8], NetlinkError>;
}

/// The dump loop: sends `request` with a fresh sequence number (from
/// `seq`), decodes every datagram of the answer with `decode` until
/// `NLMSG_DONE`, and starts again, up to [`DUMP_RETRIES`] times, while the
/// answer was interrupted. `out` holds the last answer's entries after what
/// it held before; on an error, only what it held before.
pub(crate) fn dump_over<T>(
    transport: &mut (impl Transport + Send),
    seq: &mut u32,
    request: &[u8],
    out: &mut Vec<T>,
    mut decode: impl FnMut(Message<'_>, &mut Vec<T>) -> Result<(), DecodeError>,
) -> Result<(), NetlinkError> {
    if request.len() < NLMSG_HDRLEN {
        return Err(NetlinkError::Truncated("request"));
    }
    let mut request = request.to_vec();
    let start = out.len();
    for _ in 0..DUMP_RETRIES {
        out.truncate(start);
        *seq = seq.wrapping_add(1);
        request[8..12].copy_from_slice(&seq.to_ne_bytes());
        match dump_once(transport, *seq, &request, out, &mut decode) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    out.truncate(start);
    Err(NetlinkError::Interrupted(DUMP_RETRIES))
}

/// One dump; returns whether it was interrupted.
///
/// The kernel makes each datagram of a dump in the receive that takes the
/// one before (`netlink_recvmsg()` calls `netlink_dump()` once it has
/// copied a datagram out), so a dump read and decoded on one thread does
/// the kernel's work and the decoding one after the other. A dump that
/// does not end with its first datagram (one of about 32 KiB: a couple of
/// hundred sockets) is therefore received on a thread of its own while
/// this one decodes: at 200,000 sockets the kernel's part is most of a
/// dump's time, and the decoding then takes none of its own.
fn dump_once<T>(
    transport: &mut (impl Transport + Send),
    seq: u32,
    request: &[u8],
    out: &mut Vec<T>,
    decode: &mut impl FnMut(Message<'_>, &mut Vec<T>) -> Result<(), DecodeError>,
) -> Result<bool, NetlinkError> {
    transport.send(request)?;
    let first = received(transport.recv())?;
    let (progress, _) = walk_from(first, Some(seq), |m| decode(m, out))?;
    if progress.done {
        return Ok(progress.interrupted);
    }
    let mut interrupted = progress.interrupted;
    std::thread::scope(|scope| {
        // datagrams the decoder has not taken yet; a few are enough to keep
        // the receiving thread going, and bound the memory held
        let (full, taken) = std::sync::mpsc::sync_channel::<Result<Vec<u8>, NetlinkError>>(8);
        let (spent, reused) = std::sync::mpsc::channel::<Vec<u8>>();
        let receiving = std::thread::Builder::new().spawn_scoped(scope, move || {
            loop {
                let got = received(transport.recv()).map(|datagram| {
                    let mut buf = reused.try_recv().unwrap_or_default();
                    buf.clear();
                    buf.extend_from_slice(datagram);
                    buf
                });
                // the last: its NLMSG_DONE or error, or bytes that cannot
                // be walked (the decoder says what is wrong with them)
                let last = got.as_ref().map_or(true, |d| {
                    walk_from(d, Some(seq), |_| Ok(())).map_or(true, |(p, _)| p.done)
                });
                // a decoder that stopped early has let go of `taken`
                if full.send(got).is_err() || last {
                    return;
                }
            }
        });
        // no thread to be had (RLIMIT_NPROC): said as an error, not a panic
        receiving.map_err(NetlinkError::Io)?;
        for got in taken {
            let datagram = got?;
            let (progress, _) = walk_from(&datagram, Some(seq), |m| decode(m, out))?;
            interrupted |= progress.interrupted;
            if progress.done {
                return Ok(interrupted);
            }
            let _ = spent.send(datagram);
        }
        // the receiving thread stops only after what ends the dump
        Err(NetlinkError::Truncated("dump"))
    })
}

/// A received datagram, or why there is none: nothing the kernel sends is
/// empty, and a loop on an empty one would never end.
fn received(got: Result<&[u8], NetlinkError>) -> Result<&[u8], NetlinkError> {
    match got? {
        [] => Err(NetlinkError::Truncated("empty datagram")),
        datagram => Ok(datagram),
    }
}

/// The flag bits of `nla_type` (include/uapi/linux/netlink.h).
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000); // NLA_F_NESTED, NLA_F_NET_BYTEORDER

/// The attributes in `buf`, as the kernel's `nla_parse()` sees them: a
/// table indexed by type (flag bits masked off), the last of a type winning,
/// types beyond the table ignored.
pub fn parse_attributes<const N: usize>(mut buf: &[u8]) -> Result<[Option<&[u8]>; N], DecodeError> {
    let mut table = [None; N];
    // Fewer than 4 bytes left is padding (`nla_ok()`).
    while let Some(&[l0, l1, t0, t1]) = buf.get(..4) {
        let len = usize::from(u16::from_ne_bytes([l0, l1]));
        let Some(payload) = buf.get(4..len) else {
            return Err(DecodeError::Truncated("attribute"));
        };
        let kind = usize::from(u16::from_ne_bytes([t0, t1]) & NLA_TYPE_MASK);
        if let Some(slot) = table.get_mut(kind) {
            *slot = Some(payload);
        }
        // Attributes are aligned to 4 bytes (NLA_ALIGN).
        buf = buf.get((len + 3) & !3..).unwrap_or_default();
    }
    Ok(table)
}

/// A netlink socket of one protocol: for requests and their answers
/// ([`NetlinkSocket::open`]) or for a kernel's events
/// ([`NetlinkSocket::subscribe`]).
pub struct NetlinkSocket {
    socket: RawSocket,
    buf: Vec<u8>,
    seq: u32,
}

impl NetlinkSocket {
    /// A socket of `protocol` (`NETLINK_SOCK_DIAG`, `NETLINK_NETFILTER`...)
    /// bound to an address the kernel picks and connected to the kernel.
    pub fn open(protocol: isize) -> Result<NetlinkSocket, NetlinkError> {
        let socket = Self::bound(protocol)?;
        socket
            .socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Open)?;
        Ok(socket)
    }

    /// A socket of `protocol` joined to the multicast `groups` (numbered
    /// from 1, as `NETLINK_ADD_MEMBERSHIP` takes them: for sock_diag,
    /// `sockdiag::SKNLGRP_INET_TCP_DESTROY`...). The kernel's events arrive
    /// as datagrams of messages with sequence number 0, for [`walk`]. Poll
    /// it through [`AsFd`] and read with [`NetlinkSocket::try_recv`].
    ///
    /// The groups are those of the caller's network namespace at this call.
    pub fn subscribe(protocol: isize, groups: &[u32]) -> Result<NetlinkSocket, NetlinkError> {
        let socket = Self::bound(protocol)?;
        for &group in groups {
            socket
                .socket
                .add_membership(group)
                .map_err(NetlinkError::Open)?;
        }
        Ok(socket)
    }

    fn bound(protocol: isize) -> Result<NetlinkSocket, NetlinkError> {
        let mut socket = RawSocket::new(protocol).map_err(NetlinkError::Open)?;
        socket.bind_auto().map_err(NetlinkError::Open)?;
        Ok(NetlinkSocket {
            socket,
            buf: vec![0; RECV_BUF],
            seq: 0,
        })
    }

    /// Sends one request to the kernel, again after EINTR.
    pub fn send(&mut self, request: &[u8]) -> Result<(), NetlinkError> {
        loop {
            match self.socket.send(request, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetlinkError::Io(e)),
            }
        }
    }

    /// Waits for one datagram and returns it.
    pub fn recv(&mut self) -> Result<&[u8], NetlinkError> {
        // `None` only if someone made the socket non-blocking
        let n = self
            .recv_with(0)?
            .ok_or_else(|| NetlinkError::Io(io::ErrorKind::WouldBlock.into()))?;
        Ok(&self.buf[..n])
    }

    /// One datagram if one is queued, `None` if not: for a socket polled
    /// for events.
    pub fn try_recv(&mut self) -> Result<Option<&[u8]>, NetlinkError> {
        Ok(self.recv_with(libc::MSG_DONTWAIT)?.map(|n| &self.buf[..n]))
    }

    /// Receives one datagram into the buffer, again after EINTR; `None` when
    /// `MSG_DONTWAIT` found nothing. With `MSG_TRUNC` the kernel reports the
    /// datagram's real length, so a cut one is an error rather than silently
    /// lost entries.
    fn recv_with(&mut self, flags: libc::c_int) -> Result<Option<usize>, NetlinkError> {
        loop {
            match self
                .socket
                .recv(&mut &mut self.buf[..], flags | libc::MSG_TRUNC)
            {
                Ok(n) if n > self.buf.len() => return Err(NetlinkError::Oversized(n)),
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                // netlink_overrun() sets it, the next receive reports it once
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Err(NetlinkError::Overrun);
                }
                Err(e) => return Err(NetlinkError::Io(e)),
            }
        }
    }

    /// Runs a dump: sends `request` (an `nlmsghdr` with `NLM_F_DUMP` and
    /// what the protocol wants after it; its sequence number is set here)
    /// and hands every message of the answer to `decode`, which appends
    /// what it finds to `out`. An interrupted dump is started again, up to
    /// [`DUMP_RETRIES`] times; `out` then holds the last answer only. On an
    /// error `out` is left as it was.
    pub fn dump<T>(
        &mut self,
        request: &[u8],
        out: &mut Vec<T>,
        decode: impl FnMut(Message<'_>, &mut Vec<T>) -> Result<(), DecodeError>,
    ) -> Result<(), NetlinkError> {
        let mut seq = self.seq;
        let result = dump_over(self, &mut seq, request, out, decode);
        self.seq = seq;
        result
    }
}

impl Transport for NetlinkSocket {
    fn send(&mut self, request: &[u8]) -> Result<(), NetlinkError> {
        NetlinkSocket::send(self, request)
    }

    fn recv(&mut self) -> Result<&[u8], NetlinkError> {
        NetlinkSocket::recv(self)
    }
}

impl AsFd for NetlinkSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for NetlinkSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
