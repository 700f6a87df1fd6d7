//! The FTP rules on snapshots built in code: each rule with a case that must
//! match and one that must not.

use super::*;
use crate::classify::{Context as ClassifyContext, classify};
use crate::model::{
    Conntrack, ConntrackSource, Expectation, Flow, Process, Snapshot, State, Tuple,
};

const SRV: &str = "10.0.0.1";
const CLI: &str = "10.0.0.2";

/// A TCP socket `local -> remote` (None: a listener) owned by `pid` (pid 1
/// is named vsftpd, others `pPID`).
fn tcp(local: &str, remote: Option<&str>, pid: Option<u32>, inode: u64) -> Socket {
    let s = Socket::tcp(local, remote).inode(inode);
    match pid {
        Some(1) => s.process(1, "vsftpd"),
        Some(pid) => s.process(pid, &format!("p{pid}")),
        None => s,
    }
}

fn single_use(mut listener: Socket) -> Socket {
    listener.backlog = Some(1);
    listener
}

fn ep(s: &str) -> Endpoint {
    s.parse::<std::net::SocketAddr>().unwrap().into()
}

fn tuple(src: &str, dst: &str) -> Tuple {
    Tuple {
        src: ep(src),
        dst: ep(dst),
        proto: 6,
    }
}

fn flow(src: &str, dst: &str) -> Flow {
    Flow {
        orig: tuple(src, dst),
        reply: tuple(dst, src),
        expected: false,
        helper: None,
        master: None,
        status: Default::default(),
    }
}

fn analyse_with(sockets: Vec<Socket>, ct: Option<&Conntrack>, extra: &[u16]) -> Ftp {
    let snapshot = Snapshot {
        sockets,
        port_range: PortRange::default(),
        ..Default::default()
    };
    let c = classify(
        &snapshot,
        ClassifyContext {
            conntrack: ct,
            ftp_ports: extra,
            memory: None,
        },
    );
    // issue 10 item 4: on every snapshot of these rules
    crate::classify::agree::tests::assert_agree(&snapshot.sockets, &c.labels);
    Ftp {
        labels: c.labels.into_iter().map(|l| l.ftp.map(|b| *b)).collect(),
        sessions: c.sessions,
    }
}

fn analyse_plain(sockets: Vec<Socket>) -> Ftp {
    analyse_with(sockets, None, &[])
}

/// (session, role, side, mode, confidence) of socket `i`, if it is FTP.
fn tag(f: &Ftp, i: usize) -> Option<(u32, Role, Side, Option<Mode>, Confidence)> {
    f.labels[i]
        .as_ref()
        .map(|l| (l.session, l.role, l.side, l.mode, l.confidence))
}

fn evidence(f: &Ftp, i: usize) -> Vec<FtpEvidence> {
    f.labels[i]
        .as_ref()
        .map(|l| l.evidence.clone())
        .unwrap_or_default()
}

use Confidence::*;
use Mode::*;
use Role::*;
use Side::*;

#[test]
fn control_on_the_server_needs_the_listener() {
    let listener = tcp(&format!("{SRV}:21"), None, Some(10), 1);
    let ctl = tcp(
        &format!("{SRV}:21"),
        Some(&format!("{CLI}:40000")),
        Some(10),
        2,
    );
    let f = analyse_plain(vec![listener.clone(), ctl.clone()]);
    assert_eq!(tag(&f, 1), Some((1, Control, Server, None, High)));
    assert_eq!(
        tag(&f, 0),
        None,
        "the control listener is not a pending data channel"
    );
    assert_eq!(f.sessions[0].client, ep(&format!("{CLI}:40000")));
    // must not: a connection this host opens from port 21, no listener there
    let mut odd = tcp(
        &format!("{SRV}:21"),
        Some(&format!("{CLI}:8080")),
        Some(10),
        2,
    );
    odd.state = State::SynSent;
    assert_eq!(tag(&analyse_plain(vec![odd]), 0), None);
}

