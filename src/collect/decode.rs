//! Pure decoding of sock_diag dump datagrams: bytes in, sockets out.
//!
//! The layout is the kernel's ABI (`include/uapi/linux/inet_diag.h`,
//! `include/uapi/linux/netlink.h`). We decode `inet_diag_msg` by hand rather
//! than through `netlink-packet-sock-diag`'s `InetResponse`: that type drops
//! the TIME_WAIT expiry (netstat's `timewait (59.71/0/0)`) and allocates a
//! vector of attributes per socket, which is most of the cost of a dump of
//! 200,000 sockets. The request side still uses the crate
//! (`netlink::sockdiag`), and the engine (`netlink`) walks the messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use super::netlink::{
    DecodeError, Message, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, Progress,
};
use crate::model::{Endpoint, Family, Proto, Socket, State, Timer, TimerKind};

pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `sizeof(struct inet_diag_msg)`.
pub const INET_DIAG_MSG_LEN: usize = 72;
/// `INET_DIAG_SKV6ONLY`: sent for AF_INET6 sockets in LISTEN or CLOSE.
const INET_DIAG_SKV6ONLY: u16 = 11;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Decodes one datagram of a dump for `proto`, appending its sockets to
/// `out`; the engine's walker (`netlink::walk`) reads the messages.
pub fn decode_datagram(
    buf: &[u8],
    proto: Proto,
    out: &mut Vec<Socket>,
) -> Result<Progress, DecodeError> {
    super::netlink::walk(buf, |m| decode_message(m, proto, out))
}

/// Decodes one message of a dump or of a destroy event: a
/// `SOCK_DIAG_BY_FAMILY` message is a socket, appended to `out`; others
/// are not ours and are skipped.
pub fn decode_message(
    message: Message<'_>,
    proto: Proto,
    out: &mut Vec<Socket>,
) -> Result<(), DecodeError> {
    if message.kind == SOCK_DIAG_BY_FAMILY {
        out.push(decode_inet_diag_msg(message.payload, proto)?);
    }
    Ok(())
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
        closed: false,
        tcp_info: None,
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
