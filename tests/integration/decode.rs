//! Decoder tests on sock_diag datagrams and /proc/net tables captured from a
//! real kernel by `tests/fixtures/capture.py`; `tests/fixtures/README.md`
//! says how, and `tests/fixtures/sockets.json` lists the sockets it opened.
//! The truncated and modified datagrams below are derived from the captures.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde_json::Value;
use sockwho::collect::decode::{
    DecodeError, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, Progress,
    SOCK_DIAG_BY_FAMILY, decode_datagram,
};
use sockwho::collect::procfs::parse_table;
use sockwho::collect::sysctl::read_port_range;
use sockwho::model::{Endpoint, Family, PortRange, Proto, Socket, State, TimerKind};

/// The captured dumps that answer with sockets: name, protocol, family.
const DUMPS: [(&str, Proto, Family); 4] = [
    ("tcp4", Proto::Tcp, Family::Inet),
    ("tcp6", Proto::Tcp, Family::Inet6),
    ("udp4", Proto::Udp, Family::Inet),
    ("udp6", Proto::Udp, Family::Inet6),
];

/// Every capture, with the protocol to decode it as.
const CAPTURES: [(&str, Proto); 6] = [
    ("tcp4", Proto::Tcp),
    ("tcp6", Proto::Tcp),
    ("udp4", Proto::Udp),
    ("udp6", Proto::Udp),
    ("error", Proto::Tcp),
    ("sctp4", Proto::Tcp),
];

/// The errno of both error captures: ENOENT.
const ENOENT: i32 = 2;

/// The state mask of each capture's request (and of the procfs comparison).
const TCP_STATES: u32 = 0xfff;
const UDP_STATES: u32 = (1 << 1) | (1 << 7);

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The datagrams of one capture, in the order they were received.
fn datagrams(name: &str) -> Vec<Vec<u8>> {
    let dir = fixtures().join("sockdiag");
    let list: Vec<Vec<u8>> = (0..)
        .map(|n| dir.join(format!("{name}.{n}.bin")))
        .map_while(|path| std::fs::read(path).ok())
        .collect();
    assert!(!list.is_empty(), "no {name}.0.bin in {}", dir.display());
    list
}

