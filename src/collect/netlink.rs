//! The sock_diag transport: open a `NETLINK_SOCK_DIAG` socket, send one dump
//! request per family and protocol, and feed each datagram to the decoder.

use std::io;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
};
use netlink_sys::{Socket as NlSocket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

use super::decode::{self, DecodeError};
use crate::model::{Family, Proto, Socket};

/// The kernel fills at most about 32 KiB per datagram (`netlink_dump()`
/// caps its allocation there); 64 KiB leaves room, and `MSG_TRUNC` tells us
/// if a datagram still did not fit.
const RECV_BUF: usize = 64 * 1024;

/// How often a dump interrupted by a table change (`NLM_F_DUMP_INTR`) is
/// started again before we give up.
const DUMP_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a sock_diag socket: {0}")]
    Open(io::Error),
    #[error("{0}")]
    Io(io::Error),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("a datagram of {0} bytes did not fit the receive buffer")]
    Truncated(usize),
    #[error("the socket tables kept changing during {0} dumps in a row")]
    Interrupted(usize),
}

pub struct DiagSocket {
    socket: NlSocket,
    buf: Vec<u8>,
    seq: u32,
}

impl DiagSocket {
    pub fn open() -> Result<DiagSocket, NetlinkError> {
        let mut socket = NlSocket::new(NETLINK_SOCK_DIAG).map_err(NetlinkError::Open)?;
        socket.bind_auto().map_err(NetlinkError::Open)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Open)?;
        Ok(DiagSocket {
            socket,
            buf: vec![0; RECV_BUF],
            seq: 0,
        })
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
        let start = out.len();
        match self.dump_retrying(family, proto, states, bytecode, out) {
            Err(NetlinkError::Decode(DecodeError::Kernel { errno }))
                if errno == libc::EINVAL && bytecode.is_some() =>
            {
                out.truncate(start);
                self.dump_retrying(family, proto, states, None, out)
            }
            result => result,
        }
    }

    /// Dumps until a dump was not interrupted by a table change.
    fn dump_retrying(
        &mut self,
        family: Family,
        proto: Proto,
        states: u32,
        bytecode: Option<&[u8]>,
        out: &mut Vec<Socket>,
    ) -> Result<(), NetlinkError> {
        let start = out.len();
        for _ in 0..DUMP_RETRIES {
            out.truncate(start);
            if !self.dump_once(family, proto, states, bytecode, out)? {
                return Ok(());
            }
        }
        Err(NetlinkError::Interrupted(DUMP_RETRIES))
    }

    /// One dump; returns whether it was interrupted.
    fn dump_once(
        &mut self,
        family: Family,
        proto: Proto,
        states: u32,
        bytecode: Option<&[u8]>,
        out: &mut Vec<Socket>,
    ) -> Result<bool, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let request = request_bytes(family, proto, states, self.seq, bytecode);
        self.socket.send(&request, 0).map_err(NetlinkError::Io)?;
        let mut interrupted = false;
        loop {
            let n = match recv_datagram(&self.socket, &mut self.buf) {
                Ok(n) => n,
                Err(Received::Io(e)) => return Err(NetlinkError::Io(e)),
                Err(Received::Truncated(n)) => return Err(NetlinkError::Truncated(n)),
            };
            let progress = decode::decode_datagram(&self.buf[..n], proto, out)?;
            interrupted |= progress.interrupted;
            if progress.done {
                return Ok(interrupted);
            }
            if n == 0 {
                return Err(NetlinkError::Decode(DecodeError::Truncated(
                    "empty datagram",
                )));
            }
        }
    }
}

/// Why a datagram could not be had.
pub enum Received {
    Io(io::Error),
    /// It was this long, longer than the buffer: `MSG_TRUNC` cut it.
    Truncated(usize),
}

/// Receives one datagram of a dump into `buf`, again after EINTR. With
/// `MSG_TRUNC` the kernel reports the datagram's real length, so a cut one
/// is an error rather than silently lost sockets.
pub fn recv_datagram(socket: &NlSocket, buf: &mut [u8]) -> Result<usize, Received> {
    loop {
        match socket.recv(&mut &mut buf[..], libc::MSG_TRUNC) {
            Ok(n) if n > buf.len() => return Err(Received::Truncated(n)),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Received::Io(e)),
        }
    }
}

/// An `inet_diag_req_v2` dump request, with no extensions: they make every
/// answer about 3.5 times larger and nothing here needs them yet. With
/// `bytecode`, the request carries it as its `INET_DIAG_REQ_BYTECODE`
/// attribute, after the fixed part (`inet_diag_dump_start()` parses the
/// attributes that follow `struct inet_diag_req_v2`).
///
/// # Panics
///
/// If `bytecode` does not fit an attribute (more than 65,531 bytes):
/// `bytecode::compile` never makes one that long.
pub fn request_bytes(
    family: Family,
    proto: Proto,
    states: u32,
    seq: u32,
    bytecode: Option<&[u8]>,
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
            extensions: ExtensionFlags::empty(),
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
        let bytes = request_bytes(Family::Inet, Proto::Tcp, 1 << 10, 7, None);
        assert_eq!(bytes.len(), FIXED);
        assert_eq!(
            u32::from_ne_bytes(bytes[..4].try_into().unwrap()),
            FIXED as u32
        );
    }

    #[test]
    fn bytecode_follows_the_request_as_an_attribute() {
        let bytecode = [11, 8, 12, 0, 0, 0, 22, 0];
        let plain = request_bytes(Family::Inet6, Proto::Udp, !0, 3, None);
        let bytes = request_bytes(Family::Inet6, Proto::Udp, !0, 3, Some(&bytecode));
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
}
