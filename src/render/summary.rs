//! `-s` / `--summary`: counts for people, as `ss -s` gives them, with what
//! only sockwho knows: sockets by protocol and state, listeners,
//! connections by direction and by local port class, FTP sessions and data
//! connections by mode and side. `--format json` writes the same counts as
//! one object (schema below, README's *Summary* section documents it).
//!
//! It also owns [`Tally`], the counts the Prometheus renderer
//! ([`metrics`](super::metrics)) exports as series: both count the rows the
//! options show ([`view::shown`]), so the summary and the metrics agree.
//!
//! Every socket is a listener (TCP `LISTEN`, UDP `UNCONN`) or a connection
//! (every other state): the two add up to the sockets. An FTP session is
//! counted once per side this host is on (a client and a server on one host
//! count twice), from its control connections among the rows shown; its
//! mode is the mode of its data connections or pending listeners, and
//! `unknown` while it has none.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use serde::Serialize;
use serde::ser::SerializeMap;

use super::escape::terminal_safe;
use super::json::JsonNetnsId;
use crate::classify::direction::Direction;
use crate::classify::ftp::{Mode, Role, Side};
use crate::classify::ports::PortClass;
use crate::config::Config;
use crate::model::{Family, NetnsId, Proto, State, wire_enum};
use crate::view::{self, Part};

/// The JSON summary's schema version.
pub const SCHEMA: u32 = 1;

/// The word for a session or data connection whose mode is not known:
/// the same word as an unknown direction, so there is one spelling.
pub const UNKNOWN_MODE: &str = Direction::Unknown.name();

/// A mode's word, or [`UNKNOWN_MODE`].
pub fn mode_name(mode: Option<Mode>) -> &'static str {
    mode.map_or(UNKNOWN_MODE, Mode::name)
}

/// Whether a socket of this protocol and state is a listener: TCP `LISTEN`,
/// or an unconnected UDP socket (`UNCONN`). Every other socket is a
/// connection.
pub fn is_listener(proto: Proto, state: State) -> bool {
    match proto {
        Proto::Tcp => state == State::Listen,
        Proto::Udp => state == State::Close,
    }
}

/// What a socket is counted by: the labels of `sockwho_sockets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketKey {
    pub proto: Proto,
    pub family: Family,
    pub state: State,
    pub direction: Direction,
    pub local_class: PortClass,
}

impl SocketKey {
    /// The order of the output: declaration order of each field's enum.
    fn rank(&self) -> (Proto, Family, State, u8, u8) {
        (
            self.proto,
            self.family,
            self.state,
            self.direction as u8,
            self.local_class as u8,
        )
    }
}

impl Ord for SocketKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for SocketKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

wire_enum! {
    /// Where this host is in an FTP session: an end, or between them.
    pub enum Here {
        Client => "client",
        Server => "server",
        /// It forwards the session (conntrack's flows, no socket here).
        Router => "router",
    }
}

impl From<Side> for Here {
    fn from(side: Side) -> Here {
        match side {
            Side::Client => Here::Client,
            Side::Server => Here::Server,
        }
    }
}

/// What an FTP session or data connection is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FtpKey {
    pub side: Here,
    pub mode: Option<Mode>,
}

impl FtpKey {
    /// Every key, sides first, the unknown mode last: the metrics write
    /// them all, zeros too.
    pub fn all() -> impl Iterator<Item = FtpKey> {
        Here::ALL.into_iter().flat_map(|side| {
            Mode::ALL
                .into_iter()
                .map(Some)
                .chain([None])
                .map(move |mode| FtpKey { side, mode })
        })
    }

    fn rank(&self) -> (u8, u8) {
        (self.side as u8, self.mode.map_or(u8::MAX, |m| m as u8))
    }
}

impl Ord for FtpKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for FtpKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The counts of one namespace (or of the one sockwho runs in).
#[derive(Debug, Default)]
pub struct PartTally<'a> {
    /// `None` unless namespaces are named (`--netns`, `--all-netns`).
    pub netns: Option<&'a NetnsId>,
    pub sockets: BTreeMap<SocketKey, u64>,
    pub sessions: BTreeMap<FtpKey, u64>,
    pub data: BTreeMap<FtpKey, u64>,
}

/// The counts of every namespace looked at, in the order of the parts.
#[derive(Debug, Default)]
pub struct Tally<'a> {
    pub parts: Vec<PartTally<'a>>,
}

