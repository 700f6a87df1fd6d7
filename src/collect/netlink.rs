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
        let start = out.len();
        for _ in 0..DUMP_RETRIES {
            out.truncate(start);
            if !self.dump_once(family, proto, states, out)? {
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
        out: &mut Vec<Socket>,
    ) -> Result<bool, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let request = request_bytes(family, proto, states, self.seq);
        self.socket.send(&request, 0).map_err(NetlinkError::Io)?;
        let mut interrupted = false;
        loop {
            let n = loop {
                match self.socket.recv(&mut &mut self.buf[..], libc::MSG_TRUNC) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(NetlinkError::Io(e)),
                }
            };
            if n > self.buf.len() {
                return Err(NetlinkError::Truncated(n));
            }
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

/// An `inet_diag_req_v2` dump request, with no extensions: they make every
/// answer about 3.5 times larger and nothing here needs them yet.
pub fn request_bytes(family: Family, proto: Proto, states: u32, seq: u32) -> Vec<u8> {
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
    bytes
}
