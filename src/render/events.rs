//! JSON Lines events across refreshes (`--format jsonl`): `added`,
//! `removed` and `changed` (state or queues) for each socket, keyed by the
//! kernel's cookie, `closed` for a socket that opened and closed between
//! two refreshes (seen only as the kernel destroyed it), then a `tick` with
//! the counts. A `removed` or `closed` event carries the time the kernel
//! destroyed the socket where its event said it. Without `-c` it is one
//! refresh: every socket is `added`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::SystemTime;

use serde_json::json;

use super::json::socket_of;
use super::time::timestamp;
use crate::classify::Row;
use crate::collect::events::{Departures, refused};
use crate::config::Config;
use crate::model::State;
use crate::view::{Part, shown, shown_at};

/// What identifies a socket from one refresh to the next: the kernel's
/// cookie where there is one (netlink; TIME_WAIT sockets have one but no
/// inode), else its ends and inode (/proc), within its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Cookie(u64, u64),
    Ends(u64, String),
}

pub fn key_of(part: &Part, row: Row<'_>) -> Key {
    let s = &row.socket;
    match s.cookie {
        Some(c) => Key::Cookie(part.inode, c),
        None => Key::Ends(
            part.inode,
            format!(
                "{:?} {:?} {:?} {:?} {}",
                s.proto, s.local, s.remote, s.family, s.inode
            ),
        ),
    }
}

/// What a refresh compares: the state and the queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vitals {
    pub state: State,
    pub recv_q: u32,
    pub send_q: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added(usize),
    Changed(usize),
    /// An index into the previous refresh.
    Removed(usize),
}

/// The changes from `before` to `now`, in a stable order: added and changed
/// in the order of `now`, then removed in the order of `before`. One map,
/// of `before`'s keys, and a mark per socket of `before`.
pub fn diff(before: &[(Key, Vitals)], now: &[(Key, Vitals)]) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut differ = Differ::new(before.iter().map(|(k, _)| k.clone()));
    for (i, (k, v)) in now.iter().enumerate() {
        match differ.find(k) {
            None => changes.push(Change::Added(i)),
            Some(o) if before[o].1 != *v => changes.push(Change::Changed(i)),
            Some(_) => {}
        }
    }
    changes.extend(differ.gone().map(Change::Removed));
    changes
}

/// Matches the sockets of a refresh with those of the one before, by key:
/// cookies (netlink) in a map of plain numbers, ends (/proc) in one of keys.
struct Differ {
    cookies: HashMap<(u64, u64), u32>,
    ends: HashMap<Key, u32>,
    seen: Vec<bool>,
}

impl Differ {
    fn new(before: impl ExactSizeIterator<Item = Key>) -> Differ {
        let n = before.len();
        let mut differ = Differ {
            cookies: HashMap::with_capacity(n),
            ends: HashMap::new(),
            seen: vec![false; n],
        };
        for (i, key) in before.enumerate() {
            let i = i as u32;
            match key {
                Key::Cookie(inode, cookie) => {
                    differ.cookies.entry((inode, cookie)).or_insert(i);
                }
                key => {
                    differ.ends.entry(key).or_insert(i);
                }
            }
        }
        differ
    }

    /// The socket of the refresh before with `key`, marked as still there.
    fn find(&mut self, key: &Key) -> Option<usize> {
        let i = match key {
            Key::Cookie(inode, cookie) => *self.cookies.get(&(*inode, *cookie))?,
            key => *self.ends.get(key)?,
        } as usize;
        self.seen[i] = true;
        Some(i)
    }

    /// The sockets of the refresh before not found again, in their order.
    fn gone(&self) -> impl Iterator<Item = usize> + '_ {
        self.seen
            .iter()
            .enumerate()
            .filter(|(_, seen)| !**seen)
            .map(|(i, _)| i)
    }
}

fn vitals(s: &crate::model::Socket) -> Vitals {
    Vitals {
        state: s.state,
        recv_q: s.recv_q,
        send_q: s.send_q,
    }
}

/// JSON Lines events across refreshes.
///
/// What is kept from one refresh to the next is the refresh's parts
/// themselves, moved in (`write_at` takes them): a `removed` event writes
/// its socket as last seen from them, so no socket is written as JSON but
/// those with an event, and nothing is kept per socket beside what the
/// pipeline built (one JSON text per socket cost 2.5 times the parts, and
/// writing them all each refresh most of its time).
#[derive(Debug, Default)]
pub struct Events {
    before: Vec<Part>,
}