impl<'a> Tally<'a> {
    /// Counts the rows the options show.
    pub fn new(cfg: &Config, parts: &'a [Part]) -> Tally<'a> {
        let labelled = cfg.names_namespaces();
        let parts = parts
            .iter()
            .map(|part| {
                let mut t = PartTally {
                    netns: part.netns.as_ref().filter(|_| labelled),
                    ..PartTally::default()
                };
                // (session, side) of the control connections shown
                let mut sessions = HashSet::new();
                for (_, row) in view::shown(cfg, std::slice::from_ref(part)) {
                    let (s, l) = (row.socket, row.labels);
                    let key = SocketKey {
                        proto: s.proto,
                        family: s.family,
                        state: s.state,
                        direction: l.direction.direction,
                        local_class: l.local_class,
                    };
                    *t.sockets.entry(key).or_default() += 1;
                    match l.ftp.as_deref() {
                        Some(f) if f.role == Role::Control => {
                            sessions.insert((f.session, f.side));
                        }
                        Some(f) if f.role == Role::Data => {
                            let key = FtpKey {
                                side: f.side.into(),
                                mode: f.mode,
                            };
                            *t.data.entry(key).or_default() += 1;
                        }
                        _ => {}
                    }
                }
                for (id, side) in sessions {
                    let key = FtpKey {
                        side: side.into(),
                        mode: session_mode(part, id),
                    };
                    *t.sessions.entry(key).or_default() += 1;
                }
                // sessions this host forwards: no socket to filter
                for c in &part.crossings {
                    let others = || c.flows.iter().filter(|f| f.role != Role::Control);
                    let key = FtpKey {
                        side: Here::Router,
                        mode: others().find_map(|f| f.mode),
                    };
                    *t.sessions.entry(key).or_default() += 1;
                    for f in others().filter(|f| f.role == Role::Data) {
                        let key = FtpKey {
                            side: Here::Router,
                            mode: f.mode,
                        };
                        *t.data.entry(key).or_default() += 1;
                    }
                }
                t
            })
            .collect();
        Tally { parts }
    }
}

/// The mode of a session: that of its first data connection or pending
/// listener with one, whatever the filters show.
fn session_mode(part: &Part, id: u32) -> Option<Mode> {
    let session = part.sessions.iter().find(|s| s.id == id)?;
    session
        .members
        .iter()
        .filter_map(|&i| part.labels.get(i)?.ftp.as_deref())
        .filter(|f| f.role != Role::Control)
        .find_map(|f| f.mode)
}

/// Counts by name, in a fixed order; written as a JSON object.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts(Vec<(&'static str, u64)>);

impl Counts {
    /// Every name, zeros too, in this order.
    fn of(names: impl IntoIterator<Item = &'static str>) -> Counts {
        Counts(names.into_iter().map(|n| (n, 0)).collect())
    }

    fn add(&mut self, name: &'static str, n: u64) {
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some((_, count)) => *count += n,
            None => self.0.push((name, n)),
        }
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// `a 1, b 2`; with `nonzero`, only the names counted.
    fn text(&self, nonzero: bool) -> String {
        let items: Vec<String> = self
            .0
            .iter()
            .filter(|(_, n)| !nonzero || *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        items.join(", ")
    }
}

impl Serialize for Counts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, n) in &self.0 {
            map.serialize_entry(k, n)?;
        }
        map.end()
    }
}

#[derive(Debug, Serialize)]
struct ProtoSummary {
    total: u64,
    /// netstat's state names; only the states present, most sockets first.
    by_state: Counts,
}

#[derive(Debug, Serialize)]
struct SocketSummary {
    total: u64,
    by_proto: BTreeMap<&'static str, ProtoSummary>,
    by_family: Counts,
}

#[derive(Debug, Serialize)]
struct ListenerSummary {
    total: u64,
    by_proto: Counts,
}

#[derive(Debug, Serialize)]
struct ConnectionSummary {
    total: u64,
    by_direction: Counts,
    by_local_class: Counts,
}

#[derive(Debug, Serialize)]
struct FtpGroup {
    total: u64,
    by_mode: Counts,
    by_side: Counts,
}

#[derive(Debug, Serialize)]
struct FtpSummary {
    sessions: FtpGroup,
    data_connections: FtpGroup,
}

