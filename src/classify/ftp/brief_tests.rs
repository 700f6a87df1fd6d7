//! Issue 10 item 3: data connections seen only as they went (TIME_WAIT, or
//! `closed` from a destroy event) are labelled like live ones, on the
//! evidence they rest on; each kind with a case that must match and one
//! that must not.

use std::time::{Duration, Instant};

use super::*;
use crate::classify::agree::tests::assert_agree;
use crate::classify::memory::Memory;
use crate::classify::{Classified, Context as ClassifyContext, classify};
use crate::model::{Conntrack, ConntrackSource, Flow, Snapshot, State, Tuple};

use Confidence::*;
use FtpEvidence as F;
use Mode::*;
use Role::*;
use Side::*;

fn run(sockets: &[Socket], ct: Option<&Conntrack>, memory: Option<&Memory>) -> Classified {
    let snapshot = Snapshot {
        sockets: sockets.to_vec(),
        port_range: PortRange::default(),
        ..Default::default()
    };
    let c = classify(
        &snapshot,
        ClassifyContext {
            conntrack: ct,
            ftp_ports: &[],
            memory,
        },
    );
    assert_agree(sockets, &c.labels);
    c
}

/// Classifies one refresh at `now` and lets `memory` learn it.
fn refresh(memory: &mut Memory, now: Instant, sockets: &[Socket]) -> Classified {
    let c = run(sockets, None, Some(memory));
    memory.learn(now, sockets, &c.labels, &c.sessions);
    c
}

fn tag(c: &Classified, i: usize) -> Option<(u32, Role, Side, Option<Mode>, Confidence)> {
    c.labels[i]
        .ftp
        .as_deref()
        .map(|l| (l.session, l.role, l.side, l.mode, l.confidence))
}

fn evidence(c: &Classified, i: usize) -> Vec<FtpEvidence> {
    c.labels[i]
        .ftp
        .as_deref()
        .map(|l| l.evidence.clone())
        .unwrap_or_default()
}

fn py(local: &str, remote: Option<&str>, inode: u64) -> Socket {
    Socket::tcp(local, remote)
        .inode(inode)
        .process(10, "python3")
}

/// TIME_WAIT: no inode, no owner.
fn time_wait(local: &str, remote: &str) -> Socket {
    Socket::tcp(local, Some(remote)).state(State::TimeWait)
}

/// What a destroy event says: CLOSE, no inode, no owner.
fn closed(local: &str, remote: &str) -> Socket {
    let mut s = Socket::tcp(local, Some(remote)).state(State::Close);
    s.closed = true;
    s
}

fn listening() -> Socket {
    py("0.0.0.0:21", None, 1)
}

fn control() -> Socket {
    py("10.0.0.1:21", Some("10.0.0.2:40000"), 2)
}

fn ep(s: &str) -> Endpoint {
    s.parse::<std::net::SocketAddr>().unwrap().into()
}

fn flow(src: &str, dst: &str) -> Flow {
    Flow {
        orig: Tuple {
            src: ep(src),
            dst: ep(dst),
            proto: 6,
        },
        reply: Tuple {
            src: ep(dst),
            dst: ep(src),
            proto: 6,
        },
        expected: false,
        helper: None,
        master: None,
        status: Default::default(),
    }
}

fn tracked(flows: Vec<Flow>) -> Conntrack {
    Conntrack {
        flows,
        expectations: vec![],
        source: ConntrackSource::Netlink,
        local: Vec::new(),
    }
}

#[test]
fn the_hosts_of_a_session_tie_what_went_at_low() {
    // pyftpdlib passive: bind(0) passive port, the client's connect() port
    for data in [
        time_wait("10.0.0.1:45001", "10.0.0.2:40004"),
        closed("10.0.0.1:45001", "10.0.0.2:40004"),
    ] {
        let c = run(&[listening(), control(), data], None, None);
        assert_eq!(tag(&c, 2), Some((1, Data, Server, Some(Passive), Low)));
        assert_eq!(
            evidence(&c, 2),
            vec![F::SameHosts, F::RemoteConnectParity, F::BindParity]
        );
        assert_eq!(c.sessions[0].members, vec![1, 2]);
    }
    let must_not = [
        // a live socket without an owner: not for the hosts alone
        Socket::tcp("10.0.0.1:45001", Some("10.0.0.2:40004")),
        // another host
        time_wait("10.0.0.1:45001", "10.0.0.9:40004"),
        // a well-known port
        time_wait("10.0.0.1:22", "10.0.0.2:40004"),
        // the control port itself
        time_wait("10.0.0.1:21", "10.0.0.2:40004"),
    ];
    for data in must_not {
        let c = run(&[listening(), control(), data.clone()], None, None);
        assert!(
            tag(&c, 2).is_none_or(|t| t.1 == Control),
            "{data:?}: {:?}",
            tag(&c, 2)
        );
    }
    // must not: a service's connection, its listener open here
    let svc = run(
        &[
            listening(),
            control(),
            time_wait("10.0.0.1:2222", "10.0.0.2:40004"),
            Socket::tcp("0.0.0.0:2222", None)
                .inode(4)
                .process(30, "sshd"),
        ],
        None,
        None,
    );
    assert_eq!(tag(&svc, 2), None);
}

