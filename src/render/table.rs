//! The netstat-style table: netstat's header line and columns in netstat's
//! order and form, then sockwho's own (Dir, Ports), then the optional
//! `-e`/`-p`/`-o` columns. Columns are as wide as their widest cell, so no
//! address is ever cut, and every cell is one whitespace-free field, so
//! `awk '{print $4}'` works as on netstat.
//!
//! We align the columns ourselves rather than through comfy-table: a table of
//! 200,000 rows must cost little more than writing it, and comfy-table keeps
//! a styled cell object per field.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;

use owo_colors::Style;

use super::escape::terminal_safe;
use super::palette::Palette;
use crate::Part;
use crate::classify::Row;
use crate::classify::direction::{Confidence, Direction, Verdict};
use crate::classify::ftp::{Mode, Role};
use crate::classify::ports::PortClass;
use crate::collect::names::Names;
use crate::config::{Config, Show};
use crate::model::{Endpoint, Family, PortRange, Proto, Socket, unspecified};

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
        self.cfg.netns.is_some() || self.cfg.all_netns
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
            col("Dir", false),
            col("Ports", false),
            col("FTP", false),
        ]);
        if self.cfg.extend {
            cols.push(col("User", false));
            cols.push(col("Inode", false));
        }
        if self.cfg.program {
            cols.push(col("PID/Program name", false));
        }
        if self.cfg.timers {
            cols.push(col("Timer", false));
        }
        cols
    }

    /// Writes the rows of every part that the options show.
    pub fn write(&self, parts: &[Part], out: &mut dyn Write) -> io::Result<()> {
        let title = match self.cfg.show {
            Show::All => "Active Internet connections (servers and established)",
            Show::Listening => "Active Internet connections (only servers)",
            Show::Connected => "Active Internet connections (w/o servers)",
        };
        writeln!(out, "{title}")?;
        let columns = self.columns();
        let cells: Vec<Vec<(String, Style)>> = crate::shown(self.cfg, parts)
            .map(|(p, r)| self.cells(p, r))
            .collect();
        let mut widths: Vec<usize> = columns.iter().map(|c| c.title.len()).collect();
        for row in &cells {
            for (w, (text, _)) in widths.iter_mut().zip(row) {
                *w = (*w).max(text.chars().count());
            }
        }
        let header: Vec<(String, Style)> = columns
            .iter()
            .map(|c| (c.title.to_string(), self.palette.header()))
            .collect();
        self.line(&columns, &widths, &header, out)?;
        for row in &cells {
            self.line(&columns, &widths, row, out)?;
        }
        Ok(())
    }

    fn line(
        &self,
        columns: &[Column],
        widths: &[usize],
        cells: &[(String, Style)],
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let last = cells.len() - 1;
        for (i, (text, style)) in cells.iter().enumerate() {
            let pad = widths[i] - text.chars().count();
            if i > 0 {
                out.write_all(b" ")?;
            }
            if columns[i].right {
                write!(out, "{:pad$}", "")?;
            }
            write!(out, "{}", style.style(text))?;
            if !columns[i].right && i != last {
                write!(out, "{:pad$}", "")?;
            }
        }
        out.write_all(b"\n")
    }

    fn cells(&self, part: &Part, row: &Row) -> Vec<(String, Style)> {
        let s = &row.socket;
        let plain = Style::new();
        let range = &part.port_range;
        let proto = match (s.proto, s.family) {
            (p, Family::Inet) => p.name().to_string(),
            (p, Family::Inet6) => format!("{}6", p.name()),
        };
        let remote = match &s.remote {
            Some(ep) => self.endpoint(ep, s.proto, range),
            None => format!("{}:*", unspecified(s.family)),
        };
        let mut cells = Vec::with_capacity(14);
        if self.labelled() {
            let label = part.netns.as_ref().map_or("-".to_string(), |n| n.label());
            cells.push((terminal_safe(&label).into_owned(), plain));
        }
        cells.extend([
            (proto, plain),
            (s.recv_q.to_string(), plain),
            (s.send_q.to_string(), plain),
            (self.endpoint(&s.local, s.proto, range), plain),
            (remote, plain),
            (
                s.state.name(s.proto).to_string(),
                self.palette.state(s.state),
            ),
            (
                direction_cell(&row.labels.direction),
                self.palette.direction(row.labels.direction.direction),
            ),
            (ports_cell(row), plain),
            (ftp_cell(row), plain),
        ]);
        if self.cfg.extend {
            let user = match (self.cfg.numeric, self.names.user(s.uid)) {
                (false, Some(name)) => terminal_safe(name).into_owned(),
                _ => s.uid.to_string(),
            };
            cells.push((user, plain));
            cells.push((s.inode.to_string(), plain));
        }
        if self.cfg.program {
            cells.push((owners_cell(s), plain));
        }
        if self.cfg.timers {
            cells.push((timer_cell(s), plain));
        }
        cells
    }

    /// `127.0.0.1:22`, `:::22`, `0.0.0.0:ssh`: netstat's form, unbracketed.
    fn endpoint(&self, ep: &Endpoint, proto: Proto, range: &PortRange) -> String {
        let mut text = match self.host(ep.addr) {
            Some(name) => terminal_safe(name).into_owned(),
            None => ep.addr.to_string(),
        };
        text.push(':');
        let named = !self.cfg.numeric && !range.contains(ep.port);
        match self.names.service(ep.port, proto).filter(|_| named) {
            Some(service) => text.push_str(&terminal_safe(service)),
            None => {
                let _ = write!(text, "{}", ep.port);
            }
        }
        text
    }

    fn host(&self, addr: IpAddr) -> Option<&str> {
        if self.cfg.resolve {
            self.names.host(addr)
        } else {
            None
        }
    }
}

