//! What watch mode keeps of the refresh before: each listed row packed in
//! 48 bytes (a socket and its labels take 184), enough to find it again by
//! its key, compare its state and queues, and give it back whole, as last
//! seen, for a `removed` event or a row that went. Kept in place of the
//! refresh's parts, which then go before the next refresh is collected, so
//! that two refreshes' sockets are never alive at once (at 200,000 sockets
//! the parts are 35 MiB, this is 9).
//!
//! What many rows share (the protocol, state, uid, labels and their part)
//! is a [`Shape`], stored once; IPv6 addresses are stored once each; owners,
//! `tcp_info` and FTP labels, which few rows have, go to a side table.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::classify::direction::Verdict;
use crate::classify::ftp::FtpLabel;
use crate::classify::ports::PortClass;
use crate::classify::{Labels, Row};
use crate::config::Config;
use crate::model::{Endpoint, Family, Process, Proto, Socket, State, TcpInfo, Timer, TimerKind};
use crate::view::{Part, shown};

/// Which socket a row is, from one refresh to the next: the kernel's cookie
/// where there is one (netlink; TIME_WAIT sockets have one but no inode),
/// else its ends and inode (/proc), within its namespace (its inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Id {
    Cookie(u64, u64),
    Ends(u64, Ends),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ends {
    proto: Proto,
    family: Family,
    local: (IpAddr, u16),
    remote: Option<(IpAddr, u16)>,
    inode: u64,
}

impl Id {
    pub fn of(part: &Part, s: &Socket) -> Id {
        Id::with(part.inode, s)
    }

    fn with(netns: u64, s: &Socket) -> Id {
        match s.cookie {
            Some(c) => Id::Cookie(netns, c),
            None => Id::Ends(
                netns,
                Ends {
                    proto: s.proto,
                    family: s.family,
                    local: (s.local.addr, s.local.port),
                    remote: s.remote.map(|r| (r.addr, r.port)),
                    inode: s.inode,
                },
            ),
        }
    }
}

impl Id {
    /// What [`Before`] orders ids by first: the namespace, then the
    /// cookie (all ones where there is none); equal words are told apart
    /// by the ids themselves.
    fn word(&self) -> u128 {
        let (netns, cookie) = match *self {
            Id::Cookie(netns, cookie) => (netns, cookie),
            Id::Ends(netns, _) => (netns, u64::MAX),
        };
        (u128::from(netns) << 64) | u128::from(cookie)
    }
}

/// What a refresh compares: the state and the queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vitals {
    pub state: State,
    pub recv_q: u32,
    pub send_q: u32,
}

impl Vitals {
    pub fn of(s: &Socket) -> Vitals {
        Vitals {
            state: s.state,
            recv_q: s.recv_q,
            send_q: s.send_q,
        }
    }
}

/// What rows share: all of a socket and its labels but its addresses,
/// ports, numbers and rare parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    /// The index of the row's part in [`Before::parts`].
    part: u32,
    proto: Proto,
    family: Family,
    state: State,
    uid: u32,
    backlog: Option<u32>,
    timer: TimerKind,
    retransmits: u8,
    v6only: Option<bool>,
    cookie: bool,
    local_v6: bool,
    /// `Some(whether IPv6)` for a connected socket.
    remote: Option<bool>,
    local_class: PortClass,
    local_listening: bool,
    remote_class: Option<PortClass>,
    direction: Verdict,
}

/// One row. An address is the IPv4 address itself or the index of the
/// IPv6 one (the shape says which).
#[derive(Debug, Clone, Copy)]
struct Packed {
    cookie: u64,
    inode: u64,
    local: u32,
    remote: u32,
    local_port: u16,
    remote_port: u16,
    recv_q: u32,
    send_q: u32,
    /// The timer's, where it fits (else in the row's extra).
    expires_ms: u32,
    shape: u32,
    /// 0, or 1 + the index of the row's [`Extra`].
    extra: u32,
}

/// What few rows have.
#[derive(Debug, Clone, Default)]
struct Extra {
    processes: Vec<Process>,
    tcp_info: Option<Box<TcpInfo>>,
    ftp: Option<Box<FtpLabel>>,
    expires_ms: Option<u64>,
}