#[test]
fn a_closing_control_connection_owns_what_went_before_it() {
    // one-shot after QUIT: the control connection and the data in TIME_WAIT
    let sockets = [
        listening(),
        time_wait("10.0.0.1:21", "10.0.0.2:40000"),
        time_wait("10.0.0.1:45001", "10.0.0.2:40004"),
    ];
    let c = run(&sockets, None, None);
    assert_eq!(tag(&c, 1).map(|t| t.1), Some(Control));
    assert_eq!(tag(&c, 2), Some((1, Data, Server, Some(Passive), Low)));
    assert!(evidence(&c, 2).contains(&F::RecentControl));
    // must not: a closing control connection owns no live data connection
    let live = [
        listening(),
        time_wait("10.0.0.1:21", "10.0.0.2:40000"),
        Socket::tcp("10.0.0.1:20", Some("10.0.0.2:40005")).inode(5),
    ];
    assert_eq!(tag(&run(&live, None, None), 2), None);
    // a live and a closing session between the same hosts: ambiguous
    let both = [
        listening(),
        time_wait("10.0.0.1:21", "10.0.0.2:39000"),
        control(),
        time_wait("10.0.0.1:45001", "10.0.0.2:40004"),
    ];
    let c = run(&both, None, None);
    assert_eq!(tag(&c, 3).map(|t| (t.0, t.4)), Some((2, Low)));
    assert!(evidence(&c, 3).contains(&F::SeveralSessions));
}

#[test]
fn port_20_in_time_wait_is_active_and_certain() {
    let c = run(
        &[
            listening(),
            time_wait("10.0.0.1:21", "10.0.0.2:40000"),
            time_wait("10.0.0.1:20", "10.0.0.2:40001"),
        ],
        None,
        None,
    );
    assert_eq!(tag(&c, 2), Some((1, Data, Server, Some(Active), High)));
    assert_eq!(
        evidence(&c, 2),
        vec![F::Port20, F::RecentControl],
        "host-level, but port 20 is FTP's own"
    );
    assert_eq!(
        c.labels[2].direction.direction,
        crate::classify::direction::Direction::Outbound
    );
    // must not: port 20 towards another host
    let c = run(
        &[
            listening(),
            control(),
            time_wait("10.0.0.1:20", "10.0.0.9:40001"),
        ],
        None,
        None,
    );
    assert_eq!(tag(&c, 2), None);
}

#[test]
fn conntrack_ties_what_went_even_after_its_flow_ended() {
    // The helper expected it for this control connection; the flows may
    // have ended (conntrack events in watch mode keep them in the table).
    let mut ctl = flow("10.0.0.2:40000", "10.0.0.1:21");
    ctl.helper = Some("ftp".into());
    let mut data = flow("10.0.0.2:40004", "10.0.0.1:45002");
    data.expected = true;
    data.master = Some(ctl.orig);
    let ct = tracked(vec![ctl.clone(), data]);
    for sockets in [
        [
            listening(),
            control(),
            closed("10.0.0.1:45002", "10.0.0.2:40004"),
        ],
        [
            listening(),
            time_wait("10.0.0.1:21", "10.0.0.2:40000"),
            time_wait("10.0.0.1:45002", "10.0.0.2:40004"),
        ],
    ] {
        let c = run(&sockets, Some(&ct), None);
        assert_eq!(tag(&c, 2), Some((1, Data, Server, Some(Passive), High)));
        assert!(evidence(&c, 2).contains(&F::ConntrackMaster));
        assert!(evidence(&c, 2).contains(&F::ConntrackOrigin));
    }
    // conntrack tracks but no helper: the origin tells the mode at high,
    // the hosts alone tie it at low
    let plain = tracked(vec![
        flow("10.0.0.2:40000", "10.0.0.1:21"),
        flow("10.0.0.1:45003", "10.0.0.2:40005"),
    ]);
    let c = run(
        &[
            listening(),
            control(),
            time_wait("10.0.0.1:45003", "10.0.0.2:40005"),
        ],
        Some(&plain),
        None,
    );
    assert_eq!(tag(&c, 2), Some((1, Data, Server, Some(Active), Low)));
    assert_eq!(
        evidence(&c, 2),
        vec![F::SameHosts, F::ConntrackOrigin],
        "the server sent the first packet"
    );
    // must not: expected by another control connection
    let mut other = flow("10.0.0.2:40004", "10.0.0.1:45002");
    other.expected = true;
    other.master = Some(flow("10.0.0.2:39999", "10.0.0.1:21").orig);
    let c = run(
        &[
            listening(),
            control(),
            closed("10.0.0.1:45002", "10.0.0.2:40004"),
        ],
        Some(&tracked(vec![ctl, other])),
        None,
    );
    assert_eq!(tag(&c, 2), None);
}

