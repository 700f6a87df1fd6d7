//! JSON Lines events across refreshes (`--format jsonl`): `added`,
//! `removed` and `changed` (state or queues) for each socket, keyed by the
//! kernel's cookie, `closed` for a socket that opened and closed between
//! two refreshes (seen only as the kernel destroyed it), then a `tick` with
//! the counts. A `removed` or `closed` event carries the time the kernel
//! destroyed the socket where its event said it. Without `-c` it is one
//! refresh: every socket is `added`.

use std::io::{self, Write};
use std::time::SystemTime;

use serde_json::json;

use super::before::{Before, Id, Vitals};
use super::json::socket_of;
use super::time::timestamp;
use crate::classify::Row;
use crate::collect::events::{Departures, refused};
use crate::config::Config;
use crate::view::{Part, shown};

/// JSON Lines events across refreshes.
///
/// What is kept from one refresh to the next is the rows it listed, packed
/// ([`Before`]): enough to find each again, tell whether it changed, and
/// write a `removed` event with the socket as last seen. The refresh's
/// parts are let go as soon as they are packed, so that they are not alive
/// while the next refresh is collected (at 200,000 sockets, 35 MiB against
/// 9), and no socket is written as JSON but those with an event.
#[derive(Debug, Default)]
pub struct Events {
    before: Before,
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
        write_diff(
            cfg,
            &Before::default(),
            parts,
            &Departures::new(),
            &time,
            out,
        )
    }

    /// One refresh taken at `time`, against the one before; `departures`
    /// dates the sockets that went away (`Pipeline::departures`). The parts
    /// are packed for the next refresh, and go.
    pub fn write_at(
        &mut self,
        cfg: &Config,
        parts: Vec<Part>,
        departures: &Departures,
        time: &str,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let written = write_diff(cfg, &self.before, &parts, departures, time, out);
        // the old rows go before the new ones are packed
        self.before = Before::default();
        self.before = Before::of(cfg, parts);
        written
    }

    /// What is kept of the refresh before.
    pub fn before(&self) -> &Before {
        &self.before
    }
}

