//! Conntrack over ctnetlink, on the netlink engine: the two dump requests
//! (flows and expectations) and the decoders of their answers, pure
//! functions of bytes (`ctnetlink_fill_info()` and
//! `ctnetlink_exp_dump_expect()` in net/netfilter/nf_conntrack_netlink.c
//! write what they read).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};

use super::tracked;
use crate::collect::netlink::{
    DecodeError, Message, NETLINK_NETFILTER, NLMSG_HDRLEN, NetlinkError, NetlinkSocket, Progress,
    parse_attributes as parse, walk,
};
use crate::model::{Endpoint, Expectation, Flow, FlowStatus, Tuple, ct_tcp_state};

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
const CTA_PROTOINFO: usize = 4;
const CTA_HELP: usize = 5;
const CTA_TIMEOUT: usize = 7;
const CTA_MARK: usize = 8;
const CTA_TUPLE_MASTER: usize = 14;
const CTA_ZONE: usize = 18;
const CTA_PROTOINFO_TCP: usize = 1;
const CTA_PROTOINFO_TCP_STATE: usize = 1;
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
const CTA_EXPECT_TIMEOUT: usize = 4;
const CTA_EXPECT_HELP_NAME: usize = 6;
const CTA_EXPECT_NAT: usize = 10;
const CTA_EXPECT_NAT_TUPLE: usize = 2;
/// Status bits (include/uapi/linux/netfilter/nf_conntrack_common.h).
const IPS_EXPECTED: u32 = 1;
const IPS_SEEN_REPLY: u32 = 1 << 1;
const IPS_ASSURED: u32 = 1 << 2;

/// Dumps the flows, then the expectations, of the caller's namespace.
pub(super) fn read() -> Result<(Vec<Flow>, Vec<Expectation>), NetlinkError> {
    let mut socket = NetlinkSocket::open(NETLINK_NETFILTER)?;
    let (mut flows, mut expectations) = (Vec::new(), Vec::new());
    socket.dump(&request_bytes(CT_GET, 0), &mut flows, flow_message)?;
    socket.dump(
        &request_bytes(EXP_GET, 0),
        &mut expectations,
        expectation_message,
    )?;
    Ok((flows, expectations))
}