#[test]
fn control_on_the_client_by_remote_port() {
    let ctl = tcp(
        &format!("{CLI}:40000"),
        Some(&format!("{SRV}:21")),
        Some(20),
        2,
    );
    assert_eq!(
        tag(&analyse_plain(vec![ctl]), 0),
        Some((1, Control, Client, None, High))
    );
    // 990: implicit FTPS
    let ftps = tcp(
        &format!("{CLI}:40000"),
        Some(&format!("{SRV}:990")),
        Some(20),
        2,
    );
    assert_eq!(
        tag(&analyse_plain(vec![ftps]), 0),
        Some((1, Control, Client, None, High))
    );
    // must not: another port, unless named with --ftp-port
    let other = tcp(
        &format!("{CLI}:40000"),
        Some(&format!("{SRV}:2121")),
        Some(20),
        2,
    );
    assert_eq!(tag(&analyse_plain(vec![other.clone()]), 0), None);
    let f = analyse_with(vec![other], None, &[2121]);
    assert_eq!(tag(&f, 0), Some((1, Control, Client, None, High)));
    assert_eq!(evidence(&f, 0), vec![FtpEvidence::ControlPort]);
}

#[test]
fn a_daemons_listener_is_a_control_port() {
    // pid 1 is named vsftpd by the builder
    let sockets = |pid| {
        vec![
            tcp(&format!("{SRV}:2100"), None, Some(pid), 1),
            tcp(
                &format!("{SRV}:2100"),
                Some(&format!("{CLI}:40000")),
                Some(pid),
                2,
            ),
        ]
    };
    let f = analyse_plain(sockets(1));
    assert_eq!(tag(&f, 1), Some((1, Control, Server, None, High)));
    assert_eq!(evidence(&f, 1), vec![FtpEvidence::FtpDaemon]);
    assert_eq!(
        tag(&analyse_plain(sockets(7)), 1),
        None,
        "not a daemon of ours"
    );
}

/// A server-side passive session: control, the passive listener (vsftpd
/// keeps it), the data connection accepted from it, and a non-FTP
/// connection between the same hosts.
fn passive_server(passive_port: u16) -> Vec<Socket> {
    vec![
        tcp(&format!("{SRV}:21"), None, Some(10), 1),
        tcp(
            &format!("{SRV}:21"),
            Some(&format!("{CLI}:40000")),
            Some(11),
            2,
        ),
        // vsftpd's passive listener takes one connection (backlog 1)
        single_use(tcp(&format!("{SRV}:{passive_port}"), None, Some(11), 3)),
        tcp(
            &format!("{SRV}:{passive_port}"),
            Some(&format!("{CLI}:40002")),
            Some(11),
            4,
        ),
        // a service between the same hosts, in another process
        tcp(&format!("{SRV}:2222"), None, Some(30), 5),
        tcp(
            &format!("{SRV}:2222"),
            Some(&format!("{CLI}:40004")),
            Some(31),
            6,
        ),
        // ssh in the FTP server's own process: a well-known port is no data port
        tcp(&format!("{SRV}:22"), None, Some(11), 7),
        tcp(
            &format!("{SRV}:22"),
            Some(&format!("{CLI}:40006")),
            Some(11),
            8,
        ),
    ]
}

#[test]
fn passive_on_the_server_inside_and_outside_the_ephemeral_range() {
    for port in [50000, 5000] {
        let f = analyse_plain(passive_server(port));
        assert_eq!(
            tag(&f, 1),
            Some((1, Control, Server, None, High)),
            "port {port}"
        );
        assert_eq!(
            tag(&f, 3),
            Some((1, Data, Server, Some(Passive), High)),
            "port {port}"
        );
        assert_eq!(
            evidence(&f, 3),
            vec![
                FtpEvidence::SameProcess,
                FtpEvidence::PendingListener,
                FtpEvidence::DataListener
            ]
        );
        assert_eq!(
            tag(&f, 2),
            Some((1, Pending, Server, Some(Passive), Medium)),
            "port {port}"
        );
        // must not: other services between the same two hosts
        assert_eq!(tag(&f, 5), None);
        assert_eq!(tag(&f, 4), None);
        assert_eq!(tag(&f, 6), None);
        assert_eq!(tag(&f, 7), None);
        assert_eq!(f.sessions[0].members, vec![1, 2, 3]);
    }
}