/// The events from `before` to `parts` (added and changed in the order of
/// `parts`, removed in the order of `before`, then the closed ones), and a
/// tick.
fn write_diff(
    cfg: &Config,
    before: &Before,
    parts: &[Part],
    departures: &Departures,
    time: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    // the rows of the refresh before found again: a bit each
    let mut seen = vec![false; before.len()];
    let destroyed = |id: &Id| match id {
        Id::Cookie(inode, cookie) => departures.get(&(*inode, *cookie)).map(|&t| timestamp(t)),
        Id::Ends(..) => None,
    };
    let mut buf = Vec::with_capacity(1024);
    let (mut listed, mut added, mut changed, mut removed) = (0, 0, 0, 0);
    let mut closed = Vec::new();
    let mut last = None;
    for (part, row) in shown(cfg, parts) {
        if row.socket.closed {
            // reported once, now: never in the refresh's list
            closed.push((part, row));
            continue;
        }
        listed += 1;
        let found = before.find_after(&Id::of(part, row.socket), last);
        last = found.or(last);
        if let Some(i) = found {
            seen[i] = true;
        }
        let event = match found {
            None => {
                added += 1;
                "added"
            }
            Some(i) if before.vitals(i) != Vitals::of(row.socket) => {
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
    // in the order the refresh before listed them
    for i in (0..before.len()).filter(|&i| !seen[i]) {
        removed += 1;
        let (part, socket, labels) = before.row(i);
        let row = Row {
            socket: &socket,
            labels: &labels,
        };
        let at = destroyed(&before.id(i));
        let socket = socket_json(cfg, part, row, &mut buf)?;
        write_event(out, "removed", at.as_deref().unwrap_or(time), socket, false)?;
    }
    for &(part, row) in &closed {
        let at = destroyed(&Id::of(part, row.socket));
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
    use crate::model::{Socket, State};
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

    fn kinds(events: &[Value]) -> Vec<(String, Value)> {
        events
            .iter()
            .map(|e| {
                let cookie = e.get("socket").map_or(Value::Null, |s| s["cookie"].clone());
                (e["event"].as_str().unwrap().to_string(), cookie)
            })
            .collect()
    }

    #[test]
    fn added_changed_and_removed_once() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from(["sockwho", "-tan", "--format", "jsonl"]);
        let cfg = Config::new(&cli, &Default::default(), |_| None).unwrap();
        let s = |n: u64, state: State, q: u32| {
            let mut s = Socket::tcp(&format!("10.0.0.1:{}", 40000 + n), Some("10.0.0.2:80"))
                .cookie(n)
                .state(state);
            s.recv_q = q;
            s
        };
        let est = State::Established;
        let mut events = Events::default();
        let none = Departures::new();
        let first = vec![s(1, est, 0), s(2, est, 0), s(3, State::SynSent, 0)];
        lines(&mut events, &cfg, part(first), &none);
        assert_eq!(events.before().len(), 3);
        let now = vec![s(1, est, 0), s(3, est, 0), s(4, State::Listen, 0)];
        let second = lines(&mut events, &cfg, part(now.clone()), &none);
        let e = |k: &str, n: u64| (k.to_string(), Value::from(n));
        let tick = ("tick".to_string(), Value::Null);
        assert_eq!(
            kinds(&second),
            [
                e("changed", 3),
                e("added", 4),
                e("removed", 2),
                tick.clone()
            ]
        );
        // a queue change is a change; nothing is a change twice
        let later = vec![s(1, est, 5), s(3, est, 0), s(4, State::Listen, 0)];
        let third = lines(&mut events, &cfg, part(later.clone()), &none);
        assert_eq!(kinds(&third), [e("changed", 1), tick.clone()]);
        let fourth = lines(&mut events, &cfg, part(later), &none);
        assert_eq!(kinds(&fourth), [tick]);
    }

    /// A `removed` event writes the socket as the refresh before listed
    /// it, from what was packed: the same JSON as its `added` event, for
    /// sockets of every kind (/proc's without cookies among them).
    #[test]
    fn a_removed_socket_is_written_as_it_was_added() {
        use clap::Parser;
        let cli = crate::cli::Cli::parse_from(["sockwho", "-tuanepi", "--format", "jsonl"]);
        let cfg = Config::new(&cli, &Default::default(), |_| None).unwrap();
        let mut a = Socket::tcp("[2001:db8::1]:443", Some("[2001:db8::2]:50000")).cookie(7);
        a.recv_q = 3;
        a.uid = 1000;
        a.inode = 99;
        a.timer = crate::model::Timer {
            kind: crate::model::TimerKind::Keepalive,
            expires_ms: 7200,
            retransmits: 1,
        };
        a.processes = vec![crate::model::Process {
            pid: 42,
            name: "nginx".into(),
            program: Some("nginx".into()),
        }];
        a.tcp_info = Some(Box::new(crate::model::TcpInfo {
            rtt_us: 5,
            ..Default::default()
        }));
        let mut l = Socket::tcp("0.0.0.0:80", None);
        l.backlog = Some(511);
        l.inode = 100;
        let proc_one = Socket::tcp("10.0.0.1:80", Some("10.0.0.3:41000"));
        let udp = Socket::udp("127.0.0.1:53", None);
        let sockets = vec![a, l, proc_one, udp];
        let mut events = Events::default();
        let none = Departures::new();
        let added = lines(&mut events, &cfg, part(sockets), &none);
        let removed = lines(&mut events, &cfg, part(vec![]), &none);
        assert_eq!(added.len(), 5);
        assert_eq!(removed.len(), 5);
        for (a, r) in added.iter().zip(&removed).take(4) {
            assert_eq!(a["event"], "added");
            assert_eq!(r["event"], "removed");
            assert_eq!(a["socket"], r["socket"]);
        }
        assert_eq!(removed[4]["removed"], 4);
        assert!(events.before().is_empty());
    }
}
