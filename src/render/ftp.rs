//! `sockwho --ftp`: the FTP sessions alone, grouped, each explained the way
//! one engineer would explain it to another: who is the client and who the
//! server, which ports are ephemeral and which well-known, who opened each
//! data connection, the mode, and what a stateful firewall on each side must
//! allow.

use std::io::{self, Write};

use comfy_table::{ContentArrangement, Table, presets};

use super::escape::{TABLE, terminal_safe};
use super::palette::Palette;
use crate::classify::Row;
use crate::classify::ftp::crossing::{self, Crossing};
use crate::classify::ftp::{Helper, Mode, Role, Session, Side};
use crate::classify::ports::{PortClass, port_class};
use crate::model::{Conntrack, ConntrackSource, Endpoint, NetnsId, PortRange, Tuple, canonical};
use crate::view::Part;

pub struct View<'a> {
    pub part: &'a Part,
    pub sessions: &'a [Session],
    pub range: &'a PortRange,
    /// `Err`: why conntrack could not be read.
    pub conntrack: Result<&'a Conntrack, &'a str>,
    pub netns: Option<&'a NetnsId>,
    pub palette: Palette,
}

/// The view of every part, one after the other.
pub fn write(parts: &[Part], palette: Palette, out: &mut dyn Write) -> io::Result<()> {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let view = View {
            part,
            sessions: &part.sessions,
            range: &part.port_range,
            conntrack: match &part.conntrack {
                Some(Ok(ct)) => Ok(ct),
                Some(Err(why)) => Err(why),
                None => Err("not read"),
            },
            netns: part.netns.as_ref(),
            palette,
        };
        view.write(out)?;
    }
    Ok(())
}

// The prose uses each word's wire name (`wire_enum!` in model.rs).
fn class_words(class: PortClass) -> &'static str {
    class.name()
}

fn mode_words(mode: Option<Mode>) -> &'static str {
    mode.map_or("unknown", Mode::name)
}

fn side_words(side: Side) -> &'static str {
    side.name()
}

/// `10.0.0.1:21`, `[fe80::1]:21`: unambiguous in prose.
fn endpoint(e: &Endpoint) -> String {
    crossing::endpoint(*e)
}

/// A table in the view's form: ASCII markdown, never cut to a width.
fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::ASCII_MARKDOWN)
        .force_no_tty()
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    table
}

