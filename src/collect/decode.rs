//! Pure decoding of sock_diag dump datagrams: bytes in, sockets out.
//!
//! The layout is the kernel's ABI (`include/uapi/linux/inet_diag.h`,
//! `include/uapi/linux/netlink.h`). We decode `inet_diag_msg` by hand rather
//! than through `netlink-packet-sock-diag`'s `InetResponse`: that type drops
//! the TIME_WAIT expiry (netstat's `timewait (59.71/0/0)`) and allocates a
//! vector of attributes per socket, which is most of the cost of a dump of
//! 200,000 sockets. The request side still uses the crate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::{Endpoint, Family, Proto, Socket, State, Timer, TimerKind};

pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `sizeof(struct inet_diag_msg)`.
pub const INET_DIAG_MSG_LEN: usize = 72;
/// `INET_DIAG_SKV6ONLY`: sent for AF_INET6 sockets in LISTEN or CLOSE.
const INET_DIAG_SKV6ONLY: u16 = 11;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated netlink message ({0})")]
    Truncated(&'static str),
    #[error("the kernel answered with error {errno} ({})", std::io::Error::from_raw_os_error(*errno))]
    Kernel { errno: i32 },
    #[error("unknown address family {0} in a sock_diag message")]
    Family(u8),
    #[error("unknown socket state {0} in a sock_diag message")]
    State(u8),
}

/// Where a dump stands after one datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// `NLMSG_DONE` was seen: the dump is complete.
    pub done: bool,
    /// A message carried `NLM_F_DUMP_INTR`: the tables changed during the
    /// dump, so it may have missed or repeated sockets and must be redone.
    pub interrupted: bool,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Decodes one datagram of a dump for `proto`, appending its sockets to `out`.
pub fn decode_datagram(
    buf: &[u8],
    proto: Proto,
    out: &mut Vec<Socket>,
) -> Result<Progress, DecodeError> {
    let mut progress = Progress::default();
    let mut off = 0;
    while off < buf.len() {
        let rest = &buf[off..];
        if rest.len() < NLMSG_HDRLEN {
            return Err(DecodeError::Truncated("header"));
        }
        let len = u32_at(rest, 0) as usize;
        let kind = u16_at(rest, 4);
        let flags = u16_at(rest, 6);
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(DecodeError::Truncated("length"));
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            progress.interrupted = true;
        }
        let payload = &rest[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => {
                // A dump the kernel could not start (no handler for the
                // protocol: inet_diag_dump_one's -ENOENT) ends with an
                // NLMSG_DONE carrying the errno, not with an NLMSG_ERROR.
                if payload.len() >= 4 {
                    let errno = (u32_at(payload, 0) as i32).wrapping_neg();
                    if errno != 0 {
                        return Err(DecodeError::Kernel { errno });
                    }
                }
                progress.done = true;
                return Ok(progress);
            }
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return Err(DecodeError::Truncated("error"));
                }
                let errno = (u32_at(payload, 0) as i32).wrapping_neg();
                // An error of 0 is an acknowledgement; a dump does not ask
                // for one, but it is harmless.
                if errno != 0 {
                    return Err(DecodeError::Kernel { errno });
                }
            }
            SOCK_DIAG_BY_FAMILY => out.push(decode_inet_diag_msg(payload, proto)?),
            _ => {}
        }
        // Messages are aligned to 4 bytes (NLMSG_ALIGN).
        off += (len + 3) & !3;
    }
    Ok(progress)
}

/// Decodes one `struct inet_diag_msg` and its attributes.
pub fn decode_inet_diag_msg(p: &[u8], proto: Proto) -> Result<Socket, DecodeError> {
    if p.len() < INET_DIAG_MSG_LEN {
        return Err(DecodeError::Truncated("inet_diag_msg"));
    }
    let family = match p[0] {
        AF_INET => Family::Inet,
        AF_INET6 => Family::Inet6,
        other => return Err(DecodeError::Family(other)),
    };
    let state = State::from_kernel(p[1]).ok_or(DecodeError::State(p[1]))?;
    let sport = u16::from_be_bytes([p[4], p[5]]);
    let dport = u16::from_be_bytes([p[6], p[7]]);
    let addr = |o: usize| -> IpAddr {
        match family {
            Family::Inet => IpAddr::V4(Ipv4Addr::new(p[o], p[o + 1], p[o + 2], p[o + 3])),
            Family::Inet6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&p[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            }
        }
    };
    let local = Endpoint::new(addr(8), sport);
    let dst = addr(24);
    let remote = if dport == 0 && dst.is_unspecified() {
        None
    } else {
        Some(Endpoint::new(dst, dport))
    };
    // ss prints the cookie as cookie[1] << 32 | cookie[0].
    let cookie = (u64::from(u32_at(p, 48)) << 32) | u64::from(u32_at(p, 44));
    let kind = match p[2] {
        1 => TimerKind::On,
        2 => TimerKind::Keepalive,
        3 => TimerKind::TimeWait,
        4 => TimerKind::Probe,
        _ => TimerKind::Off,
    };
    let timer = Timer {
        kind,
        expires_ms: if kind == TimerKind::Off {
            0
        } else {
            u64::from(u32_at(p, 52))
        },
        retransmits: p[3],
    };
    let (recv_q, send_q) = (u32_at(p, 56), u32_at(p, 60));
    // For listeners the kernel puts the accept queue in rqueue and the
    // backlog in wqueue; netstat (reading /proc/net/tcp) shows 0 there.
    let (send_q, backlog) = if state == State::Listen && proto == Proto::Tcp {
        (0, Some(send_q))
    } else {
        (send_q, None)
    };
    Ok(Socket {
        proto,
        family,
        state,
        recv_q,
        send_q,
        backlog,
        local,
        remote,
        uid: u32_at(p, 64),
        inode: u64::from(u32_at(p, 68)),
        cookie: Some(cookie),
        timer,
        v6only: v6only_attr(&p[INET_DIAG_MSG_LEN..]),
        processes: Vec::new(),
    })
}

/// Finds `INET_DIAG_SKV6ONLY` among the attributes; malformed attributes end
/// the search (they are optional, and the socket itself decoded fine).
fn v6only_attr(mut attrs: &[u8]) -> Option<bool> {
    while attrs.len() >= 4 {
        let len = u16_at(attrs, 0) as usize;
        let kind = u16_at(attrs, 2) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == INET_DIAG_SKV6ONLY && len >= 5 {
            return Some(attrs[4] != 0);
        }
        let step = (len + 3) & !3;
        attrs = attrs.get(step..)?;
    }
    None
}
