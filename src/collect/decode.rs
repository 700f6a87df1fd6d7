//! Pure decoding of sock_diag dump datagrams: bytes in, sockets out.
//!
//! The layout is the kernel's ABI (`include/uapi/linux/inet_diag.h`,
//! `include/uapi/linux/netlink.h`). We decode `inet_diag_msg` by hand rather
//! than through `netlink-packet-sock-diag`'s `InetResponse`: that type drops
//! the TIME_WAIT expiry (netstat's `timewait (59.71/0/0)`) and allocates a
//! vector of attributes per socket, which is most of the cost of a dump of
//! 200,000 sockets. The request side still uses the crate
//! (`netlink::sockdiag`), and the engine (`netlink`) walks the messages.
//!
//! Destroy events (watch mode, `collect::events`) are the same message with
//! `INET_DIAG_INFO` after it: [`decode_with_info`] adds the `tcp_info` it
//! carries, which dumps ask for only with `-i`, so [`decode_inet_diag_msg`]
//! does not look for it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use super::netlink::{
    DecodeError, Message, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, Progress,
};
use crate::model::{Endpoint, Family, Proto, Socket, State, TcpInfo, Timer, TimerKind};

pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The compatibility request type (`TCPDIAG_GETSOCK`), of its answers too.
pub const TCPDIAG_GETSOCK: u16 = 18;
/// `sizeof(struct inet_diag_msg)`.
pub const INET_DIAG_MSG_LEN: usize = 72;
/// `INET_DIAG_SKV6ONLY`: sent for AF_INET6 sockets in LISTEN or CLOSE.
const INET_DIAG_SKV6ONLY: u16 = 11;
/// `INET_DIAG_INFO`: the protocol's info struct, `struct tcp_info` for TCP.
const INET_DIAG_INFO: u16 = 2;
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
    // the answers to a `TCPDIAG_GETSOCK` dump are of that type
    if message.kind == SOCK_DIAG_BY_FAMILY || message.kind == TCPDIAG_GETSOCK {
        out.push(decode_inet_diag_msg(message.payload, proto)?);
    }
    Ok(())
}

/// [`decode_message`], and for TCP the `tcp_info` of the message's
/// `INET_DIAG_INFO` attribute where it has one: what a destroy event carries
/// (`inet_diag_handler_get_info()` in net/ipv4/inet_diag.c). An attribute
/// too short to hold even the oldest `struct tcp_info` leaves it `None`.
pub fn decode_with_info(
    message: Message<'_>,
    proto: Proto,
    out: &mut Vec<Socket>,
) -> Result<(), DecodeError> {
    let before = out.len();
    decode_message(message, proto, out)?;
    if proto == Proto::Tcp
        && let Some(socket) = out.get_mut(before)
    {
        socket.tcp_info = tcp_info_attr(message.payload).map(Box::new);
    }
    Ok(())
}

/// The `tcp_info` of an `inet_diag_msg` payload's `INET_DIAG_INFO`
/// attribute, where it has one long enough ([`decode_tcp_info`]).
pub fn tcp_info_attr(payload: &[u8]) -> Option<TcpInfo> {
    payload
        .get(INET_DIAG_MSG_LEN..)
        .and_then(|attrs| attribute(attrs, INET_DIAG_INFO))
        .and_then(decode_tcp_info)
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
        owner_gone: false,
        ended: None,
        tcp_info: None,
    })
}

/// Finds `INET_DIAG_SKV6ONLY` among the attributes.
fn v6only_attr(attrs: &[u8]) -> Option<bool> {
    attribute(attrs, INET_DIAG_SKV6ONLY)
        .and_then(|payload| payload.first())
        .map(|&b| b != 0)
}

/// The payload of the first attribute of type `kind`; malformed attributes
/// end the search (they are optional, and the socket itself decoded fine).
fn attribute(mut attrs: &[u8], kind: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = u16_at(attrs, 0) as usize;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if u16_at(attrs, 2) & 0x3fff == kind {
            return Some(&attrs[4..len]);
        }
        let step = (len + 3) & !3;
        attrs = attrs.get(step..)?;
    }
    None
}

