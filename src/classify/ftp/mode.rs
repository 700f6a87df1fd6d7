//! Active or passive. The mode follows who opened the data connection: the
//! client opens it in passive mode (PASV/EPSV), the server in active mode
//! (PORT/EPRT). Who opened it is told by conntrack's original tuple, port
//! 20, the direction's facts (a listener, the handshake), the server's
//! passive range, the parity of the ports the kernel chose (`docs/ftp.md`,
//! *Port parity*), or at last the direction's own guess from the port
//! classes.

use super::{FtpEvidence, Mode, Side};
use crate::classify::direction::{Confidence, Direction, Evidence, Verdict};
use crate::classify::flows::FlowMatch;
use crate::classify::ports::{PortClass, has_connect_parity, port_class};
use crate::model::{PortRange, Socket};

/// The mode of a pending listener on `side`: the server waits in passive
/// mode, the client in active mode.
pub(super) fn of_pending(side: Side) -> Mode {
    match side {
        Side::Server => Mode::Passive,
        Side::Client => Mode::Active,
    }
}

/// What the association found that tells the mode too.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Facts {
    /// The server end is port 20: active.
    pub(super) port20: bool,
    /// The server's port is in its passive range: passive.
    pub(super) passive_range: bool,
}

/// The mode of data connection `s` on `side`, the evidence for it, and how
/// sure it is (`None` where nothing tells).
pub(super) fn of_data(
    s: &Socket,
    direction: &Verdict,
    side: Side,
    flow: Option<FlowMatch>,
    facts: Facts,
    range: &PortRange,
) -> (Option<Mode>, Vec<FtpEvidence>, Option<Confidence>) {
    // Who opened it, as the mode follows: the client opens passive
    // connections, the server active ones.
    let by_opener = |opened_here: bool| match (side, opened_here) {
        (Side::Client, true) | (Side::Server, false) => Mode::Passive,
        (Side::Client, false) | (Side::Server, true) => Mode::Active,
    };
    if let Some(f) = flow {
        return (
            Some(by_opener(f.opened_here)),
            vec![FtpEvidence::ConntrackOrigin],
            Some(Confidence::High),
        );
    }
    let remote_port = s.remote.map_or(0, |r| r.port);
    if facts.port20 {
        return (Some(Mode::Active), Vec::new(), Some(Confidence::High));
    }
    if direction.confidence == Some(Confidence::High) {
        let fact = direction.evidence.iter().find_map(|e| match e {
            Evidence::Listener => Some(FtpEvidence::DataListener),
            Evidence::PeerListener => Some(FtpEvidence::PeerListener),
            Evidence::SynSent
            | Evidence::SynRecv
            | Evidence::SeenSynSent
            | Evidence::SeenSynRecv => Some(FtpEvidence::Handshake),
            Evidence::RememberedListener => Some(FtpEvidence::DataListener),
            _ => None,
        });
        let opened_here = match direction.direction {
            Direction::Outbound => Some(true),
            Direction::Inbound => Some(false),
            _ => None,
        };
        if let (Some(fact), Some(here)) = (fact, opened_here) {
            return (Some(by_opener(here)), vec![fact], Some(Confidence::High));
        }
    }
    // a configured range (pasv_min_port...) where the server's port lies:
    // its evidence is in the label already
    if facts.passive_range {
        return (Some(Mode::Passive), Vec::new(), Some(Confidence::Medium));
    }
    // Port parity, where the kernel chose the port: `Some(true)` for the
    // parity of connect(), `Some(false)` for that of bind(port 0).
    let connect_parity = |port: u16| {
        (port_class(port, range) == PortClass::Ephemeral).then(|| has_connect_parity(port, range))
    };
    match (
        side,
        connect_parity(s.local.port),
        connect_parity(remote_port),
    ) {
        // a client's connect() port: it opened the connection
        (Side::Client, Some(true), _) => (
            Some(Mode::Passive),
            vec![FtpEvidence::ConnectParity],
            Some(Confidence::Medium),
        ),
        // a client's bind(0) port with no listener left: the port it sent with PORT/EPRT
        (Side::Client, Some(false), _) => (
            Some(Mode::Active),
            vec![FtpEvidence::BindParity],
            Some(Confidence::Medium),
        ),
        // On the server the client's port speaks first: a passive port may be
        // bound explicitly from a configured range, whatever its parity, but
        // the client's end is its connect() port in passive mode and the
        // port it listened on in active mode (if the client is Linux). A
        // local port that agrees raises the confidence.
        (Side::Server, local, Some(true)) => {
            let mut evidence = vec![FtpEvidence::RemoteConnectParity];
            let agree = local == Some(false);
            if agree {
                evidence.push(FtpEvidence::BindParity);
            }
            (
                Some(Mode::Passive),
                evidence,
                Some(if agree {
                    Confidence::Medium
                } else {
                    Confidence::Low
                }),
            )
        }
        (Side::Server, local, Some(false)) => {
            let mut evidence = vec![FtpEvidence::RemoteBindParity];
            let agree = local == Some(true);
            if agree {
                evidence.push(FtpEvidence::ConnectParity);
            }
            (
                Some(Mode::Active),
                evidence,
                Some(if agree {
                    Confidence::Medium
                } else {
                    Confidence::Low
                }),
            )
        }
        // a server's connect() port: it connected to the client
        (Side::Server, Some(true), None) => (
            Some(Mode::Active),
            vec![FtpEvidence::ConnectParity],
            Some(Confidence::Low),
        ),
        // Nothing of FTP's own tells (a server's bind(0) port and a client
        // of another port range: pyftpdlib and vsftpd bind port 0 for
        // active connections): the direction's guess from the port
        // classes, which FTP must not contradict, at `low`.
        _ => match direction.direction {
            Direction::Outbound | Direction::Inbound => (
                Some(by_opener(direction.direction == Direction::Outbound)),
                vec![FtpEvidence::EphemeralPort],
                Some(Confidence::Low),
            ),
            _ => (None, Vec::new(), None),
        },
    }
}