#[test]
fn without_owners_the_same_hosts_are_not_enough() {
    let mut sockets = passive_server(50000);
    for s in &mut sockets {
        s.processes.clear();
    }
    let f = analyse_plain(sockets);
    assert_eq!(tag(&f, 1), Some((1, Control, Server, None, High)));
    assert_eq!(tag(&f, 3), None);
    assert_eq!(tag(&f, 2), None);
}

#[test]
fn port_20_is_active_even_without_owners() {
    // server side: vsftpd's connect_from_port_20
    let server = vec![
        tcp(&format!("{SRV}:21"), None, None, 1),
        tcp(&format!("{SRV}:21"), Some(&format!("{CLI}:40000")), None, 2),
        tcp(&format!("{SRV}:20"), Some(&format!("{CLI}:40001")), None, 3),
    ];
    let f = analyse_plain(server.clone());
    assert_eq!(tag(&f, 2), Some((1, Data, Server, Some(Active), High)));
    assert_eq!(evidence(&f, 2), vec![FtpEvidence::Port20]);
    // client side: remote port 20
    let client = vec![
        tcp(&format!("{CLI}:40000"), Some(&format!("{SRV}:21")), None, 2),
        tcp(&format!("{CLI}:40001"), Some(&format!("{SRV}:20")), None, 3),
    ];
    assert_eq!(
        tag(&analyse_plain(client), 1),
        Some((1, Data, Client, Some(Active), High))
    );
    // must not: port 20 towards a host with no session
    let mut other = server;
    other[2].remote = Some(ep("10.0.0.99:40001"));
    assert_eq!(tag(&analyse_plain(other), 2), None);
}

#[test]
fn client_side_parity_tells_the_mode() {
    let session = |data_port: u16, remote_port: u16| {
        vec![
            tcp(
                &format!("{CLI}:40000"),
                Some(&format!("{SRV}:21")),
                Some(20),
                2,
            ),
            tcp(
                &format!("{CLI}:{data_port}"),
                Some(&format!("{SRV}:{remote_port}")),
                Some(20),
                3,
            ),
        ]
    };
    // an even (connect) port to the server's passive port
    let f = analyse_plain(session(40002, 50000));
    assert_eq!(tag(&f, 1), Some((1, Data, Client, Some(Passive), Medium)));
    assert!(evidence(&f, 1).contains(&FtpEvidence::ConnectParity));
    // an odd (bind 0) port: the port it sent with PORT, accepted
    let f = analyse_plain(session(40001, 45678));
    assert_eq!(tag(&f, 1), Some((1, Data, Client, Some(Active), Medium)));
    assert!(evidence(&f, 1).contains(&FtpEvidence::BindParity));
    // must not: another process of the client host
    let mut other = session(40002, 50000);
    other[1].processes = vec![Process::new(99, "ssh")];
    assert_eq!(tag(&analyse_plain(other), 1), None);
}