#[test]
fn a_pending_listener_seen_earlier_ties_what_it_accepted() {
    let t0 = Instant::now();
    // refresh 1: pyftpdlib's passive listener, waiting (listen(1))
    let mut m = Memory::default();
    let pasv = py("10.0.0.1:45001", None, 3).backlog(1);
    let c = refresh(&mut m, t0, &[listening(), control(), pasv]);
    assert_eq!(
        tag(&c, 2),
        Some((1, Pending, Server, Some(Passive), Medium))
    );
    // refresh 2: it accepted, the transfer ran and ended between refreshes
    let gone = [
        listening(),
        control(),
        closed("10.0.0.1:45001", "10.0.0.2:40004"),
    ];
    let c = refresh(&mut m, t0 + Duration::from_millis(100), &gone);
    assert_eq!(tag(&c, 2), Some((1, Data, Server, Some(Passive), High)));
    assert_eq!(evidence(&c, 2), vec![F::RememberedPending, F::DataListener]);
    let d = &c.labels[2].direction;
    assert_eq!(
        (d.direction, d.confidence),
        (
            crate::classify::direction::Direction::Inbound,
            Some(Confidence::High)
        )
    );
    // must not: once forgotten (minutes later), only the hosts are left
    let mut later = m.clone();
    later.learn(t0 + Duration::from_secs(400), &[], &[], &[]);
    let c = run(&gone, None, Some(&later));
    assert_eq!(tag(&c, 2).map(|t| t.4), Some(Low));
    assert!(!evidence(&c, 2).contains(&F::RememberedPending));
    // must not: a service's listener seen earlier makes no tie at all
    let mut svc = Memory::default();
    refresh(
        &mut svc,
        t0,
        &[
            listening(),
            control(),
            Socket::tcp("0.0.0.0:8080", None)
                .inode(7)
                .process(30, "httpd"),
        ],
    );
    let c = run(
        &[
            listening(),
            control(),
            time_wait("10.0.0.1:8080", "10.0.0.2:40006"),
        ],
        None,
        Some(&svc),
    );
    assert_eq!(tag(&c, 2), None);
    // the same on an ephemeral port, where it lasted: a service
    let svc_at = |port: u16| {
        Socket::tcp(&format!("0.0.0.0:{port}"), None)
            .inode(7)
            .process(30, "httpd")
    };
    let mut lasting = Memory::default();
    for n in 0..2 {
        let at = t0 + Duration::from_millis(100 * n);
        refresh(&mut lasting, at, &[listening(), control(), svc_at(45100)]);
    }
    let brief = |m: &Memory| {
        let tw = time_wait("10.0.0.1:45100", "10.0.0.2:40006");
        tag(&run(&[listening(), control(), tw], None, Some(m)), 2)
    };
    assert_eq!(brief(&lasting), None);
    // but a listener on an ephemeral port seen once, its owner unread
    // (gone before /proc was walked: pyftpdlib's passive listener), was a
    // data channel's: what it accepted is tied by the hosts
    let mut once = Memory::default();
    let unowned = Socket::tcp("0.0.0.0:45100", None).inode(7);
    refresh(&mut once, t0, &[listening(), control(), unowned]);
    assert_eq!(brief(&once).map(|t| t.1), Some(Data));
}