/// The listed rows (not the closed ones) that a refresh showed, packed, in
/// the order it showed them.
#[derive(Debug, Default)]
pub struct Before {
    /// The refresh's parts without their sockets: what a row takes from
    /// its part (namespace, port range, FTP sessions).
    parts: Vec<Part>,
    rows: Vec<Packed>,
    shapes: Vec<Shape>,
    v6: Vec<Ipv6Addr>,
    extras: Vec<Extra>,
    /// The rows' indices in the order of their ids (and then their own):
    /// what [`Before::find`] searches.
    order: Vec<u32>,
    /// The shape of the row packed last.
    last_shape: Option<u32>,
}

impl Before {
    /// Packs the rows of `parts` that the options show and that are listed,
    /// then lets the parts' sockets go.
    pub fn of(cfg: &Config, parts: Vec<Part>) -> Before {
        let mut before = Before::default();
        let mut shapes: HashMap<Shape, u32> = HashMap::new();
        let mut v6: HashMap<Ipv6Addr, u32> = HashMap::new();
        let n = shown(cfg, &parts).filter(|(_, r)| !r.socket.closed).count();
        before.rows.reserve_exact(n);
        let at = |parts: &[Part], part: &Part| {
            parts
                .iter()
                .position(|p| std::ptr::eq(p, part))
                .unwrap_or_default() as u32
        };
        let mut last_part = (std::ptr::null::<Part>(), 0u32);
        for (part, row) in shown(cfg, &parts) {
            if row.socket.closed {
                continue;
            }
            if !std::ptr::eq(last_part.0, part) {
                last_part = (part, at(&parts, part));
            }
            let packed = before.pack(last_part.1, row, &mut shapes, &mut v6);
            before.rows.push(packed);
        }
        before.parts = parts
            .into_iter()
            .map(|p| Part {
                sockets: Vec::new(),
                labels: Vec::new(),
                conntrack: None,
                selected: None,
                ..p
            })
            .collect();
        before.shapes.shrink_to_fit();
        before.extras.shrink_to_fit();
        before.v6.shrink_to_fit();
        // sorted by each row's word, computed once (a comparison that
        // built two ids took a third of the packing at 200,000 rows)
        let mut keyed: Vec<(u128, u32)> = (0..before.rows.len())
            .map(|i| (before.word(i), i as u32))
            .collect();
        keyed.sort_unstable_by(|&(wa, a), &(wb, b)| {
            wa.cmp(&wb).then_with(|| {
                let (a, b) = (a as usize, b as usize);
                (before.id(a), a).cmp(&(before.id(b), b))
            })
        });
        before.order = keyed.into_iter().map(|(_, i)| i).collect();
        before
    }