/// Writes `{"event": EVENT, "time": TIME, "socket": SOCKET}` and a newline.
fn write_event(
    out: &mut dyn Write,
    event: &str,
    time: &str,
    socket: &[u8],
    refused: bool,
) -> io::Result<()> {
    out.write_all(b"{\"event\":")?;
    super::escape::write_json(&mut *out, event)?;
    out.write_all(b",\"time\":")?;
    super::escape::write_json(&mut *out, time)?;
    out.write_all(b",\"socket\":")?;
    out.write_all(socket)?;
    if refused {
        out.write_all(b",\"refused\":true")?;
    }
    out.write_all(b"}\n")
}

/// The socket's JSON (written by `escape::write_json`) into `buf`.
fn socket_json<'b>(
    cfg: &Config,
    part: &Part,
    row: Row<'_>,
    buf: &'b mut Vec<u8>,
) -> io::Result<&'b [u8]> {
    buf.clear();
    super::escape::write_json(&mut *buf, &socket_of(cfg, part, row))?;
    Ok(buf)
}

impl Events {
    /// One refresh on its own (every socket is `added`) and a tick.
    pub fn write(&mut self, cfg: &Config, parts: &[Part], out: &mut dyn Write) -> io::Result<()> {
        let time = timestamp(SystemTime::now());
        write_diff(cfg, &[], parts, &Departures::new(), &time, out)
    }

    /// One refresh taken at `time`, against the one before; `departures`
    /// dates the sockets that went away (`Pipeline::departures`). The parts
    /// are kept for the next refresh.
    pub fn write_at(
        &mut self,
        cfg: &Config,
        parts: Vec<Part>,
        departures: &Departures,
        time: &str,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let written = write_diff(cfg, &self.before, &parts, departures, time, out);
        self.before = parts;
        written
    }
}