/// The size of the oldest `struct tcp_info` (Linux 2.6: up to
/// `tcpi_total_retrans`): the fields [`TcpInfo`] does not wrap in `Option`.
pub const TCP_INFO_MIN_LEN: usize = 104;

/// Decodes `struct tcp_info` (include/uapi/linux/tcp.h) as far as `b`
/// holds it: the struct only ever grew at its end, and the kernel sends as
/// much of it as it has, so a field past the end of `b` is `None` and bytes
/// past the fields known here are ignored. `None` when `b` is shorter than
/// the oldest struct. Offsets are those of the header; times there are in
/// microseconds already, and rates in bytes per second (sent here in bits
/// per second, as ss shows them). The kernel's "no value" is `None` too:
/// `tcpi_min_rtt` of `~0` (no sample yet) and `tcpi_pacing_rate` of `~0`
/// (unlimited), which ss leaves out as well.
pub fn decode_tcp_info(b: &[u8]) -> Option<TcpInfo> {
    if b.len() < TCP_INFO_MIN_LEN {
        return None;
    }
    let u32_field = |o: usize| (b.len() >= o + 4).then(|| u32_at(b, o));
    let u64_field = |o: usize| {
        b.get(o..o + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_ne_bytes)
    };
    // a rate is at most ~0 / 8 bytes per second, but saturate anyway
    let bits = |bytes: u64| bytes.saturating_mul(8);
    Some(TcpInfo {
        retransmits: b[2],
        rto_us: u32_at(b, 8),
        retrans: u32_at(b, 36),
        rtt_us: u32_at(b, 68),
        rttvar_us: u32_at(b, 72),
        snd_ssthresh: u32_at(b, 76),
        snd_cwnd: u32_at(b, 80),
        total_retrans: u32_at(b, 100),
        pacing_rate_bps: u64_field(104).filter(|&r| r != u64::MAX).map(bits),
        bytes_acked: u64_field(120),
        bytes_received: u64_field(128),
        min_rtt_us: u32_field(148).filter(|&r| r != u32::MAX),
        delivery_rate_bps: u64_field(160).map(bits),
        busy_time_us: u64_field(168),
        rwnd_limited_us: u64_field(176),
        sndbuf_limited_us: u64_field(184),
        bytes_retrans: u64_field(208),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `struct tcp_info` of `len` bytes, each field set to a value that
    /// says where it is: the offset of its first byte, plus 1.
    fn tcp_info_bytes(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        let put32 = |b: &mut Vec<u8>, o: usize| {
            if o + 4 <= b.len() {
                b[o..o + 4].copy_from_slice(&(o as u32 + 1).to_ne_bytes());
            }
        };
        for o in [8, 36, 68, 72, 76, 80, 100, 148] {
            put32(&mut b, o);
        }
        for o in [104, 120, 128, 160, 168, 176, 184, 208] {
            if o + 8 <= b.len() {
                b[o..o + 8].copy_from_slice(&(o as u64 + 1).to_ne_bytes());
            }
        }
        if len > 2 {
            b[2] = 3;
        }
        b
    }

    /// A `SOCK_DIAG_BY_FAMILY` message of a destroyed IPv4 TCP socket, as
    /// `inet_diag_handler_get_info()` writes it: `INET_DIAG_PROTOCOL`, then
    /// `INET_DIAG_INFO` with `info` (of any length).
    fn destroyed(info: Option<&[u8]>) -> Vec<u8> {
        let mut p = vec![0u8; INET_DIAG_MSG_LEN];
        p[0] = AF_INET;
        p[1] = State::Close as u8;
        p[4..6].copy_from_slice(&40000u16.to_be_bytes());
        p[6..8].copy_from_slice(&21u16.to_be_bytes());
        p[8..12].copy_from_slice(&[10, 0, 0, 1]);
        p[24..28].copy_from_slice(&[10, 0, 0, 2]);
        p[44..48].copy_from_slice(&7u32.to_ne_bytes());
        let mut attr = |kind: u16, payload: &[u8]| {
            p.extend_from_slice(&(4 + payload.len() as u16).to_ne_bytes());
            p.extend_from_slice(&kind.to_ne_bytes());
            p.extend_from_slice(payload);
            p.resize(p.len().next_multiple_of(4), 0);
        };
        attr(10, &[6]); // INET_DIAG_PROTOCOL: IPPROTO_TCP
        if let Some(info) = info {
            attr(INET_DIAG_INFO, info);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + p.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&p);
        m
    }

    fn decoded(message: &[u8], proto: Proto) -> Socket {
        let mut out = Vec::new();
        crate::collect::netlink::walk(message, |m| decode_with_info(m, proto, &mut out)).unwrap();
        assert_eq!(out.len(), 1);
        out.pop().unwrap()
    }

    #[test]
    fn the_full_struct_decodes_every_field() {
        // Linux 6.x sends 280 bytes, more than this header knows: ignored
        let info = decode_tcp_info(&tcp_info_bytes(280)).unwrap();
        assert_eq!(
            info,
            TcpInfo {
                rtt_us: 69,
                rttvar_us: 73,
                rto_us: 9,
                snd_cwnd: 81,
                snd_ssthresh: 77,
                retransmits: 3,
                retrans: 37,
                total_retrans: 101,
                min_rtt_us: Some(149),
                bytes_acked: Some(121),
                bytes_received: Some(129),
                bytes_retrans: Some(209),
                delivery_rate_bps: Some(161 * 8),
                pacing_rate_bps: Some(105 * 8),
                busy_time_us: Some(169),
                rwnd_limited_us: Some(177),
                sndbuf_limited_us: Some(185),
            }
        );
    }

    #[test]
    fn an_old_shorter_struct_leaves_what_it_lacks_none() {
        // 2.6: nothing after tcpi_total_retrans
        let old = decode_tcp_info(&tcp_info_bytes(TCP_INFO_MIN_LEN)).unwrap();
        assert_eq!((old.rtt_us, old.total_retrans), (69, 101));
        assert_eq!(
            (old.pacing_rate_bps, old.bytes_acked, old.min_rtt_us),
            (None, None, None)
        );
        // 4.1 to 4.5: the byte counters, not yet tcpi_min_rtt
        let v41 = decode_tcp_info(&tcp_info_bytes(144)).unwrap();
        assert_eq!(
            (v41.bytes_acked, v41.bytes_received, v41.min_rtt_us),
            (Some(121), Some(129), None)
        );
        // a field cut in its middle is not there
        let cut = decode_tcp_info(&tcp_info_bytes(124)).unwrap();
        assert_eq!(cut.bytes_acked, None);
        // 4.10 to 4.18: no tcpi_bytes_retrans
        assert_eq!(
            decode_tcp_info(&tcp_info_bytes(192)).unwrap().bytes_retrans,
            None
        );
        // shorter than any kernel's struct: nothing
        for len in [0, 1, 8, TCP_INFO_MIN_LEN - 1] {
            assert_eq!(decode_tcp_info(&tcp_info_bytes(len)), None, "{len}");
        }
    }

    /// The kernel's "no value" (`~0`) is no value, not a number: a
    /// listener has no RTT sample, and no pacing rate (unlimited).
    #[test]
    fn the_kernels_no_value_is_none() {
        let mut b = tcp_info_bytes(232);
        b[148..152].copy_from_slice(&u32::MAX.to_ne_bytes());
        b[104..112].copy_from_slice(&u64::MAX.to_ne_bytes());
        let info = decode_tcp_info(&b).unwrap();
        assert_eq!((info.min_rtt_us, info.pacing_rate_bps), (None, None));
        // one less is a value: a rate saturates rather than wrap
        b[148..152].copy_from_slice(&(u32::MAX - 1).to_ne_bytes());
        b[104..112].copy_from_slice(&(u64::MAX - 1).to_ne_bytes());
        let info = decode_tcp_info(&b).unwrap();
        assert_eq!(
            (info.min_rtt_us, info.pacing_rate_bps),
            (Some(u32::MAX - 1), Some(u64::MAX))
        );
        // zero is zero: the kernel said it
        b[160..168].copy_from_slice(&0u64.to_ne_bytes());
        assert_eq!(decode_tcp_info(&b).unwrap().delivery_rate_bps, Some(0));
    }

    /// Every size a kernel has sent, and every size between: each field is
    /// there exactly when the struct holds all of it, never a made-up 0.
    #[test]
    fn each_field_is_there_exactly_when_the_struct_holds_it() {
        type Field = (&'static str, usize, usize, fn(&TcpInfo) -> Option<u64>);
        let fields: [Field; 9] = [
            ("pacing_rate", 104, 8, |i| i.pacing_rate_bps),
            ("bytes_acked", 120, 8, |i| i.bytes_acked),
            ("bytes_received", 128, 8, |i| i.bytes_received),
            ("min_rtt", 148, 4, |i| i.min_rtt_us.map(u64::from)),
            ("delivery_rate", 160, 8, |i| i.delivery_rate_bps),
            ("busy_time", 168, 8, |i| i.busy_time_us),
            ("rwnd_limited", 176, 8, |i| i.rwnd_limited_us),
            ("sndbuf_limited", 184, 8, |i| i.sndbuf_limited_us),
            ("bytes_retrans", 208, 8, |i| i.bytes_retrans),
        ];
        for len in TCP_INFO_MIN_LEN..=300 {
            let info = decode_tcp_info(&tcp_info_bytes(len)).unwrap();
            // the fields of the oldest struct are always there
            assert_eq!((info.rto_us, info.retrans, info.snd_cwnd), (9, 37, 81));
            for (name, at, size, get) in fields {
                let want = (len >= at + size).then(|| {
                    let v = at as u64 + 1;
                    if name.ends_with("_rate") { v * 8 } else { v }
                });
                assert_eq!(get(&info), want, "{name} in {len} bytes");
            }
        }
    }

    #[test]
    fn a_destroy_event_carries_its_tcp_info() {
        let s = decoded(&destroyed(Some(&tcp_info_bytes(232))), Proto::Tcp);
        assert_eq!(s.local.port, 40000);
        assert_eq!(s.remote.map(|r| r.port), Some(21));
        assert_eq!(s.cookie, Some(7));
        let info = s.tcp_info.expect("tcp_info");
        assert_eq!(
            (info.bytes_acked, info.bytes_received),
            (Some(121), Some(129))
        );
        // without the attribute, or with one too short: none, no error
        assert_eq!(decoded(&destroyed(None), Proto::Tcp).tcp_info, None);
        assert_eq!(
            decoded(&destroyed(Some(&[1, 2, 3])), Proto::Tcp).tcp_info,
            None
        );
        // UDP has no tcp_info, whatever the bytes say
        assert_eq!(
            decoded(&destroyed(Some(&tcp_info_bytes(232))), Proto::Udp).tcp_info,
            None
        );
        // a dump's decoder does not look for it
        let mut out = Vec::new();
        let message = destroyed(Some(&tcp_info_bytes(232)));
        crate::collect::netlink::walk(&message, |m| decode_message(m, Proto::Tcp, &mut out))
            .unwrap();
        assert_eq!(out[0].tcp_info, None);
    }

    /// A truncated attribute, cut anywhere, or with a length that lies:
    /// never a panic, and the socket still decodes.
    #[test]
    fn a_truncated_info_attribute_never_panics() {
        let full = destroyed(Some(&tcp_info_bytes(232)));
        let header_and_msg = NLMSG_HDRLEN + INET_DIAG_MSG_LEN;
        for cut in header_and_msg..full.len() {
            let mut m = full[..cut].to_vec();
            m[..4].copy_from_slice(&(cut as u32).to_ne_bytes());
            // an attribute that runs past the message is not read
            assert_eq!(decoded(&m, Proto::Tcp).tcp_info, None, "{cut}");
        }
        // the attribute says it is longer than the message
        let mut m = full.clone();
        let at = header_and_msg + 8;
        m[at..at + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert_eq!(decoded(&m, Proto::Tcp).tcp_info, None);
        // or shorter than its own header
        m[at..at + 2].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(decoded(&m, Proto::Tcp).tcp_info, None);
    }
}
