//! The netstat-style table, a drop-in for netstat's: its header lines, its
//! columns in its order and form (`User Inode` with `-e`, `PID/Program
//! name` with `-p`: argv[0]'s base name and one owner, an unconnected UDP
//! socket's State left empty, v4-mapped addresses as IPv4), then sockwho's
//! own as one field `Dir,Ports,FTP[,More]`, then `Timer` (`-o`), last as in
//! netstat because its cell holds a space. Parsers of netstat's lines keep
//! working: `awk '{print $7}'`, jc's header-keyed split, Ansible's
//! `listen_ports_facts` (at most one word after PID/Program name). Columns
//! are as wide as their widest cell, so no address is ever cut, and every
//! cell but Timer is one whitespace-free field.
//!
//! We align the columns ourselves rather than through comfy-table: a table of
//! 200,000 rows must cost little more than writing it, and comfy-table keeps
//! a styled cell object per field.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;

use owo_colors::Style;

use super::escape::{TABLE, terminal_safe};
use super::palette::Palette;
use crate::classify::Row;
use crate::classify::direction::{Confidence, Direction, Verdict};
use crate::classify::ftp::{Mode, Role};
use crate::classify::ports::PortClass;
use crate::collect::names::Names;
use crate::config::{Config, Show};
use crate::model::{Endpoint, Family, PortRange, Proto, Socket, State, canonical};
use crate::view::Part;

pub struct Table<'a> {
    pub cfg: &'a Config,
    pub names: &'a Names,
    pub palette: Palette,
}

struct Column {
    title: &'static str,
    right: bool,
}

const fn col(title: &'static str, right: bool) -> Column {
    Column { title, right }
}

