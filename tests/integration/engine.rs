//! The netlink engine on a real kernel, in private namespaces: sock_diag's
//! destroy events through a subscribed socket, and a replay of what real
//! `ss -D` saved against the live dump.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use sockwho::collect::decode::decode_message;
use sockwho::collect::netlink::sockdiag::SKNLGRP_INET_TCP_DESTROY;
use sockwho::collect::netlink::{
    DiagSocket, NETLINK_SOCK_DIAG, NetlinkError, NetlinkSocket, Replay, SockDiag, walk,
};
use sockwho::model::{Endpoint, Family, Proto, Socket, State};

use crate::harness::{Netns, can_use_netns};

/// `SO_COOKIE`: what sock_diag reports as the socket's cookie.
fn cookie(socket: &impl AsRawFd) -> u64 {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: a valid fd, and a u64 with its length for the kernel to fill.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "SO_COOKIE: {}", std::io::Error::last_os_error());
    cookie
}

fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::new(addr.ip(), addr.port())
}

/// Waits up to `timeout` for the socket to be readable.
fn readable(socket: &NetlinkSocket, timeout: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut fd, 1, timeout.as_millis() as libc::c_int) };
    n > 0
}

/// Reads every queued event datagram, decoding its sockets into `out`.
fn drain(events: &mut NetlinkSocket, out: &mut Vec<Socket>) -> Result<(), NetlinkError> {
    while let Some(datagram) = events.try_recv()? {
        walk(datagram, |m| decode_message(m, Proto::Tcp, out))?;
    }
    Ok(())
}

#[test]
fn tcp_destroy_events_are_the_sockets_that_closed() {
    if !can_use_netns("engine::tcp_destroy_events_are_the_sockets_that_closed") {
        return;
    }
    let ns = Netns::new("destroy");
    let (expected, got) = ns.enter(|| {
        let mut events =
            NetlinkSocket::subscribe(NETLINK_SOCK_DIAG, &[SKNLGRP_INET_TCP_DESTROY]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        // cookie, local, remote
        let expected = [
            (cookie(&listener), listener.local_addr().unwrap(), None),
            (
                cookie(&client),
                client.local_addr().unwrap(),
                Some(client.peer_addr().unwrap()),
            ),
            (
                cookie(&server),
                server.local_addr().unwrap(),
                Some(server.peer_addr().unwrap()),
            ),
        ];
        // nothing is destroyed yet
        assert!(events.try_recv().unwrap().is_none());
        // the client closes first and keeps TIME_WAIT, which is no full
        // socket: its own is destroyed, as is the server's after LAST_ACK
        drop(client);
        drop(server);
        drop(listener);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && !expected
                .iter()
                .all(|e| got.iter().any(|s: &Socket| s.cookie == Some(e.0)))
        {
            if readable(&events, Duration::from_millis(100)) {
                drain(&mut events, &mut got).unwrap();
            }
        }
        (expected, got)
    });
    for (cookie, local, remote) in expected {
        let found: Vec<&Socket> = got.iter().filter(|s| s.cookie == Some(cookie)).collect();
        assert_eq!(found.len(), 1, "cookie {cookie} once in {got:#?}");
        let s = found[0];
        assert_eq!(s.family, Family::Inet);
        assert_eq!(s.local, endpoint(local), "cookie {cookie}");
        assert_eq!(s.remote, remote.map(endpoint), "cookie {cookie}");
    }
}

/// More events than a tiny receive buffer holds: the next receive says
/// `Overrun` once, and the socket goes on with what was kept.
#[test]
fn an_overrun_of_events_is_said_once() {
    if !can_use_netns("engine::an_overrun_of_events_is_said_once") {
        return;
    }
    let ns = Netns::new("overrun");
    let (overruns, kept) = ns.enter(|| {
        let mut events =
            NetlinkSocket::subscribe(NETLINK_SOCK_DIAG, &[SKNLGRP_INET_TCP_DESTROY]).unwrap();
        let size: libc::c_int = 1;
        // SAFETY: a valid fd and an int; the kernel rounds it up to its
        // minimum.
        let rc = unsafe {
            libc::setsockopt(
                events.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        for _ in 0..50 {
            drop(TcpListener::bind("127.0.0.1:0").unwrap());
        }
        // the destroy events are sent from a work queue
        std::thread::sleep(Duration::from_millis(500));
        let (mut overruns, mut kept) = (0, Vec::new());
        loop {
            match drain(&mut events, &mut kept) {
                Ok(()) => break,
                Err(NetlinkError::Overrun) => overruns += 1,
                Err(e) => panic!("{e}"),
            }
        }
        (overruns, kept.len())
    });
    assert_eq!(overruns, 1);
    assert!((1..50).contains(&kept), "{kept} of 50 events kept");
}

/// What `ss -D FILE -tan` saved, replayed, is the live dump: the same
/// sockets of both families, whatever the states asked for.
#[test]
fn a_replay_of_ss_d_is_the_live_dump() {
    if !can_use_netns("engine::a_replay_of_ss_d_is_the_live_dump") {
        return;
    }
    let ns = Netns::new("ssdump");
    let keep = ns.enter(|| {
        let mut keep = Vec::new();
        for addr in ["127.0.0.1:0", "[::1]:0", "[::]:0"] {
            let listener = TcpListener::bind(addr).unwrap();
            let port = listener.local_addr().unwrap().port();
            let to = if addr.starts_with('1') {
                format!("127.0.0.1:{port}")
            } else {
                format!("[::1]:{port}")
            };
            let client = TcpStream::connect(to).unwrap();
            let (server, _) = listener.accept().unwrap();
            keep.push((listener, client, server));
        }
        keep
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ss.dump");
    ns.exec_ok(&["ss", "-D", file.to_str().unwrap(), "-tan"]);
    let all = State::ALL.iter().fold(0, |m, s| m | s.bit());
    let dumps = ns.enter(|| {
        let mut sources: Vec<Box<dyn SockDiag>> = vec![
            Box::new(DiagSocket::open().unwrap()),
            Box::new(Replay::open(&file).unwrap()),
        ];
        let mut dumps = Vec::new();
        for states in [all, State::Listen.bit(), State::Established.bit()] {
            for source in &mut sources {
                let mut out = Vec::new();
                for family in [Family::Inet, Family::Inet6] {
                    source
                        .dump_filtered(family, Proto::Tcp, states, None, &mut out)
                        .unwrap();
                }
                out.sort_by_key(|s| s.cookie);
                dumps.push(out);
            }
        }
        dumps
    });
    drop(keep);
    let [
        live,
        replayed,
        live_listen,
        replayed_listen,
        live_estab,
        replayed_estab,
    ] = &dumps[..]
    else {
        panic!("six dumps");
    };
    assert_eq!(live.len(), 9, "3 listeners, 3 connections: {live:#?}");
    assert!(live.iter().any(|s| s.family == Family::Inet6));
    assert_eq!(replayed, live);
    assert_eq!(live_listen.len(), 3);
    assert_eq!(replayed_listen, live_listen);
    assert_eq!(live_estab.len(), 6);
    assert_eq!(replayed_estab, live_estab);
}