/// A dump request: `struct nlmsghdr`, then `struct nfgenmsg` with family
/// `AF_UNSPEC` (IPv4 and IPv6 together: `ctnetlink_dump_table()` filters
/// on the family only when one is given), version `NFNETLINK_V0` and
/// resource id 0, all zero bytes. `seq` is the header's sequence number
/// (`NetlinkSocket::dump` sets its own).
fn request_bytes(kind: u16, seq: u32) -> [u8; REQUEST_LEN] {
    let mut b = [0; REQUEST_LEN];
    b[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&kind.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b
}

/// Decodes one datagram of a `IPCTNL_MSG_CT_GET` dump, appending its TCP and
/// UDP flows to `out`.
pub fn decode_flows(datagram: &[u8], out: &mut Vec<Flow>) -> Result<Progress, DecodeError> {
    walk(datagram, |m| flow_message(m, out))
}

/// Decodes one datagram of a `IPCTNL_MSG_EXP_GET` dump, appending its TCP and
/// UDP expectations to `out`.
pub fn decode_expectations(
    datagram: &[u8],
    out: &mut Vec<Expectation>,
) -> Result<Progress, DecodeError> {
    walk(datagram, |m| expectation_message(m, out))
}

/// Decodes one message of a flow dump: an `IPCTNL_MSG_CT_NEW` message is a
/// flow, appended to `out` if it is TCP or UDP; others are skipped.
pub fn flow_message(message: Message<'_>, out: &mut Vec<Flow>) -> Result<(), DecodeError> {
    if message.kind == CT_NEW {
        out.extend(flow(attributes(message)?)?);
    }
    Ok(())
}

/// Decodes one message of an expectation dump (`IPCTNL_MSG_EXP_NEW`).
pub fn expectation_message(
    message: Message<'_>,
    out: &mut Vec<Expectation>,
) -> Result<(), DecodeError> {
    if message.kind == EXP_NEW {
        out.extend(expectation(attributes(message)?)?);
    }
    Ok(())
}

/// The attributes of a ctnetlink message, after its `struct nfgenmsg`.
fn attributes(message: Message<'_>) -> Result<&[u8], DecodeError> {
    message
        .payload
        .get(NFGENMSG_LEN..)
        .ok_or(DecodeError::Truncated("nfgenmsg"))
}

fn flow(attrs: &[u8]) -> Result<Option<Flow>, DecodeError> {
    let a = parse::<{ CTA_ZONE + 1 }>(attrs)?;
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
    // `ctnetlink_dump_protoinfo()`, `tcp_to_nlattr()`: a nest per protocol.
    let state = match a[CTA_PROTOINFO] {
        Some(info) => match parse::<{ CTA_PROTOINFO_TCP + 1 }>(info)?[CTA_PROTOINFO_TCP] {
            Some(tcp) => {
                let t = parse::<{ CTA_PROTOINFO_TCP_STATE + 1 }>(tcp)?;
                let [code] = field(&t, CTA_PROTOINFO_TCP_STATE, "CTA_PROTOINFO_TCP_STATE")?;
                ct_tcp_state(Some(code), None)
            }
            None => None,
        },
        None => None,
    };
    Ok(Some(Flow {
        orig,
        reply,
        expected: status & IPS_EXPECTED != 0,
        helper,
        master,
        status: FlowStatus {
            state,
            unreplied: status & IPS_SEEN_REPLY == 0,
            assured: status & IPS_ASSURED != 0,
            mark: optional(&a, CTA_MARK, "CTA_MARK")?.map_or(0, u32::from_be_bytes),
            zone: optional(&a, CTA_ZONE, "CTA_ZONE")?.map_or(0, u16::from_be_bytes),
            timeout: optional(&a, CTA_TIMEOUT, "CTA_TIMEOUT")?.map(u32::from_be_bytes),
        },
    }))
}

fn expectation(attrs: &[u8]) -> Result<Option<Expectation>, DecodeError> {
    let a = parse::<{ CTA_EXPECT_NAT + 1 }>(attrs)?;
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
    // `ctnetlink_exp_dump_expect()`: the saved address and port, as the
    // source of a tuple, where NAT saved any.
    let nat = match a[CTA_EXPECT_NAT] {
        Some(n) => match parse::<{ CTA_EXPECT_NAT_TUPLE + 1 }>(n)?[CTA_EXPECT_NAT_TUPLE] {
            Some(t) => tuple(t)?.map(|t| t.src),
            None => None,
        },
        None => None,
    };
    let timeout = optional(&a, CTA_EXPECT_TIMEOUT, "CTA_EXPECT_TIMEOUT")?.map(u32::from_be_bytes);
    Ok(Some(Expectation {
        tuple: expected,
        master: a[CTA_EXPECT_MASTER].map(tuple).transpose()?.flatten(),
        helper: a[CTA_EXPECT_HELP_NAME].map(string),
        nat,
        timeout,
    }))
}

/// A `CTA_TUPLE_*` nest (`ctnetlink_dump_tuples()`); `None` for protocols
/// other than TCP and UDP, whose tuples have no ports.
fn tuple(attrs: &[u8]) -> Result<Option<Tuple>, DecodeError> {
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

fn need<'a>(
    table: &[Option<&'a [u8]>],
    kind: usize,
    name: &'static str,
) -> Result<&'a [u8], DecodeError> {
    table
        .get(kind)
        .copied()
        .flatten()
        .ok_or(DecodeError::Missing(name))
}

/// A fixed-size attribute's payload.
fn field<const N: usize>(
    table: &[Option<&[u8]>],
    kind: usize,
    name: &'static str,
) -> Result<[u8; N], DecodeError> {
    need(table, kind, name)?
        .get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::Truncated(name))
}

