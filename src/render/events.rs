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

use serde_json::{Value, json};

use super::json::socket_of;
use super::time::timestamp;
use crate::classify::Row;
use crate::collect::events::{Departures, refused};
use crate::config::Config;
use crate::model::State;
use crate::view::{Part, shown};

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
/// in the order of `now`, then removed in the order of `before`.
pub fn diff(before: &[(Key, Vitals)], now: &[(Key, Vitals)]) -> Vec<Change> {
    let old: HashMap<&Key, &Vitals> = before.iter().map(|(k, v)| (k, v)).collect();
    let new: HashMap<&Key, ()> = now.iter().map(|(k, _)| (k, ())).collect();
    let mut changes = Vec::new();
    for (i, (k, v)) in now.iter().enumerate() {
        match old.get(k) {
            None => changes.push(Change::Added(i)),
            Some(o) if **o != *v => changes.push(Change::Changed(i)),
            Some(_) => {}
        }
    }
    for (i, (k, _)) in before.iter().enumerate() {
        if !new.contains_key(k) {
            changes.push(Change::Removed(i));
        }
    }
    changes
}

/// JSON Lines events across refreshes.
#[derive(Debug, Default)]
pub struct Events {
    before: Vec<(Key, Vitals)>,
    /// The JSON of each socket of the refresh before, for `removed`.
    sockets: Vec<Value>,
}

impl Events {
    /// One refresh: its events and a tick, each on a line of its own.
    pub fn write(&mut self, cfg: &Config, parts: &[Part], out: &mut dyn Write) -> io::Result<()> {
        self.write_at(
            cfg,
            parts,
            &Departures::new(),
            &timestamp(SystemTime::now()),
            out,
        )
    }

    /// One refresh taken at `time`; `departures` dates the sockets that
    /// went away (`Pipeline::departures`).
    pub fn write_at(
        &mut self,
        cfg: &Config,
        parts: &[Part],
        departures: &Departures,
        time: &str,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let mut now = Vec::new();
        let mut sockets = Vec::new();
        let mut closed = Vec::new();
        for (part, row) in shown(cfg, parts) {
            let s = &row.socket;
            if s.closed {
                // reported once, now: never in the refresh's list
                closed.push((part, row));
                continue;
            }
            now.push((
                key_of(part, row),
                Vitals {
                    state: s.state,
                    recv_q: s.recv_q,
                    send_q: s.send_q,
                },
            ));
            sockets.push(serde_json::to_value(socket_of(cfg, part, row)).map_err(io::Error::from)?);
        }
        let destroyed = |key: &Key| match key {
            Key::Cookie(inode, cookie) => departures.get(&(*inode, *cookie)).map(|&t| timestamp(t)),
            Key::Ends(..) => None,
        };
        let (mut added, mut changed, mut removed) = (0, 0, 0);
        for change in diff(&self.before, &now) {
            let (event, socket, at) = match change {
                Change::Added(i) => {
                    added += 1;
                    ("added", &sockets[i], None)
                }
                Change::Changed(i) => {
                    changed += 1;
                    ("changed", &sockets[i], None)
                }
                Change::Removed(i) => {
                    removed += 1;
                    ("removed", &self.sockets[i], destroyed(&self.before[i].0))
                }
            };
            let at = at.as_deref().unwrap_or(time);
            let line = json!({"event": event, "time": at, "socket": socket});
            super::escape::write_json(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
        for &(part, row) in &closed {
            let at = destroyed(&key_of(part, row));
            let socket = socket_of(cfg, part, row);
            let mut line = json!({"event": "closed", "time": at.as_deref().unwrap_or(time),
                "socket": socket});
            if refused(row.socket) {
                line["refused"] = Value::Bool(true);
            }
            super::escape::write_json(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
        let tick = json!({"event": "tick", "time": time, "sockets": now.len(),
            "added": added, "changed": changed, "removed": removed, "closed": closed.len()});
        super::escape::write_json(&mut *out, &tick)?;
        out.write_all(b"\n")?;
        self.before = now;
        self.sockets = sockets;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