#[test]
fn server_side_parity() {
    let session = |local: u16, remote: u16| {
        vec![
            tcp(&format!("{SRV}:21"), None, Some(10), 1),
            tcp(
                &format!("{SRV}:21"),
                Some(&format!("{CLI}:40000")),
                Some(10),
                2,
            ),
            tcp(
                &format!("{SRV}:{local}"),
                Some(&format!("{CLI}:{remote}")),
                Some(10),
                3,
            ),
        ]
    };
    // the server connected from a connect() port: active (libunftp)
    let f = analyse_plain(session(40002, 40001));
    assert_eq!(tag(&f, 2), Some((1, Data, Server, Some(Active), Medium)));
    // a bind(0) port on the server (pyftpdlib, either mode): the client's
    // port decides, and the server's agrees with passive
    let f = analyse_plain(session(40001, 40002));
    assert_eq!(tag(&f, 2), Some((1, Data, Server, Some(Passive), Medium)));
    assert!(evidence(&f, 2).contains(&FtpEvidence::RemoteConnectParity));
    // a passive port bound from a configured range, of connect() parity by
    // chance (libunftp): the client's connect() port still says passive
    let f = analyse_plain(session(40004, 40002));
    assert_eq!(tag(&f, 2), Some((1, Data, Server, Some(Passive), Low)));
    let f = analyse_plain(session(40001, 40003));
    assert_eq!(tag(&f, 2), Some((1, Data, Server, Some(Active), Low)));
    assert!(evidence(&f, 2).contains(&FtpEvidence::RemoteBindParity));
    // Issue 10 item 4: a server's bind(0) port towards a client of another
    // port range (pyftpdlib's and vsftpd's active connections) was `mode:
    // null` while the direction said the server opened it. The mode follows
    // the direction's guess now, at low.
    let f = analyse_plain(session(40001, 5000));
    assert_eq!(tag(&f, 2), Some((1, Data, Server, Some(Active), Low)));
    assert!(evidence(&f, 2).contains(&FtpEvidence::EphemeralPort));
    // must not guess where neither port says anything
    let f = analyse_plain(session(5001, 5000));
    assert_eq!(tag(&f, 2), Some((1, Data, Server, None, Medium)));
}

#[test]
fn pending_listeners_on_either_side() {
    // client side, active mode: curl's listener for the server to connect to
    let client = vec![
        tcp(
            &format!("{CLI}:40000"),
            Some(&format!("{SRV}:21")),
            Some(20),
            2,
        ),
        tcp(&format!("{CLI}:40001"), None, Some(20), 3),
        tcp("0.0.0.0:8080", None, Some(21), 4), // another process's service
        tcp("0.0.0.0:21", None, Some(20), 5),   // a control port is never pending
    ];
    let f = analyse_plain(client);
    assert_eq!(tag(&f, 1), Some((1, Pending, Client, Some(Active), Medium)));
    assert_eq!(tag(&f, 2), None);
    assert_eq!(tag(&f, 3), None);
    // the server's connection waits in the backlog, not yet accepted: no
    // inode, no owner; it belongs to the session through its listener
    let waiting = vec![
        tcp(
            &format!("{CLI}:40000"),
            Some(&format!("{SRV}:21")),
            Some(20),
            2,
        ),
        // listen(1), as curl and the python client do
        single_use(tcp(&format!("{CLI}:40001"), None, Some(20), 3)),
        tcp(
            &format!("{CLI}:40001"),
            Some(&format!("{SRV}:40008")),
            None,
            0,
        ),
    ];
    let f = analyse_plain(waiting.clone());
    assert_eq!(tag(&f, 2), Some((1, Data, Client, Some(Active), High)));
    // a listener with a service's backlog ties less: the process's HTTP
    // listener would look the same
    let mut shared = waiting;
    shared[1].backlog = Some(128);
    assert_eq!(
        tag(&analyse_plain(shared), 2),
        Some((1, Data, Client, Some(Active), Medium))
    );
    assert_eq!(
        evidence(&f, 2),
        vec![FtpEvidence::PendingListener, FtpEvidence::DataListener]
    );
    // a listener on another address of the same process is not the session's
    let mut elsewhere = vec![
        tcp(
            &format!("{CLI}:40000"),
            Some(&format!("{SRV}:21")),
            Some(20),
            2,
        ),
        tcp("10.9.9.9:40001", None, Some(20), 3),
    ];
    assert_eq!(tag(&analyse_plain(elsewhere.clone()), 1), None);
    elsewhere[1].local = ep("0.0.0.0:40001");
    assert_eq!(
        tag(&analyse_plain(elsewhere), 1),
        Some((1, Pending, Client, Some(Active), Medium))
    );
}