impl Table<'_> {
    /// Whether namespaces are named: a NETNS column comes first.
    fn labelled(&self) -> bool {
        self.cfg.names_namespaces()
    }

    fn columns(&self) -> Vec<Column> {
        let mut cols = Vec::new();
        if self.labelled() {
            cols.push(col("NETNS", false));
        }
        cols.extend([
            col("Proto", false),
            col("Recv-Q", true),
            col("Send-Q", true),
            col("Local Address", false),
            col("Foreign Address", false),
            col("State", false),
        ]);
        if self.cfg.extend {
            cols.push(col("User", false));
            cols.push(col("Inode", false));
        }
        if self.cfg.program {
            cols.push(col("PID/Program name", false));
        }
        // sockwho's own columns, as one field after netstat's: parsers of
        // netstat's lines (Ansible's listen_ports_facts) allow one word at
        // most after PID/Program name
        cols.push(col(
            if self.cfg.program {
                "Dir,Ports,FTP,More"
            } else {
                "Dir,Ports,FTP"
            },
            false,
        ));
        if self.cfg.timers {
            cols.push(col("Timer", false));
        }
        cols
    }

    /// The index of the Dir column, after netstat's own columns.
    fn dir_column(&self) -> usize {
        usize::from(self.labelled())
            + 6
            + if self.cfg.extend { 2 } else { 0 }
            + usize::from(self.cfg.program)
    }

    /// Writes the rows of every part that the options show.
    ///
    /// Two passes: the first formats each row into one scratch buffer only
    /// to measure its cells, the second formats it again and writes it
    /// padded. Formatting twice costs less than keeping 200,000 rows of text
    /// (about 25 MiB) until the widths are known, and nothing is allocated
    /// per cell or per row.
    pub fn write(&self, parts: &[Part], out: &mut dyn Write) -> io::Result<()> {
        let title = match self.cfg.show {
            Show::All => "Active Internet connections (servers and established)",
            Show::Listening => "Active Internet connections (only servers)",
            Show::Connected => "Active Internet connections (w/o servers)",
        };
        if !self.cfg.no_header {
            writeln!(out, "{title}")?;
        }
        let columns = self.columns();
        let n = columns.len();
        let mut widths: Vec<usize> = columns
            .iter()
            .map(|c| if self.cfg.no_header { 0 } else { c.title.len() })
            .collect();
        let mut scratch = String::with_capacity(256);
        for (part, row) in crate::view::shown(self.cfg, parts) {
            scratch.clear();
            let mut start = 0;
            self.cells(part, &row, &mut scratch, &mut |text: &str, col: usize| {
                let cell = &text[start..];
                let width = if cell.is_ascii() {
                    cell.len()
                } else {
                    cell.chars().count()
                };
                widths[col] = widths[col].max(width);
                start = text.len();
            });
        }
        let mut line = String::with_capacity(256);
        if !self.cfg.no_header {
            let header = columns.iter().map(|c| (c.title, self.palette.header()));
            self.line(&columns, &widths, header, &mut line);
            out.write_all(line.as_bytes())?;
        }
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut ends = Vec::with_capacity(n);
        for (part, row) in crate::view::shown(self.cfg, parts) {
            scratch.clear();
            ends.clear();
            self.cells(part, &row, &mut scratch, &mut |text: &str, _| {
                ends.push(text.len())
            });
            let mut from = 0;
            let cells = ends.iter().map(|&to| {
                let cell = &scratch[from..to];
                from = to;
                cell
            });
            line.clear();
            self.line(
                &columns,
                &widths,
                cells.zip(self.styles(&row, n)),
                &mut line,
            );
            buf.extend_from_slice(line.as_bytes());
            if buf.len() >= 60 * 1024 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)
    }

    /// The style of each cell of a row: state and direction coloured.
    fn styles(&self, row: &Row, n: usize) -> impl Iterator<Item = Style> {
        let state_column = usize::from(self.labelled()) + 5;
        let dir_column = self.dir_column();
        let state = self.palette.state(row.socket.state);
        let direction = self.palette.direction(row.labels.direction.direction);
        (0..n).map(move |i| match i {
            _ if i == state_column => state,
            _ if i == dir_column => direction,
            _ => Style::new(),
        })
    }

    /// Pads and joins one row into `line`; the last column is not padded.
    fn line<'c>(
        &self,
        columns: &[Column],
        widths: &[usize],
        cells: impl Iterator<Item = (&'c str, Style)>,
        line: &mut String,
    ) {
        let last = columns.len() - 1;
        for (i, (text, style)) in cells.enumerate() {
            let width = if text.is_ascii() {
                text.len()
            } else {
                text.chars().count()
            };
            let pad = widths[i].saturating_sub(width);
            if i > 0 {
                line.push(' ');
            }
            if columns[i].right {
                push_spaces(line, pad);
            }
            if self.palette.enabled() && style != Style::new() {
                let _ = write!(line, "{}", style.style(text));
            } else {
                line.push_str(text);
            }
            if !columns[i].right && i != last {
                push_spaces(line, pad);
            }
        }
        line.push('\n');
    }

    /// Writes the cells of one row into `arena`, calling `done(arena, column)`
    /// after each.
    fn cells(&self, part: &Part, row: &Row, arena: &mut String, done: &mut dyn FnMut(&str, usize)) {
        let s = &row.socket;
        let range = &part.port_range;
        let mut col = 0;
        let mut next = |arena: &mut String| {
            done(arena, col);
            col += 1;
        };
        if self.labelled() {
            let label = part.netns.as_ref().map_or("-".to_string(), |n| n.label());
            arena.push_str(&terminal_safe(&label));
            next(arena);
        }
        arena.push_str(proto_cell(s));
        next(arena);
        let _ = write!(arena, "{}", s.recv_q);
        next(arena);
        let _ = write!(arena, "{}", s.send_q);
        next(arena);
        self.endpoint(&s.local, s.proto, range, arena);
        next(arena);
        self.remote(s, range, arena);
        next(arena);
        arena.push_str(state_cell(s));
        next(arena);
        if self.cfg.extend {
            self.user(s, arena);
            next(arena);
            let _ = write!(arena, "{}", s.inode);
            next(arena);
        }
        if self.cfg.program {
            push_owner(s, arena);
            next(arena);
        }
        arena.push_str(direction_cell(&row.labels.direction));
        arena.push(',');
        arena.push_str(ports_cell(row));
        arena.push(',');
        push_ftp_cell(row, arena);
        if self.cfg.program {
            arena.push(',');
            push_more_owners(s, arena);
        }
        next(arena);
        if self.cfg.timers {
            push_timer(s, arena);
            next(arena);
        }
    }

    /// The foreign address: a failed connect's without its port (the
    /// kernel forgot it), an unconnected socket's `0.0.0.0:*`.
    fn remote(&self, s: &Socket, range: &PortRange, arena: &mut String) {
        match &s.remote {
            Some(ep) if crate::collect::events::refused(s) => {
                push_addr(ep.addr, arena);
                arena.push_str(":-");
            }
            Some(ep) => self.endpoint(ep, s.proto, range, arena),
            None => arena.push_str(match s.family {
                Family::Inet => "0.0.0.0:*",
                Family::Inet6 => ":::*",
            }),
        }
    }

    /// The owner's user name, or the uid.
    fn user(&self, s: &Socket, arena: &mut String) {
        match (self.cfg.numeric_users, self.names.user(s.uid)) {
            (false, Some(name)) => arena.push_str(&terminal_safe(name)),
            _ => {
                let _ = write!(arena, "{}", s.uid);
            }
        }
    }

    /// The table's cells one at a time, for the watch screen, which lays
    /// them out itself: each as the table writes it, outside text escaped.
    pub(crate) fn local_cell(&self, s: &Socket, range: &PortRange) -> String {
        let mut cell = String::new();
        self.endpoint(&s.local, s.proto, range, &mut cell);
        cell
    }

    pub(crate) fn remote_cell(&self, s: &Socket, range: &PortRange) -> String {
        let mut cell = String::new();
        self.remote(s, range, &mut cell);
        cell
    }

    pub(crate) fn user_cell(&self, s: &Socket) -> String {
        let mut cell = String::new();
        self.user(s, &mut cell);
        cell
    }

    /// `127.0.0.1:22`, `:::22`, `0.0.0.0:ssh`: netstat's form, unbracketed.
    fn endpoint(&self, ep: &Endpoint, proto: Proto, range: &PortRange, arena: &mut String) {
        match self.host(ep.addr) {
            Some(name) => arena.push_str(&terminal_safe(name)),
            None => push_addr(ep.addr, arena),
        }
        arena.push(':');
        let named = !self.cfg.numeric_ports && !range.contains(ep.port);
        match self.names.service(ep.port, proto).filter(|_| named) {
            Some(service) => arena.push_str(&terminal_safe(service)),
            None => push_u16(ep.port, arena),
        }
    }

    fn host(&self, addr: IpAddr) -> Option<&str> {
        if self.cfg.resolve {
            self.names.host(addr)
        } else {
            None
        }
    }
}