#[test]
fn the_passive_range_seen_earlier_raises_the_tie() {
    let t0 = Instant::now();
    let mut m = Memory::default();
    // libunftp/vsftpd with a configured range: two transfers seen live
    for (i, port) in [50010u16, 50070].into_iter().enumerate() {
        let data = py(&format!("10.0.0.1:{port}"), Some("10.0.0.2:40010"), 5);
        let c = refresh(
            &mut m,
            t0 + Duration::from_secs(i as u64),
            &[listening(), control(), data],
        );
        assert_eq!(tag(&c, 2).map(|t| t.3), Some(Some(Passive)));
    }
    // a short one, seen only in TIME_WAIT, its port of either parity
    let brief = [
        listening(),
        control(),
        time_wait("10.0.0.1:50042", "10.0.0.2:40011"),
    ];
    let c = run(&brief, None, Some(&m));
    assert_eq!(tag(&c, 2), Some((1, Data, Server, Some(Passive), Medium)));
    assert_eq!(evidence(&c, 2), vec![F::SameHosts, F::PassiveRange]);
    // must not: a port outside the range
    let c = run(
        &[
            listening(),
            control(),
            time_wait("10.0.0.1:45042", "10.0.0.2:40011"),
        ],
        None,
        Some(&m),
    );
    assert!(!evidence(&c, 2).contains(&F::PassiveRange));
    assert_eq!(tag(&c, 2).map(|t| t.4), Some(Low));
    // must not: passive ports all over the range say nothing
    let mut wide = Memory::default();
    for (i, port) in [35001u16, 58001].into_iter().enumerate() {
        let data = py(&format!("10.0.0.1:{port}"), Some("10.0.0.2:40010"), 5);
        refresh(
            &mut wide,
            t0 + Duration::from_secs(i as u64),
            &[listening(), control(), data],
        );
    }
    let c = run(
        &[
            listening(),
            control(),
            time_wait("10.0.0.1:45042", "10.0.0.2:40011"),
        ],
        None,
        Some(&wide),
    );
    assert!(!evidence(&c, 2).contains(&F::PassiveRange));
}

#[test]
fn a_session_remembered_after_its_control_connection_went() {
    let t0 = Instant::now();
    let mut m = Memory::default();
    // the client's side: curl's control connection, then nothing left but a
    // destroy event of its last data connection (passive: its connect() port)
    let ctl = Socket::tcp("10.0.0.2:40000", Some("10.0.0.1:21"))
        .inode(2)
        .process(20, "curl");
    refresh(&mut m, t0, &[ctl]);
    let data = closed("10.0.0.2:40004", "10.0.0.1:45001");
    let c = refresh(
        &mut m,
        t0 + Duration::from_secs(1),
        std::slice::from_ref(&data),
    );
    assert_eq!(tag(&c, 0), Some((1, Data, Client, Some(Passive), Low)));
    assert_eq!(
        evidence(&c, 0),
        vec![F::SameHosts, F::RecentControl, F::ConnectParity]
    );
    assert_eq!(c.sessions.len(), 1);
    assert_eq!(c.sessions[0].client, ep("10.0.0.2:40000"));
    assert_eq!(c.sessions[0].members, vec![0]);
    // must not: a remembered session nothing joins is not shown
    let c = run(
        &[Socket::tcp("10.0.0.2:40100", Some("10.0.0.9:443"))],
        None,
        Some(&m),
    );
    assert!(c.sessions.is_empty());
    // must not: once forgotten
    m.learn(t0 + Duration::from_secs(600), &[], &[], &[]);
    assert!(
        run(std::slice::from_ref(&data), None, Some(&m))
            .sessions
            .is_empty()
    );
}

/// On the client, an active transfer's listener (curl's, closed after the
/// accept) seen earlier: its data connection, gone, was accepted there.
#[test]
fn the_clients_remembered_listener_says_active() {
    let t0 = Instant::now();
    let mut m = Memory::default();
    let ctl = Socket::tcp("10.0.0.2:40000", Some("10.0.0.1:21"))
        .inode(2)
        .process(20, "curl");
    let listener = Socket::tcp("10.0.0.2:40007", None)
        .inode(3)
        .process(20, "curl")
        .backlog(1);
    refresh(&mut m, t0, &[ctl.clone(), listener]);
    let mut data = time_wait("10.0.0.2:40007", "10.0.0.1:40020");
    data.timer.kind = crate::model::TimerKind::TimeWait;
    let c = refresh(&mut m, t0 + Duration::from_millis(100), &[ctl, data]);
    assert_eq!(tag(&c, 1), Some((1, Data, Client, Some(Active), High)));
    assert_eq!(evidence(&c, 1), vec![F::RememberedPending, F::DataListener]);
}