#[test]
fn v4_mapped_control_and_plain_ipv4_data_are_one_session() {
    // pyftpdlib: a dual-stack control socket, IPv4 active data sockets
    let sockets = vec![
        tcp("[::]:21", None, Some(10), 1),
        tcp(
            &format!("[::ffff:{SRV}]:21"),
            Some(&format!("[::ffff:{CLI}]:40000")),
            Some(10),
            2,
        ),
        tcp(
            &format!("{SRV}:40003"),
            Some(&format!("{CLI}:40005")),
            Some(10),
            3,
        ),
    ];
    let f = analyse_plain(sockets);
    assert_eq!(tag(&f, 1), Some((1, Control, Server, None, High)));
    assert_eq!(tag(&f, 2), Some((1, Data, Server, Some(Active), Low)));
    assert!(!evidence(&f, 2).contains(&FtpEvidence::Ipv6));
    assert_eq!(f.sessions[0].server, ep(&format!("{SRV}:21")));
}

#[test]
fn ipv6_data_says_extended_commands() {
    let sockets = vec![
        tcp("[fd00::2]:40000", Some("[fd00::1]:21"), Some(20), 2),
        tcp("[fd00::2]:40002", Some("[fd00::1]:50000"), Some(20), 3),
    ];
    let f = analyse_plain(sockets);
    assert_eq!(tag(&f, 1), Some((1, Data, Client, Some(Passive), Medium)));
    assert!(evidence(&f, 1).contains(&FtpEvidence::Ipv6));
}

/// Two sessions from one client host to one server, in one process.
fn two_sessions() -> Vec<Socket> {
    vec![
        tcp(&format!("{SRV}:21"), None, Some(10), 1),
        tcp(
            &format!("{SRV}:21"),
            Some(&format!("{CLI}:40000")),
            Some(10),
            2,
        ),
        tcp(
            &format!("{SRV}:21"),
            Some(&format!("{CLI}:40010")),
            Some(10),
            3,
        ),
        tcp(
            &format!("{SRV}:50000"),
            Some(&format!("{CLI}:40002")),
            Some(10),
            4,
        ),
    ]
}

#[test]
fn several_sessions_in_one_process_are_ambiguous_without_conntrack() {
    let f = analyse_plain(two_sessions());
    assert_eq!(f.sessions.len(), 2);
    // the newest control connection made before the data socket; said low
    let data = tag(&f, 3).unwrap();
    assert_eq!((data.0, data.1, data.4), (2, Data, Low));
    assert!(evidence(&f, 3).contains(&FtpEvidence::SeveralSessions));
}

fn tracked(flows: Vec<Flow>, expectations: Vec<Expectation>) -> Conntrack {
    Conntrack {
        flows,
        expectations,
        source: ConntrackSource::Netlink,
        local: Vec::new(),
    }
}

#[test]
fn conntrack_master_settles_the_session_and_origin_the_mode() {
    let ctl1 = flow(&format!("{CLI}:40000"), &format!("{SRV}:21"));
    let ctl2 = flow(&format!("{CLI}:40010"), &format!("{SRV}:21"));
    let mut data = flow(&format!("{CLI}:40002"), &format!("{SRV}:50000"));
    data.expected = true;
    data.master = Some(ctl1.orig);
    let mut ctl1_helped = ctl1.clone();
    ctl1_helped.helper = Some("ftp".into());
    let ct = tracked(vec![ctl1_helped, ctl2, data.clone()], vec![]);
    let f = analyse_with(two_sessions(), Some(&ct), &[]);
    assert_eq!(tag(&f, 3), Some((1, Data, Server, Some(Passive), High)));
    assert_eq!(
        evidence(&f, 3),
        vec![
            FtpEvidence::ConntrackMaster,
            FtpEvidence::SameProcess,
            FtpEvidence::ConntrackOrigin
        ]
    );
    assert_eq!(f.sessions[0].helper, Helper::Assigned);
    assert_eq!(f.sessions[1].helper, Helper::NotAssigned);
    assert!(evidence(&f, 1).contains(&FtpEvidence::ConntrackHelper));
    // must not: expected by the other control connection
    let mut other = data;
    other.master = Some(tuple(&format!("{CLI}:40010"), &format!("{SRV}:21")));
    let ct = tracked(vec![ctl1, other], vec![]);
    let f = analyse_with(two_sessions(), Some(&ct), &[]);
    assert_eq!(tag(&f, 3).map(|t| t.0), Some(2));
}