/// A fixed-size attribute's payload, if the attribute is there.
fn optional<const N: usize>(
    table: &[Option<&[u8]>],
    kind: usize,
    name: &'static str,
) -> Result<Option<[u8; N]>, DecodeError> {
    match table.get(kind).copied().flatten() {
        Some(_) => field(table, kind, name).map(Some),
        None => Ok(None),
    }
}

/// A NUL-terminated string attribute (`nla_put_string()`).
fn string(b: &[u8]) -> String {
    let text = b.split(|&c| c == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::collect::conntrack::{IPPROTO_TCP, IPPROTO_UDP};
    use crate::collect::netlink::{NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR};

    /// One datagram's decoder: [`decode_flows`] or [`decode_expectations`].
    pub(crate) type Decoder<T> = fn(&[u8], &mut Vec<T>) -> Result<Progress, DecodeError>;

    /// Captured by tests/fixtures/conntrack/capture.sh; see the README there.
    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../../tests/fixtures/conntrack/", $name))
        };
    }
    pub(crate) const PASSIVE_FLOWS: [&[u8]; 2] = [
        fixture!("passive-flows-0.bin"),
        fixture!("passive-flows-1.bin"),
    ];
    pub(crate) const PASSIVE_EXPECTATIONS: [&[u8]; 2] = [
        fixture!("passive-expectations-0.bin"),
        fixture!("passive-expectations-1.bin"),
    ];
    pub(crate) const ACTIVE_FLOWS: [&[u8]; 2] = [
        fixture!("active-flows-0.bin"),
        fixture!("active-flows-1.bin"),
    ];
    pub(crate) const EPERM: &[u8] = fixture!("eperm-flows-0.bin");

    pub(crate) fn tcp(src: &str, dst: &str) -> Tuple {
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
    pub(crate) fn dump<T>(datagrams: &[&[u8]], decode: Decoder<T>) -> Vec<T> {
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
        // `ESTABLISHED ... [ASSURED] mark=0 zone=0` in /proc
        assert_eq!(c.status.state, Some("ESTABLISHED"));
        assert!(c.status.assured && !c.status.unreplied);
        assert_eq!((c.status.mark, c.status.zone), (0, 0));
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
                nat: None,
                // as /proc showed it a moment later: `297 l3proto = 2 ...`
                timeout: Some(297),
            }]
        );
    }

    #[test]
    fn captured_eperm_is_an_error() {
        let eperm = Err(DecodeError::Kernel { errno: libc::EPERM });
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
                    Err(e) => assert!(matches!(e, DecodeError::Truncated(_)), "{len}: {e}"),
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

    pub(crate) const A: [u8; 4] = [10, 0, 0, 1];
    pub(crate) const B: [u8; 4] = [10, 0, 0, 2];

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
                status: Default::default(),
            }]
        );
    }

    #[test]
    fn hand_built_flow_status() {
        let syn_sent = message(
            CT_NEW,
            0,
            &[
                expectedattr(CTA_TUPLE_ORIG, IPPROTO_TCP, A, B, Some((40000, 21))),
                expectedattr(CTA_TUPLE_REPLY, IPPROTO_TCP, B, A, Some((21, 40000))),
                // IPS_CONFIRMED only: no reply seen, not assured
                attr(CTA_STATUS as u16, &(1u32 << 3).to_be_bytes()),
                attr(CTA_TIMEOUT as u16, &117u32.to_be_bytes()),
                attr(CTA_MARK as u16, &0x2au32.to_be_bytes()),
                attr(CTA_ZONE as u16, &3u16.to_be_bytes()),
                nest(
                    CTA_PROTOINFO as u16,
                    &[nest(
                        CTA_PROTOINFO_TCP as u16,
                        &[attr(CTA_PROTOINFO_TCP_STATE as u16, &[1]), attr(2, &[7])],
                    )],
                ),
            ],
        );
        let mut flows = Vec::new();
        decode_flows(&syn_sent, &mut flows).unwrap();
        let want = FlowStatus {
            state: Some("SYN_SENT"),
            unreplied: true,
            assured: false,
            mark: 42,
            zone: 3,
            timeout: Some(117),
        };
        assert_eq!(flows[0].status, want);
        // a state past conntrack's table is no state; a short mark is an error
        let odd = |extra: Vec<u8>| {
            let m = message(
                CT_NEW,
                0,
                &[
                    expectedattr(CTA_TUPLE_ORIG, IPPROTO_TCP, A, B, Some((1, 2))),
                    expectedattr(CTA_TUPLE_REPLY, IPPROTO_TCP, B, A, Some((2, 1))),
                    attr(CTA_STATUS as u16, &6u32.to_be_bytes()),
                    extra,
                ],
            );
            let mut out = Vec::new();
            decode_flows(&m, &mut out).map(|_| out.pop().map(|f| f.status))
        };
        let past = nest(
            CTA_PROTOINFO as u16,
            &[nest(
                CTA_PROTOINFO_TCP as u16,
                &[attr(CTA_PROTOINFO_TCP_STATE as u16, &[42])],
            )],
        );
        let seen = odd(past).unwrap().unwrap();
        assert_eq!(seen.state, None);
        assert!(seen.assured && !seen.unreplied);
        assert_eq!(
            odd(attr(CTA_MARK as u16, &[1, 2])),
            Err(DecodeError::Truncated("CTA_MARK"))
        );
    }

    #[test]
    fn hand_built_expectation_keeps_what_nat_rewrote() {
        // nf_nat_ftp: the server will connect to the router's 10.0.0.2:50001,
        // sent on to the port the client's PORT named, 50000.
        let exp = message(
            EXP_NEW,
            0,
            &[
                expectedattr(CTA_EXPECT_MASTER, IPPROTO_TCP, A, B, Some((40000, 21))),
                expectedattr(CTA_EXPECT_TUPLE, IPPROTO_TCP, B, B, Some((0, 50001))),
                attr(CTA_EXPECT_TIMEOUT as u16, &299u32.to_be_bytes()),
                nest(
                    CTA_EXPECT_NAT as u16,
                    &[
                        attr(1, &1u32.to_be_bytes()),
                        expectedattr(
                            CTA_EXPECT_NAT_TUPLE,
                            IPPROTO_TCP,
                            [0; 4],
                            [0; 4],
                            Some((50000, 0)),
                        ),
                    ],
                ),
            ],
        );
        let mut out = Vec::new();
        decode_expectations(&exp, &mut out).unwrap();
        assert_eq!(
            out[0].nat,
            Some(Endpoint::new(Ipv4Addr::UNSPECIFIED.into(), 50000))
        );
        assert_eq!(out[0].timeout, Some(299));
        assert_eq!(out[0].tuple.dst.port, 50001);
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
            Err(DecodeError::Missing("CTA_TUPLE_ORIG"))
        );
        assert_eq!(
            decode(&[orig.clone(), reply.clone()]),
            Err(DecodeError::Missing("CTA_STATUS"))
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
            Err(DecodeError::Truncated("CTA_IP_V4_SRC"))
        );
        let no_ports = expectedattr(CTA_TUPLE_ORIG, IPPROTO_TCP, A, B, None);
        assert_eq!(
            decode(&[no_ports, reply.clone(), status.clone()]),
            Err(DecodeError::Missing("CTA_PROTO_SRC_PORT"))
        );
        let mut overlong = orig.clone();
        overlong[0] += 8;
        assert_eq!(
            decode(&[overlong]),
            Err(DecodeError::Truncated("attribute"))
        );
        // An acknowledgement (error 0) is not an error.
        // struct nlmsgerr: error 0, then the request's header.
        let ack = raw_message(NLMSG_ERROR, 0, &[0; 20]);
        assert_eq!(decode_flows(&ack, &mut Vec::new()), Ok(Progress::default()));
        assert_eq!(
            decode_flows(&ack[..30], &mut Vec::new()),
            Err(DecodeError::Truncated("length"))
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
}