/// The counts of one namespace, or of all: the JSON object's fields.
#[derive(Debug, Serialize)]
struct Summary {
    sockets: SocketSummary,
    listeners: ListenerSummary,
    connections: ConnectionSummary,
    ftp: FtpSummary,
}

impl Summary {
    fn of<'t>(cfg: &Config, tallies: impl IntoIterator<Item = &'t PartTally<'t>>) -> Summary {
        let protos = || cfg.protos.iter().map(|p| p.name());
        let mut by_proto: BTreeMap<&'static str, (u64, Counts)> =
            protos().map(|p| (p, (0, Counts::default()))).collect();
        let mut by_family = Counts::of(cfg.families.iter().map(|f| f.name()));
        let mut listeners = Counts::of(protos());
        let directions = [Direction::Inbound, Direction::Outbound, Direction::Unknown];
        let mut by_direction = Counts::of(directions.map(Direction::name));
        let mut by_local_class = Counts::of(PortClass::ALL.map(PortClass::name));
        let modes = || Mode::ALL.map(Mode::name).into_iter().chain([UNKNOWN_MODE]);
        let group = |counts: &BTreeMap<FtpKey, u64>| {
            let mut by_mode = Counts::of(modes());
            let mut by_side = Counts::of(Here::ALL.map(Here::name));
            for (k, &n) in counts {
                by_mode.add(mode_name(k.mode), n);
                by_side.add(k.side.name(), n);
            }
            (by_mode, by_side)
        };
        let mut sessions = BTreeMap::new();
        let mut data = BTreeMap::new();
        for t in tallies {
            for (k, &n) in &t.sockets {
                let (total, states) = by_proto.entry(k.proto.name()).or_default();
                *total += n;
                states.add(k.state.name(k.proto), n);
                by_family.add(k.family.name(), n);
                if is_listener(k.proto, k.state) {
                    listeners.add(k.proto.name(), n);
                } else {
                    by_direction.add(k.direction.name(), n);
                    by_local_class.add(k.local_class.name(), n);
                }
            }
            for (k, &n) in &t.sessions {
                *sessions.entry(*k).or_insert(0) += n;
            }
            for (k, &n) in &t.data {
                *data.entry(*k).or_insert(0) += n;
            }
        }
        let ftp_group = |counts: &BTreeMap<FtpKey, u64>| {
            let (by_mode, by_side) = group(counts);
            FtpGroup {
                total: counts.values().sum(),
                by_mode,
                by_side,
            }
        };
        let by_proto: BTreeMap<_, _> = by_proto
            .into_iter()
            .map(|(p, (total, mut states))| {
                // most sockets first; ties in the kernel's order (stable sort)
                states.0.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
                (
                    p,
                    ProtoSummary {
                        total,
                        by_state: states,
                    },
                )
            })
            .collect();
        Summary {
            sockets: SocketSummary {
                total: by_proto.values().map(|p| p.total).sum(),
                by_proto,
                by_family,
            },
            listeners: ListenerSummary {
                total: listeners.total(),
                by_proto: listeners,
            },
            connections: ConnectionSummary {
                total: by_direction.total(),
                by_direction,
                by_local_class,
            },
            ftp: FtpSummary {
                sessions: ftp_group(&sessions),
                data_connections: ftp_group(&data),
            },
        }
    }

    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let s = &self.sockets;
        let protos: Vec<String> = s
            .by_proto
            .iter()
            .map(|(p, c)| format!("{p} {}", c.total))
            .collect();
        writeln!(
            out,
            "Sockets: {} ({}; {})",
            s.total,
            protos.join(", "),
            s.by_family.text(false)
        )?;
        for (p, c) in &s.by_proto {
            if c.total > 0 {
                writeln!(out, "  {p}: {}", c.by_state.text(true))?;
            }
        }
        let l = &self.listeners;
        writeln!(out, "Listeners: {} ({})", l.total, l.by_proto.text(false))?;
        let c = &self.connections;
        writeln!(
            out,
            "Connections: {} ({})",
            c.total,
            c.by_direction.text(false)
        )?;
        writeln!(out, "  by local port: {}", c.by_local_class.text(false))?;
        let group = |g: &FtpGroup| format!("{}; {}", g.by_mode.text(false), g.by_side.text(false));
        let f = &self.ftp;
        writeln!(
            out,
            "FTP sessions: {} ({})",
            f.sessions.total,
            group(&f.sessions)
        )?;
        writeln!(
            out,
            "  data connections: {} ({})",
            f.data_connections.total,
            group(&f.data_connections)
        )
    }
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    schema: u32,
    #[serde(flatten)]
    all: Summary,
    /// With `--netns`/`--all-netns`: each namespace's own counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    namespaces: Option<Vec<JsonNamespace<'a>>>,
}