#[test]
fn conntrack_origin_gives_active_when_the_server_opened() {
    let sockets = vec![
        tcp(
            &format!("{CLI}:40000"),
            Some(&format!("{SRV}:21")),
            Some(20),
            2,
        ),
        // odd parity would say active anyway; make it even to see conntrack win
        tcp(
            &format!("{CLI}:40002"),
            Some(&format!("{SRV}:40005")),
            Some(20),
            3,
        ),
    ];
    let mut data = flow(&format!("{SRV}:40005"), &format!("{CLI}:40002"));
    data.expected = true;
    let ct = tracked(
        vec![flow(&format!("{CLI}:40000"), &format!("{SRV}:21")), data],
        vec![],
    );
    let f = analyse_with(sockets, Some(&ct), &[]);
    assert_eq!(tag(&f, 1), Some((1, Data, Client, Some(Active), High)));
    assert!(evidence(&f, 1).contains(&FtpEvidence::ConntrackExpected));
}

#[test]
fn an_expectation_makes_a_pending_listener_exact() {
    let ctl = flow(&format!("{CLI}:40000"), &format!("{SRV}:21"));
    let exp = Expectation {
        tuple: Tuple {
            src: ep(&format!("{CLI}:0")),
            dst: ep(&format!("{SRV}:50000")),
            proto: 6,
        },
        master: Some(ctl.orig),
        helper: Some("ftp".into()),
        nat: None,
        timeout: None,
    };
    let mut sockets = passive_server(50000);
    sockets.truncate(3);
    for s in &mut sockets {
        s.processes.clear(); // no owners: conntrack alone
    }
    let ct = tracked(vec![ctl], vec![exp]);
    let f = analyse_with(sockets.clone(), Some(&ct), &[]);
    assert_eq!(tag(&f, 2), Some((1, Pending, Server, Some(Passive), High)));
    assert_eq!(evidence(&f, 2), vec![FtpEvidence::ConntrackExpectation]);
    // must not: an expectation for another port
    let mut ct2 = ct;
    ct2.expectations[0].tuple.dst.port = 50001;
    assert_eq!(tag(&analyse_with(sockets, Some(&ct2), &[]), 2), None);
}

#[test]
fn helper_states() {
    let sockets = vec![tcp(
        &format!("{CLI}:40000"),
        Some(&format!("{SRV}:21")),
        None,
        2,
    )];
    let helper = |ct: Option<&Conntrack>| analyse_with(sockets.clone(), ct, &[]).sessions[0].helper;
    assert_eq!(helper(None), Helper::Unreadable);
    assert_eq!(helper(Some(&tracked(vec![], vec![]))), Helper::NotTracked);
    let plain = flow(&format!("{CLI}:40000"), &format!("{SRV}:21"));
    assert_eq!(
        helper(Some(&tracked(vec![plain.clone()], vec![]))),
        Helper::NotAssigned
    );
    let mut procfs = tracked(vec![plain.clone()], vec![]);
    procfs.source = ConntrackSource::Procfs;
    assert_eq!(helper(Some(&procfs)), Helper::Unknown);
    let mut helped = plain;
    helped.helper = Some("ftp".into());
    assert_eq!(
        helper(Some(&tracked(vec![helped], vec![]))),
        Helper::Assigned
    );
}

#[test]
fn both_ends_of_a_loopback_control_connection_are_one_session() {
    let sockets = vec![
        tcp("127.0.0.1:21", None, Some(10), 1),
        tcp("127.0.0.1:21", Some("127.0.0.1:40000"), Some(10), 2),
        tcp("127.0.0.1:40000", Some("127.0.0.1:21"), Some(20), 3),
    ];
    let f = analyse_plain(sockets);
    assert_eq!(f.sessions.len(), 1);
    assert_eq!(tag(&f, 1), Some((1, Control, Server, None, High)));
    assert_eq!(tag(&f, 2), Some((1, Control, Client, None, High)));
}