impl View<'_> {
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let conntrack = match self.conntrack {
            Err(why) => format!("conntrack: {why}; socket rules only"),
            Ok(c) if c.source == ConntrackSource::Netlink => {
                "conntrack read over netlink".to_string()
            }
            Ok(_) => "conntrack read from /proc (no helpers, no master tuples)".to_string(),
        };
        let count = self.sessions.len();
        let netns = self
            .netns
            .map(|n| format!(" in network namespace {}", terminal_safe(&n.label())))
            .unwrap_or_default();
        writeln!(
            out,
            "{}",
            self.palette.header().style(format!(
                "FTP sessions{netns}: {count} ({conntrack}; ephemeral ports {}-{})",
                self.range.low, self.range.high
            ))
        )?;
        if count == 0 && self.part.crossings.is_empty() {
            writeln!(
                out,
                "No FTP control connection (ports 21, 990, --ftp-port, or an FTP daemon's listener) is open."
            )?;
        }
        for session in self.sessions {
            writeln!(out)?;
            self.session(session, out)?;
        }
        if !self.part.crossings.is_empty() {
            writeln!(out)?;
            writeln!(
                out,
                "{}",
                self.palette.header().style(format!(
                    "FTP sessions crossing this host: {} (forwarded: conntrack's flows, no socket here)",
                    self.part.crossings.len()
                ))
            )?;
        }
        for crossing in &self.part.crossings {
            writeln!(out)?;
            self.crossing(crossing, out)?;
        }
        Ok(())
    }

    /// A session this host forwards: its hosts and NAT, its flows as
    /// conntrack holds them, what the helper rewrote, the diagnostics.
    fn crossing(&self, c: &Crossing, out: &mut dyn Write) -> io::Result<()> {
        let data = c.flows.iter().filter(|f| f.role == Role::Data).count();
        let mode = match c.mode {
            Some(m) => format!("{} mode", m.name()),
            None if c
                .flows
                .iter()
                .any(|f| f.role != Role::Control && f.mode.is_some()) =>
            {
                "active and passive data connections".to_string()
            }
            None if data > 0 => "mode unknown".to_string(),
            None => "mode not seen yet (no data flow)".to_string(),
        };
        writeln!(
            out,
            "{}",
            self.palette
                .header()
                .style(format!("Session {}: crossing this host; {mode}", c.id))
        )?;
        let class = |port: u16| class_words(port_class(port, self.range));
        writeln!(
            out,
            "  client {} opened the control connection from port {} ({}) to the server {} port {} ({}).",
            canonical(c.client.addr),
            c.client.port,
            class(c.client.port),
            canonical(c.server.addr),
            c.server.port,
            class(c.server.port),
        )?;
        if let Some(n) = c.client_nat {
            writeln!(
                out,
                "  NAT: the server sees the client as {} (source NAT here).",
                endpoint(&n)
            )?;
        }
        if let Some(n) = c.server_nat {
            writeln!(
                out,
                "  NAT: the client addressed the server as {} (destination NAT here).",
                endpoint(&n)
            )?;
        }
        let mut table = table(&[
            "role",
            "opened by",
            "original",
            "reply",
            "state",
            "related",
            "mark",
            "zone",
            "mode",
            "confidence",
            "evidence",
        ]);
        let tuple = |t: &Tuple| format!("{} -> {}", endpoint(&t.src), endpoint(&t.dst));
        for f in &c.flows {
            let opened = match (f.role, f.mode) {
                (Role::Pending, _) => "-",
                (Role::Control, _) | (_, Some(Mode::Passive)) => "client",
                (_, Some(Mode::Active)) => "server",
                (_, None) => "unknown",
            };
            let state = match (f.role, f.status.state) {
                (Role::Pending, _) => "EXPECTED".to_string(),
                (_, Some(state)) if f.status.unreplied => format!("{state} UNREPLIED"),
                (_, Some(state)) => state.to_string(),
                (_, None) if f.status.unreplied => "UNREPLIED".to_string(),
                (_, None) => "-".to_string(),
            };
            let related = match (f.role, f.expected) {
                (Role::Control, _) => "-",
                (Role::Pending, _) => "pending",
                (_, true) => "yes",
                (_, false) => "no",
            };
            let evidence: Vec<&str> = f.evidence.iter().map(|e| e.name()).collect();
            table.add_row([
                f.role.name().to_string(),
                opened.to_string(),
                tuple(&f.orig),
                f.reply.as_ref().map_or("-".to_string(), tuple),
                state,
                related.to_string(),
                f.status.mark.to_string(),
                f.status.zone.to_string(),
                if f.role == Role::Control {
                    "-".to_string()
                } else {
                    mode_words(f.mode).to_string()
                },
                f.confidence.name().to_string(),
                evidence.join(","),
            ]);
        }
        for line in table.to_string().lines() {
            writeln!(out, "  {line}")?;
        }
        for f in &c.flows {
            if let Some(r) = f.rewrote {
                let (what, whose) = match f.mode {
                    Some(Mode::Passive) => ("227/229", "server"),
                    _ => ("PORT/EPRT", "client"),
                };
                writeln!(
                    out,
                    "  - the ftp helper rewrote {what} for NAT: the {whose}'s {} became {}; the data connection to {} is sent on to {}.",
                    endpoint(&r.from),
                    endpoint(&r.to),
                    endpoint(&r.to),
                    endpoint(&r.from),
                )?;
            }
        }
        let ctl = c.server.port;
        writeln!(
            out,
            "  Firewall here (forward chain): allow new TCP from the client to port {ctl}; {}",
            match c.mode {
                Some(Mode::Passive) =>
                    "passive data: new TCP from the client to the server's passive ports, RELATED where the helper reads the control connection.",
                Some(Mode::Active) =>
                    "active data: new TCP from the server to the client's data ports, RELATED only where the helper reads the control connection (and rewrites PORT behind NAT).",
                None =>
                    "data: RELATED where the helper reads the control connection, else by port (passive: to the server; active: from the server).",
            }
        )?;
        writeln!(out, "  {}", crossing_helper_words(c.helper))?;
        for d in &c.diagnostics {
            writeln!(out, "  ! {}: {}", d.kind.name(), d.message)?;
            if let Some(nft) = &d.nft {
                for line in nft.lines() {
                    writeln!(out, "      {line}")?;
                }
            }
        }
        Ok(())
    }

    fn session(&self, session: &Session, out: &mut dyn Write) -> io::Result<()> {
        let mut members: Vec<Row> = session.members.iter().map(|&i| self.part.row(i)).collect();
        // the control connection first, then data, then pending listeners
        members.sort_by_key(|r| r.labels.ftp.as_ref().map(|f| f.role as u8));
        let ftp = |r: &Row| r.labels.ftp.clone();
        let mut sides: Vec<Side> = members
            .iter()
            .filter_map(|r| ftp(r).filter(|f| f.role == Role::Control).map(|f| f.side))
            .collect();
        if sides.is_empty() {
            // a session remembered after its control connection went
            sides = members
                .iter()
                .filter_map(|r| ftp(r).map(|f| f.side))
                .collect();
            sides.sort_by_key(|s| *s == Side::Client);
            sides.dedup();
        }
        let data = members
            .iter()
            .filter(|r| ftp(r).is_some_and(|f| f.role == Role::Data))
            .count();
        let mut modes: Vec<Mode> = members
            .iter()
            .filter_map(|r| {
                ftp(r)
                    .filter(|f| f.role != Role::Control)
                    .and_then(|f| f.mode)
            })
            .collect();
        modes.dedup();
        let mode = match modes.as_slice() {
            [] if data > 0 => format!(
                "mode unknown (who opened its {} cannot be told)",
                if data == 1 {
                    "data connection"
                } else {
                    "data connections"
                }
            ),
            [] => "mode not seen yet (no data connection open)".to_string(),
            [m] => format!("{} mode", mode_words(Some(*m))),
            _ => "active and passive data connections".to_string(),
        };
        let host_is = match sides.as_slice() {
            [Side::Server] => "this host is the server",
            [Side::Client] => "this host is the client",
            _ => "this host is both client and server",
        };
        writeln!(
            out,
            "{}",
            self.palette
                .header()
                .style(format!("Session {}: {host_is}; {mode}", session.id))
        )?;
        let (c, s) = (&session.client, &session.server);
        writeln!(
            out,
            "  client {} opened the control connection from port {} ({}) to the server {} port {} ({}).",
            canonical(c.addr),
            c.port,
            class_words(port_class(c.port, self.range)),
            canonical(s.addr),
            s.port,
            class_words(port_class(s.port, self.range)),
        )?;
        let mut table = table(&[
            "role",
            "side",
            "local",
            "remote",
            "state",
            "opened by",
            "mode",
            "confidence",
            "evidence",
            "process",
        ]);
        for r in &members {
            let Some(f) = ftp(r) else { continue };
            let s = &r.socket;
            // passive: the client opens the data connection; active: the server
            let opener = match (f.role, f.mode) {
                (Role::Control, _) | (Role::Data, Some(Mode::Passive)) => Some(Side::Client),
                (Role::Data, Some(Mode::Active)) => Some(Side::Server),
                _ => None,
            };
            let opened = match opener {
                Some(side) if side == f.side => format!("{} (here)", side_words(side)),
                Some(side) => side_words(side).to_string(),
                None if f.role == Role::Pending => "-".to_string(),
                None => "unknown".to_string(),
            };
            let owners: Vec<String> = s
                .processes
                .iter()
                // `|` would add a cell to the table, `,` a second owner
                .map(|p| format!("{}/{}", p.pid, TABLE.with(&['|', ',']).apply(&p.name)))
                .collect();
            let evidence: Vec<String> = f.evidence.iter().map(|e| e.name().to_string()).collect();
            let role = f.role.name();
            table.add_row([
                role.to_string(),
                side_words(f.side).to_string(),
                format!(
                    "{} ({})",
                    endpoint(&s.local),
                    class_words(r.labels.local_class)
                ),
                s.remote.map_or("*".to_string(), |e| {
                    format!(
                        "{} ({})",
                        endpoint(&e),
                        r.labels.remote_class.map_or("-", class_words)
                    )
                }),
                s.state.name(s.proto).to_string(),
                opened,
                if f.role == Role::Control {
                    "-".to_string()
                } else {
                    mode_words(f.mode).to_string()
                },
                format!("{:?}", f.confidence).to_lowercase(),
                evidence.join(","),
                if owners.is_empty() {
                    "-".to_string()
                } else {
                    owners.join(",")
                },
            ]);
        }
        for line in table.to_string().lines() {
            writeln!(out, "  {line}")?;
        }
        for r in &members {
            if let Some(line) = explain(r, self.range) {
                writeln!(out, "  - {line}")?;
            }
        }
        for line in firewall(&members, session, &sides, data > 0) {
            writeln!(out, "  {line}")?;
        }
        writeln!(
            out,
            "  {}",
            helper_words(session.helper, session.server.port)
        )
    }
}