    fn pack(
        &mut self,
        part: u32,
        row: Row<'_>,
        shapes: &mut HashMap<Shape, u32>,
        v6: &mut HashMap<Ipv6Addr, u32>,
    ) -> Packed {
        let (s, l) = (row.socket, row.labels);
        let mut addr = |a: IpAddr| match a {
            IpAddr::V4(a) => (u32::from(a), false),
            IpAddr::V6(a) => (
                *v6.entry(a).or_insert_with(|| {
                    self.v6.push(a);
                    self.v6.len() as u32 - 1
                }),
                true,
            ),
        };
        let (local, local_v6) = addr(s.local.addr);
        let remote = s.remote.map(|r| (addr(r.addr), r.port));
        let shape = Shape {
            part,
            proto: s.proto,
            family: s.family,
            state: s.state,
            uid: s.uid,
            backlog: s.backlog,
            timer: s.timer.kind,
            retransmits: s.timer.retransmits,
            v6only: s.v6only,
            cookie: s.cookie.is_some(),
            local_v6,
            remote: remote.map(|((_, v6), _)| v6),
            local_class: l.local_class,
            local_listening: l.local_listening,
            remote_class: l.remote_class,
            direction: l.direction.clone(),
        };
        // rows in a row often share theirs: no hashing then
        let shape = match self.shapes.last() {
            Some(last) if *last == shape => self.shapes.len() as u32 - 1,
            _ => match self.last_shape {
                Some(i) if self.shapes[i as usize] == shape => i,
                _ => *shapes.entry(shape).or_insert_with_key(|shape| {
                    self.shapes.push(shape.clone());
                    self.shapes.len() as u32 - 1
                }),
            },
        };
        self.last_shape = Some(shape);
        let expires_ms = u32::try_from(s.timer.expires_ms).ok();
        let extra = Extra {
            processes: s.processes.clone(),
            tcp_info: s.tcp_info.clone(),
            ftp: l.ftp.clone(),
            expires_ms: expires_ms.is_none().then_some(s.timer.expires_ms),
        };
        let extra = if extra.processes.is_empty()
            && extra.tcp_info.is_none()
            && extra.ftp.is_none()
            && extra.expires_ms.is_none()
        {
            0
        } else {
            self.extras.push(extra);
            self.extras.len() as u32
        };
        Packed {
            cookie: s.cookie.unwrap_or_default(),
            inode: s.inode,
            local,
            remote: remote.map_or(0, |((a, _), _)| a),
            local_port: s.local.port,
            remote_port: remote.map_or(0, |(_, port)| port),
            recv_q: s.recv_q,
            send_q: s.send_q,
            expires_ms: expires_ms.unwrap_or_default(),
            shape,
            extra,
        }
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row of the refresh before that `id` is (the first, if two were).
    pub fn find(&self, id: &Id) -> Option<usize> {
        let word = id.word();
        let at = self.order.partition_point(|&i| {
            let i = i as usize;
            let w = self.word(i);
            w < word || (w == word && self.id(i) < *id)
        });
        let i = *self.order.get(at)? as usize;
        (self.id(i) == *id).then_some(i)
    }

    /// As [`Before::find`], trying first the row after `last`, the row
    /// found before: a refresh lists most rows in the order the one
    /// before did (the kernel walks the same hash table), so that most
    /// rows are found at once.
    pub fn find_after(&self, id: &Id, last: Option<usize>) -> Option<usize> {
        let next = last.map_or(0, |i| i + 1);
        if next < self.rows.len() && self.id(next) == *id {
            return Some(next);
        }
        self.find(id)
    }

    /// Row `i`'s [`Id::word`], without building its id.
    fn word(&self, i: usize) -> u128 {
        let row = &self.rows[i];
        let shape = &self.shapes[row.shape as usize];
        let netns = self.parts[shape.part as usize].inode;
        let cookie = if shape.cookie { row.cookie } else { u64::MAX };
        (u128::from(netns) << 64) | u128::from(cookie)
    }

    fn addr(&self, a: u32, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(self.v6[a as usize])
        } else {
            IpAddr::V4(Ipv4Addr::from(a))
        }
    }

    fn ends(&self, row: &Packed, shape: &Shape) -> (Endpoint, Option<Endpoint>) {
        let local = Endpoint::new(self.addr(row.local, shape.local_v6), row.local_port);
        let remote = shape
            .remote
            .map(|v6| Endpoint::new(self.addr(row.remote, v6), row.remote_port));
        (local, remote)
    }

    /// Row `i`'s id, as [`Id::of`] its socket.
    pub fn id(&self, i: usize) -> Id {
        let row = &self.rows[i];
        let shape = &self.shapes[row.shape as usize];
        let netns = self.parts[shape.part as usize].inode;
        if shape.cookie {
            return Id::Cookie(netns, row.cookie);
        }
        let (local, remote) = self.ends(row, shape);
        Id::Ends(
            netns,
            Ends {
                proto: shape.proto,
                family: shape.family,
                local: (local.addr, local.port),
                remote: remote.map(|r| (r.addr, r.port)),
                inode: row.inode,
            },
        )
    }

    pub fn vitals(&self, i: usize) -> Vitals {
        let row = &self.rows[i];
        Vitals {
            state: self.shapes[row.shape as usize].state,
            recv_q: row.recv_q,
            send_q: row.send_q,
        }
    }

    /// Row `i` whole again, as it was listed, with its part (whose
    /// sockets are gone: the row is not among them).
    pub fn row(&self, i: usize) -> (&Part, Socket, Labels) {
        let row = &self.rows[i];
        let shape = &self.shapes[row.shape as usize];
        let extra = row.extra.checked_sub(1).map(|e| &self.extras[e as usize]);
        let (local, remote) = self.ends(row, shape);
        let mut s = Socket::new(shape.proto, local, remote);
        s.family = shape.family;
        s.state = shape.state;
        s.recv_q = row.recv_q;
        s.send_q = row.send_q;
        s.backlog = shape.backlog;
        s.uid = shape.uid;
        s.inode = row.inode;
        s.cookie = shape.cookie.then_some(row.cookie);
        s.timer = Timer {
            kind: shape.timer,
            expires_ms: extra
                .and_then(|e| e.expires_ms)
                .unwrap_or(u64::from(row.expires_ms)),
            retransmits: shape.retransmits,
        };
        s.v6only = shape.v6only;
        if let Some(e) = extra {
            s.processes = e.processes.clone();
            s.tcp_info = e.tcp_info.clone();
        }
        let labels = Labels {
            local_class: shape.local_class,
            local_listening: shape.local_listening,
            remote_class: shape.remote_class,
            direction: shape.direction.clone(),
            ftp: extra.and_then(|e| e.ftp.clone()),
        };
        (&self.parts[shape.part as usize], s, labels)
    }