/// `listen`, `in`, `out`, `unknown`; `:med` or `:low` marks a guess.
pub fn direction_cell(v: &Verdict) -> String {
    let word = match v.direction {
        Direction::Listen => "listen",
        Direction::Inbound => "in",
        Direction::Outbound => "out",
        Direction::Unknown => "unknown",
    };
    match v.confidence {
        Some(Confidence::Medium) => format!("{word}:med"),
        Some(Confidence::Low) => format!("{word}:low"),
        _ => word.to_string(),
    }
}

/// `reg*/eph`: local class (`*`: a listener is on it) / remote class.
pub fn ports_cell(row: &Row) -> String {
    let l = &row.labels;
    format!(
        "{}{}/{}",
        l.local_class.short(),
        if l.local_listening { "*" } else { "" },
        l.remote_class.map_or("-", PortClass::short)
    )
}

/// `ftp#1:ctl`, `ftp#1:data:passive`, `ftp#1:pending:active`, or `-`;
/// `:med` or `:low` marks a guess, as in the Dir column.
pub fn ftp_cell(row: &Row) -> String {
    let Some(f) = &row.labels.ftp else {
        return "-".to_string();
    };
    let mode = match f.mode {
        Some(Mode::Active) => "active",
        Some(Mode::Passive) => "passive",
        None => "?",
    };
    let cell = match f.role {
        Role::Control => format!("ftp#{}:ctl", f.session),
        Role::Data => format!("ftp#{}:data:{mode}", f.session),
        Role::Pending => format!("ftp#{}:pending:{mode}", f.session),
    };
    match f.confidence {
        Confidence::High => cell,
        Confidence::Medium => cell + ":med",
        Confidence::Low => cell + ":low",
    }
}

/// netstat's `1234/nginx`; several owners joined with `,`; `-` where none
/// is visible.
fn owners_cell(s: &Socket) -> String {
    if s.processes.is_empty() {
        return "-".to_string();
    }
    let parts: Vec<String> = s
        .processes
        .iter()
        .map(|p| format!("{}/{}", p.pid, terminal_safe(&p.name)))
        .collect();
    parts.join(",")
}

/// netstat's `keepalive (7185.12/0/0)`.
fn timer_cell(s: &Socket) -> String {
    let t = s.timer;
    format!(
        "{} ({:.2}/{}/0)",
        t.kind.name(),
        t.expires_ms as f64 / 1000.0,
        t.retransmits
    )
}
