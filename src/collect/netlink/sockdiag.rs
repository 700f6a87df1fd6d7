//! sock_diag over the engine: the `inet_diag_req_v2` dump request, the
//! dump of one family and protocol ([`DiagSocket`]), and the same dump
//! replayed from a file that `ss -D FILE` wrote ([`Replay`]). Both answer
//! through [`SockDiag`], so a caller picks live or replay once. The bytes
//! of an answer are decoded by `collect::decode`.

use std::fs;
use std::io;
use std::path::Path;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
};

use super::{NETLINK_SOCK_DIAG, NetlinkError, NetlinkSocket, walk_from};
use crate::collect::decode::{self, SOCK_DIAG_BY_FAMILY};
use crate::model::{Family, Proto, Socket};

// sock_diag's multicast groups (`enum { SKNLGRP_NONE, ... }` in
// include/uapi/linux/sock_diag.h), for `NetlinkSocket::subscribe`: the
// kernel sends an `inet_diag_msg` for each socket of that family and
// protocol it destroys (`sock_diag_broadcast_destroy()`).
pub const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
pub const SKNLGRP_INET_UDP_DESTROY: u32 = 2;
pub const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;
pub const SKNLGRP_INET6_UDP_DESTROY: u32 = 4;

/// A source of sock_diag dumps: the kernel ([`DiagSocket`]) or a saved
/// dump ([`Replay`]).
pub trait SockDiag {
    /// Appends the sockets of one family and protocol whose state bit
    /// ([`crate::model::State::bit`]) is in `states` to `out`. `bytecode`
    /// (`bytecode::compile`) may narrow them further; user space filters
    /// again in any case, so a source may ignore it.
    fn dump_filtered(
        &mut self,
        family: Family,
        proto: Proto,
        states: u32,
        bytecode: Option<&[u8]>,
        out: &mut Vec<Socket>,
    ) -> Result<(), NetlinkError>;

    /// Appends the TCP sockets of both families whose state bit is in
    /// `states`, in one dump, where the source can (`None` where it
    /// cannot: a replay, which holds one dump per family).
    fn dump_tcp_both(
        &mut self,
        _states: u32,
        _out: &mut Vec<Socket>,
    ) -> Option<Result<(), NetlinkError>> {
        None
    }
}

/// A `NETLINK_SOCK_DIAG` socket of the caller's network namespace.
pub struct DiagSocket {
    socket: NetlinkSocket,
    /// Ask for each TCP socket's `tcp_info` (`-i`).
    info: bool,
}

impl DiagSocket {
    pub fn open() -> Result<DiagSocket, NetlinkError> {
        Ok(DiagSocket {
            socket: NetlinkSocket::open(NETLINK_SOCK_DIAG)?,
            info: false,
        })
    }

    /// With `info`, every dump asks for `INET_DIAG_INFO` and each TCP
    /// socket gets the `tcp_info` the kernel sends (`Socket::tcp_info`);
    /// without it (the default) the requests are as they always were.
    pub fn with_info(mut self, info: bool) -> DiagSocket {
        self.info = info;
        self
    }

    /// Dumps the sockets of one family and protocol whose state bit is in
    /// `states`, appending them to `out`.
    pub fn dump(
        &mut self,
        family: Family,
        proto: Proto,
        states: u32,
        out: &mut Vec<Socket>,
    ) -> Result<(), NetlinkError> {
        self.dump_filtered(family, proto, states, None, out)
    }

    /// Like [`DiagSocket::dump`], with inet_diag `bytecode`
    /// (`bytecode::compile`) for the kernel to run on each socket: only the
    /// sockets it accepts are sent. A kernel that refuses the program
    /// (EINVAL from `inet_diag_bc_audit()`: an old one without
    /// `INET_DIAG_BC_S_EQ`) gets the request again without it; user space
    /// filters anyway.
    pub fn dump_filtered(
        &mut self,
        family: Family,
        proto: Proto,
        states: u32,
        bytecode: Option<&[u8]>,
        out: &mut Vec<Socket>,
    ) -> Result<(), NetlinkError> {
        match self.dump_with(family, proto, states, bytecode, out) {
            Err(NetlinkError::Kernel { errno }) if errno == libc::EINVAL && bytecode.is_some() => {
                self.dump_with(family, proto, states, None, out)
            }
            result => result,
        }
    }

