//! JSON Lines events across refreshes (`--format jsonl`): `added`,
//! `removed` and `changed` (state or queues) for each socket, keyed by the
//! kernel's cookie, then a `tick` with the counts. Without `-c` it is one
//! refresh: every socket is `added`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::SystemTime;

use serde_json::{Value, json};

use super::json::socket_of;
use super::time::timestamp;
use crate::classify::Row;
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
        self.write_at(cfg, parts, &timestamp(SystemTime::now()), out)
    }

    pub fn write_at(
        &mut self,
        cfg: &Config,
        parts: &[Part],
        time: &str,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let mut now = Vec::new();
        let mut sockets = Vec::new();
        for (part, row) in shown(cfg, parts) {
            let s = &row.socket;
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
        let (mut added, mut changed, mut removed) = (0, 0, 0);
        for change in diff(&self.before, &now) {
            let (event, socket) = match change {
                Change::Added(i) => {
                    added += 1;
                    ("added", &sockets[i])
                }
                Change::Changed(i) => {
                    changed += 1;
                    ("changed", &sockets[i])
                }
                Change::Removed(i) => {
                    removed += 1;
                    ("removed", &self.sockets[i])
                }
            };
            let line = json!({"event": event, "time": time, "socket": socket});
            super::escape::write_json(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
        let tick = json!({"event": "tick", "time": time, "sockets": now.len(),
            "added": added, "changed": changed, "removed": removed});
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