fn manifest() -> Value {
    let path = fixtures().join("sockets.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("sockets.json is JSON")
}

fn proc_text(rel: &str) -> String {
    let path = fixtures().join("proc").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Decodes a whole capture, insisting that every datagram decodes.
fn decode_all(name: &str, proto: Proto) -> (Vec<Socket>, Vec<Progress>) {
    let mut sockets = Vec::new();
    let progress = datagrams(name)
        .iter()
        .enumerate()
        .map(|(n, d)| {
            decode_datagram(d, proto, &mut sockets)
                .unwrap_or_else(|e| panic!("{name}.{n}.bin does not decode: {e:?}"))
        })
        .collect();
    (sockets, progress)
}

/// One netlink message of a captured datagram: offset, nlmsg_len, type.
#[derive(Debug, Clone, Copy)]
struct Msg {
    off: usize,
    len: usize,
    kind: u16,
}

/// Walks the messages of a well-formed (captured) datagram.
fn messages(d: &[u8]) -> Vec<Msg> {
    let mut list = Vec::new();
    let mut off = 0;
    while off < d.len() {
        let len = u32::from_ne_bytes(d[off..off + 4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(d[off + 4..off + 6].try_into().unwrap());
        assert!(
            len >= NLMSG_HDRLEN && off + len <= d.len(),
            "malformed capture"
        );
        list.push(Msg { off, len, kind });
        off += (len + 3) & !3;
    }
    list
}

fn set_len(d: &mut [u8], msg: Msg, len: u32) {
    d[msg.off..msg.off + 4].copy_from_slice(&len.to_ne_bytes());
}

fn set_flag(d: &mut [u8], msg: Msg, flag: u16) {
    let at = msg.off + 6;
    let flags = u16::from_ne_bytes([d[at], d[at + 1]]) | flag;
    d[at..at + 2].copy_from_slice(&flags.to_ne_bytes());
}

/// A socket as sockets.json describes it.
#[derive(Debug)]
struct Expected {
    name: String,
    proto: Proto,
    family: Family,
    state: State,
    local: Endpoint,
    remote: Option<Endpoint>,
    uid: u32,
    inode: u64,
    cookie: u64,
    backlog: Option<u32>,
    v6only: Option<bool>,
    recv_q: Option<u32>,
}

fn endpoint(v: &Value) -> Option<Endpoint> {
    let pair = v.as_array()?;
    let addr: IpAddr = pair[0].as_str()?.parse().ok()?;
    let port = u16::try_from(pair[1].as_u64()?).ok()?;
    Some(Endpoint::new(addr, port))
}

fn state_named(name: &str) -> State {
    State::ALL
        .into_iter()
        .find(|s| s.name(Proto::Tcp) == name)
        .unwrap_or_else(|| panic!("unknown state {name:?} in sockets.json"))
}

fn expected_sockets() -> Vec<Expected> {
    let m = manifest();
    let list = m["sockets"].as_array().expect("sockets.json: sockets[]");
    list.iter()
        .map(|s| {
            let name = s["name"].as_str().expect("name").to_string();
            let u32_field = |k: &str| s[k].as_u64().map(|n| u32::try_from(n).expect(k));
            Expected {
                proto: match s["proto"].as_str() {
                    Some("tcp") => Proto::Tcp,
                    Some("udp") => Proto::Udp,
                    other => panic!("{name}: proto {other:?}"),
                },
                family: match s["family"].as_str() {
                    Some("inet") => Family::Inet,
                    Some("inet6") => Family::Inet6,
                    other => panic!("{name}: family {other:?}"),
                },
                state: state_named(s["state"].as_str().expect("state")),
                local: endpoint(&s["local"]).expect("local"),
                remote: endpoint(&s["remote"]),
                uid: u32_field("uid").expect("uid"),
                inode: s["inode"].as_u64().expect("inode"),
                cookie: s["cookie"].as_u64().expect("cookie"),
                backlog: u32_field("backlog"),
                v6only: s["v6only"].as_bool(),
                recv_q: u32_field("recv_q"),
                name,
            }
        })
        .collect()
}

fn find(sockets: &[Socket], local: Endpoint, remote: Option<Endpoint>) -> &Socket {
    let found: Vec<&Socket> = sockets
        .iter()
        .filter(|s| s.local == local && s.remote == remote)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want exactly one socket {local:?} -> {remote:?} in {sockets:#?}"
    );
    found[0]
}

/// Checks one decoded capture against every socket sockets.json lists for it.
fn check_capture(name: &str, proto: Proto, family: Family) -> Vec<Socket> {
    let (sockets, _) = decode_all(name, proto);
    let expected: Vec<Expected> = expected_sockets()
        .into_iter()
        .filter(|e| e.proto == proto && e.family == family)
        .collect();
    assert!(
        !expected.is_empty(),
        "sockets.json lists nothing for {name}"
    );
    assert_eq!(
        sockets.len(),
        expected.len(),
        "{name}: the namespace held only the sockets in sockets.json: {sockets:#?}"
    );
    for e in &expected {
        let s = find(&sockets, e.local, e.remote);
        let what = &e.name;
        assert_eq!(
            (s.proto, s.family, s.state),
            (proto, family, e.state),
            "{what}"
        );
        assert_eq!(s.uid, e.uid, "{what}: uid");
        assert_eq!(s.inode, e.inode, "{what}: inode");
        assert_eq!(s.cookie, Some(e.cookie), "{what}: cookie (SO_COOKIE)");
        if let Some(q) = e.recv_q {
            assert_eq!(s.recv_q, q, "{what}: recv_q");
        }
        // Nothing was waiting for an ACK when the dump ran.
        assert_eq!(s.send_q, 0, "{what}: send_q");
        // Over netlink a TCP listener's wqueue is its backlog.
        let listener = proto == Proto::Tcp && e.state == State::Listen;
        assert_eq!(s.backlog, e.backlog, "{what}: backlog");
        assert_eq!(
            s.backlog.is_some(),
            listener,
            "{what}: backlog only on listeners"
        );
        // INET_DIAG_SKV6ONLY comes with AF_INET6 sockets in LISTEN or CLOSE.
        let has_v6only = family == Family::Inet6 && matches!(e.state, State::Listen | State::Close);
        assert_eq!(
            s.v6only.is_some(),
            has_v6only,
            "{what}: v6only {:?}",
            s.v6only
        );
        if let Some(v6only) = e.v6only {
            assert_eq!(s.v6only, Some(v6only), "{what}: v6only");
        }
        if e.state == State::TimeWait {
            assert_eq!(s.timer.kind, TimerKind::TimeWait, "{what}: timer");
            assert!(
                (1..=60_000).contains(&s.timer.expires_ms),
                "{what}: TIME_WAIT expiry {} ms",
                s.timer.expires_ms
            );
        } else {
            assert_eq!(s.timer.kind, TimerKind::Off, "{what}: timer");
            assert_eq!(s.timer.expires_ms, 0, "{what}: timer expiry");
        }
        assert!(
            s.processes.is_empty(),
            "{what}: the decoder finds no owners"
        );
    }
    sockets
}

fn ep(addr: impl Into<IpAddr>, port: u16) -> Endpoint {
    Endpoint::new(addr.into(), port)
}

const LO4: Ipv4Addr = Ipv4Addr::LOCALHOST;
const LO6: Ipv6Addr = Ipv6Addr::LOCALHOST;
const ANY6: Ipv6Addr = Ipv6Addr::UNSPECIFIED;
const MAPPED_LO4: Ipv6Addr = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1);

fn only(sockets: &[Socket], pred: impl Fn(&Socket) -> bool, what: &str) -> Socket {
    let found: Vec<&Socket> = sockets.iter().filter(|s| pred(s)).collect();
    assert_eq!(found.len(), 1, "want exactly one {what} in {sockets:#?}");
    found[0].clone()
}

#[test]
fn tcp4_capture_holds_listener_connection_and_time_wait() {
    let sockets = check_capture("tcp4", Proto::Tcp, Family::Inet);
    // What capture.py opens, independently of sockets.json.
    let listen = only(&sockets, |s| s.state == State::Listen, "listener");
    assert_eq!(listen.local, ep(LO4, 2222));
    assert_eq!(listen.remote, None);
    assert_eq!(
        (listen.backlog, listen.send_q, listen.recv_q),
        (Some(16), 0, 0)
    );
    assert_eq!(listen.v6only, None);
    assert_ne!(listen.inode, 0);

    let server = only(
        &sockets,
        |s| s.local == ep(LO4, 2222) && s.remote.is_some(),
        "server end",
    );
    let client = find(&sockets, server.remote.unwrap(), Some(ep(LO4, 2222)));
    assert_eq!(
        (server.state, client.state),
        (State::Established, State::Established)
    );
    assert_eq!(server.recv_q, 5, "the client's \"hello\" is unread");
    assert_eq!(server.backlog, None);
    assert_ne!(server.inode, client.inode);

    let tw = only(&sockets, |s| s.state == State::TimeWait, "TIME_WAIT socket");
    assert_eq!(tw.remote, Some(ep(LO4, 2222)));
    assert_eq!(
        (tw.timer.kind, tw.inode, tw.uid),
        (TimerKind::TimeWait, 0, 0)
    );

    let to_dual = only(
        &sockets,
        |s| s.remote == Some(ep(LO4, 8080)),
        "client of [::]:8080",
    );
    assert_eq!(to_dual.state, State::Established);
    assert_eq!(to_dual.local.addr, IpAddr::V4(LO4));
}

#[test]
fn tcp6_capture_holds_dual_stack_v6only_and_mapped_sockets() {
    let sockets = check_capture("tcp6", Proto::Tcp, Family::Inet6);
    let dual = find(&sockets, ep(ANY6, 8080), None);
    assert_eq!(dual.state, State::Listen);
    assert_eq!(dual.v6only, Some(false));
    assert_eq!((dual.backlog, dual.send_q), (Some(32), 0));

    let v6only = find(&sockets, ep(ANY6, 8443), None);
    assert_eq!(v6only.state, State::Listen);
    assert_eq!(v6only.v6only, Some(true));
    assert_eq!((v6only.backlog, v6only.send_q), (Some(8), 0));
    assert_eq!(v6only.uid, 1000, "created with euid 1000");

    // The connection over ::1, both ends.
    let server = only(
        &sockets,
        |s| s.local == ep(LO6, 8080),
        "server end over ::1",
    );
    let client = find(&sockets, server.remote.unwrap(), Some(ep(LO6, 8080)));
    assert_eq!(
        (server.state, client.state),
        (State::Established, State::Established)
    );
    assert_eq!((server.v6only, client.v6only), (None, None));

    // The IPv4 connection to the dual-stack listener, seen from the IPv6 side.
    let mapped = only(
        &sockets,
        |s| s.local == ep(MAPPED_LO4, 8080),
        "v4-mapped server end",
    );
    assert_eq!(mapped.state, State::Established);
    assert_eq!(mapped.local.canonical_addr(), IpAddr::V4(LO4));
    let peer = mapped.remote.unwrap();
    assert_eq!(peer.addr, IpAddr::V6(MAPPED_LO4));
    assert_eq!(peer.canonical_addr(), IpAddr::V4(LO4));
    // Its peer is the IPv4 client in the tcp4 capture.
    let (tcp4, _) = decode_all("tcp4", Proto::Tcp);
    let v4_client = find(&tcp4, ep(LO4, peer.port), Some(ep(LO4, 8080)));
    assert_eq!(v4_client.state, State::Established);
}

#[test]
fn udp4_capture_holds_unconnected_and_connected_sockets() {
    let sockets = check_capture("udp4", Proto::Udp, Family::Inet);
    let unconn = find(&sockets, ep(Ipv4Addr::UNSPECIFIED, 5353), None);
    assert_eq!(unconn.state, State::Close);
    assert_eq!(unconn.state.name(Proto::Udp), "UNCONN");
    assert!(unconn.recv_q > 0, "one datagram is queued");
    assert_eq!((unconn.backlog, unconn.v6only), (None, None));
    let conn = only(
        &sockets,
        |s| s.remote == Some(ep(LO4, 5353)),
        "connected socket",
    );
    assert_eq!(conn.state, State::Established);
    assert_eq!(conn.uid, 1000, "created with euid 1000");
}

#[test]
fn udp6_capture_holds_v6only_and_connected_sockets() {
    let sockets = check_capture("udp6", Proto::Udp, Family::Inet6);
    let unconn = find(&sockets, ep(ANY6, 5353), None);
    assert_eq!((unconn.state, unconn.v6only), (State::Close, Some(true)));
    let conn = only(
        &sockets,
        |s| s.remote == Some(ep(LO6, 5353)),
        "connected socket",
    );
    assert_eq!((conn.state, conn.v6only), (State::Established, None));
}

#[test]
fn only_the_last_datagram_of_a_dump_reports_done() {
    let m = manifest();
    for (name, proto, _) in DUMPS {
        let (sockets, progress) = decode_all(name, proto);
        let (last, rest) = progress.split_last().unwrap();
        assert_eq!(
            *last,
            Progress {
                done: true,
                interrupted: false
            },
            "{name}"
        );
        for (n, p) in rest.iter().enumerate() {
            assert_eq!(*p, Progress::default(), "{name}.{n}.bin");
        }
        assert_eq!(
            Some(sockets.len() as u64),
            m["requests"][name]["sockets"].as_u64(),
            "{name}: as many sockets as capture.py counted"
        );
        // The last datagram holds NLMSG_DONE and nothing after it.
        let data = datagrams(name);
        let msgs = messages(data.last().unwrap());
        assert_eq!(msgs.last().unwrap().kind, NLMSG_DONE, "{name}");
    }
}

#[test]
fn error_capture_is_a_kernel_error() {
    let data = datagrams("error");
    assert_eq!(data.len(), 1);
    assert_eq!(messages(&data[0])[0].kind, NLMSG_ERROR);
    let mut out = Vec::new();
    let got = decode_datagram(&data[0], Proto::Tcp, &mut out);
    assert_eq!(got, Err(DecodeError::Kernel { errno: ENOENT }));
    assert!(out.is_empty());
    assert_eq!(
        manifest()["requests"]["error"]["errno"].as_i64(),
        Some(ENOENT.into())
    );
}

/// inet_diag_dumpit()'s own errors (here: no handler for IPPROTO_SCTP) come
/// back as an errno in NLMSG_DONE's payload, not as NLMSG_ERROR.
#[test]
fn sctp4_capture_is_done_carrying_enoent() {
    let data = datagrams("sctp4");
    assert_eq!(data.len(), 1);
    let msgs = messages(&data[0]);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].kind, NLMSG_DONE);
    let errno = i32::from_ne_bytes(data[0][16..20].try_into().unwrap());
    assert_eq!(errno, -ENOENT);
    assert_eq!(
        manifest()["requests"]["sctp4"]["errno"].as_i64(),
        Some(ENOENT.into())
    );
}

#[test]
fn done_carrying_an_errno_is_a_kernel_error() {
    let mut out = Vec::new();
    let got = decode_datagram(&datagrams("sctp4")[0], Proto::Tcp, &mut out);
    assert_eq!(got, Err(DecodeError::Kernel { errno: ENOENT }));
}

#[test]
fn a_datagram_cut_inside_a_message_is_truncated() {
    let mut cuts = 0;
    for (name, proto) in CAPTURES {
        for (n, d) in datagrams(name).iter().enumerate() {
            for msg in messages(d) {
                // Inside the header, inside the payload, one byte short.
                for cut in [
                    msg.off + 8,
                    msg.off + NLMSG_HDRLEN + 10,
                    msg.off + msg.len - 1,
                ] {
                    let cut = cut.min(msg.off + msg.len - 1);
                    let mut out = Vec::new();
                    let got = decode_datagram(&d[..cut], proto, &mut out);
                    assert!(
                        matches!(got, Err(DecodeError::Truncated(_))),
                        "{name}.{n}.bin cut at {cut} (in the message at {}): {got:?}",
                        msg.off
                    );
                    cuts += 1;
                }
            }
        }
    }
    assert_eq!(cuts, 3 * 20, "20 messages, 3 cuts each");
}

#[test]
fn nlmsg_len_below_the_header_or_beyond_the_buffer_is_truncated() {
    for (name, proto) in CAPTURES {
        for (n, d) in datagrams(name).iter().enumerate() {
            for msg in messages(d) {
                let beyond = (d.len() - msg.off + 1) as u32;
                for len in [0, 1, 4, 15, beyond, beyond + 3, u32::MAX] {
                    let mut bad = d.clone();
                    set_len(&mut bad, msg, len);
                    let mut out = Vec::new();
                    let got = decode_datagram(&bad, proto, &mut out);
                    assert!(
                        matches!(got, Err(DecodeError::Truncated(_))),
                        "{name}.{n}.bin, nlmsg_len {len} at {}: {got:?}",
                        msg.off
                    );
                }
            }
        }
    }
}

#[test]
fn a_sock_diag_message_too_short_for_inet_diag_msg_is_truncated() {
    let mut checked = 0;
    for (name, proto, _) in DUMPS {
        let d = &datagrams(name)[0];
        for msg in messages(d)
            .into_iter()
            .filter(|m| m.kind == SOCK_DIAG_BY_FAMILY)
        {
            // 71 bytes of payload: one short of struct inet_diag_msg. What
            // follows is read as the next message, but the decoder must
            // stop here.
            for len in [NLMSG_HDRLEN as u32, NLMSG_HDRLEN as u32 + 71] {
                let mut bad = d.clone();
                set_len(&mut bad, msg, len);
                let got = decode_datagram(&bad, proto, &mut Vec::new());
                assert!(
                    matches!(got, Err(DecodeError::Truncated(_))),
                    "{name} message at {}, nlmsg_len {len}: {got:?}",
                    msg.off
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 14);
}

#[test]
fn dump_intr_on_any_message_marks_the_datagram_interrupted() {
    let mut checked = 0;
    for (name, proto, _) in DUMPS {
        for (n, d) in datagrams(name).iter().enumerate() {
            let clean = decode_datagram(d, proto, &mut Vec::new()).unwrap();
            assert!(!clean.interrupted, "{name}.{n}.bin as captured");
            for msg in messages(d) {
                let mut flagged = d.clone();
                set_flag(&mut flagged, msg, NLM_F_DUMP_INTR);
                let mut out = Vec::new();
                let got = decode_datagram(&flagged, proto, &mut out)
                    .unwrap_or_else(|e| panic!("{name}.{n}.bin flagged at {}: {e:?}", msg.off));
                assert!(got.interrupted, "{name}.{n}.bin flagged at {}", msg.off);
                assert_eq!(
                    got.done, clean.done,
                    "{name}.{n}.bin flagged at {}",
                    msg.off
                );
                // The sockets still decode; the caller decides to redo the dump.
                let mut want = Vec::new();
                decode_datagram(d, proto, &mut want).unwrap();
                assert_eq!(out, want);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 14 + 4, "14 sockets and 4 NLMSG_DONE");
}

/// Every prefix of every datagram decodes to a result, never a panic: Ok
/// with the sockets of the whole messages when it ends between messages,
/// `Truncated` when it ends inside one.
#[test]
fn every_prefix_of_every_capture_decodes_without_panicking() {
    let mut prefixes = 0;
    for (name, proto) in CAPTURES {
        for (n, d) in datagrams(name).iter().enumerate() {
            let msgs = messages(d);
            let mut full = Vec::new();
            let _ = decode_datagram(d, proto, &mut full);
            for cut in 0..=d.len() {
                let mut out = Vec::new();
                let got = decode_datagram(&d[..cut], proto, &mut out);
                let what = format!("{name}.{n}.bin[..{cut}]");
                prefixes += 1;
                if msgs.iter().any(|m| m.off < cut && cut < m.off + m.len) {
                    assert!(
                        matches!(got, Err(DecodeError::Truncated(_))),
                        "{what}: {got:?}"
                    );
                    continue;
                }
                let whole: Vec<&Msg> = msgs.iter().filter(|m| m.off + m.len <= cut).collect();
                let sockets = whole
                    .iter()
                    .filter(|m| m.kind == SOCK_DIAG_BY_FAMILY)
                    .count();
                // sctp4's NLMSG_DONE carries -ENOENT: an error too
                let failed =
                    |m: &&Msg| m.kind == NLMSG_ERROR || (name == "sctp4" && m.kind == NLMSG_DONE);
                if whole.iter().any(failed) {
                    assert_eq!(got, Err(DecodeError::Kernel { errno: ENOENT }), "{what}");
                } else {
                    let done = whole.iter().any(|m| m.kind == NLMSG_DONE);
                    assert_eq!(
                        got,
                        Ok(Progress {
                            done,
                            interrupted: false
                        }),
                        "{what}"
                    );
                }
                assert_eq!(out[..], full[..sockets], "{what}: the sockets so far");
            }
        }
    }
    let total: usize = CAPTURES
        .iter()
        .flat_map(|(name, _)| datagrams(name))
        .map(|d| d.len() + 1)
        .sum();
    assert_eq!(prefixes, total);
}

#[test]
fn an_error_of_i32_min_does_not_panic() {
    let mut bad = datagrams("error")[0].clone();
    bad[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
    let got = decode_datagram(&bad, Proto::Tcp, &mut Vec::new());
    assert!(matches!(got, Err(DecodeError::Kernel { .. })), "{got:?}");
}

/// What both sources report alike. Not compared: the timer's expiry (ms
/// over netlink, USER_HZ ticks in /proc, and read a moment apart), and what
/// only netlink has (cookie, backlog, v6only).
type Key = (
    Proto,
    Family,
    State,
    IpAddr,
    u16,
    Option<(IpAddr, u16)>,
    u64,
    u32,
    u32,
    u32,
    bool,
);

fn key(s: &Socket) -> Key {
    (
        s.proto,
        s.family,
        s.state,
        s.local.addr,
        s.local.port,
        s.remote.map(|r| (r.addr, r.port)),
        s.inode,
        s.uid,
        s.recv_q,
        s.send_q,
        s.timer.kind == TimerKind::TimeWait,
    )
}

#[test]
fn procfs_fixtures_hold_the_same_sockets_as_the_netlink_captures() {
    let mut netlink = Vec::new();
    let mut procfs = Vec::new();
    for (name, proto, family) in DUMPS {
        let (sockets, _) = decode_all(name, proto);
        netlink.extend(sockets);
        let file = match name {
            "tcp4" => "tcp",
            "tcp6" => "tcp6",
            "udp4" => "udp",
            _ => "udp6",
        };
        let states = if proto == Proto::Tcp {
            TCP_STATES
        } else {
            UDP_STATES
        };
        let text = proc_text(&format!("net/{file}"));
        let before = procfs.len();
        let errors = parse_table(&text, file, family, proto, states, &mut procfs);
        assert!(errors.is_empty(), "{file}: {errors:?}");
        assert_eq!(
            procfs.len() - before,
            text.lines().count() - 1,
            "{file}: every line"
        );
    }
    assert_eq!(procfs.len(), 14);
    let netlink_keys: BTreeSet<Key> = netlink.iter().map(key).collect();
    let procfs_keys: BTreeSet<Key> = procfs.iter().map(key).collect();
    assert_eq!(netlink_keys.len(), netlink.len(), "netlink keys are unique");
    assert_eq!(procfs_keys, netlink_keys);
    for s in &procfs {
        assert_eq!((s.backlog, s.cookie, s.v6only), (None, None, None), "{s:?}");
        if s.state == State::TimeWait {
            assert_eq!((s.timer.kind, s.inode), (TimerKind::TimeWait, 0));
            assert!((1..=60_000).contains(&s.timer.expires_ms), "{s:?}");
        }
    }
    // The TIME_WAIT expiry read the same moment: ms against 10 ms ticks.
    let tw = |list: &[Socket]| only(list, |s| s.state == State::TimeWait, "TIME_WAIT").timer;
    let (a, b) = (tw(&netlink).expires_ms, tw(&procfs).expires_ms);
    assert!(a.abs_diff(b) <= 1_000, "TIME_WAIT expiry {a} ms vs {b} ms");
}

#[test]
fn proc_port_range_fixture_holds_the_namespace_range() {
    let (range, notices) = read_port_range(&fixtures().join("proc"));
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!(
        range,
        PortRange {
            low: 20000,
            high: 29999,
            reserved: vec![(20000, 20099), (25000, 25000)],
        }
    );
    // Every socket that got its port from connect() has one in that range;
    // the listeners and bound UDP sockets do not.
    let mut ephemeral = 0;
    for e in expected_sockets() {
        let bound = [2222, 5353, 8080, 8443].contains(&e.local.port);
        assert_eq!(
            range.contains(e.local.port),
            !bound,
            "{}: {:?}",
            e.name,
            e.local
        );
        ephemeral += usize::from(!bound);
    }
    assert_eq!(ephemeral, 6);
}
