//! The full-screen frame of watch mode: a header with counts, the table,
//! connections new since the refresh before highlighted, those gone shown
//! once, dimmed, and those that opened and closed between two refreshes
//! (seen only as the kernel destroyed them) shown once, in yellow, their
//! state `CLOSED` or `REFUSED`. Built from the view and drawn to any
//! `io::Write` at a given size; the terminal itself (raw mode, keys, size)
//! belongs to `watch`.

use std::collections::HashMap;
use std::io::{self, Write};

use owo_colors::Style;

use super::events::{Key, key_of};
use super::palette::Palette;
use super::table::Table;
use crate::classify::Row;
use crate::classify::direction::Direction;
use crate::collect::names::Names;
use crate::config::Config;
use crate::view::{Part, shown};

/// The frames of one watch session: what the refresh before showed, and the
/// last frame, drawn again on resize.
#[derive(Debug, Default)]
pub struct Screen {
    /// The table lines of the refresh before, by socket.
    before: HashMap<Key, String>,
    frame: Vec<(String, Style)>,
}

impl Screen {
    /// Builds the frame of one refresh.
    pub fn update(
        &mut self,
        cfg: &Config,
        parts: &[Part],
        names: &Names,
        time: &str,
    ) -> io::Result<()> {
        let plain = Config {
            color: false,
            ..cfg.clone()
        };
        let mut table = Vec::new();
        Table {
            cfg: &plain,
            names,
            palette: Palette::new(false),
        }
        .write(parts, &mut table)?;
        let text = String::from_utf8_lossy(&table).into_owned();
        let mut lines = text.lines();
        let (title, columns) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        let rows: Vec<(Key, Row)> = shown(cfg, parts).map(|(p, r)| (key_of(p, r), r)).collect();
        let mut frame = vec![
            (header(time, cfg, &rows), Style::new().bold()),
            (title.to_string(), Style::new()),
        ];
        frame.push((columns.to_string(), Style::new().bold()));
        let mut now = HashMap::new();
        for (key, row) in &rows {
            let Some(line) = lines.next() else { break };
            // with -i, a TCP row's tcp_info line under it, in its style
            // (its tab as spaces: the frame is cut by characters)
            let info = super::table::has_info_line(cfg, row.socket)
                .then(|| lines.next())
                .flatten()
                .map(|i| i.replacen('\t', "        ", 1));
            if row.socket.closed {
                // this once: it is in no refresh to come, nor gone from one
                frame.push((line.to_string(), Style::new().yellow()));
                frame.extend(info.map(|i| (i, Style::new().yellow())));
                continue;
            }
            // new since the refresh before: highlighted (not on the first)
            let style = if !self.before.is_empty() && !self.before.contains_key(key) {
                Style::new().green().bold()
            } else {
                Style::new()
            };
            frame.push((line.to_string(), style));
            frame.extend(info.map(|i| (i, style)));
            now.insert(key.clone(), line.to_string());
        }
        // gone since the refresh before: shown this once, dimmed
        for (key, line) in &self.before {
            if !now.contains_key(key) {
                frame.push((format!("{line}  (gone)"), Style::new().dimmed()));
            }
        }
        self.before = now;
        self.frame = frame;
        Ok(())
    }

    /// Draws the last frame, cut to `height` lines of `width` characters.
    pub fn draw(&self, (width, height): (usize, usize), out: &mut dyn Write) -> io::Result<()> {
        let mut buf = String::from("\x1b[H\x1b[2J");
        for (i, (line, style)) in self.frame.iter().take(height).enumerate() {
            let clipped: String = line.chars().take(width).collect();
            if i > 0 {
                buf.push_str("\r\n");
            }
            buf.push_str(&style.style(clipped).to_string());
        }
        out.write_all(buf.as_bytes())?;
        out.flush()
    }
}

