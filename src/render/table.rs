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
//! With `-i` (sockwho's, which is ss's: netstat's `-i` lists interfaces),
//! each TCP row is followed by one line of its `tcp_info` as `ss -i` prints
//! it: a tab, then ss's items in ss's order and forms ([`push_info_line`]).
//! Only numbers and sockwho's own words go into it: nothing from outside
//! needs escaping there.
//!
//! We align the columns ourselves rather than through comfy-table: a table of
//! 200,000 rows must cost little more than writing it, and comfy-table keeps
//! a styled cell object per field.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;

use owo_colors::Style;

use super::digits::{push_decimal, push_ip};
use super::escape::{TABLE, terminal_safe};
use super::palette::Palette;
use crate::classify::Row;
use crate::classify::direction::{Confidence, Direction, Verdict};
use crate::classify::ftp::{Mode, Role};
use crate::classify::ports::PortClass;
use crate::collect::names::Names;
use crate::config::{Config, Show};
use crate::model::{Endpoint, Family, PortRange, Proto, Socket, State, TcpInfo, canonical};
use crate::view::Part;

/// Below this many rows, the widths are measured on one thread: a thread
/// costs more than measuring them.
const PARALLEL_ROWS: usize = 4096;

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
    /// per cell or per row. The first pass runs on two threads, each over
    /// half the rows.
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
        // the rows shown, (part, socket) each in 8 bytes: filtered once
        let shown: Vec<(u32, u32)> = crate::view::shown_at(self.cfg, parts)
            .map(|(p, i, _, _)| (p as u32, i as u32))
            .collect();
        let row_at = |&(p, i): &(u32, u32)| {
            let part = &parts[p as usize];
            (part, part.row(i as usize))
        };
        let mut widths: Vec<usize> = columns
            .iter()
            .map(|c| if self.cfg.no_header { 0 } else { c.title.len() })
            .collect();
        // The first pass measures on both cores, each half of the rows on
        // one (a third of `-tan`'s time after the dump at 200,000 sockets
        // was this pass); a failure to make the thread measures here.
        let measure = |rows: &[(u32, u32)]| {
            let mut widths = vec![0; n];
            let mut scratch = String::with_capacity(256);
            for (part, row) in rows.iter().map(row_at) {
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
            widths
        };
        let (first, second) = shown.split_at(shown.len() / 2);
        let halves: Vec<Vec<usize>> = if shown.len() < PARALLEL_ROWS {
            vec![measure(&shown)]
        } else {
            std::thread::scope(|scope| {
                let there = std::thread::Builder::new().spawn_scoped(scope, || measure(second));
                let here = measure(first);
                let there = match there {
                    Ok(handle) => handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    Err(_) => measure(second),
                };
                vec![here, there]
            })
        };
        for half in halves {
            for (w, h) in widths.iter_mut().zip(half) {
                *w = (*w).max(h);
            }
        }
        let mut scratch = String::with_capacity(256);
        let mut line = String::with_capacity(256);
        if !self.cfg.no_header {
            let header = columns.iter().map(|c| (c.title, self.palette.header()));
            self.line(&columns, &widths, header, &mut line);
            out.write_all(line.as_bytes())?;
        }
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut ends = Vec::with_capacity(n);
        for (part, row) in shown.iter().map(row_at) {
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
            if has_info_line(self.cfg, row.socket) {
                push_info_line(
                    row.socket.tcp_info.as_deref(),
                    self.cfg.numeric_ports,
                    &mut line,
                );
            }
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
        push_decimal(s.recv_q.into(), arena);
        next(arena);
        push_decimal(s.send_q.into(), arena);
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
            push_decimal(s.inode, arena);
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
                push_decimal(s.uid.into(), arena);
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
            None => push_decimal(ep.port.into(), arena),
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

/// Whether the row of `s` is followed by a `tcp_info` line: with `-i`, a
/// TCP socket's (ss prints none for UDP), also where the kernel sent no
/// `tcp_info` (TIME_WAIT, `/proc`): then the line is the tab alone, as ss
/// prints it.
pub fn has_info_line(cfg: &Config, s: &Socket) -> bool {
    cfg.tcp_info && s.proto == Proto::Tcp
}

/// ss's `-i` line (`tcp_stats_print()` in iproute2's misc/ss.c), with a
/// newline: a tab, then for each field sockwho reads ss's item, in ss's
/// order and form, left out where ss leaves it out (a zero, the initial
/// rto of 3 s, an "infinite" ssthresh). Times in milliseconds as C's `%g`
/// writes them (`rtt:0.031/0.015`); rates in bits per second, `1.2Gbps`, or
/// with `numeric` (`-n`, as ss's `-n`) whole numbers of bits per second.
pub fn push_info_line(info: Option<&TcpInfo>, numeric: bool, line: &mut String) {
    line.push('\t');
    if let Some(t) = info {
        let ms = |us: u32| c_g(f64::from(us) / 1000.0, 6);
        if t.rto_us != 0 && t.rto_us != 3_000_000 {
            let _ = write!(line, " rto:{}", ms(t.rto_us));
        }
        if t.rtt_us != 0 {
            let _ = write!(line, " rtt:{}/{}", ms(t.rtt_us), ms(t.rttvar_us));
        }
        if t.snd_cwnd != 0 {
            let _ = write!(line, " cwnd:{}", t.snd_cwnd);
        }
        if t.snd_ssthresh != 0 && t.snd_ssthresh < 0xffff {
            let _ = write!(line, " ssthresh:{}", t.snd_ssthresh);
        }
        for (name, value) in [
            ("bytes_retrans", t.bytes_retrans),
            ("bytes_acked", t.bytes_acked),
            ("bytes_received", t.bytes_received),
        ] {
            if let Some(v) = value.filter(|&v| v != 0) {
                let _ = write!(line, " {name}:{v}");
            }
        }
        for (name, rate) in [
            ("pacing_rate", t.pacing_rate_bps),
            ("delivery_rate", t.delivery_rate_bps),
        ] {
            if let Some(bps) = rate.filter(|&r| r != 0) {
                let _ = write!(line, " {name} {}bps", bandwidth(bps, numeric));
            }
        }
        if let Some(busy) = t.busy_time_us.filter(|&b| b != 0) {
            let _ = write!(line, " busy:{}ms", busy / 1000);
            for (name, limited) in [
                ("rwnd_limited", t.rwnd_limited_us),
                ("sndbuf_limited", t.sndbuf_limited_us),
            ] {
                if let Some(us) = limited.filter(|&l| l != 0) {
                    let share = 100.0 * us as f64 / busy as f64;
                    let _ = write!(line, " {name}:{}ms({share:.1}%)", us / 1000);
                }
            }
        }
        if t.retrans != 0 || t.total_retrans != 0 {
            let _ = write!(line, " retrans:{}/{}", t.retrans, t.total_retrans);
        }
        if let Some(min) = t.min_rtt_us.filter(|&m| m != 0) {
            let _ = write!(line, " minrtt:{}", ms(min));
        }
    }
    line.push('\n');
}

/// ss's `sprint_bw()`: `%.3g` and a prefix (`1.23G`), or with `numeric` the
/// whole number.
fn bandwidth(bps: u64, numeric: bool) -> String {
    let bw = bps as f64;
    if numeric {
        return format!("{bw:.0}");
    }
    for (unit, prefix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if bw >= unit {
            return format!("{}{prefix}", c_g(bw / unit, 3));
        }
    }
    c_g(bw, 6)
}

/// C's `%.{precision}g`: `precision` significant digits, trailing zeros
/// dropped, in exponent form (`1.5e+06`) when the exponent is below -4 or
/// not below the precision.
pub fn c_g(x: f64, precision: usize) -> String {
    let p = precision.max(1);
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 {
            "0".to_string()
        } else {
            x.to_string()
        };
    }
    // the exponent after rounding to p digits
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.unsigned_abs())
    } else {
        let decimals = (p as i32 - 1 - exp) as usize;
        trim(&format!("{x:.decimals$}"))
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
            push_decimal(p.pid.into(), arena);
            arena.push('/');
            arena.push_str(&TABLE.with(&[',']).apply(p.program()));
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
            arena.push('+');
            push_decimal(n as u64 - 1, arena);
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

/// IPv4 by hand (the common case, and `Display` for it is slow); IPv6 by
/// `Display`, which gives the RFC 5952 form. A v4-mapped address shows as
/// the IPv4 address it maps, as netstat prints it.
fn push_addr(addr: IpAddr, arena: &mut String) {
    push_ip(canonical(addr), arena);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cfg(args: &[&str]) -> Config {
        let cli =
            crate::cli::Cli::parse_from(std::iter::once("sockwho").chain(args.iter().copied()));
        Config::new(&cli, &Default::default(), |_| None).unwrap()
    }

    fn table(cfg: &Config, sockets: Vec<Socket>) -> String {
        let mut out = Vec::new();
        Table {
            cfg,
            names: &Names::default(),
            palette: Palette::new(false),
        }
        .write(&[Part::classified(sockets, None)], &mut out)
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    /// What glibc's printf writes for these (`printf '%g'`, `'%.3g'`).
    #[test]
    fn c_g_writes_what_printf_writes() {
        for (x, p, want) in [
            (0.0, 6, "0"),
            (0.031, 6, "0.031"),
            (0.0155, 6, "0.0155"),
            (204.0, 6, "204"),
            (1.5, 6, "1.5"),
            (123456.0, 6, "123456"),
            (1234567.0, 6, "1.23457e+06"),
            (0.0001, 6, "0.0001"),
            (0.00001234, 6, "1.234e-05"),
            (999999.5, 6, "1e+06"),
            (2.4, 3, "2.4"),
            (1.23456, 3, "1.23"),
            (999.6, 3, "1e+03"),
            (12.0, 3, "12"),
            (100.0, 3, "100"),
        ] {
            assert_eq!(c_g(x, p), want, "%.{p}g of {x}");
        }
        assert_eq!(bandwidth(2_400_000_000, false), "2.4G");
        assert_eq!(bandwidth(2_400_000_000, true), "2400000000");
        assert_eq!(bandwidth(999, false), "999");
        assert_eq!(bandwidth(12_345, false), "12.3k");
        assert_eq!(bandwidth(5_000_000_000_000, false), "5T");
    }

    fn full() -> TcpInfo {
        TcpInfo {
            rtt_us: 31,
            rttvar_us: 15,
            rto_us: 201_000,
            snd_cwnd: 10,
            snd_ssthresh: 7,
            retransmits: 0,
            retrans: 1,
            total_retrans: 5,
            min_rtt_us: Some(12),
            bytes_acked: Some(1001),
            bytes_received: Some(2002),
            bytes_retrans: Some(300),
            delivery_rate_bps: Some(1_200_000_000),
            pacing_rate_bps: Some(2_400_000_000),
            busy_time_us: Some(10_000),
            rwnd_limited_us: Some(5_000),
            sndbuf_limited_us: Some(2_500),
        }
    }

    #[test]
    fn the_info_line_is_ss_s() {
        let line = |t: Option<&TcpInfo>, numeric: bool| {
            let mut l = String::new();
            push_info_line(t, numeric, &mut l);
            l
        };
        assert_eq!(
            line(Some(&full()), false),
            "\t rto:201 rtt:0.031/0.015 cwnd:10 ssthresh:7 bytes_retrans:300 bytes_acked:1001 \
             bytes_received:2002 pacing_rate 2.4Gbps delivery_rate 1.2Gbps busy:10ms \
             rwnd_limited:5ms(50.0%) sndbuf_limited:2ms(25.0%) retrans:1/5 minrtt:0.012\n"
        );
        assert!(line(Some(&full()), true).contains(" pacing_rate 2400000000bps "));
        // what ss leaves out: zeros, the initial rto, an "infinite" ssthresh,
        // what the kernel did not send
        let fresh = TcpInfo {
            rto_us: 3_000_000,
            snd_cwnd: 10,
            snd_ssthresh: 0x7fff_ffff,
            ..Default::default()
        };
        assert_eq!(line(Some(&fresh), false), "\t cwnd:10\n");
        // no tcp_info (TIME_WAIT, /proc): the tab alone, as ss prints it
        assert_eq!(line(None, false), "\t\n");
    }

    /// With -i each TCP row has its line under it, UDP rows none; without
    /// -i the table is as it was.
    #[test]
    fn with_i_each_tcp_row_is_followed_by_its_line() {
        let mut tcp = Socket::tcp("10.0.0.1:5000", Some("10.0.0.2:40000")).cookie(1);
        tcp.tcp_info = Some(Box::new(full()));
        let tw = Socket::tcp("10.0.0.1:5000", Some("10.0.0.2:40001"))
            .cookie(2)
            .state(State::TimeWait);
        let udp = Socket::udp("10.0.0.1:53", Some("10.0.0.3:5353")).cookie(3);
        let sockets = vec![tcp, tw, udp];
        let plain = table(&cfg(&["-an"]), sockets.clone());
        let info = table(&cfg(&["-ani"]), sockets);
        let lines: Vec<&str> = info.lines().collect();
        assert_eq!(lines.len(), 2 + 3 + 2, "{info}");
        // the rows are the rows without -i, in place
        let rows: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| !l.starts_with('\t'))
            .collect();
        assert_eq!(rows, plain.lines().collect::<Vec<_>>());
        assert!(lines[2].starts_with("tcp ") && lines[2].contains("10.0.0.2:40000"));
        assert!(
            lines[3].starts_with("\t rto:201 rtt:0.031/0.015 cwnd:10"),
            "{info}"
        );
        assert!(lines[4].contains("TIME_WAIT"));
        assert_eq!(lines[5], "\t");
        assert!(lines[6].starts_with("udp "));
        assert!(!plain.contains('\t'));
    }
}
