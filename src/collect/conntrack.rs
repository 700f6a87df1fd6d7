//! Conntrack of the current network namespace: the tracked flows and the
//! expectations its helpers (ftp) made. They are read over ctnetlink, the
//! `NFNL_SUBSYS_CTNETLINK` and `NFNL_SUBSYS_CTNETLINK_EXP` subsystems of
//! `NETLINK_NETFILTER`, or, when that fails, from `/proc/net/nf_conntrack` and
//! `/proc/net/nf_conntrack_expect`. The transport ([`read`]) is kept apart
//! from the pure decoders and parsers, which take bytes or text, and never
//! panic on malformed input.
//!
//! ctnetlink comes first because only it says which flow is expected, which
//! helper a flow has and which flow is another's master; procfs shows the
//! tuples only (see [`parse_proc_flows`]). Both need privilege: nfnetlink
//! refuses every request without CAP_NET_ADMIN (`nfnetlink_rcv_msg()`), and
//! the procfs files are mode 0440, owned by root
//! (`nf_conntrack_standalone_init_proc()`).

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
use netlink_sys::{Socket as NlSocket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::decode::{NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, Progress};
use super::netlink::{Received, recv_datagram};
use crate::model::{Conntrack, ConntrackSource, Endpoint, Expectation, Flow, Tuple};

// Message types: the subsystem in the high byte (include/uapi/linux/netfilter/
// nfnetlink.h), the message in the low one (nfnetlink_conntrack.h). A dump
// is answered with one *_NEW message per entry.
const CT_GET: u16 = (1 << 8) | 1; // NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET
const CT_NEW: u16 = 1 << 8; // IPCTNL_MSG_CT_NEW
const EXP_GET: u16 = (2 << 8) | 1; // NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET
const EXP_NEW: u16 = 2 << 8; // IPCTNL_MSG_EXP_NEW
/// `sizeof(struct nfgenmsg)`: family, version, resource id.
const NFGENMSG_LEN: usize = 4;
const REQUEST_LEN: usize = NLMSG_HDRLEN + NFGENMSG_LEN;

// Attribute types (include/uapi/linux/netfilter/nfnetlink_conntrack.h),
// used as indexes into the tables `parse` fills.
const CTA_TUPLE_ORIG: usize = 1;
const CTA_TUPLE_REPLY: usize = 2;
const CTA_STATUS: usize = 3;
const CTA_HELP: usize = 5;
const CTA_TUPLE_MASTER: usize = 14;
const CTA_TUPLE_IP: usize = 1;
const CTA_TUPLE_PROTO: usize = 2;
const CTA_IP_V4_SRC: usize = 1;
const CTA_IP_V4_DST: usize = 2;
const CTA_IP_V6_SRC: usize = 3;
const CTA_IP_V6_DST: usize = 4;
const CTA_PROTO_NUM: usize = 1;
const CTA_PROTO_SRC_PORT: usize = 2;
const CTA_PROTO_DST_PORT: usize = 3;
const CTA_HELP_NAME: usize = 1;
const CTA_EXPECT_MASTER: usize = 1;
const CTA_EXPECT_TUPLE: usize = 2;
const CTA_EXPECT_MASK: usize = 3;
const CTA_EXPECT_HELP_NAME: usize = 6;
/// The flag bits of `nla_type` (include/uapi/linux/netlink.h).
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000); // NLA_F_NESTED, NLA_F_NET_BYTEORDER
/// `IPS_EXPECTED` (include/uapi/linux/netfilter/nf_conntrack_common.h).
const IPS_EXPECTED: u32 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// See `RECV_BUF` in netlink.rs: the kernel fills about 32 KiB per datagram.
const RECV_BUF: usize = 64 * 1024;
/// How often a dump interrupted by a table change is started again.
const DUMP_RETRIES: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtDecodeError {
    #[error("truncated ctnetlink message ({0})")]
    Truncated(&'static str),
    #[error("the kernel answered with error {errno} ({})", io::Error::from_raw_os_error(*errno))]
    Kernel { errno: i32 },
    #[error("a ctnetlink message lacks {0}")]
    Missing(&'static str),
}

#[derive(Debug, thiserror::Error)]
enum CtError {
    #[error("cannot open a ctnetlink socket: {0}")]
    Open(io::Error),
    #[error("ctnetlink: {0}")]
    Io(io::Error),
    #[error("ctnetlink: {0}")]
    Decode(#[from] CtDecodeError),
    #[error("ctnetlink: a datagram of {0} bytes did not fit the receive buffer")]
    Truncated(usize),
    #[error("conntrack kept changing during {0} dumps in a row")]
    Interrupted(usize),
}

/// Reads the current namespace's conntrack: ctnetlink first (needs
/// CAP_NET_ADMIN), then `net/nf_conntrack` and `net/nf_conntrack_expect`
/// under `proc_root`, skipping malformed lines. `Err` carries a one-line
/// reason when neither is readable.
///
/// `/proc/net` is the namespace of the thread group's leader: a caller on a
/// thread that entered another namespace passes `/proc/thread-self`.
pub fn read(proc_root: &Path) -> Result<Conntrack, String> {
    let netlink = match read_netlink() {
        Ok((flows, expectations)) => {
            return Ok(Conntrack {
                flows,
                expectations,
                source: ConntrackSource::Netlink,
            });
        }
        Err(e) => e,
    };
    read_procfs(proc_root).map_err(|(path, e)| match netlink {
        CtError::Decode(CtDecodeError::Kernel { errno: libc::EPERM }) => {
            "conntrack is not readable without CAP_NET_ADMIN".to_string()
        }
        netlink => format!(
            "conntrack is not readable: {netlink}; {}: {e}",
            path.display()
        ),
    })
}

fn read_netlink() -> Result<(Vec<Flow>, Vec<Expectation>), CtError> {
    let mut socket = CtSocket::open()?;
    Ok((
        socket.dump(CT_GET, decode_flows)?,
        socket.dump(EXP_GET, decode_expectations)?,
    ))
}

fn read_procfs(proc_root: &Path) -> Result<Conntrack, (PathBuf, io::Error)> {
    let read = |name: &str| {
        let path = proc_root.join("net").join(name);
        fs::read_to_string(&path).map_err(|e| (path, e))
    };
    Ok(Conntrack {
        flows: parse_proc_flows(&read("nf_conntrack")?).0,
        expectations: parse_proc_expectations(&read("nf_conntrack_expect")?).0,
        source: ConntrackSource::Procfs,
    })
}

/// One datagram's decoder: [`decode_flows`] or [`decode_expectations`].
type Decoder<T> = fn(&[u8], &mut Vec<T>) -> Result<Progress, CtDecodeError>;

struct CtSocket {
    socket: NlSocket,
    buf: Vec<u8>,
    seq: u32,
}

impl CtSocket {
    fn open() -> Result<CtSocket, CtError> {
        let mut socket = NlSocket::new(NETLINK_NETFILTER).map_err(CtError::Open)?;
        socket.bind_auto().map_err(CtError::Open)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(CtError::Open)?;
        Ok(CtSocket {
            socket,
            buf: vec![0; RECV_BUF],
            seq: 0,
        })
    }

    fn dump<T>(&mut self, kind: u16, decode: Decoder<T>) -> Result<Vec<T>, CtError> {
        for _ in 0..DUMP_RETRIES {
            let mut out = Vec::new();
            if !self.dump_once(kind, decode, &mut out)? {
                return Ok(out);
            }
        }
        Err(CtError::Interrupted(DUMP_RETRIES))
    }

    /// One dump; returns whether it was interrupted.
    fn dump_once<T>(
        &mut self,
        kind: u16,
        decode: Decoder<T>,
        out: &mut Vec<T>,
    ) -> Result<bool, CtError> {
        self.seq = self.seq.wrapping_add(1);
        let request = request_bytes(kind, self.seq);
        self.socket.send(&request, 0).map_err(CtError::Io)?;
        let mut interrupted = false;
        loop {
            let n = match recv_datagram(&self.socket, &mut self.buf) {
                Ok(n) => n,
                Err(Received::Io(e)) => return Err(CtError::Io(e)),
                Err(Received::Truncated(n)) => return Err(CtError::Truncated(n)),
            };
            if n == 0 {
                return Err(CtDecodeError::Truncated("empty datagram").into());
            }
            let progress = decode(&self.buf[..n], out)?;
            interrupted |= progress.interrupted;
            if progress.done {
                return Ok(interrupted);
            }
        }
    }
}

/// A dump request: `struct nlmsghdr`, then `struct nfgenmsg` with family
/// `AF_UNSPEC` (IPv4 and IPv6 together: `ctnetlink_dump_table()` filters
/// on the family only when one is given), version `NFNETLINK_V0` and
/// resource id 0, all zero bytes.
fn request_bytes(kind: u16, seq: u32) -> [u8; REQUEST_LEN] {
    let mut b = [0; REQUEST_LEN];
    b[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&kind.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b
}

/// Decodes one datagram of a `IPCTNL_MSG_CT_GET` dump, appending its TCP and
/// UDP flows to `out` (`ctnetlink_fill_info()` in
/// net/netfilter/nf_conntrack_netlink.c writes them).
pub fn decode_flows(datagram: &[u8], out: &mut Vec<Flow>) -> Result<Progress, CtDecodeError> {
    decode_dump(datagram, CT_NEW, out, flow)
}

/// Decodes one datagram of a `IPCTNL_MSG_EXP_GET` dump, appending its TCP and
/// UDP expectations to `out` (`ctnetlink_exp_dump_expect()` writes them).
pub fn decode_expectations(
    datagram: &[u8],
    out: &mut Vec<Expectation>,
) -> Result<Progress, CtDecodeError> {
    decode_dump(datagram, EXP_NEW, out, expectation)
}

/// Walks the netlink messages of one datagram, handing the attributes of
/// each of type `kind` to `entry`.
fn decode_dump<T>(
    datagram: &[u8],
    kind: u16,
    out: &mut Vec<T>,
    entry: fn(&[u8]) -> Result<Option<T>, CtDecodeError>,
) -> Result<Progress, CtDecodeError> {
    let mut progress = Progress::default();
    let mut rest = datagram;
    while !rest.is_empty() {
        let Some(header) = rest.get(..NLMSG_HDRLEN) else {
            return Err(CtDecodeError::Truncated("header"));
        };
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let msg_type = u16::from_ne_bytes([header[4], header[5]]);
        let flags = u16::from_ne_bytes([header[6], header[7]]);
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(CtDecodeError::Truncated("length"));
        }
        progress.interrupted |= flags & NLM_F_DUMP_INTR != 0;
        let payload = &rest[NLMSG_HDRLEN..len];
        match msg_type {
            NLMSG_DONE => {
                progress.done = true;
                return Ok(progress);
            }
            NLMSG_ERROR => {
                // struct nlmsgerr: a negative errno, then the request. 0 is
                // an acknowledgement, which a dump does not ask for.
                let Some(&[a, b, c, d]) = payload.get(..4) else {
                    return Err(CtDecodeError::Truncated("error"));
                };
                let errno = i32::from_ne_bytes([a, b, c, d]).wrapping_neg();
                if errno != 0 {
                    return Err(CtDecodeError::Kernel { errno });
                }
            }
            t if t == kind => {
                let attrs = payload
                    .get(NFGENMSG_LEN..)
                    .ok_or(CtDecodeError::Truncated("nfgenmsg"))?;
                out.extend(entry(attrs)?);
            }
            _ => {}
        }
        // Messages are aligned to 4 bytes (NLMSG_ALIGN).
        rest = rest.get((len + 3) & !3..).unwrap_or_default();
    }
    Ok(progress)
}

fn flow(attrs: &[u8]) -> Result<Option<Flow>, CtDecodeError> {
    let a = parse::<{ CTA_TUPLE_MASTER + 1 }>(attrs)?;
    let orig = tuple(need(&a, CTA_TUPLE_ORIG, "CTA_TUPLE_ORIG")?)?;
    let reply = tuple(need(&a, CTA_TUPLE_REPLY, "CTA_TUPLE_REPLY")?)?;
    let (Some(orig), Some(reply)) = (orig, reply) else {
        return Ok(None);
    };
    let status = u32::from_be_bytes(field(&a, CTA_STATUS, "CTA_STATUS")?);
    let helper = match a[CTA_HELP] {
        Some(help) => parse::<{ CTA_HELP_NAME + 1 }>(help)?[CTA_HELP_NAME].map(string),
        None => None,
    };
    // `ctnetlink_dump_master()`: the master's original tuple.
    let master = a[CTA_TUPLE_MASTER].map(tuple).transpose()?.flatten();
    Ok(Some(Flow {
        orig,
        reply,
        expected: status & IPS_EXPECTED != 0,
        helper,
        master,
    }))
}

fn expectation(attrs: &[u8]) -> Result<Option<Expectation>, CtDecodeError> {
    let a = parse::<{ CTA_EXPECT_HELP_NAME + 1 }>(attrs)?;
    let Some(mut expected) = tuple(need(&a, CTA_EXPECT_TUPLE, "CTA_EXPECT_TUPLE")?)? else {
        return Ok(None);
    };
    // A helper's wildcards are zero in the tuple already
    // (`nf_ct_expect_init()`), but one made by userspace over ctnetlink holds
    // what it was given there: the mask decides. The mask is dumped as a
    // tuple (`ctnetlink_exp_dump_mask()`).
    if let Some(mask) = a[CTA_EXPECT_MASK].map(tuple).transpose()?.flatten() {
        if mask.src.port == 0 {
            expected.src.port = 0;
        }
        if mask.src.addr.is_unspecified() {
            expected.src.addr = match expected.src.addr {
                IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
        }
    }
    Ok(Some(Expectation {
        tuple: expected,
        master: a[CTA_EXPECT_MASTER].map(tuple).transpose()?.flatten(),
        helper: a[CTA_EXPECT_HELP_NAME].map(string),
    }))
}

/// A `CTA_TUPLE_*` nest (`ctnetlink_dump_tuples()`); `None` for protocols
/// other than TCP and UDP, whose tuples have no ports.
fn tuple(attrs: &[u8]) -> Result<Option<Tuple>, CtDecodeError> {
    let t = parse::<{ CTA_TUPLE_PROTO + 1 }>(attrs)?;
    let l4 = parse::<{ CTA_PROTO_DST_PORT + 1 }>(need(&t, CTA_TUPLE_PROTO, "CTA_TUPLE_PROTO")?)?;
    let [proto] = field(&l4, CTA_PROTO_NUM, "CTA_PROTO_NUM")?;
    if !tracked(proto) {
        return Ok(None);
    }
    let ip = parse::<{ CTA_IP_V6_DST + 1 }>(need(&t, CTA_TUPLE_IP, "CTA_TUPLE_IP")?)?;
    let (src, dst) = if ip[CTA_IP_V4_SRC].is_some() {
        let src: [u8; 4] = field(&ip, CTA_IP_V4_SRC, "CTA_IP_V4_SRC")?;
        let dst: [u8; 4] = field(&ip, CTA_IP_V4_DST, "CTA_IP_V4_DST")?;
        (IpAddr::from(src), IpAddr::from(dst))
    } else {
        let src: [u8; 16] = field(&ip, CTA_IP_V6_SRC, "CTA_IP_V6_SRC")?;
        let dst: [u8; 16] = field(&ip, CTA_IP_V6_DST, "CTA_IP_V6_DST")?;
        (IpAddr::from(src), IpAddr::from(dst))
    };
    let port = |i, name| field(&l4, i, name).map(u16::from_be_bytes);
    Ok(Some(Tuple {
        src: Endpoint::new(src, port(CTA_PROTO_SRC_PORT, "CTA_PROTO_SRC_PORT")?),
        dst: Endpoint::new(dst, port(CTA_PROTO_DST_PORT, "CTA_PROTO_DST_PORT")?),
        proto,
    }))
}

/// The attributes in `buf`, as the kernel's `nla_parse()` sees them: a
/// table indexed by type (flag bits masked off), the last of a type winning,
/// types beyond the table ignored.
fn parse<const N: usize>(mut buf: &[u8]) -> Result<[Option<&[u8]>; N], CtDecodeError> {
    let mut table = [None; N];
    // Fewer than 4 bytes left is padding (`nla_ok()`).
    while let Some(&[l0, l1, t0, t1]) = buf.get(..4) {
        let len = usize::from(u16::from_ne_bytes([l0, l1]));
        let Some(payload) = buf.get(4..len) else {
            return Err(CtDecodeError::Truncated("attribute"));
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

fn need<'a>(
    table: &[Option<&'a [u8]>],
    kind: usize,
    name: &'static str,
) -> Result<&'a [u8], CtDecodeError> {
    table
        .get(kind)
        .copied()
        .flatten()
        .ok_or(CtDecodeError::Missing(name))
}

/// A fixed-size attribute's payload.
fn field<const N: usize>(
    table: &[Option<&[u8]>],
    kind: usize,
    name: &'static str,
) -> Result<[u8; N], CtDecodeError> {
    need(table, kind, name)?
        .get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or(CtDecodeError::Truncated(name))
}

/// A NUL-terminated string attribute (`nla_put_string()`).
fn string(b: &[u8]) -> String {
    let text = b.split(|&c| c == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

fn tracked(proto: u8) -> bool {
    proto == IPPROTO_TCP || proto == IPPROTO_UDP
}

/// Parses `/proc/net/nf_conntrack`; returns the TCP and UDP flows and the
/// number of malformed lines skipped. Lines come from `ct_seq_show()`
/// (net/netfilter/nf_conntrack_standalone.c):
///
/// `ipv4 2 tcp 6 431999 ESTABLISHED src=A dst=B sport=P dport=Q
/// [UNREPLIED] src=B dst=A sport=Q dport=P [ASSURED] mark=0 zone=0 use=2`,
/// with `packets= bytes=` after each tuple when accounting is on, no
/// timeout for offloaded flows, and no state word for UDP.
///
/// What this form can tell: both tuples, so who opened each flow. What it
/// cannot: the only status words it prints are `[UNREPLIED]`, `[ASSURED]`,
/// `[OFFLOAD]` and `[HW_OFFLOAD]`, never `IPS_EXPECTED`, and it prints
/// neither the helper nor the master. So every flow read here has
/// `expected: false` (meaning unknown), `helper: None` and `master: None`:
/// an FTP data connection looks like any other.
pub fn parse_proc_flows(text: &str) -> (Vec<Flow>, usize) {
    parse_lines(text, |line| {
        let mut words = line.split_whitespace();
        // `ipv4 2 tcp 6`: the family's name and number, the protocol's.
        words.nth(1)?.parse::<u8>().ok()?;
        let proto = words.nth(1)?.parse().ok()?;
        if !tracked(proto) {
            return Some(None);
        }
        match proc_tuples(words, proto)?.as_slice() {
            &[orig, reply] => Some(Some(Flow {
                orig,
                reply,
                expected: false,
                helper: None,
                master: None,
            })),
            _ => None,
        }
    })
}

/// Parses `/proc/net/nf_conntrack_expect`; returns the TCP and UDP
/// expectations and the number of malformed lines skipped. Lines come from
/// `exp_seq_show()` (net/netfilter/nf_conntrack_expect.c):
///
/// `297 l3proto = 2 proto=6 src=A dst=B sport=0 dport=Q ftp`: the seconds
/// left (or `-`), the tuple with its wildcards as 0, then any of the flags
/// `PERMANENT,INACTIVE,USERSPACE` and the helper's name, with `/class` when
/// the class has a name. The master is not shown.
pub fn parse_proc_expectations(text: &str) -> (Vec<Expectation>, usize) {
    parse_lines(text, |line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.get(1) != Some(&"l3proto") {
            return None;
        }
        let proto = words.iter().find_map(|w| w.strip_prefix("proto="))?;
        let proto = proto.parse().ok()?;
        if !tracked(proto) {
            return Some(None);
        }
        let &[tuple] = proc_tuples(words.iter().copied(), proto)?.as_slice() else {
            return None;
        };
        let is_flags = |w: &str| {
            w.split(',')
                .all(|f| matches!(f, "PERMANENT" | "INACTIVE" | "USERSPACE"))
        };
        let helper = words
            .last()
            .filter(|w| !w.contains('=') && !is_flags(w))
            .and_then(|w| w.split('/').next())
            .map(str::to_string);
        Some(Some(Expectation {
            tuple,
            master: None,
            helper,
        }))
    })
}

/// Runs `entry` on each non-blank line: `Some(Some(item))` keeps an item,
/// `Some(None)` skips the line, `None` counts it as malformed.
fn parse_lines<T>(text: &str, entry: impl Fn(&str) -> Option<Option<T>>) -> (Vec<T>, usize) {
    let mut items = Vec::new();
    let mut malformed = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match entry(line) {
            Some(item) => items.extend(item),
            None => malformed += 1,
        }
    }
    (items, malformed)
}

/// The tuples among `words`: `print_tuple()` prints `src= dst= sport=
/// dport=` for TCP and UDP, so each `dport=` closes one. `None` if a value
/// does not parse or a tuple is incomplete.
fn proc_tuples<'a>(words: impl Iterator<Item = &'a str>, proto: u8) -> Option<Vec<Tuple>> {
    let (mut tuples, mut src, mut dst, mut sport) = (Vec::new(), None, None, None);
    for (key, value) in words.filter_map(|w| w.split_once('=')) {
        match key {
            "src" => src = Some(value.parse().ok()?),
            "dst" => dst = Some(value.parse().ok()?),
            "sport" => sport = Some(value.parse().ok()?),
            "dport" => tuples.push(Tuple {
                src: Endpoint::new(src.take()?, sport.take()?),
                dst: Endpoint::new(dst.take()?, value.parse().ok()?),
                proto,
            }),
            _ => {}
        }
    }
    (src.is_none() && dst.is_none() && sport.is_none()).then_some(tuples)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured by tests/fixtures/conntrack/capture.sh; see the README there.
    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/fixtures/conntrack/", $name))
        };
    }
    const PASSIVE_FLOWS: [&[u8]; 2] = [
        fixture!("passive-flows-0.bin"),
        fixture!("passive-flows-1.bin"),
    ];
    const PASSIVE_EXPECTATIONS: [&[u8]; 2] = [
        fixture!("passive-expectations-0.bin"),
        fixture!("passive-expectations-1.bin"),
    ];
    const ACTIVE_FLOWS: [&[u8]; 2] = [
        fixture!("active-flows-0.bin"),
        fixture!("active-flows-1.bin"),
    ];
    const EPERM: &[u8] = fixture!("eperm-flows-0.bin");

    fn tcp(src: &str, dst: &str) -> Tuple {
        let ep = |s: &str| {
            let sa: std::net::SocketAddr = s.parse().unwrap();
            Endpoint::new(sa.ip(), sa.port())
        };
        Tuple {
            src: ep(src),
            dst: ep(dst),
            proto: IPPROTO_TCP,
        }
    }

    /// Decodes a whole dump, insisting that only its last datagram ends it.
    fn dump<T>(datagrams: &[&[u8]], decode: Decoder<T>) -> Vec<T> {
        let mut out = Vec::new();
        for (i, d) in datagrams.iter().enumerate() {
            let progress = decode(d, &mut out).unwrap();
            assert_eq!(progress.done, i + 1 == datagrams.len());
            assert!(!progress.interrupted);
        }
        out
    }

    fn find(flows: &[Flow], orig: Tuple) -> &Flow {
        flows
            .iter()
            .find(|f| f.orig == orig)
            .unwrap_or_else(|| panic!("{orig:?} in {flows:#?}"))
    }

    #[test]
    fn captured_passive_flows() {
        let flows = dump(&PASSIVE_FLOWS, decode_flows);
        // curl's control connection and the PASV client's, curl's over IPv6,
        // and the two data connections.
        assert_eq!(flows.len(), 5, "{flows:#?}");
        let control = tcp("10.201.0.2:38170", "10.201.0.1:21");
        let c = find(&flows, control);
        assert_eq!(c.helper.as_deref(), Some("ftp"));
        assert!(!c.expected);
        assert_eq!(c.master, None);
        assert_eq!(c.reply, tcp("10.201.0.1:21", "10.201.0.2:38170"));
        let data = find(&flows, tcp("10.201.0.2:43326", "10.201.0.1:55893"));
        assert!(data.expected);
        assert_eq!(data.master, Some(control));
        assert_eq!(data.helper, None);
        let data6 = find(&flows, tcp("[fd00:201::2]:52228", "[fd00:201::1]:46933"));
        assert!(data6.expected);
        assert_eq!(
            data6.master,
            Some(tcp("[fd00:201::2]:58890", "[fd00:201::1]:21"))
        );
    }

    #[test]
    fn captured_active_flows() {
        let flows = dump(&ACTIVE_FLOWS, decode_flows);
        assert_eq!(flows.len(), 2, "{flows:#?}");
        let control = tcp("10.201.0.2:38188", "10.201.0.1:21");
        assert_eq!(find(&flows, control).helper.as_deref(), Some("ftp"));
        // The server opened the data connection.
        let data = find(&flows, tcp("10.201.0.1:47483", "10.201.0.2:58379"));
        assert!(data.expected);
        assert_eq!(data.master, Some(control));
    }

    #[test]
    fn captured_pending_expectation() {
        let expectations = dump(&PASSIVE_EXPECTATIONS, decode_expectations);
        // The PASV client was told `227 ... (10,201,0,1,218,7)`: 218 * 256 + 7.
        assert_eq!(
            expectations,
            [Expectation {
                tuple: tcp("10.201.0.2:0", "10.201.0.1:55815"),
                master: Some(tcp("10.201.0.2:38180", "10.201.0.1:21")),
                helper: Some("ftp".to_string()),
            }]
        );
    }

    #[test]
    fn captured_eperm_is_an_error() {
        let eperm = Err(CtDecodeError::Kernel { errno: libc::EPERM });
        assert_eq!(decode_flows(EPERM, &mut Vec::new()), eperm);
        assert_eq!(decode_expectations(EPERM, &mut Vec::new()), eperm);
    }

    #[test]
    fn truncated_or_corrupted_datagrams_do_not_panic() {
        for (full, flows) in [(PASSIVE_FLOWS[0], true), (PASSIVE_EXPECTATIONS[0], false)] {
            let decode = |b: &[u8]| {
                if flows {
                    decode_flows(b, &mut Vec::new())
                } else {
                    decode_expectations(b, &mut Vec::new())
                }
            };
            let mut ends = vec![0];
            while let Some(&end) = ends.last().filter(|&&e| e < full.len()) {
                let len = u32::from_ne_bytes(full[end..end + 4].try_into().unwrap());
                ends.push(end + ((len as usize + 3) & !3));
            }
            // As a receive buffer too small would cut it: only a cut
            // between messages decodes.
            for len in 0..full.len() {
                match decode(&full[..len]) {
                    Ok(progress) => assert!(ends.contains(&len) && !progress.done),
                    Err(e) => assert!(matches!(e, CtDecodeError::Truncated(_)), "{len}: {e}"),
                }
            }
            for i in 0..full.len() {
                for bits in [0x01, 0x80, 0xff] {
                    let mut b = full.to_vec();
                    b[i] ^= bits;
                    let _ = decode(&b);
                }
            }
        }
    }

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = [
            &(4 + payload.len() as u16).to_ne_bytes()[..],
            &kind.to_ne_bytes(),
            payload,
        ]
        .concat();
        a.resize((a.len() + 3) & !3, 0);
        a
    }

    fn nest(kind: u16, attrs: &[Vec<u8>]) -> Vec<u8> {
        attr(kind | 0x8000, &attrs.concat())
    }

    fn expectedattr(
        kind: usize,
        proto: u8,
        src: [u8; 4],
        dst: [u8; 4],
        ports: Option<(u16, u16)>,
    ) -> Vec<u8> {
        let mut l4 = vec![attr(1, &[proto])];
        if let Some((sport, dport)) = ports {
            // Ports are big-endian; some writers say so in the type.
            l4.push(attr(0x4000 | 2, &sport.to_be_bytes()));
            l4.push(attr(3, &dport.to_be_bytes()));
        }
        nest(
            kind as u16,
            &[nest(1, &[attr(1, &src), attr(2, &dst)]), nest(2, &l4)],
        )
    }

    fn raw_message(kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + payload.len()) as u32;
        [
            &len.to_ne_bytes()[..],
            &kind.to_ne_bytes(),
            &flags.to_ne_bytes(),
            &[0; 8],
            payload,
        ]
        .concat()
    }

    /// A ctnetlink message: `struct nfgenmsg`, then the attributes.
    fn message(kind: u16, flags: u16, attrs: &[Vec<u8>]) -> Vec<u8> {
        let nfgenmsg = vec![libc::AF_INET as u8, 0, 0, 0];
        raw_message(kind, flags, &[&[nfgenmsg][..], attrs].concat().concat())
    }

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    #[test]
    fn hand_built_flows() {
        let expected = message(
            CT_NEW,
            0,
            &[
                expectedattr(CTA_TUPLE_ORIG, IPPROTO_UDP, A, B, Some((5000, 69))),
                expectedattr(CTA_TUPLE_REPLY, IPPROTO_UDP, B, A, Some((69, 5000))),
                // IPS_EXPECTED | IPS_SEEN_REPLY
                attr(CTA_STATUS as u16, &3u32.to_be_bytes()),
                nest(CTA_HELP as u16, &[attr(CTA_HELP_NAME as u16, b"tftp\0")]),
                expectedattr(CTA_TUPLE_MASTER, IPPROTO_UDP, A, B, Some((4000, 69))),
                attr(99, b"unknown attributes are ignored"),
            ],
        );
        let icmp = message(
            CT_NEW,
            0,
            &[
                expectedattr(CTA_TUPLE_ORIG, 1, A, B, None),
                expectedattr(CTA_TUPLE_REPLY, 1, B, A, None),
                attr(CTA_STATUS as u16, &0u32.to_be_bytes()),
            ],
        );
        let done = raw_message(NLMSG_DONE, 0, &[0; 4]);
        let mut flows = Vec::new();
        let progress = decode_flows(&[expected, icmp, done].concat(), &mut flows).unwrap();
        assert!(progress.done && !progress.interrupted);
        let udp = |src: [u8; 4], sport, dst: [u8; 4], dport| Tuple {
            src: Endpoint::new(src.into(), sport),
            dst: Endpoint::new(dst.into(), dport),
            proto: IPPROTO_UDP,
        };
        assert_eq!(
            flows,
            [Flow {
                orig: udp(A, 5000, B, 69),
                reply: udp(B, 69, A, 5000),
                expected: true,
                helper: Some("tftp".to_string()),
                master: Some(udp(A, 4000, B, 69)),
            }]
        );
    }

    #[test]
    fn hand_built_expectation_applies_its_mask() {
        let exp = message(
            EXP_NEW,
            NLM_F_DUMP_INTR,
            &[
                expectedattr(CTA_EXPECT_MASTER, IPPROTO_TCP, B, A, Some((40000, 21))),
                expectedattr(CTA_EXPECT_TUPLE, IPPROTO_TCP, B, A, Some((1234, 50000))),
                expectedattr(
                    CTA_EXPECT_MASK,
                    IPPROTO_TCP,
                    [0; 4],
                    [255; 4],
                    Some((0, 0xffff)),
                ),
                attr(CTA_EXPECT_HELP_NAME as u16, b"ftp\0"),
            ],
        );
        let mut out = Vec::new();
        let progress = decode_expectations(&exp, &mut out).unwrap();
        assert!(progress.interrupted && !progress.done);
        assert_eq!(
            out[0].tuple.src,
            Endpoint::new(Ipv4Addr::UNSPECIFIED.into(), 0)
        );
        assert_eq!(out[0].tuple.dst, Endpoint::new(A.into(), 50000));
        assert_eq!(out[0].master.map(|m| m.src.port), Some(40000));
        assert_eq!(out[0].helper.as_deref(), Some("ftp"));
    }

    #[test]
    fn hand_built_malformed_messages_are_errors() {
        let orig = expectedattr(CTA_TUPLE_ORIG, IPPROTO_TCP, A, B, Some((1, 2)));
        let reply = expectedattr(CTA_TUPLE_REPLY, IPPROTO_TCP, B, A, Some((2, 1)));
        let status = attr(CTA_STATUS as u16, &0u32.to_be_bytes());
        let decode = |attrs: &[Vec<u8>]| decode_flows(&message(CT_NEW, 0, attrs), &mut Vec::new());
        assert_eq!(
            decode(&[reply.clone(), status.clone()]),
            Err(CtDecodeError::Missing("CTA_TUPLE_ORIG"))
        );
        assert_eq!(
            decode(&[orig.clone(), reply.clone()]),
            Err(CtDecodeError::Missing("CTA_STATUS"))
        );
        let short_ip = nest(
            1,
            &[
                nest(1, &[attr(1, &[10, 0]), attr(2, &B)]),
                nest(2, &[attr(1, &[6])]),
            ],
        );
        assert_eq!(
            decode(&[short_ip, reply.clone(), status.clone()]),
            Err(CtDecodeError::Truncated("CTA_IP_V4_SRC"))
        );
        let no_ports = expectedattr(CTA_TUPLE_ORIG, IPPROTO_TCP, A, B, None);
        assert_eq!(
            decode(&[no_ports, reply.clone(), status.clone()]),
            Err(CtDecodeError::Missing("CTA_PROTO_SRC_PORT"))
        );
        let mut overlong = orig.clone();
        overlong[0] += 8;
        assert_eq!(
            decode(&[overlong]),
            Err(CtDecodeError::Truncated("attribute"))
        );
        // An acknowledgement (error 0) is not an error.
        // struct nlmsgerr: error 0, then the request's header.
        let ack = raw_message(NLMSG_ERROR, 0, &[0; 20]);
        assert_eq!(decode_flows(&ack, &mut Vec::new()), Ok(Progress::default()));
        assert_eq!(
            decode_flows(&ack[..30], &mut Vec::new()),
            Err(CtDecodeError::Truncated("length"))
        );
    }

    #[test]
    fn request_layout() {
        let r = request_bytes(CT_GET, 7);
        let header = [
            &20u32.to_ne_bytes()[..],
            &0x0101u16.to_ne_bytes(),
            &0x0301u16.to_ne_bytes(),
            &7u32.to_ne_bytes(),
            &[0; 4],
        ]
        .concat();
        assert_eq!(r[..16], header[..]);
        assert_eq!(r[16..], [0; 4], "AF_UNSPEC, NFNETLINK_V0, res_id 0");
    }

    const PASSIVE_PROC: &str =
        include_str!("../../tests/fixtures/conntrack/passive-nf_conntrack.txt");
    const PASSIVE_PROC_EXPECT: &str =
        include_str!("../../tests/fixtures/conntrack/passive-nf_conntrack_expect.txt");
    const ACTIVE_PROC: &str =
        include_str!("../../tests/fixtures/conntrack/active-nf_conntrack.txt");

    #[test]
    fn captured_procfs_has_the_netlink_tuples_and_nothing_more() {
        for (text, datagrams) in [(PASSIVE_PROC, PASSIVE_FLOWS), (ACTIVE_PROC, ACTIVE_FLOWS)] {
            let (mut proc, malformed) = parse_proc_flows(text);
            assert_eq!(malformed, 0);
            let mut netlink = dump(&datagrams, decode_flows);
            for f in &mut netlink {
                (f.expected, f.helper, f.master) = (false, None, None);
            }
            let key = |f: &Flow| format!("{:?}", f.orig);
            proc.sort_by_key(key);
            netlink.sort_by_key(key);
            assert_eq!(proc, netlink);
        }
        let (expectations, malformed) = parse_proc_expectations(PASSIVE_PROC_EXPECT);
        let mut netlink = dump(&PASSIVE_EXPECTATIONS, decode_expectations);
        netlink[0].master = None;
        assert_eq!((expectations, malformed), (netlink, 0));
    }

    #[test]
    fn procfs_flow_lines() {
        let text = "\
ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=5000 mark=0 zone=0 use=2
ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 mark=0 zone=0 use=2
ipv6     10 tcp      6 ESTABLISHED src=fd00:0000:0000:0000:0000:0000:0000:0001 dst=fd00:0000:0000:0000:0000:0000:0000:0002 sport=1 dport=2 packets=3 bytes=180 src=fd00:0000:0000:0000:0000:0000:0000:0002 dst=fd00:0000:0000:0000:0000:0000:0000:0001 sport=2 dport=1 packets=2 bytes=120 [OFFLOAD] mark=0 zone=0 use=2

garbage
ipv4     2 tcp      6 10 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 mark=0 use=1
ipv4     2 tcp      6 10 CLOSE src=10.0.0.1 dst=10.0.0.2 sport=70000 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=70000 use=1
ipv4     2 tcp      6 10 CLOSE src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2
";
        let (flows, malformed) = parse_proc_flows(text);
        assert_eq!(malformed, 4);
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[0].orig.proto, IPPROTO_UDP);
        assert_eq!(flows[0].reply.src, Endpoint::new(B.into(), 53));
        assert_eq!(flows[1].orig, tcp("[fd00::1]:1", "[fd00::2]:2"));
        assert_eq!(flows[1].reply, tcp("[fd00::2]:2", "[fd00::1]:1"));
    }

    #[test]
    fn procfs_expectation_lines() {
        let text = "\
- l3proto = 10 proto=6 src=fd00:0000:0000:0000:0000:0000:0000:0002 dst=fd00:0000:0000:0000:0000:0000:0000:0001 sport=0 dport=50000 PERMANENT,INACTIVE ftp
12 l3proto = 2 proto=17 src=10.0.0.2 dst=10.0.0.1 sport=0 dport=5062 sip/audio
300 l3proto = 2 proto=6 src=10.0.0.2 dst=10.0.0.1 sport=0 dport=21 USERSPACE
5 l3proto = 2 proto=47 src=10.0.0.2 dst=10.0.0.1 srckey=0x0 dstkey=0x1 pptp
300 l3proto = 2 proto=6 src=10.0.0.2 dst=10.0.0.1 sport=0 dport=
nonsense
";
        let (exps, malformed) = parse_proc_expectations(text);
        assert_eq!(malformed, 2);
        let helpers: Vec<_> = exps.iter().map(|e| e.helper.as_deref()).collect();
        assert_eq!(helpers, [Some("ftp"), Some("sip"), None]);
        assert_eq!(exps[0].tuple, tcp("[fd00::2]:0", "[fd00::1]:50000"));
        assert_eq!(exps[1].tuple.proto, IPPROTO_UDP);
    }

    #[test]
    fn procfs_fallback_reads_under_proc_root() {
        let root = tempfile::tempdir().unwrap();
        assert!(read_procfs(root.path()).is_err());
        std::fs::create_dir(root.path().join("net")).unwrap();
        std::fs::write(root.path().join("net/nf_conntrack"), PASSIVE_PROC).unwrap();
        let (path, _) = read_procfs(root.path()).unwrap_err();
        assert_eq!(path, root.path().join("net/nf_conntrack_expect"));
        std::fs::write(
            root.path().join("net/nf_conntrack_expect"),
            PASSIVE_PROC_EXPECT,
        )
        .unwrap();
        let ct = read_procfs(root.path()).unwrap();
        assert_eq!((ct.flows.len(), ct.expectations.len()), (5, 1));
        assert_eq!(ct.source, ConntrackSource::Procfs);
    }
}