/// One sentence on a data connection or pending listener.
fn explain(r: &Row, range: &PortRange) -> Option<String> {
    let f = r.labels.ftp.as_ref()?;
    let s = &r.socket;
    let class = |port: u16| class_words(port_class(port, range));
    match (f.role, f.mode) {
        (Role::Control, _) => None,
        (Role::Pending, Some(Mode::Passive)) => Some(format!(
            "the server listens on port {} ({}) for the client's data connection: passive (PASV/EPSV).",
            s.local.port,
            class(s.local.port)
        )),
        (Role::Pending, _) => Some(format!(
            "the client listens on port {} ({}) for the server's data connection: active (PORT/EPRT).",
            s.local.port,
            class(s.local.port)
        )),
        (Role::Data, mode) => {
            let remote = s.remote?;
            let (client_port, server_port) = match f.side {
                Side::Client => (s.local.port, remote.port),
                Side::Server => (remote.port, s.local.port),
            };
            let how = match mode {
                Some(Mode::Passive) => {
                    "the client opened it to the server's port: passive (PASV/EPSV)"
                }
                Some(Mode::Active) => {
                    "the server opened it to the client's port: active (PORT/EPRT)"
                }
                None => "who opened it cannot be told from here",
            };
            Some(format!(
                "data {} <-> {}: server port {} ({}), client port {} ({}); {how}.",
                endpoint(&s.local),
                endpoint(&remote),
                server_port,
                class(server_port),
                client_port,
                class(client_port),
            ))
        }
    }
}