    fn dump_with(
        &mut self,
        family: Family,
        proto: Proto,
        states: u32,
        bytecode: Option<&[u8]>,
        out: &mut Vec<Socket>,
    ) -> Result<(), NetlinkError> {
        let request = request_bytes(family, proto, states, 0, bytecode, self.info);
        if self.info {
            self.socket.dump(&request, out, |m, out| {
                decode::decode_with_info(m, proto, out)
            })
        } else {
            self.socket.dump(&request, out, |m, out| {
                decode::decode_message(m, proto, out)
            })
        }
    }
}

impl DiagSocket {
    /// The TCP sockets of both families in one walk of the kernel's
    /// tables: the request of `TCPDIAG_GETSOCK`, which the kernel answers
    /// with the family unspecified (`inet_diag_dump_compat()` in
    /// net/ipv4/inet_diag.c), where an `inet_diag_req_v2` names one family
    /// and each dump walks the whole hash table, the other family's sockets
    /// and (namespaces sharing the host's table) every other namespace's
    /// too. The answers are the same `inet_diag_msg`s, of the request's
    /// type.
    pub fn dump_tcp_both(
        &mut self,
        states: u32,
        out: &mut Vec<Socket>,
    ) -> Result<(), NetlinkError> {
        let request = compat_request_bytes(states, self.info);
        if self.info {
            self.socket.dump(&request, out, |m, out| {
                decode::decode_with_info(m, Proto::Tcp, out)
            })
        } else {
            self.socket.dump(&request, out, |m, out| {
                decode::decode_message(m, Proto::Tcp, out)
            })
        }
    }
}

impl SockDiag for DiagSocket {
    fn dump_tcp_both(
        &mut self,
        states: u32,
        out: &mut Vec<Socket>,
    ) -> Option<Result<(), NetlinkError>> {
        Some(DiagSocket::dump_tcp_both(self, states, out))
    }

    fn dump_filtered(
        &mut self,
        family: Family,
        proto: Proto,
        states: u32,
        bytecode: Option<&[u8]>,
        out: &mut Vec<Socket>,
    ) -> Result<(), NetlinkError> {
        DiagSocket::dump_filtered(self, family, proto, states, bytecode, out)
    }
}

/// A saved sock_diag dump, in the format of iproute2's `ss -D FILE`: the
/// datagrams of the answers back to back, as received
/// (`rtnl_dump_filter_l()` writes each one, `NLMSG_ALIGN`ed). `ss -D FILE
/// -t` writes one dump per family, AF_INET then AF_INET6 (only one with
/// `-4` or `-6`), each ended by `NLMSG_DONE`.
///
/// Read as ss reads it back from `TCPDIAG_FILE` (`tcp_show_netlink_file()`
/// in misc/ss.c):
///
/// - every socket is taken as TCP, whatever was asked: ss dumps TCP only.
///   A UDP dump of a replay is empty.
/// - `NLMSG_ERROR` is an error (ss: "TCPDIAG answered").
/// - a file that ends inside a message, or before `NLMSG_DONE`, is
///   `Truncated` (ss: "Unexpected EOF").
/// - `NLM_F_DUMP_INTR` is ignored: a replay cannot be dumped again.
///
/// Where it differs: ss stops at the first `NLMSG_DONE`, which leaves out
/// the AF_INET6 dump of a `-t` file; here every dump in the file is read,
/// each to its `NLMSG_DONE`. The family and states asked for are selected
/// here, from each socket's family and state, since nothing can run the
/// bytecode; and the engine's walker reads the file, so an `NLMSG_DONE`
/// carrying an errno is an error too. The `tcp_info` of a file `ss -D -i`
/// wrote is read only when asked for ([`Replay::with_info`]), as a live
/// dump asks for it only then.
#[derive(Debug, Clone)]
pub struct Replay {
    bytes: Vec<u8>,
    info: bool,
}

