//! `direction` and `ftp` never contradict each other. What FTP knows about
//! who opened a connection is direction evidence (`ftp-control`,
//! `ftp-mode`): a control connection's client opened it; a passive data
//! connection was opened by the client (inbound on the server, outbound on
//! the client), an active one by the server. Once FTP has looked, the
//! direction of its sockets is weighed again with that word, as strong as
//! what FTP rests on and never counting twice what the direction counted
//! already. Where the two still disagree, neither is stated with
//! confidence: the direction is `unknown` (README: signals that disagree
//! give `unknown`), and FTP's label is `low` with `direction-disagrees`,
//! its mode dropped where the direction says the opposite.

use super::Labels;
#[cfg(test)]
use super::Row;
use super::direction::{self, Confidence, Direction, FtpWord, Vote};
use super::ftp::{FtpEvidence, Mode, Role, Side};

/// FTP's word on a control connection of `side` whose remote port is
/// `remote_port`: its client opened it. On the server the side rests on the
/// listener or on the direction itself; on the client on the remote port
/// being a control port, which the direction counts already where it is
/// well-known (21, 990), and not where it is a `--ftp-port`.
pub(super) fn control_word(side: Side, remote_port: u16) -> FtpWord {
    let vote = match side {
        Side::Client if remote_port >= 1024 => Vote::Weak(1),
        _ => Vote::Agrees,
    };
    FtpWord {
        opened_here: side == Side::Client,
        control: true,
        vote,
        local_bound: false,
    }
}

/// FTP's word on a data connection of `side` in `mode`, by the evidence
/// the mode rests on (`port20`, `passive_range`: what the association
/// found, the rest in `evidence`): port 20 is a fact; the remote port's parity, a
/// `bind(0)` port's and the passive range are weak signals the direction
/// does not read; conntrack's origin, the direction's own facts, the local
/// `connect()` parity and the port classes are what the direction counted.
pub(super) fn mode_word(
    side: Side,
    mode: Mode,
    evidence: &[FtpEvidence],
    port20: bool,
    passive_range: bool,
) -> FtpWord {
    let opened_here = matches!(
        (side, mode),
        (Side::Client, Mode::Passive) | (Side::Server, Mode::Active)
    );
    let own = evidence
        .iter()
        .filter(|e| {
            matches!(
                e,
                FtpEvidence::BindParity
                    | FtpEvidence::RemoteConnectParity
                    | FtpEvidence::RemoteBindParity
            )
        })
        .count()
        + usize::from(passive_range);
    let vote = if port20 {
        Vote::Strong
    } else if own > 0 {
        Vote::Weak(own.min(2) as u8)
    } else {
        Vote::Agrees
    };
    FtpWord {
        opened_here,
        control: false,
        vote,
        // a passive range is bound explicitly: its parity is chance
        local_bound: passive_range && side == Side::Server,
    }
}

/// Weighs again the direction of every socket FTP has a word on, and
/// marks FTP's label where the two still disagree. `redo` gives the
/// direction of a socket with FTP's word added.
pub(super) fn reconcile(
    labels: &mut [Labels],
    mut redo: impl FnMut(usize, FtpWord) -> direction::Verdict,
) {
    for (i, l) in labels.iter_mut().enumerate() {
        let Some(word) = l.ftp.as_ref().and_then(|f| f.word) else {
            continue;
        };
        l.direction = redo(i, word);
        let said = l.direction.direction;
        let Some(f) = l.ftp.as_deref_mut() else {
            continue;
        };
        if said == implied(word) {
            continue;
        }
        // unknown: the signals disagreed; the opposite: the direction's
        // outweighed FTP's (conntrack's word on a control connection)
        f.confidence = Confidence::Low;
        f.evidence.push(FtpEvidence::DirectionDisagrees);
        if said != Direction::Unknown && f.role == Role::Data {
            f.mode = None;
            f.word = None;
        }
    }
}

fn implied(word: FtpWord) -> Direction {
    if word.opened_here {
        Direction::Outbound
    } else {
        Direction::Inbound
    }
}