/// The events from `before` to `parts` (added and changed in the order of
/// `parts`, removed in the order of `before`, then the closed ones), and a
/// tick.
fn write_diff(
    cfg: &Config,
    before: &[Part],
    parts: &[Part],
    departures: &Departures,
    time: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    // the sockets the refresh before listed (closed ones were said then),
    // by part and index: a tenth of the memory of their rows
    let listed_before = || {
        shown_at(cfg, before)
            .filter(|(_, _, _, r)| !r.socket.closed)
            .map(|(p, i, _, _)| (p as u32, i as u32))
    };
    let mut old = Vec::with_capacity(listed_before().count());
    old.extend(listed_before());
    let row_of = |(p, i): (u32, u32)| {
        let part = &before[p as usize];
        (part, part.row(i as usize))
    };
    let mut differ = Differ::new(old.iter().map(|&at| {
        let (part, row) = row_of(at);
        key_of(part, row)
    }));
    let destroyed = |key: &Key| match key {
        Key::Cookie(inode, cookie) => departures.get(&(*inode, *cookie)).map(|&t| timestamp(t)),
        Key::Ends(..) => None,
    };
    let mut buf = Vec::with_capacity(1024);
    let (mut listed, mut added, mut changed, mut removed) = (0, 0, 0, 0);
    let mut closed = Vec::new();
    for (part, row) in shown(cfg, parts) {
        if row.socket.closed {
            // reported once, now: never in the refresh's list
            closed.push((part, row));
            continue;
        }
        listed += 1;
        let event = match differ.find(&key_of(part, row)) {
            None => {
                added += 1;
                "added"
            }
            Some(i) if vitals(row_of(old[i]).1.socket) != vitals(row.socket) => {
                changed += 1;
                "changed"
            }
            Some(_) => continue,
        };
        write_event(
            out,
            event,
            time,
            socket_json(cfg, part, row, &mut buf)?,
            false,
        )?;
    }
    for i in differ.gone() {
        removed += 1;
        let (part, row) = row_of(old[i]);
        let at = destroyed(&key_of(part, row));
        let socket = socket_json(cfg, part, row, &mut buf)?;
        write_event(out, "removed", at.as_deref().unwrap_or(time), socket, false)?;
    }
    for &(part, row) in &closed {
        let at = destroyed(&key_of(part, row));
        let socket = socket_json(cfg, part, row, &mut buf)?;
        let time = at.as_deref().unwrap_or(time);
        write_event(out, "closed", time, socket, refused(row.socket))?;
    }
    let tick = json!({"event": "tick", "time": time, "sockets": listed,
        "added": added, "changed": changed, "removed": removed, "closed": closed.len()});
    super::escape::write_json(&mut *out, &tick)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Socket;
    use serde_json::Value;
    use std::time::Duration;

    fn part(sockets: Vec<Socket>) -> Part {
        Part::classified(sockets, None)
    }

    fn closed(s: Socket) -> Socket {
        let mut s = s.state(State::Close);
        s.closed = true;
        s
    }

    fn lines(events: &mut Events, cfg: &Config, p: Part, d: &Departures) -> Vec<Value> {
        let mut out = Vec::new();
        events
            .write_at(cfg, vec![p], d, "2026-01-01T00:00:10.000Z", &mut out)
            .unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn closed_sockets_are_said_once_and_removed_ones_at_their_destroy() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from(["sockwho", "-tan", "--format", "jsonl"]);
        let cfg = Config::new(&cli, &Default::default(), |_| None).unwrap();
        let listener = Socket::tcp("10.0.0.1:80", None).cookie(1);
        let listed = Socket::tcp("10.0.0.1:80", Some("10.0.0.2:40000")).cookie(2);
        let mut events = Events::default();
        let first = lines(
            &mut events,
            &cfg,
            part(vec![listener.clone(), listed]),
            &Departures::new(),
        );
        assert_eq!(first.len(), 3);
        // the listed one is destroyed; one opened and closed unseen, with
        // its tcp_info; a connect was refused
        let mut unseen = closed(Socket::tcp("10.0.0.1:80", Some("10.0.0.2:40001")).cookie(3));
        unseen.tcp_info = Some(Box::new(crate::model::TcpInfo {
            bytes_acked: Some(8),
            bytes_received: Some(101),
            ..Default::default()
        }));
        let refused = closed(Socket::tcp("0.0.0.0:40002", Some("10.0.0.9:0")).cookie(4));
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_605_000 + s);
        let departures = Departures::from([((0, 2), at(1)), ((0, 3), at(2)), ((0, 4), at(3))]);
        let second = lines(
            &mut events,
            &cfg,
            part(vec![listener.clone(), unseen, refused]),
            &departures,
        );
        let kinds: Vec<&str> = second
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["removed", "closed", "closed", "tick"]);
        assert_eq!(second[0]["time"], "2026-01-01T00:00:05.001Z");
        assert_eq!(second[0]["socket"]["cookie"], 2);
        assert_eq!(second[1]["time"], "2026-01-01T00:00:05.002Z");
        let info = &second[1]["socket"]["tcp_info"];
        assert_eq!(
            (&info["bytes_acked"], &info["bytes_received"]),
            (&8.into(), &101.into())
        );
        // the rest of tcp_info as well; what the kernel did not send is null
        assert_eq!(info["rtt_us"], 0);
        assert_eq!(info["delivery_rate_bps"], Value::Null);
        assert_eq!(second[1]["socket"]["uid"], Value::Null, "not sent");
        assert_eq!(second[1].get("refused"), None);
        // a refused connect: no port is made up
        assert_eq!(second[2]["refused"], true);
        assert_eq!(second[2]["socket"]["remote"]["port"], Value::Null);
        assert_eq!(second[2]["socket"]["remote"]["class"], Value::Null);
        assert_eq!(second[2]["socket"]["remote"]["addr"], "10.0.0.9");
        // closed sockets are apart from the count of those listed
        let tick = &second[3];
        assert_eq!(
            (
                &tick["sockets"],
                &tick["added"],
                &tick["removed"],
                &tick["closed"]
            ),
            (&1.into(), &0.into(), &1.into(), &2.into())
        );
        assert_eq!(tick["time"], "2026-01-01T00:00:10.000Z");
        // and never said again
        let third = lines(&mut events, &cfg, part(vec![listener]), &Departures::new());
        assert_eq!(third.len(), 1, "{third:?}");
        assert_eq!(third[0]["closed"], 0);
        // a socket that went away without an event: the refresh's time
        let listed = Socket::tcp("10.0.0.1:80", Some("10.0.0.2:40005")).cookie(5);
        let l = Socket::tcp("10.0.0.1:80", None).cookie(1);
        lines(
            &mut events,
            &cfg,
            part(vec![l.clone(), listed]),
            &Departures::new(),
        );
        let gone = lines(&mut events, &cfg, part(vec![l]), &Departures::new());
        assert_eq!(gone[0]["event"], "removed");
        assert_eq!(gone[0]["time"], "2026-01-01T00:00:10.000Z");
        // sockets without the field leave tcp_info out
        assert_eq!(first[0]["socket"].get("tcp_info"), None);
        assert_eq!(first[1]["socket"]["uid"], 0);
    }

    /// Watch mode with -i: tcp_info moves at every refresh (rtt, bytes),
    /// but `changed` is about the state and the queues, and stays so.
    #[test]
    fn tcp_info_alone_changes_nothing() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from(["sockwho", "-tani", "--format", "jsonl"]);
        let cfg = Config::new(&cli, &Default::default(), |_| None).unwrap();
        assert!(cfg.tcp_info);
        let with = |rtt: u32, acked: u64, recv_q: u32| {
            let mut s = Socket::tcp("10.0.0.1:80", Some("10.0.0.2:40000")).cookie(2);
            s.recv_q = recv_q;
            s.tcp_info = Some(Box::new(crate::model::TcpInfo {
                rtt_us: rtt,
                bytes_acked: Some(acked),
                ..Default::default()
            }));
            s
        };
        let mut events = Events::default();
        let first = lines(
            &mut events,
            &cfg,
            part(vec![with(30, 1, 0)]),
            &Departures::new(),
        );
        assert_eq!(first[0]["event"], "added");
        assert_eq!(first[0]["socket"]["tcp_info"]["rtt_us"], 30);
        let second = lines(
            &mut events,
            &cfg,
            part(vec![with(95, 5000, 0)]),
            &Departures::new(),
        );
        assert_eq!(second.len(), 1, "only the tick: {second:?}");
        assert_eq!(second[0]["changed"], 0);
        // a queue that moves is a change, and says the tcp_info of now
        let third = lines(
            &mut events,
            &cfg,
            part(vec![with(40, 9000, 7)]),
            &Departures::new(),
        );
        assert_eq!(third[0]["event"], "changed");
        assert_eq!(third[0]["socket"]["tcp_info"]["bytes_acked"], 9000);
        // a socket without tcp_info says null with -i (TIME_WAIT, UDP)
        let udp = Socket::udp("10.0.0.1:53", None).cookie(9);
        let fourth = lines(&mut events, &cfg, part(vec![udp]), &Departures::new());
        let added = fourth.iter().find(|e| e["event"] == "added").unwrap();
        assert_eq!(added["socket"].get("tcp_info"), Some(&Value::Null));
    }

    fn v(state: State, q: u32) -> Vitals {
        Vitals {
            state,
            recv_q: q,
            send_q: 0,
        }
    }

    #[test]
    fn diff_finds_added_changed_and_removed_once() {
        let k = |n: u64| Key::Cookie(0, n);
        let before = vec![
            (k(1), v(State::Established, 0)),
            (k(2), v(State::Established, 0)),
            (k(3), v(State::SynSent, 0)),
        ];
        let now = vec![
            (k(1), v(State::Established, 0)),
            (k(3), v(State::Established, 0)),
            (k(4), v(State::Listen, 0)),
        ];
        assert_eq!(
            diff(&before, &now),
            vec![Change::Changed(1), Change::Added(2), Change::Removed(1)]
        );
        // a queue change is a change; nothing is a change twice
        let later = vec![
            (k(1), v(State::Established, 5)),
            (k(3), v(State::Established, 0)),
            (k(4), v(State::Listen, 0)),
        ];
        assert_eq!(diff(&now, &later), vec![Change::Changed(0)]);
        assert_eq!(diff(&later, &later), vec![]);
        // the first refresh: everything is added
        assert_eq!(
            diff(&[], &now),
            vec![Change::Added(0), Change::Added(1), Change::Added(2)]
        );
    }
}