impl Replay {
    /// Reads a file `ss -D` wrote; its content is checked at each dump.
    pub fn open(path: &Path) -> io::Result<Replay> {
        fs::read(path).map(Replay::from_bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Replay {
        Replay { bytes, info: false }
    }

    /// With `info`, each socket gets the `tcp_info` its message carries
    /// (`INET_DIAG_INFO`, in a dump `ss -D FILE -i` wrote), if any.
    pub fn with_info(mut self, info: bool) -> Replay {
        self.info = info;
        self
    }

    /// [`SockDiag::dump_filtered`] on the saved dumps; `bytecode` is
    /// ignored. On an error `out` is left as it was.
    pub fn dump_filtered(
        &self,
        family: Family,
        proto: Proto,
        states: u32,
        _bytecode: Option<&[u8]>,
        out: &mut Vec<Socket>,
    ) -> Result<(), NetlinkError> {
        let start = out.len();
        let result = self.replay(family, proto, states, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn replay(
        &self,
        family: Family,
        proto: Proto,
        states: u32,
        out: &mut Vec<Socket>,
    ) -> Result<(), NetlinkError> {
        let mut rest = &self.bytes[..];
        loop {
            let (progress, used) = walk_from(rest, None, |m| {
                // ss's answers, or those to a TCPDIAG_GETSOCK (as the live
                // decoder takes them)
                if m.kind != SOCK_DIAG_BY_FAMILY && m.kind != TCPDIAG_GETSOCK {
                    return Ok(());
                }
                let mut socket = decode::decode_inet_diag_msg(m.payload, Proto::Tcp)?;
                if self.info {
                    socket.tcp_info = decode::tcp_info_attr(m.payload).map(Box::new);
                }
                if proto == Proto::Tcp
                    && socket.family == family
                    && states & socket.state.bit() != 0
                {
                    out.push(socket);
                }
                Ok(())
            })?;
            if !progress.done {
                return Err(NetlinkError::Truncated("a dump without NLMSG_DONE"));
            }
            rest = &rest[used..];
            if rest.is_empty() {
                return Ok(());
            }
        }
    }
}

impl SockDiag for Replay {
    fn dump_filtered(
        &mut self,
        family: Family,
        proto: Proto,
        states: u32,
        bytecode: Option<&[u8]>,
        out: &mut Vec<Socket>,
    ) -> Result<(), NetlinkError> {
        Replay::dump_filtered(self, family, proto, states, bytecode, out)
    }
}

/// An `inet_diag_req_v2` dump request. Without `info`, with no extensions:
/// they make every answer about 3.5 times larger; with it, `INET_DIAG_INFO`
/// alone (`idiag_ext` bit `1 << (INET_DIAG_INFO - 1)`, as `ss -i` sets it),
/// for `tcp_info`. With `bytecode`, the request carries it as its
/// `INET_DIAG_REQ_BYTECODE` attribute, after the fixed part
/// (`inet_diag_dump_start()` parses the attributes that follow `struct
/// inet_diag_req_v2`); one too long for an attribute is left out. `seq` is
/// the header's sequence number ([`NetlinkSocket::dump`] sets its own).
pub fn request_bytes(
    family: Family,
    proto: Proto,
    states: u32,
    seq: u32,
    bytecode: Option<&[u8]>,
    info: bool,
) -> Vec<u8> {
    let (af, socket_id) = match family {
        Family::Inet => (libc::AF_INET as u8, SocketId::new_v4()),
        Family::Inet6 => (libc::AF_INET6 as u8, SocketId::new_v6()),
    };
    let protocol = match proto {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut message = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family: af,
            protocol,
            extensions: if info {
                ExtensionFlags::INFO
            } else {
                ExtensionFlags::empty()
            },
            states: StateFlags::from_bits_retain(states),
            socket_id,
        })
        .into(),
    );
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    if let Some(bytecode) = bytecode {
        append_attribute(&mut bytes, INET_DIAG_REQ_BYTECODE, bytecode);
    }
    bytes
}

// `TCPDIAG_GETSOCK` (include/uapi/linux/inet_diag.h): the first request
// type of sock_diag, kept for compatibility, which dumps TCP with no family.
pub use crate::collect::decode::TCPDIAG_GETSOCK;

/// A `TCPDIAG_GETSOCK` dump request: a `struct inet_diag_req` (the family,
/// the prefix lengths, `idiag_ext`, a zero `inet_diag_sockid`, the states
/// and `idiag_dbs`) after the header; `INET_DIAG_INFO` asked for with
/// `info`, as in [`request_bytes`].
pub fn compat_request_bytes(states: u32, info: bool) -> Vec<u8> {
    const LEN: usize = 16 + 4 + 48 + 4 + 4;
    let mut m = Vec::with_capacity(LEN);
    m.extend_from_slice(&(LEN as u32).to_ne_bytes());
    m.extend_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // sequence: set by the dump
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    let ext = if info { ExtensionFlags::INFO.bits() } else { 0 };
    m.extend_from_slice(&[libc::AF_INET as u8, 0, 0, ext]);
    m.extend_from_slice(&[0; 48]);
    m.extend_from_slice(&states.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m
}

/// `INET_DIAG_REQ_BYTECODE` in `enum { INET_DIAG_REQ_NONE, ... }`.
const INET_DIAG_REQ_BYTECODE: u16 = 1;

/// Appends a `struct nlattr` (`u16 nla_len; u16 nla_type;` and the payload,
/// padded to 4 bytes: NLA_ALIGN) to a netlink message, and makes the
/// message's `nlmsg_len` (its first 4 bytes) cover it.
/// A payload too long for an attribute (`bytecode::compile` never makes one)
/// is left out: the kernel then sends every socket, and user space filters.
fn append_attribute(message: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let Ok(len) = u16::try_from(4 + payload.len()) else {
        return;
    };
    // the message ends aligned (NLMSG_ALIGN), so the attribute starts so
    message.resize(message.len().next_multiple_of(4), 0);
    message.extend_from_slice(&len.to_ne_bytes());
    message.extend_from_slice(&kind.to_ne_bytes());
    message.extend_from_slice(payload);
    message.resize(message.len().next_multiple_of(4), 0);
    // a request is a few hundred bytes; the u32 cannot overflow
    let total = message.len() as u32;
    message[..4].copy_from_slice(&total.to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sizeof(struct nlmsghdr)` + `sizeof(struct inet_diag_req_v2)`.
    const FIXED: usize = 16 + 56;

    #[test]
    fn request_without_bytecode_is_the_fixed_part() {
        let bytes = request_bytes(Family::Inet, Proto::Tcp, 1 << 10, 7, None, false);
        assert_eq!(bytes.len(), FIXED);
        assert_eq!(
            u32::from_ne_bytes(bytes[..4].try_into().unwrap()),
            FIXED as u32
        );
    }

    /// `struct nlmsghdr` then `struct inet_diag_req` (60 bytes): the type
    /// `TCPDIAG_GETSOCK`, `idiag_ext` at byte 19, the states at 68.
    #[test]
    fn the_compat_request_is_an_inet_diag_req() {
        for (info, ext) in [(false, 0), (true, 1 << (2 - 1))] {
            let bytes = compat_request_bytes(0xfff, info);
            assert_eq!(bytes.len(), 16 + 60);
            let u16_at = |o: usize| u16::from_ne_bytes(bytes[o..o + 2].try_into().unwrap());
            let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().unwrap());
            assert_eq!(u32_at(0), 76);
            assert_eq!(u16_at(4), 18);
            assert_eq!(u16_at(6), 0x301, "NLM_F_REQUEST | NLM_F_DUMP");
            assert_eq!(bytes[19], ext);
            assert_eq!(u32_at(68), 0xfff);
            assert_eq!(u32_at(72), 0);
        }
    }

    /// The request of a dump without `-i`, byte for byte: no extension is
    /// asked for (`idiag_ext` 0), as before `-i` existed.
    #[test]
    fn without_info_the_request_asks_for_no_extension() {
        let bytes = request_bytes(Family::Inet, Proto::Tcp, 1 << 10, 7, None, false);
        let mut want = Vec::new();
        want.extend_from_slice(&(FIXED as u32).to_ne_bytes());
        want.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        want.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes()); // seq
        want.extend_from_slice(&0u32.to_ne_bytes()); // port id
        // inet_diag_req_v2: family, protocol, idiag_ext, pad, states
        want.extend_from_slice(&[libc::AF_INET as u8, libc::IPPROTO_TCP as u8, 0, 0]);
        want.extend_from_slice(&(1u32 << 10).to_ne_bytes());
        // inet_diag_sockid: ports, addresses, interface, cookie: all zero
        want.extend_from_slice(&[0; 4 + 16 + 16 + 4 + 8]);
        assert_eq!(bytes, want);
        for (family, proto) in [(Family::Inet6, Proto::Udp), (Family::Inet, Proto::Udp)] {
            assert_eq!(request_bytes(family, proto, !0, 1, None, false)[18], 0);
        }
    }

    /// With `-i`: `INET_DIAG_INFO`'s bit, and nothing else changes.
    #[test]
    fn with_info_the_request_asks_for_inet_diag_info_alone() {
        let bytecode = [11, 8, 12, 0, 0, 0, 22, 0];
        for bc in [None, Some(&bytecode[..])] {
            let plain = request_bytes(Family::Inet6, Proto::Tcp, !0, 3, bc, false);
            let info = request_bytes(Family::Inet6, Proto::Tcp, !0, 3, bc, true);
            assert_eq!(plain.len(), info.len());
            // idiag_ext: 1 << (INET_DIAG_INFO - 1)
            assert_eq!(info[16 + 2], 1 << (2 - 1));
            let differ: Vec<usize> = (0..plain.len()).filter(|&i| plain[i] != info[i]).collect();
            assert_eq!(differ, [16 + 2]);
        }
    }

    #[test]
    fn bytecode_follows_the_request_as_an_attribute() {
        let bytecode = [11, 8, 12, 0, 0, 0, 22, 0];
        let plain = request_bytes(Family::Inet6, Proto::Udp, !0, 3, None, false);
        let bytes = request_bytes(Family::Inet6, Proto::Udp, !0, 3, Some(&bytecode), false);
        assert_eq!(bytes.len(), FIXED + 4 + 8);
        assert_eq!(
            u32::from_ne_bytes(bytes[..4].try_into().unwrap()),
            (FIXED + 12) as u32
        );
        // the fixed part is unchanged but for nlmsg_len
        assert_eq!(bytes[4..FIXED], plain[4..]);
        assert_eq!(bytes[FIXED..FIXED + 2], 12u16.to_ne_bytes());
        assert_eq!(bytes[FIXED + 2..FIXED + 4], 1u16.to_ne_bytes());
        assert_eq!(bytes[FIXED + 4..], bytecode);
    }

    // Replays of the datagrams tests/fixtures/capture.py saved, exactly as
    // recv() returned them: one capture's files back to back are what
    // `ss -D` writes for that family.
    macro_rules! capture {
        ($name:literal) => {
            include_bytes!(concat!("../../../tests/fixtures/sockdiag/", $name)) as &[u8]
        };
    }
    const TCP4: [&[u8]; 2] = [capture!("tcp4.0.bin"), capture!("tcp4.1.bin")];
    const TCP6: [&[u8]; 2] = [capture!("tcp6.0.bin"), capture!("tcp6.1.bin")];
    const UDP4: [&[u8]; 2] = [capture!("udp4.0.bin"), capture!("udp4.1.bin")];

    fn all_states() -> u32 {
        crate::model::State::ALL.iter().fold(0, |m, s| m | s.bit())
    }

    /// The sockets of a capture, as the live dump decoded them.
    fn decoded(datagrams: &[&[u8]], proto: Proto) -> Vec<Socket> {
        let mut out = Vec::new();
        for d in datagrams {
            decode::decode_datagram(d, proto, &mut out).unwrap();
        }
        assert!(!out.is_empty());
        out
    }

    fn replay(
        file: &[u8],
        family: Family,
        proto: Proto,
        states: u32,
    ) -> Result<Vec<Socket>, NetlinkError> {
        let mut out = Vec::new();
        Replay::from_bytes(file.to_vec())
            .dump_filtered(family, proto, states, None, &mut out)
            .map(|()| out)
    }

    #[test]
    fn a_replay_of_one_capture_is_its_dump() {
        let file = TCP4.concat();
        let got = replay(&file, Family::Inet, Proto::Tcp, all_states()).unwrap();
        assert_eq!(got, decoded(&TCP4, Proto::Tcp));
        // the other family's dump is not in it
        assert_eq!(
            replay(&file, Family::Inet6, Proto::Tcp, all_states()).unwrap(),
            []
        );
    }

    /// `ss -D FILE -tan` writes the AF_INET dump, then the AF_INET6 one.
    #[test]
    fn a_replay_reads_every_dump_of_the_file() {
        let file = [TCP4, TCP6].concat().concat();
        let mut sources: Vec<Box<dyn SockDiag>> = vec![Box::new(Replay::from_bytes(file))];
        for (family, capture) in [(Family::Inet, TCP4), (Family::Inet6, TCP6)] {
            let mut out = Vec::new();
            sources[0]
                .dump_filtered(family, Proto::Tcp, all_states(), None, &mut out)
                .unwrap();
            assert_eq!(out, decoded(&capture, Proto::Tcp), "{family:?}");
        }
    }

    #[test]
    fn every_socket_of_a_replay_is_taken_as_tcp() {
        // ss dumps TCP only: a UDP dump of a replay is empty ...
        let file = TCP4.concat();
        assert_eq!(
            replay(&file, Family::Inet, Proto::Udp, all_states()).unwrap(),
            []
        );
        // ... and the messages of a UDP capture are read as TCP sockets
        let got = replay(&UDP4.concat(), Family::Inet, Proto::Tcp, all_states()).unwrap();
        assert_eq!(got, decoded(&UDP4, Proto::Tcp));
        assert!(got.iter().all(|s| s.proto == Proto::Tcp));
    }

    #[test]
    fn a_replay_selects_the_states_asked_for_and_ignores_bytecode() {
        use crate::model::State;
        let file = TCP4.concat();
        let all = decoded(&TCP4, Proto::Tcp);
        for states in [
            State::Listen.bit(),
            State::TimeWait.bit() | State::Established.bit(),
            0,
        ] {
            let want: Vec<Socket> = all
                .iter()
                .filter(|s| states & s.state.bit() != 0)
                .cloned()
                .collect();
            assert_eq!(
                replay(&file, Family::Inet, Proto::Tcp, states).unwrap(),
                want
            );
        }
        // INET_DIAG_BC_JMP over 4 bytes: whatever it says, nothing runs it
        let mut out = Vec::new();
        Replay::from_bytes(file)
            .dump_filtered(
                Family::Inet,
                Proto::Tcp,
                all_states(),
                Some(&[1, 4, 8, 0]),
                &mut out,
            )
            .unwrap();
        assert_eq!(out, all, "nothing runs the bytecode");
    }

    #[test]
    fn a_replay_of_a_kernel_error_is_that_error() {
        for (name, file) in [
            ("error", capture!("error.0.bin")),
            ("sctp4: NLMSG_DONE carrying it", capture!("sctp4.0.bin")),
        ] {
            let mut out = decoded(&TCP4, Proto::Tcp);
            let before = out.clone();
            let got = Replay::from_bytes(file.to_vec()).dump_filtered(
                Family::Inet,
                Proto::Tcp,
                all_states(),
                None,
                &mut out,
            );
            assert!(
                matches!(
                    got,
                    Err(NetlinkError::Kernel {
                        errno: libc::ENOENT
                    })
                ),
                "{name}: {got:?}"
            );
            assert_eq!(out, before, "{name}: out as it was");
        }
        // after a good dump as well: the file is read to its end
        let file = [TCP4.concat(), capture!("error.0.bin").to_vec()].concat();
        assert!(matches!(
            replay(&file, Family::Inet, Proto::Tcp, all_states()),
            Err(NetlinkError::Kernel {
                errno: libc::ENOENT
            })
        ));
    }

    /// As ss says "Unexpected EOF": a file cut anywhere but after a dump's
    /// NLMSG_DONE is an error, and never a panic.
    #[test]
    fn a_partial_file_is_truncated() {
        let file = [TCP4, TCP6].concat().concat();
        let ends = [TCP4.concat().len(), file.len()];
        for cut in 0..=file.len() {
            let got = replay(&file[..cut], Family::Inet, Proto::Tcp, all_states());
            if ends.contains(&cut) {
                assert!(got.is_ok(), "[..{cut}]: {got:?}");
            } else {
                assert!(
                    matches!(got, Err(NetlinkError::Truncated(_))),
                    "[..{cut}]: {got:?}"
                );
            }
        }
        let extra = [&file[..], &[0; 3]].concat();
        assert!(matches!(
            replay(&extra, Family::Inet, Proto::Tcp, all_states()),
            Err(NetlinkError::Truncated(_))
        ));
    }

    #[test]
    fn a_replay_takes_an_interrupted_dump_as_it_is() {
        let mut file = TCP4.concat();
        // NLM_F_DUMP_INTR on the first message
        let flags = u16::from_ne_bytes([file[6], file[7]]) | super::super::NLM_F_DUMP_INTR;
        file[6..8].copy_from_slice(&flags.to_ne_bytes());
        let got = replay(&file, Family::Inet, Proto::Tcp, all_states()).unwrap();
        assert_eq!(got, decoded(&TCP4, Proto::Tcp));
    }

    #[test]
    fn a_replay_opens_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ss.dump");
        let missing = Replay::open(&path).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        std::fs::write(&path, TCP4.concat()).unwrap();
        let mut replay = Replay::open(&path).unwrap();
        let mut out = Vec::new();
        SockDiag::dump_filtered(
            &mut replay,
            Family::Inet,
            Proto::Tcp,
            all_states(),
            None,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, decoded(&TCP4, Proto::Tcp));
    }
}