/// What a stateful firewall on each side must let through for this
/// session, for each mode its data channels use.
fn firewall(members: &[Row], session: &Session, here: &[Side], data: bool) -> Vec<String> {
    // the port each data channel is opened to: the server's in passive mode,
    // the client's in active mode
    let target = |r: &Row| -> Option<(Mode, u16)> {
        let f = r.labels.ftp.as_ref().filter(|f| f.role != Role::Control)?;
        let mode = f.mode?;
        let wanted = match mode {
            Mode::Passive => Side::Server,
            Mode::Active => Side::Client,
        };
        let port = if f.side == wanted {
            r.socket.local.port
        } else {
            r.socket.remote?.port
        };
        Some((mode, port))
    };
    let ports = |mode: Mode| -> Option<String> {
        let mut ports: Vec<u16> = members
            .iter()
            .filter_map(&target)
            .filter(|t| t.0 == mode)
            .map(|t| t.1)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        (!ports.is_empty()).then(|| {
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let who = |side: Side| {
        if here.contains(&side) {
            "this host"
        } else {
            "the peer"
        }
    };
    let ctl = session.server.port;
    let mut lines = vec![format!(
        "Firewall at the server ({}): allow new inbound TCP to port {ctl}; at the client ({}): new outbound TCP to port {ctl}.",
        who(Side::Server),
        who(Side::Client)
    )];
    if let Some(p) = ports(Mode::Passive) {
        lines.push(format!(
            "Passive data: the server ({}) must accept new inbound TCP on its passive ports (seen: {p}), \
             the client ({}) open new outbound TCP to them.",
            who(Side::Server),
            who(Side::Client)
        ));
    }
    if let Some(p) = ports(Mode::Active) {
        lines.push(format!(
            "Active data: the client ({}) must accept new INBOUND TCP from the server on its data ports (seen: {p}), \
             which NAT and default-deny firewalls block unless conntrack's ftp helper makes them related; \
             the server ({}) opens new outbound TCP to them.",
            who(Side::Client),
            who(Side::Server)
        ));
    }
    if ports(Mode::Passive).is_none() && ports(Mode::Active).is_none() {
        lines.push(if data {
            "Data ports depend on the mode, which the data connections seen do not tell."
                .to_string()
        } else {
            "Data ports depend on the mode, not seen yet (no data connection open).".to_string()
        });
    }
    lines
}

fn crossing_helper_words(helper: Helper) -> &'static str {
    match helper {
        Helper::Assigned => "conntrack's ftp helper is assigned to the control flow.",
        Helper::NotAssigned => "no ftp helper is assigned to the control flow.",
        Helper::Unknown => {
            "conntrack read from /proc does not show whether the ftp helper is assigned."
        }
        Helper::NotTracked | Helper::Unreadable => "whether the ftp helper is assigned is unknown.",
    }
}

fn helper_words(helper: Helper, port: u16) -> String {
    match helper {
        Helper::Assigned => "conntrack's ftp helper is assigned to this control connection: the data connections it reads \
             from PORT/EPRT/227/229 are RELATED (accept `ct state related`); not so under TLS (AUTH TLS, port 990) \
             or when a NAT'd 227 names another address."
            .to_string(),
        Helper::NotAssigned if port == 990 => {
            "conntrack tracks this control connection; implicit FTPS is encrypted, so no ftp helper can read it: open the data ports explicitly.".to_string()
        }
        Helper::NotAssigned => format!(
            "conntrack tracks this control connection but no ftp helper is assigned (not automatic since Linux 4.7): \
             a stateful firewall sees its data connections as NEW. nft: `tcp dport {port} ct helper set \"ftp-std\"`."
        ),
        Helper::NotTracked => "conntrack does not track this connection here (no rule in this namespace uses it).".to_string(),
        Helper::Unknown => "conntrack read from /proc does not show whether the ftp helper is assigned.".to_string(),
        Helper::Unreadable => "conntrack could not be read: whether the ftp helper is assigned is unknown.".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Classified, Context, classify};
    use crate::model::{Snapshot, Socket, Source};

    fn view(sockets: Vec<Socket>) -> String {
        let snapshot = Snapshot {
            sockets,
            port_range: PortRange::default(),
            source: Source::Netlink,
            selected: None,
            dumped: None,
        };
        let Classified {
            labels,
            sessions,
            crossings,
        } = classify(&snapshot, Context::default());
        let part = Part {
            inode: 0,
            netns: None,
            port_range: snapshot.port_range,
            source: snapshot.source,
            sockets: snapshot.sockets,
            labels,
            sessions,
            crossings,
            conntrack: None,
            selected: None,
        };
        let mut out = Vec::new();
        write(&[part], Palette::new(false), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn session(data: Socket) -> Vec<Socket> {
        vec![
            Socket::tcp("0.0.0.0:21", None)
                .inode(1)
                .process(10, "python3"),
            Socket::tcp("10.0.0.1:21", Some("10.0.0.2:20000"))
                .inode(2)
                .process(10, "python3"),
            data.process(10, "python3"),
        ]
    }

    /// Issue 10 item 4: a data connection listed under "no data connection
    /// open". pyftpdlib active to a client of another port range now has its
    /// mode; where nothing tells, the view says so of the connection it lists.
    #[test]
    fn the_mode_line_speaks_of_the_data_connections_listed_issue_10() {
        let active = view(session(
            Socket::tcp("10.0.0.1:40001", Some("10.0.0.2:20001")).inode(3),
        ));
        assert!(
            active.contains("Session 1: this host is the server; active mode"),
            "{active}"
        );
        assert!(active.contains("server (here)"), "{active}");
        let unknown = view(session(
            Socket::tcp("10.0.0.1:5001", Some("10.0.0.2:20001")).inode(3),
        ));
        assert!(
            unknown.contains(
                "Session 1: this host is the server; mode unknown (who opened its data connection cannot be told)"
            ),
            "{unknown}"
        );
        assert!(!unknown.contains("no data connection open"), "{unknown}");
        // must not: a session with no data connection yet
        let mut none = session(Socket::tcp("10.0.0.1:2222", None));
        none.pop();
        let none = view(none);
        assert!(
            none.contains("mode not seen yet (no data connection open)"),
            "{none}"
        );
    }
}