    /// The bytes it holds, roughly: for tests and `-v`.
    pub fn bytes(&self) -> usize {
        use std::mem::size_of;
        self.rows.capacity() * size_of::<Packed>()
            + self.order.capacity() * size_of::<u32>()
            + self.shapes.capacity() * size_of::<Shape>()
            + self.v6.capacity() * size_of::<Ipv6Addr>()
            + self.extras.capacity() * size_of::<Extra>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::direction::Confidence;
    use crate::classify::ftp::{Mode, Role, Side};

    fn cfg(args: &[&str]) -> Config {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from(args);
        Config::new(&cli, &Default::default(), |_| None).unwrap()
    }

    #[test]
    fn a_packed_row_comes_back_as_it_was() {
        let cfg = cfg(&["sockwho", "-tuan"]);
        let mut with_all = Socket::tcp("[2001:db8::1]:443", Some("[2001:db8::2]:50000")).cookie(7);
        with_all.recv_q = 3;
        with_all.send_q = 4;
        with_all.uid = 1000;
        with_all.inode = 1 << 40;
        with_all.v6only = Some(true);
        with_all.timer = Timer {
            kind: TimerKind::Keepalive,
            expires_ms: u64::MAX - 1,
            retransmits: 2,
        };
        with_all.processes = vec![Process {
            pid: 42,
            name: "nginx".into(),
            program: None,
        }];
        with_all.tcp_info = Some(Box::new(TcpInfo {
            rtt_us: 5,
            ..Default::default()
        }));
        let mut listener = Socket::tcp("0.0.0.0:21", None);
        listener.backlog = Some(128);
        let plain = Socket::tcp("10.0.0.1:21", Some("10.0.0.2:40000")).cookie(8);
        let udp = Socket::udp("127.0.0.1:53", None);
        let sockets = vec![with_all, listener, plain, udp];
        let mut part = Part::classified(sockets.clone(), None);
        part.inode = 5;
        part.labels[2].ftp = Some(Box::new(FtpLabel {
            session: 1,
            role: Role::Control,
            side: Side::Server,
            mode: Some(Mode::Passive),
            confidence: Confidence::High,
            evidence: Vec::new(),
            word: None,
        }));
        let labels = part.labels.clone();
        let before = Before::of(&cfg, vec![part]);
        assert_eq!(before.len(), 4);
        for (i, (s, l)) in sockets.iter().zip(&labels).enumerate() {
            let (p, socket, got) = before.row(i);
            assert_eq!(p.inode, 5);
            assert_eq!(format!("{socket:?}"), format!("{s:?}"), "row {i}");
            assert_eq!(&got, l, "row {i}");
            assert_eq!(before.id(i), Id::with(5, s));
            assert_eq!(before.find(&Id::with(5, s)), Some(i));
            for last in [None, Some(0), Some(i), Some(3)] {
                assert_eq!(before.find_after(&Id::with(5, s), last), Some(i));
            }
            assert_eq!(before.vitals(i), Vitals::of(s));
        }
        assert_eq!(before.find(&Id::Cookie(5, 9)), None);
        assert_eq!(before.find(&Id::Cookie(0, 7)), None, "another namespace");
        // the sockets are gone; what many share is kept once
        assert!(before.parts[0].sockets.is_empty());
        assert_eq!(std::mem::size_of::<Packed>(), 48);
    }

    #[test]
    fn shapes_are_shared() {
        let cfg = cfg(&["sockwho", "-tan"]);
        let sockets: Vec<Socket> = (0..1000u32)
            .map(|n| {
                Socket::tcp(
                    &format!("127.0.0.1:{}", 10000 + n),
                    Some(&format!("127.0.0.2:{}", 40000 + n)),
                )
                .cookie(u64::from(n))
            })
            .collect();
        let before = Before::of(&cfg, vec![Part::classified(sockets, None)]);
        assert_eq!(before.len(), 1000);
        assert!(before.shapes.len() <= 2, "{}", before.shapes.len());
        assert!(before.extras.is_empty());
        assert!(before.bytes() <= 1000 * 52 + 2 * std::mem::size_of::<Shape>());
    }
}