/// curl in a loop: a session a second, each gone when the next starts. A
/// pending listener seen earlier picks its own session among them; the
/// hosts alone cannot, and say so.
#[test]
fn among_sessions_one_after_another_the_remembered_listener_picks() {
    let t0 = Instant::now();
    let mut m = Memory::default();
    let ctl = |port: u16| py("10.0.0.1:21", Some(&format!("10.0.0.2:{port}")), 2);
    let pasv = py("10.0.0.1:45001", None, 3);
    refresh(&mut m, t0, &[listening(), ctl(40000), pasv]);
    refresh(
        &mut m,
        t0 + Duration::from_secs(1),
        &[listening(), ctl(40100)],
    );
    refresh(
        &mut m,
        t0 + Duration::from_secs(2),
        &[listening(), ctl(40200)],
    );
    let c = run(
        &[
            listening(),
            time_wait("10.0.0.1:45001", "10.0.0.2:40004"),
            time_wait("10.0.0.1:45003", "10.0.0.2:40204"),
        ],
        None,
        Some(&m),
    );
    let session = |i: usize| &c.sessions[c.labels[i].ftp.as_ref().unwrap().session as usize - 1];
    assert_eq!(session(1).client, ep("10.0.0.2:40000"));
    assert_eq!(tag(&c, 1).map(|t| t.4), Some(Medium), "a loose listener");
    assert!(!evidence(&c, 1).contains(&F::SeveralSessions));
    // must not: the hosts alone pick the newest, and say it is a guess
    assert_eq!(session(2).client, ep("10.0.0.2:40200"));
    assert!(evidence(&c, 2).contains(&F::SeveralSessions));
    assert_eq!(tag(&c, 2).map(|t| t.4), Some(Low));
}

/// Sequential sessions of one client (curl in a loop): a data connection
/// seen as it went belongs to the session whose control connection ended
/// with it, not to the one before (ended earlier) or after (still open).
#[test]
fn timing_ties_a_closed_data_connection_to_the_session_it_ended_with() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let server = "10.231.0.1";
    let control = |port: u16| format!("10.231.0.2:{port}");
    // client side, active: the server connected to curl's port
    let earlier = time_wait(&control(36596), &format!("{server}:21")).ended(ms(0));
    let own = closed(&control(36600), &format!("{server}:21")).ended(ms(19));
    let next = Socket::tcp(&control(36614), Some(&format!("{server}:21"))).inode(7);
    let data = closed("10.231.0.2:42613", &format!("{server}:57489")).ended(ms(17));
    let c = run(&[earlier, own, next, data], None, None);
    let f = c.labels[3].ftp.as_deref().expect("labelled");
    let session = &c.sessions[f.session as usize - 1];
    assert_eq!(session.client.port, 36600, "{:?}", evidence(&c, 3));
    assert!(evidence(&c, 3).contains(&F::Timing));
    // the one before ended 100 ms before it: out
    let data = closed("10.231.0.2:42613", &format!("{server}:57489")).ended(ms(200));
    let earlier = time_wait(&control(36596), &format!("{server}:21")).ended(ms(0));
    let c = run(&[earlier, data], None, None);
    assert_eq!(tag(&c, 1), None);
}

/// curl's passive data connection, closed by curl between the dump (which
/// saw it open, with its inode) and the walk of /proc (which found no one
/// holding it): seen as it went, it joins the session still open when the
/// table was read, not the one that had ended before.
#[test]
fn a_socket_whose_owner_went_after_the_dump_is_seen_as_it_went() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let server = "10.231.0.1";
    let control = |port: u16| format!("10.231.0.2:{port}");
    let earlier = time_wait(&control(36596), &format!("{server}:21")).ended(ms(0));
    let open = Socket::tcp(&control(36614), Some(&format!("{server}:21")))
        .inode(7)
        .process(20, "curl");
    let data = Socket::tcp("10.231.0.2:42614", Some(&format!("{server}:57489"))).inode(9);
    let at_dump = |data: Socket| {
        let snapshot = Snapshot {
            sockets: vec![earlier.clone(), open.clone(), data],
            dumped: Some(ms(50)),
            ..Default::default()
        };
        let c = classify(
            &snapshot,
            ClassifyContext {
                conntrack: None,
                ftp_ports: &[],
                memory: None,
            },
        );
        assert_agree(&snapshot.sockets, &c.labels);
        c
    };
    let mut gone = data.clone();
    gone.owner_gone = true;
    let c = at_dump(gone);
    let f = c.labels[2].ftp.as_deref().expect("labelled");
    assert_eq!((f.role, f.side, f.mode), (Data, Client, Some(Passive)));
    assert_eq!(c.sessions[f.session as usize - 1].client.port, 36614);
    let e = evidence(&c, 2);
    assert!(e.contains(&F::OwnerGone) && e.contains(&F::Timing), "{e:?}");
    // must not: with no owner to be seen (another user's, unprivileged),
    // an open socket is not tied by the hosts alone
    assert_eq!(tag(&at_dump(data), 2), None);
}