#[test]
fn the_same_owner_alone_is_never_high() {
    // one process serving FTP and HTTP on 8080 to the same client host: the
    // HTTP connection cannot be told from a passive data connection by the
    // sockets alone, so the tie is not claimed to be certain
    let sockets = vec![
        tcp(&format!("{SRV}:21"), None, Some(10), 1),
        tcp(
            &format!("{SRV}:21"),
            Some(&format!("{CLI}:40000")),
            Some(10),
            2,
        ),
        tcp(
            &format!("{SRV}:8080"),
            Some(&format!("{CLI}:40002")),
            Some(10),
            3,
        ),
    ];
    let f = analyse_plain(sockets.clone());
    assert!(
        tag(&f, 2).is_some_and(|t| t.4 <= Medium),
        "{:?}",
        tag(&f, 2)
    );
    assert_eq!(evidence(&f, 2)[0], FtpEvidence::SameProcess);
    // With the ftp helper on the control connection, a data connection is
    // expected; a tracked flow that is not is at best a guess (FTPS and
    // NAT'd 227 replies get no expectation either).
    let mut ctl = flow(&format!("{CLI}:40000"), &format!("{SRV}:21"));
    ctl.helper = Some("ftp".into());
    let http = flow(&format!("{CLI}:40002"), &format!("{SRV}:8080"));
    let f = analyse_with(
        sockets.clone(),
        Some(&tracked(vec![ctl.clone(), http], vec![])),
        &[],
    );
    assert_eq!(tag(&f, 2).map(|t| t.4), Some(Low));
    assert!(evidence(&f, 2).contains(&FtpEvidence::NotExpected));
    // must not: without the helper, conntrack's silence says nothing
    ctl.helper = None;
    let http = flow(&format!("{CLI}:40002"), &format!("{SRV}:8080"));
    let f = analyse_with(sockets, Some(&tracked(vec![ctl, http], vec![])), &[]);
    assert!(tag(&f, 2).is_some());
}

/// vsftpd's session process is named vsftpd too, and keeps its passive
/// listener open: that port is a data channel, not a daemon's control port.
#[test]
fn a_vsftpd_passive_listener_is_no_control_port() {
    let mut sockets = passive_server(50000);
    sockets.truncate(4);
    for s in &mut sockets {
        s.processes = vec![Process::new(11, "vsftpd")];
    }
    let f = analyse_plain(sockets.clone());
    assert_eq!(f.sessions.len(), 1);
    assert_eq!(tag(&f, 3), Some((1, Data, Server, Some(Passive), High)));
    assert_eq!(tag(&f, 2).map(|t| t.1), Some(Pending));
    // must not lose a daemon's own control port outside the range
    sockets[0].local.port = 2100;
    sockets[1].local.port = 2100;
    sockets[0].backlog = Some(32);
    let f = analyse_plain(sockets);
    assert_eq!(tag(&f, 1).map(|t| t.1), Some(Control));
    assert_eq!(evidence(&f, 1), vec![FtpEvidence::FtpDaemon]);
}

/// Client and server in two processes on one host, with conntrack: both
/// ends of the control connection share its tuple, so the master settles
/// the session and the owner the side.
#[test]
fn loopback_with_conntrack_keeps_each_end_on_its_side() {
    let sockets = vec![
        tcp("127.0.0.1:21", None, Some(10), 1),
        tcp("127.0.0.1:40000", Some("127.0.0.1:21"), Some(20), 2),
        tcp("127.0.0.1:21", Some("127.0.0.1:40000"), Some(10), 3),
        tcp("127.0.0.1:50000", Some("127.0.0.1:40002"), Some(10), 4),
        tcp("127.0.0.1:40002", Some("127.0.0.1:50000"), Some(20), 5),
    ];
    let mut ctl = flow("127.0.0.1:40000", "127.0.0.1:21");
    ctl.helper = Some("ftp".into());
    let mut data = flow("127.0.0.1:40002", "127.0.0.1:50000");
    data.expected = true;
    data.master = Some(ctl.orig);
    let f = analyse_with(sockets, Some(&tracked(vec![ctl, data], vec![])), &[]);
    assert_eq!(tag(&f, 3), Some((1, Data, Server, Some(Passive), High)));
    assert_eq!(tag(&f, 4), Some((1, Data, Client, Some(Passive), High)));
}

