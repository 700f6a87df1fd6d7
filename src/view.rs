//! What the renderers are given: each namespace's sockets with what sockwho
//! says of them ([`Part`]), and the rows the options show ([`shown`]). Plain
//! data, filled by the pipeline; renderers read it and never collect.

use crate::classify::ftp::{Session, crossing::Crossing};
use crate::classify::{self, Row};
use crate::config::Config;
use crate::model::{self, Conntrack, NetnsId, PortRange, Source};

/// One network namespace's sockets, classified: all of them, whatever the
/// options show, because FTP sessions and the view need listeners too.
#[derive(Debug)]
pub struct Part {
    /// The namespace's inode (0 for the one sockwho runs in, unlabelled).
    pub inode: u64,
    /// `None` when only the namespace sockwho runs in is looked at.
    pub netns: Option<NetnsId>,
    pub port_range: PortRange,
    pub source: Source,
    /// Every socket of the namespace, and what sockwho says of each (same order).
    pub sockets: Vec<model::Socket>,
    pub labels: Vec<classify::Labels>,
    pub sessions: Vec<Session>,
    /// FTP sessions this host forwards, from conntrack alone.
    pub crossings: Vec<Crossing>,
    /// `None` where it was not read (no FTP in use); `Err` says why not.
    pub conntrack: Option<Result<Conntrack, String>>,
    /// With an ss filter expression: the sockets it selected (by index;
    /// those past the end, such as closed ones, are not judged by it).
    pub selected: Option<Vec<bool>>,
}

impl Part {
    /// The sockets of one namespace, classified as `Pipeline::look` does with
    /// nothing remembered and no conntrack: for tests, benches and fuzzing.
    pub fn classified(sockets: Vec<model::Socket>, netns: Option<NetnsId>) -> Part {
        let snapshot = model::Snapshot {
            sockets,
            ..model::Snapshot::default()
        };
        let classify::Classified {
            labels,
            sessions,
            crossings,
        } = classify::classify(&snapshot, Default::default());
        Part {
            inode: netns.as_ref().map_or(0, |n| n.inode),
            netns,
            port_range: snapshot.port_range,
            source: snapshot.source,
            sockets: snapshot.sockets,
            labels,
            sessions,
            crossings,
            conntrack: None,
            selected: None,
        }
    }

    /// The sockets with their labels, in dump order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.sockets
            .iter()
            .zip(&self.labels)
            .map(|(socket, labels)| Row { socket, labels })
    }

    pub fn row(&self, i: usize) -> Row<'_> {
        Row {
            socket: &self.sockets[i],
            labels: &self.labels[i],
        }
    }
}

/// The rows the options show: their states, and every filter.
pub fn shown<'a>(
    cfg: &'a Config,
    parts: &'a [Part],
) -> impl Iterator<Item = (&'a Part, Row<'a>)> + 'a {
    shown_at(cfg, parts).map(|(_, _, p, r)| (p, r))
}

/// [`shown`], with each row's part and socket index (`parts[p].row(i)`).
pub fn shown_at<'a>(
    cfg: &'a Config,
    parts: &'a [Part],
) -> impl Iterator<Item = (usize, usize, &'a Part, Row<'a>)> + 'a {
    parts
        .iter()
        .enumerate()
        .flat_map(|(at, p)| {
            p.rows()
                .enumerate()
                .filter(move |(i, _)| {
                    p.selected
                        .as_ref()
                        .is_none_or(|s| s.get(*i).copied().unwrap_or(true))
                })
                .map(move |(i, r)| (at, i, p, r))
        })
        .filter(|(_, _, _, r)| {
            let s = &r.socket;
            cfg.shows(s.proto, s.state)
                && cfg.filter.matches_socket(s)
                && cfg.filter.matches_labels(s, r.labels)
        })
}

/// Leaves out the sockets seen only as the kernel destroyed them: they are
/// appended after each part's dumped sockets, so the rest keep their
/// indices; FTP sessions forget them, and those left with no socket go.
pub fn listed_only(parts: &mut [Part]) {
    for part in parts {
        let Some(first) = part.sockets.iter().position(|s| s.closed) else {
            continue;
        };
        part.sockets.truncate(first);
        part.labels.truncate(first);
        for session in &mut part.sessions {
            session.members.retain(|&i| i < first);
        }
        part.sessions.retain(|s| !s.members.is_empty());
    }
}