/// `tcp`, `tcp6`, `udp`, `udp6`.
pub(crate) fn proto_cell(s: &Socket) -> &'static str {
    match (s.proto, s.family) {
        (Proto::Tcp, Family::Inet) => "tcp",
        (Proto::Tcp, Family::Inet6) => "tcp6",
        (Proto::Udp, Family::Inet) => "udp",
        (Proto::Udp, Family::Inet6) => "udp6",
    }
}

/// The state; watch mode's sockets seen only as the kernel destroyed them
/// are `CLOSED` or `REFUSED`; netstat leaves an unconnected UDP socket's
/// State empty.
pub(crate) fn state_cell(s: &Socket) -> &'static str {
    match (s.closed, crate::collect::events::refused(s)) {
        (true, true) => "REFUSED",
        (true, false) => "CLOSED",
        (false, _) if s.proto == Proto::Udp && s.state == State::Close => "",
        (false, _) => s.state.name(s.proto),
    }
}

/// `PID/Program name` (`-p`), with its `,` escaped; `-` without an owner.
pub(crate) fn owner_cell(s: &Socket) -> String {
    let mut cell = String::new();
    push_owner(s, &mut cell);
    cell
}

/// `+N` more owners than `PID/Program name` shows, else `-`.
pub(crate) fn more_cell(s: &Socket) -> String {
    let mut cell = String::new();
    push_more_owners(s, &mut cell);
    cell
}

/// netstat's `-o` timer: `keepalive (7.17/0/0)`.
pub(crate) fn timer_cell(s: &Socket) -> String {
    let mut cell = String::new();
    push_timer(s, &mut cell);
    cell
}

fn push_timer(s: &Socket, arena: &mut String) {
    let t = s.timer;
    let _ = write!(
        arena,
        "{} ({:.2}/{}/0)",
        t.kind.name(),
        t.expires_ms as f64 / 1000.0,
        t.retransmits
    );
}

/// `listen`, `in`, `out`, `unknown`; `:med` or `:low` marks a guess.
pub fn direction_cell(v: &Verdict) -> &'static str {
    use Confidence::*;
    use Direction::*;
    match (v.direction, v.confidence) {
        (Listen, _) => "listen",
        (Unknown, _) => "unknown",
        (Inbound, Some(Medium)) => "in:med",
        (Inbound, Some(Low)) => "in:low",
        (Inbound, _) => "in",
        (Outbound, Some(Medium)) => "out:med",
        (Outbound, Some(Low)) => "out:low",
        (Outbound, _) => "out",
    }
}