/// The direction FTP's label of `row` implies, if it implies one.
#[cfg(test)]
pub(super) fn ftp_direction(row: Row<'_>) -> Option<Direction> {
    let f = row.labels.ftp.as_deref()?;
    let opened_here = match (f.role, f.side, f.mode) {
        (Role::Control, side, _) => side == Side::Client,
        (Role::Data, side, Some(mode)) => matches!(
            (side, mode),
            (Side::Client, Mode::Passive) | (Side::Server, Mode::Active)
        ),
        _ => return None,
    };
    Some(if opened_here {
        Direction::Outbound
    } else {
        Direction::Inbound
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::classify::direction::Evidence;
    use crate::classify::{Context, classify};
    use crate::model::{Flow, PortRange, Snapshot, Socket, Tuple};

    /// Every socket's `direction` and `ftp` agree: the direction FTP
    /// implies, or `unknown` with FTP's label `low`.
    #[track_caller]
    pub(crate) fn assert_agree(sockets: &[Socket], labels: &[Labels]) {
        for (socket, l) in sockets.iter().zip(labels) {
            let row = Row { socket, labels: l };
            let Some(want) = ftp_direction(row) else {
                continue;
            };
            let f = l.ftp.as_deref().map(|f| f.confidence);
            assert!(
                l.direction.direction == want
                    || (l.direction.direction == Direction::Unknown && f == Some(Confidence::Low)),
                "{socket:?}: direction {:?} but FTP says {want:?}: {:?}",
                l.direction,
                l.ftp
            );
        }
    }

    fn classified(sockets: &[Socket], conntrack: Option<&crate::model::Conntrack>) -> Vec<Labels> {
        let snapshot = Snapshot {
            sockets: sockets.to_vec(),
            port_range: PortRange::default(),
            ..Default::default()
        };
        let labels = classify(
            &snapshot,
            Context {
                conntrack,
                ..Context::default()
            },
        )
        .labels;
        assert_agree(sockets, &labels);
        labels
    }

    fn py(local: &str, remote: Option<&str>, inode: u64) -> Socket {
        Socket::tcp(local, remote)
            .inode(inode)
            .process(10, "python3")
    }

    use Confidence::*;
    use Direction::*;
    use Evidence::*;
    use FtpEvidence as F;

    struct Case {
        name: &'static str,
        sockets: Vec<Socket>,
        conntrack: Option<crate::model::Conntrack>,
        /// the socket looked at
        at: usize,
        direction: (Direction, Option<Confidence>, &'static [Evidence]),
        /// FTP's (mode, confidence) of it, and an evidence name it must have
        ftp: Option<(Option<Mode>, Confidence, Option<FtpEvidence>)>,
    }

    fn server(data: Socket) -> Vec<Socket> {
        vec![
            py("0.0.0.0:21", None, 1),
            py("10.0.0.1:21", Some("10.0.0.2:40000"), 2),
            data,
        ]
    }

    fn client(data: Socket) -> Vec<Socket> {
        vec![py("10.0.0.2:40000", Some("10.0.0.1:21"), 2), data]
    }

    /// Issue 10 item 4: each rule of agreement, with a case that must match
    /// and one that must not.
    #[test]
    fn direction_and_ftp_agree_issue_10() {
        let tracked = |from: &str, to: &str| crate::model::Conntrack {
            flows: vec![Flow {
                orig: Tuple {
                    src: from.parse::<std::net::SocketAddr>().unwrap().into(),
                    dst: to.parse::<std::net::SocketAddr>().unwrap().into(),
                    proto: 6,
                },
                reply: Tuple {
                    src: to.parse::<std::net::SocketAddr>().unwrap().into(),
                    dst: from.parse::<std::net::SocketAddr>().unwrap().into(),
                    proto: 6,
                },
                expected: false,
                helper: None,
                master: None,
                status: Default::default(),
            }],
            expectations: vec![],
            source: crate::model::ConntrackSource::Netlink,
            local: Vec::new(),
        };
        let cases = vec![
            Case {
                // pyftpdlib with a passive range: the passive port has the
                // parity of connect() by chance, the client's port says
                // passive; the direction said outbound from the local parity
                name: "passive data on the server, local connect() parity",
                sockets: server(py("10.0.0.1:50002", Some("10.0.0.2:40004"), 3)),
                conntrack: None,
                at: 2,
                direction: (Unknown, None, &[ConnectParity, FtpMode]),
                ftp: Some((Some(Mode::Passive), Low, Some(F::DirectionDisagrees))),
            },
            Case {
                name: "passive data on the server, the ports agree: inbound",
                sockets: server(py("10.0.0.1:50001", Some("10.0.0.2:40004"), 3)),
                conntrack: None,
                at: 2,
                direction: (Inbound, Some(Medium), &[FtpMode]),
                ftp: Some((Some(Mode::Passive), Medium, None)),
            },
            Case {
                name: "must not: the same socket with no control connection",
                sockets: vec![py("10.0.0.1:50002", Some("10.0.0.2:40004"), 3)],
                conntrack: None,
                at: 0,
                direction: (Outbound, Some(Low), &[ConnectParity]),
                ftp: None,
            },
            Case {
                name: "port 20 on the server: the server opened it",
                sockets: server(Socket::tcp("10.0.0.1:20", Some("10.0.0.2:40001")).inode(3)),
                conntrack: None,
                at: 2,
                direction: (Outbound, Some(High), &[FtpMode]),
                ftp: Some((Some(Mode::Active), High, Some(F::Port20))),
            },
            Case {
                name: "port 20 on the client: the server opened it",
                sockets: client(Socket::tcp("10.0.0.2:40001", Some("10.0.0.1:20")).inode(3)),
                conntrack: None,
                at: 1,
                direction: (Inbound, Some(High), &[FtpMode]),
                ftp: Some((Some(Mode::Active), High, Some(F::Port20))),
            },
            Case {
                name: "must not: port 20 towards a host with no session stays as the ports say",
                sockets: server(Socket::tcp("10.0.0.1:20", Some("10.0.0.9:40001")).inode(3)),
                conntrack: None,
                at: 2,
                direction: (Inbound, Some(Medium), &[LocalWellKnown, RemoteEphemeral]),
                ftp: None,
            },
            Case {
                name: "port 20 where a listener is: two facts disagree",
                sockets: {
                    let mut s = server(Socket::tcp("10.0.0.1:20", Some("10.0.0.2:40001")).inode(3));
                    s.push(Socket::tcp("0.0.0.0:20", None).inode(4));
                    s
                },
                conntrack: None,
                at: 2,
                direction: (
                    Unknown,
                    None,
                    &[Listener, LocalWellKnown, RemoteEphemeral, FtpMode],
                ),
                ftp: Some((Some(Mode::Active), Low, Some(F::DirectionDisagrees))),
            },
            Case {
                // pyftpdlib active: bind(0) on the server, a client of another range
                name: "active data to a client of another port range",
                sockets: vec![
                    py("0.0.0.0:21", None, 1),
                    py("10.0.0.1:21", Some("10.0.0.2:20000"), 2),
                    py("10.0.0.1:40001", Some("10.0.0.2:20001"), 3),
                ],
                conntrack: None,
                at: 2,
                direction: (Outbound, Some(Low), &[LocalEphemeral, FtpMode]),
                ftp: Some((Some(Mode::Active), Low, Some(F::EphemeralPort))),
            },
            Case {
                name: "a client's bind(0) data port: accepted, inbound",
                sockets: client(
                    py("10.0.0.2:40001", Some("10.0.0.1:45678"), 3).process(20, "curl"),
                ),
                conntrack: None,
                at: 1,
                direction: (Inbound, Some(Low), &[FtpMode]),
                ftp: Some((Some(Mode::Active), Medium, Some(F::BindParity))),
            },
            Case {
                name: "a control connection on a --ftp-port is the client's",
                sockets: vec![py("10.0.0.2:5000", Some("10.0.0.1:2121"), 2)],
                conntrack: None,
                at: 0,
                direction: (Unknown, None, &[]),
                ftp: None,
            },
            Case {
                name: "the server's control connection: inbound, FTP agrees",
                sockets: server(py("10.0.0.1:2222", None, 3)),
                conntrack: None,
                at: 1,
                direction: (
                    Inbound,
                    Some(High),
                    &[Listener, LocalWellKnown, RemoteEphemeral, FtpControl],
                ),
                ftp: Some((None, High, Some(F::ControlPort))),
            },
            Case {
                name: "must not: what conntrack says this host opened from port 21 is no server's",
                sockets: server(py("10.0.0.1:2222", None, 3)),
                conntrack: Some(tracked("10.0.0.1:21", "10.0.0.2:40000")),
                at: 1,
                direction: (Outbound, Some(High), &[Conntrack]),
                ftp: None,
            },
        ];
        for c in cases {
            let l = classified(&c.sockets, c.conntrack.as_ref());
            let v = &l[c.at].direction;
            assert_eq!(
                (v.direction, v.confidence, v.evidence.to_vec().as_slice()),
                c.direction,
                "{}",
                c.name
            );
            let f = l[c.at].ftp.as_deref();
            assert_eq!(
                f.map(|f| (f.mode, f.confidence)),
                c.ftp.map(|w| (w.0, w.1)),
                "{}: {f:?}",
                c.name
            );
            if let (Some(f), Some((_, _, Some(e)))) = (f, c.ftp) {
                assert!(f.evidence.contains(&e), "{}: {f:?}", c.name);
            }
        }
    }

    /// The --ftp-port case above, named: FTP's word makes the direction.
    #[test]
    fn a_control_port_named_on_the_command_line_gives_the_direction() {
        let sockets = vec![py("10.0.0.2:5000", Some("10.0.0.1:2121"), 2)];
        let snapshot = Snapshot {
            sockets: sockets.clone(),
            port_range: PortRange::default(),
            ..Default::default()
        };
        let l = classify(
            &snapshot,
            Context {
                ftp_ports: &[2121],
                ..Context::default()
            },
        )
        .labels;
        assert_agree(&sockets, &l);
        assert_eq!(
            (l[0].direction.direction, l[0].direction.evidence.to_vec()),
            (Outbound, vec![FtpControl])
        );
    }
}