#[derive(Serialize)]
struct JsonNamespace<'a> {
    netns: JsonNetnsId<'a>,
    #[serde(flatten)]
    counts: Summary,
}

/// Writes the summary of every part: as text, or with `--format json` as
/// one object. With namespaces named, each namespace's counts, then all.
pub fn write(cfg: &Config, parts: &[Part], out: &mut dyn Write) -> io::Result<()> {
    let tally = Tally::new(cfg, parts);
    let all = Summary::of(cfg, &tally.parts);
    let each = || {
        tally
            .parts
            .iter()
            .filter_map(|t| Some((t.netns?, Summary::of(cfg, [t]))))
    };
    if cfg.format == crate::cli::Format::Json {
        let doc = JsonSummary {
            schema: SCHEMA,
            all,
            namespaces: cfg.names_namespaces().then(|| {
                each()
                    .map(|(n, counts)| JsonNamespace {
                        netns: JsonNetnsId::from(n),
                        counts,
                    })
                    .collect()
            }),
        };
        super::escape::write_json(&mut *out, &doc)?;
        return out.write_all(b"\n");
    }
    if !cfg.names_namespaces() {
        return all.write_text(out);
    }
    for (n, counts) in each() {
        writeln!(out, "Network namespace {}:", terminal_safe(&n.label()))?;
        counts.write_text(out)?;
        writeln!(out)?;
    }
    writeln!(out, "All {} network namespaces:", tally.parts.len())?;
    all.write_text(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::config::Environment;
    use crate::model::Socket;
    use clap::Parser;

    pub(crate) fn config(args: &[&str]) -> Config {
        let mut argv = vec!["sockwho"];
        argv.extend_from_slice(args);
        Config::new(&Cli::parse_from(argv), &Environment::default(), |_| None).unwrap()
    }

    /// A part as `Pipeline::look` builds it, from sockets built in code.
    pub(crate) fn part(sockets: Vec<Socket>, netns: Option<NetnsId>) -> Part {
        Part::classified(sockets, netns)
    }

    /// A small host: sshd and a web server listening, two inbound
    /// connections, one outbound, a TIME_WAIT, DNS over UDP, and an
    /// active-mode FTP session seen from the server (port 20).
    pub(crate) fn host() -> Vec<Socket> {
        vec![
            Socket::tcp("0.0.0.0:22", None).inode(1),
            Socket::tcp("[::]:80", None).v6only(false).inode(2),
            Socket::tcp("0.0.0.0:21", None)
                .inode(3)
                .process(7, "vsftpd"),
            Socket::tcp("10.0.0.1:22", Some("10.0.0.9:50000")).inode(4),
            Socket::tcp("[::ffff:10.0.0.1]:80", Some("[::ffff:10.0.0.8]:50001")).inode(5),
            Socket::tcp("10.0.0.1:40000", Some("10.0.0.7:443")).inode(6),
            Socket::tcp("10.0.0.1:40002", Some("10.0.0.7:443")).state(State::TimeWait),
            Socket::udp("0.0.0.0:53", None).inode(8),
            Socket::udp("10.0.0.1:40004", Some("10.0.0.53:53")).inode(9),
            Socket::tcp("10.0.0.1:21", Some("10.0.0.5:45000"))
                .inode(10)
                .process(8, "vsftpd"),
            Socket::tcp("10.0.0.1:20", Some("10.0.0.5:45002"))
                .state(State::SynSent)
                .inode(11)
                .process(8, "vsftpd"),
        ]
    }

    fn summary(args: &[&str], parts: &[Part]) -> serde_json::Value {
        let mut argv = vec!["-s", "--format", "json"];
        argv.extend_from_slice(args);
        let mut out = Vec::new();
        write(&config(&argv), parts, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn counts_sockets_listeners_connections_and_ftp() {
        let parts = [part(host(), None)];
        let s = summary(&[], &parts);
        assert_eq!(s["schema"], 1);
        assert_eq!(s["sockets"]["total"], 11);
        assert_eq!(s["sockets"]["by_proto"]["tcp"]["total"], 9);
        assert_eq!(s["sockets"]["by_proto"]["tcp"]["by_state"]["LISTEN"], 3);
        assert_eq!(s["sockets"]["by_proto"]["udp"]["by_state"]["UNCONN"], 1);
        assert_eq!(s["sockets"]["by_family"]["inet6"], 2);
        assert_eq!(s["listeners"]["total"], 4);
        assert_eq!(s["listeners"]["by_proto"]["udp"], 1);
        let c = &s["connections"];
        assert_eq!(c["total"], 7);
        assert_eq!(c["by_direction"]["inbound"], 3, "{c}");
        assert_eq!(c["by_direction"]["outbound"], 4, "{c}");
        assert_eq!(c["by_direction"]["unknown"], 0, "zeros are written: {c}");
        assert_eq!(c["by_local_class"]["well-known"], 4, "{c}");
        let ftp = &s["ftp"];
        assert_eq!(ftp["sessions"]["total"], 1, "{ftp}");
        assert_eq!(ftp["sessions"]["by_side"]["server"], 1, "{ftp}");
        assert_eq!(ftp["sessions"]["by_mode"]["active"], 1, "{ftp}");
        assert_eq!(ftp["data_connections"]["by_mode"]["active"], 1, "{ftp}");
        assert_eq!(ftp["data_connections"]["by_mode"][UNKNOWN_MODE], 0, "{ftp}");
        assert!(s.get("namespaces").is_none());
    }

    #[test]
    fn listeners_and_connections_add_up_and_filters_narrow_them() {
        let parts = [part(host(), None)];
        let s = summary(&[], &parts);
        let total = |v: &serde_json::Value| v["total"].as_u64().unwrap();
        assert_eq!(
            total(&s["sockets"]),
            total(&s["listeners"]) + total(&s["connections"])
        );
        let tcp = summary(&["-t", "--sport", "22"], &parts);
        assert_eq!(tcp["sockets"]["total"], 2);
        assert!(tcp["sockets"]["by_proto"].get("udp").is_none());
        assert_eq!(tcp["ftp"]["sessions"]["total"], 0);
        let listening = summary(&["-l"], &parts);
        assert_eq!(listening["connections"]["total"], 0);
        assert_eq!(listening["listeners"]["total"], 4);
    }

    #[test]
    fn text_says_each_group_on_its_line() {
        let parts = [part(host(), None)];
        let mut out = Vec::new();
        write(&config(&["-s"]), &parts, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let want = [
            "Sockets: 11 (tcp 9, udp 2; inet 9, inet6 2)",
            "  tcp: ESTABLISHED 4, LISTEN 3, SYN_SENT 1, TIME_WAIT 1",
            "  udp: ESTABLISHED 1, UNCONN 1",
            "Listeners: 4 (tcp 3, udp 1)",
            "Connections: 7 (inbound 3, outbound 4, unknown 0)",
            "FTP sessions: 1 (active 1, passive 0, unknown 0; client 0, server 1, router 0)",
            "  data connections: 1 (active 1, passive 0, unknown 0; client 0, server 1, router 0)",
        ];
        for line in want {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn namespaces_each_then_all_with_hostile_names_escaped() {
        let blue = NetnsId {
            name: Some("blue\x1b[2J\u{202e}".to_string()),
            inode: 4026532296,
            pid: None,
        };
        let red = NetnsId {
            name: None,
            inode: 4026532297,
            pid: Some(1),
        };
        let parts = [
            part(host(), Some(blue)),
            part(vec![Socket::tcp("0.0.0.0:22", None)], Some(red)),
        ];
        let mut out = Vec::new();
        write(&config(&["-s", "--all-netns"]), &parts, &mut out).unwrap();
        assert!(super::super::escape::hazards(&out).is_empty());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("Network namespace net:[4026532297]:"),
            "{text}"
        );
        assert!(
            text.contains("All 2 network namespaces:\nSockets: 12 "),
            "{text}"
        );
        let s = summary(&["--all-netns"], &parts);
        assert_eq!(s["sockets"]["total"], 12);
        let each = s["namespaces"].as_array().unwrap();
        assert_eq!(each[0]["netns"]["name"], "blue\x1b[2J\u{202e}");
        assert_eq!(each[1]["sockets"]["total"], 1);
    }
}