/// `reg*/eph`: local class (`*`: a listener is on it) / remote class.
pub fn ports_cell(row: &Row) -> &'static str {
    use PortClass::*;
    let l = &row.labels;
    macro_rules! cell {
        ($($local:ident $star:literal $remote:ident => $text:literal),* $(,)?) => {
            match (l.local_class, l.local_listening, l.remote_class) {
                $( ($local, $star, Some($remote)) => $text, )*
                (WellKnown, false, None) => "wk/-",
                (WellKnown, true, None) => "wk*/-",
                (Registered, false, None) => "reg/-",
                (Registered, true, None) => "reg*/-",
                (Ephemeral, false, None) => "eph/-",
                (Ephemeral, true, None) => "eph*/-",
            }
        };
    }
    cell! {
        WellKnown false WellKnown => "wk/wk", WellKnown false Registered => "wk/reg", WellKnown false Ephemeral => "wk/eph",
        WellKnown true WellKnown => "wk*/wk", WellKnown true Registered => "wk*/reg", WellKnown true Ephemeral => "wk*/eph",
        Registered false WellKnown => "reg/wk", Registered false Registered => "reg/reg", Registered false Ephemeral => "reg/eph",
        Registered true WellKnown => "reg*/wk", Registered true Registered => "reg*/reg", Registered true Ephemeral => "reg*/eph",
        Ephemeral false WellKnown => "eph/wk", Ephemeral false Registered => "eph/reg", Ephemeral false Ephemeral => "eph/eph",
        Ephemeral true WellKnown => "eph*/wk", Ephemeral true Registered => "eph*/reg", Ephemeral true Ephemeral => "eph*/eph",
    }
}

/// `ftp#1:ctl`, `ftp#1:data:passive`, `ftp#1:pending:active`, or `-`;
/// `:med` or `:low` marks a guess, as in the Dir column.
pub fn ftp_cell(row: &Row) -> String {
    let mut cell = String::new();
    push_ftp_cell(row, &mut cell);
    cell
}

fn push_ftp_cell(row: &Row, arena: &mut String) {
    let Some(f) = &row.labels.ftp else {
        arena.push('-');
        return;
    };
    let mode = f.mode.map_or("?", Mode::name);
    let _ = match f.role {
        Role::Control => write!(arena, "ftp#{}:ctl", f.session),
        Role::Data => write!(arena, "ftp#{}:data:{mode}", f.session),
        Role::Pending => write!(arena, "ftp#{}:pending:{mode}", f.session),
    };
    arena.push_str(match f.confidence {
        Confidence::High => "",
        Confidence::Medium => ":med",
        Confidence::Low => ":low",
    });
}

/// netstat's `1234/nginx`; several owners joined with `,`; `-` where none
/// is visible.
fn push_owner(s: &Socket, arena: &mut String) {
    match s.processes.first() {
        // a `,` in a name would read as a second owner
        Some(p) => {
            let _ = write!(arena, "{}/{}", p.pid, TABLE.with(&[',']).apply(p.program()));
        }
        None => arena.push('-'),
    }
}

/// sockwho's `More`: `+N` when N more processes hold the socket
/// than `PID/Program name` shows (netstat shows one), else `-`. JSON lists
/// them all.
fn push_more_owners(s: &Socket, arena: &mut String) {
    match s.processes.len() {
        0 | 1 => arena.push('-'),
        n => {
            let _ = write!(arena, "+{}", n - 1);
        }
    }
}

fn push_spaces(line: &mut String, n: usize) {
    const SPACES: &str = "                                                                ";
    let mut n = n;
    while n > 0 {
        let k = n.min(SPACES.len());
        line.push_str(&SPACES[..k]);
        n -= k;
    }
}

fn push_u16(n: u16, arena: &mut String) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        arena.push(char::from(d));
    }
}

/// IPv4 by hand (the common case, and `Display` for it is slow); IPv6 by
/// `Display`, which gives the RFC 5952 form. A v4-mapped address shows as
/// the IPv4 address it maps, as netstat prints it.
fn push_addr(addr: IpAddr, arena: &mut String) {
    match canonical(addr) {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    arena.push('.');
                }
                push_u16(u16::from(octet), arena);
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(arena, "{v6}");
        }
    }
}