/// `sockwho 03:30:00 every 1s: 12 sockets (+2 closed); ESTABLISHED 5, LISTEN 3; in 4, out 3, listen 3, unknown 0 (q quits)`:
/// the counts are of the sockets listed, the closed ones apart.
fn header(time: &str, cfg: &Config, rows: &[(Key, Row)]) -> String {
    let mut states: Vec<(&str, usize)> = Vec::new();
    let mut dirs = [0usize; 4];
    let closed = rows.iter().filter(|(_, r)| r.socket.closed).count();
    let listed = rows.len() - closed;
    for (_, r) in rows.iter().filter(|(_, r)| !r.socket.closed) {
        let name = r.socket.state.name(r.socket.proto);
        match states.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => states.push((name, 1)),
        }
        dirs[match r.labels.direction.direction {
            Direction::Inbound => 0,
            Direction::Outbound => 1,
            Direction::Listen => 2,
            Direction::Unknown => 3,
        }] += 1;
    }
    states.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let states: Vec<String> = states.iter().map(|(n, c)| format!("{n} {c}")).collect();
    let clock = time.get(11..19).unwrap_or(time);
    let closed = match closed {
        0 => String::new(),
        n => format!(" (+{n} closed)"),
    };
    format!(
        "sockwho {clock} every {}s: {} sockets{closed}; {}; in {}, out {}, listen {}, unknown {} (q quits)",
        cfg.interval.as_secs_f64(),
        listed,
        states.join(", "),
        dirs[0],
        dirs[1],
        dirs[2],
        dirs[3]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Socket, State};
    use clap::Parser;

    fn part(sockets: Vec<Socket>) -> Part {
        Part::classified(sockets, None)
    }

    fn closed(s: Socket) -> Socket {
        let mut s = s.state(State::Close);
        s.closed = true;
        s
    }

    fn frame(screen: &mut Screen, cfg: &Config, sockets: Vec<Socket>) -> Vec<String> {
        screen
            .update(
                cfg,
                &[part(sockets)],
                &Names::default(),
                "2026-01-01T00:00:10.000Z",
            )
            .unwrap();
        screen.frame.iter().map(|(l, _)| l.clone()).collect()
    }

    #[test]
    fn closed_connections_show_once_marked_and_apart_in_the_counts() {
        let cli = crate::cli::Cli::parse_from(["sockwho", "-tan", "-c"]);
        let cfg = Config::new(&cli, &Default::default(), |_| None).unwrap();
        let listener = Socket::tcp("10.0.0.1:80", None).cookie(1);
        let mut screen = Screen::default();
        frame(&mut screen, &cfg, vec![listener.clone()]);
        let gone = closed(Socket::tcp("10.0.0.1:80", Some("10.0.0.2:40001")).cookie(3));
        let refused = closed(Socket::tcp("0.0.0.0:40002", Some("10.0.0.9:0")).cookie(4));
        let lines = frame(&mut screen, &cfg, vec![listener.clone(), gone, refused]);
        assert!(
            lines[0].contains(": 1 sockets (+2 closed); LISTEN 1;"),
            "{}",
            lines[0]
        );
        let row = |port: &str| {
            lines
                .iter()
                .find(|l| l.contains(port))
                .unwrap_or_else(|| panic!("{port} in {lines:#?}"))
                .clone()
        };
        assert!(row("10.0.0.2:40001").contains(" CLOSED "), "{lines:#?}");
        let refused = row("0.0.0.0:40002");
        assert!(
            refused.contains("10.0.0.9:- ") && refused.contains(" REFUSED "),
            "no port made up: {refused}"
        );
        // next refresh: neither again, nor gone
        let lines = frame(&mut screen, &cfg, vec![listener]);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(!lines.iter().any(|l| l.contains("(gone)")), "{lines:#?}");
    }

    /// With -i each TCP row brings its tcp_info line, in the row's style,
    /// and the rows stay matched to their sockets.
    #[test]
    fn with_i_each_row_keeps_its_info_line() {
        let cli = crate::cli::Cli::parse_from(["sockwho", "-ani", "-c"]);
        let cfg = Config::new(&cli, &Default::default(), |_| None).unwrap();
        let listener = Socket::tcp("10.0.0.1:80", None).cookie(1);
        let mut conn = Socket::tcp("10.0.0.1:80", Some("10.0.0.2:40001")).cookie(2);
        conn.tcp_info = Some(Box::new(crate::model::TcpInfo {
            snd_cwnd: 10,
            ..Default::default()
        }));
        let udp = Socket::udp("10.0.0.1:53", Some("10.0.0.3:5353")).cookie(3);
        let mut screen = Screen::default();
        frame(&mut screen, &cfg, vec![listener.clone()]);
        let gone = closed(Socket::tcp("10.0.0.1:80", Some("10.0.0.2:40009")).cookie(4));
        frame(&mut screen, &cfg, vec![listener.clone(), conn, udp, gone]);
        let styles: Vec<(String, Style)> = screen.frame.clone();
        let at = |needle: &str| {
            styles
                .iter()
                .position(|(l, _)| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle} in {styles:#?}"))
        };
        let row = at("10.0.0.2:40001");
        assert_eq!(styles[row + 1].0, "         cwnd:10", "{styles:#?}");
        assert_eq!(styles[row + 1].1, styles[row].1, "the row's style");
        assert_eq!(styles[row].1, Style::new().green().bold(), "new");
        // UDP: no line; the closed one: its (empty) line, yellow
        assert!(styles[at("10.0.0.3:5353") + 1].0.contains("CLOSED"));
        let closed_row = at("10.0.0.2:40009");
        assert_eq!(
            styles[closed_row + 1],
            ("        ".into(), Style::new().yellow())
        );
        assert!(!styles.iter().any(|(l, _)| l.contains('\t')));
    }
}