/// vsftpd runs a process per session: port 20 says "a data connection of
/// these hosts", the owner says whose.
#[test]
fn the_owner_outranks_port_20_between_sessions() {
    let sockets = vec![
        tcp(&format!("{SRV}:21"), None, Some(10), 1),
        tcp(
            &format!("{SRV}:21"),
            Some(&format!("{CLI}:40000")),
            Some(11),
            2,
        ),
        tcp(
            &format!("{SRV}:21"),
            Some(&format!("{CLI}:40010")),
            Some(12),
            3,
        ),
        tcp(
            &format!("{SRV}:20"),
            Some(&format!("{CLI}:40001")),
            Some(11),
            4,
        ),
    ];
    let f = analyse_plain(sockets.clone());
    assert_eq!(tag(&f, 3), Some((1, Data, Server, Some(Active), High)));
    assert!(!evidence(&f, 3).contains(&FtpEvidence::SeveralSessions));
    // must not: without owners, two sessions are a guess
    let mut bare = sockets;
    for s in &mut bare {
        s.processes.clear();
    }
    let f = analyse_plain(bare);
    assert_eq!(tag(&f, 3).map(|t| t.4), Some(Low));
    assert!(evidence(&f, 3).contains(&FtpEvidence::SeveralSessions));
}

/// A closed control connection keeps its label but owns nothing new.
#[test]
fn a_closing_control_connection_does_not_compete() {
    let mut old = tcp(&format!("{SRV}:21"), Some(&format!("{CLI}:39000")), None, 0);
    old.state = State::TimeWait;
    let sockets = vec![
        tcp(&format!("{SRV}:21"), None, Some(10), 1),
        old,
        tcp(&format!("{SRV}:21"), Some(&format!("{CLI}:40000")), None, 2),
        tcp(&format!("{SRV}:20"), Some(&format!("{CLI}:40001")), None, 3),
    ];
    let f = analyse_plain(sockets);
    assert_eq!(tag(&f, 1).map(|t| (t.1, t.2)), Some((Control, Server)));
    let live = tag(&f, 2).unwrap().0;
    assert_eq!(tag(&f, 3), Some((live, Data, Server, Some(Active), High)));
}

/// One process serving FTP and HTTP: its HTTP listener looks like a
/// pending data channel, and what it accepts is never called certain.
#[test]
fn a_shared_listener_does_not_make_a_tie() {
    let sockets = vec![
        tcp(&format!("{SRV}:21"), None, Some(10), 1),
        tcp(
            &format!("{SRV}:21"),
            Some(&format!("{CLI}:40000")),
            Some(10),
            2,
        ),
        tcp(&format!("{SRV}:8080"), None, Some(10), 3),
        tcp(
            &format!("{SRV}:8080"),
            Some(&format!("{CLI}:40002")),
            Some(10),
            4,
        ),
    ];
    let f = analyse_plain(sockets);
    assert!(
        tag(&f, 3).is_some_and(|t| t.4 <= Medium),
        "{:?}",
        tag(&f, 3)
    );
}

/// curl closes an active data connection with the server's FIN and bytes
/// unread: CLOSE_WAIT with no descriptor, the moment before the kernel
/// resets it. No process holds it: it is judged as the sockets that went
/// are, not by its owner (tests/integration/ftp_brief.rs saw it unlabelled).
#[test]
fn close_wait_with_no_descriptor_is_orphaned() {
    let s = Socket::tcp("10.77.0.2:38527", Some("10.77.0.1:56421")).state(State::CloseWait);
    assert!(orphaned(&s.clone().inode(0)));
    assert!(!orphaned(&s.inode(77)), "still held: its owner tells");
}
