//! Watch mode (`-c`, `--watch`): collect, compare with the refresh before,
//! render, wait; until `--count` refreshes, `q`, Ctrl-C or SIGTERM.
//!
//! Three outputs: on a terminal, a full-screen view in the alternate screen,
//! new connections highlighted and those gone shown once, dimmed; piped, a
//! table per refresh under a timestamp line; with `--format jsonl`, events
//! (`added`, `removed`, `changed`, then `tick`) keyed by the socket cookie.
//! What earlier refreshes saw (listeners, handshakes) feeds the classifiers.
//! The terminal is restored on every way out, errors included: the
//! [`Screen`] guard does it when dropped.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use owo_colors::Style;
use serde_json::{Value, json};

use crate::classify::Row;
use crate::classify::direction::Direction;

use crate::cli::Format;
use crate::collect::Notices;
use crate::config::Config;
use crate::error::Error;
use crate::model::State;
use crate::render::json::socket_of;
use crate::{Cache, Part, shown};

/// Set by SIGINT and SIGTERM: the loop ends cleanly at the next step.
static STOP: AtomicBool = AtomicBool::new(false);
/// Set by SIGWINCH: the screen is drawn again at once.
static RESIZED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_resize(_: libc::c_int) {
    RESIZED.store(true, Ordering::SeqCst);
}

fn install_handlers() {
    // SAFETY: the handlers only store to atomics, which is signal-safe; no
    // SA_RESTART, so a poll() or sleep in progress returns early.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_stop as *const () as usize;
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
        action.sa_sigaction = on_resize as *const () as usize;
        libc::sigaction(libc::SIGWINCH, &action, std::ptr::null_mut());
    }
}

/// Runs watch mode until it is told to stop.
pub fn run(cfg: &Config, out: &mut dyn Write, notices: &mut Notices) -> Result<(), Error> {
    install_handlers();
    let mut cache = Cache::default();
    let result = refresh(cfg, out, notices, &mut cache);
    if cfg.verbose {
        notices.push(format!(
            "owners: /proc walked {} times in {} refreshes",
            cache.owner_walks, cache.refreshes
        ));
    }
    result
}

fn refresh(
    cfg: &Config,
    out: &mut dyn Write,
    notices: &mut Notices,
    cache: &mut Cache,
) -> Result<(), Error> {
    let mut events = Events::default();
    let mut screen = if cfg.stdout_is_tty && cfg.format == Format::Table {
        Some(Screen::enter().map_err(Error::Output)?)
    } else {
        None
    };
    let mut refreshes = 0u64;
    loop {
        let started = Instant::now();
        let parts = crate::look(cfg, notices, Some(&mut *cache))?;
        for p in &parts {
            cache
                .memory
                .entry(p.inode)
                .or_default()
                .learn(p.sockets.iter());
        }
        let now = timestamp(SystemTime::now());
        match (&mut screen, cfg.format) {
            (Some(screen), _) => screen
                .show(cfg, &parts, &now, cache)
                .map_err(Error::Output)?,
            (None, Format::Jsonl) => events
                .write_at(cfg, &parts, &now, out)
                .map_err(Error::Output)?,
            (None, _) => {
                writeln!(out, "sockwho {now} (every {}s)", cfg.interval.as_secs_f64())
                    .and_then(|()| crate::render_cached(cfg, &parts, cache, out))
                    .and_then(|()| writeln!(out))
                    .map_err(Error::Output)?;
            }
        }
        out.flush().map_err(Error::Output)?;
        refreshes += 1;
        cache.refreshes = refreshes;
        if cfg.count.is_some_and(|n| refreshes >= n) {
            return Ok(());
        }
        let deadline = started + cfg.interval;
        let quit = match &mut screen {
            Some(screen) => screen.wait(deadline).map_err(Error::Output)?,
            None => sleep_until(deadline),
        };
        if quit {
            return Ok(());
        }
    }
}

/// Sleeps until `deadline` or a stop signal; true for the signal.
fn sleep_until(deadline: Instant) -> bool {
    loop {
        if STOP.load(Ordering::SeqCst) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

/// `2026-11-24T03:30:00.123Z`
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    // civil_from_days (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

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

    fn write_at(
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
            serde_json::to_writer(&mut *out, &line).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
        }
        let tick = json!({"event": "tick", "time": time, "sockets": now.len(),
            "added": added, "changed": changed, "removed": removed});
        serde_json::to_writer(&mut *out, &tick).map_err(io::Error::from)?;
        out.write_all(b"\n")?;
        self.before = now;
        self.sockets = sockets;
        Ok(())
    }
}

/// The full-screen view: alternate screen, no cursor, keys read one by one.
/// Dropping it puts the terminal back as it was.
pub struct Screen {
    saved: Option<libc::termios>,
    /// The table lines of the refresh before, by socket.
    before: HashMap<Key, String>,
    /// The last frame, drawn again on resize.
    frame: Vec<(String, Style)>,
}

fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()
}

impl Screen {
    pub fn enter() -> io::Result<Screen> {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a valid termios; if stdin
        // is no terminal they fail and keys are simply not read.
        let saved = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            (libc::tcgetattr(0, &mut t) == 0).then(|| {
                let mut raw = t;
                // keys one by one, unechoed; Ctrl-C as a key, not a signal
                raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
                raw.c_cc[libc::VMIN] = 0;
                raw.c_cc[libc::VTIME] = 0;
                libc::tcsetattr(0, libc::TCSANOW, &raw);
                t
            })
        };
        let screen = Screen {
            saved,
            before: HashMap::new(),
            frame: Vec::new(),
        };
        write_stdout(b"\x1b[?1049h\x1b[?25l")?;
        Ok(screen)
    }

    fn size() -> (usize, usize) {
        // SAFETY: TIOCGWINSZ fills a winsize; on failure we keep a default.
        unsafe {
            let mut w: libc::winsize = std::mem::zeroed();
            if libc::ioctl(1, libc::TIOCGWINSZ, &mut w) == 0 && w.ws_row > 0 && w.ws_col > 0 {
                (usize::from(w.ws_row), usize::from(w.ws_col))
            } else {
                (24, 80)
            }
        }
    }

    /// Builds and draws one refresh.
    pub fn show(
        &mut self,
        cfg: &Config,
        parts: &[Part],
        time: &str,
        cache: &mut Cache,
    ) -> io::Result<()> {
        let plain = Config {
            color: false,
            ..cfg.clone()
        };
        let mut table = Vec::new();
        crate::render_cached(&plain, parts, cache, &mut table)?;
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
        for ((key, _), line) in rows.iter().zip(lines) {
            // new since the refresh before: highlighted (not on the first)
            let style = if !self.before.is_empty() && !self.before.contains_key(key) {
                Style::new().green().bold()
            } else {
                Style::new()
            };
            frame.push((line.to_string(), style));
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
        self.draw()
    }

    fn draw(&self) -> io::Result<()> {
        let (height, width) = Self::size();
        let mut buf = String::from("\x1b[H\x1b[2J");
        for (i, (line, style)) in self.frame.iter().take(height).enumerate() {
            let clipped: String = line.chars().take(width).collect();
            if i > 0 {
                buf.push_str("\r\n");
            }
            buf.push_str(&style.style(clipped).to_string());
        }
        write_stdout(buf.as_bytes())
    }

    /// Waits for the next refresh; true when told to quit (`q`, Ctrl-C,
    /// a signal). A resize draws the last frame again at the new size.
    pub fn wait(&mut self, deadline: Instant) -> io::Result<bool> {
        loop {
            if STOP.load(Ordering::SeqCst) {
                return Ok(true);
            }
            if RESIZED.swap(false, Ordering::SeqCst) {
                self.draw()?;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let timeout = (deadline - now).as_millis().min(200) as libc::c_int;
            let mut pfd = libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready =
                unsafe { libc::poll(&mut pfd, 1, if self.saved.is_some() { timeout } else { 0 }) };
            if self.saved.is_none() {
                std::thread::sleep(Duration::from_millis(timeout as u64));
                continue;
            }
            if ready > 0 {
                let mut key = [0u8; 16];
                // SAFETY: reading into a local buffer of its length.
                let n = unsafe { libc::read(0, key.as_mut_ptr().cast(), key.len()) };
                if n > 0
                    && key[..n as usize]
                        .iter()
                        .any(|&k| k == b'q' || k == b'Q' || k == 3)
                {
                    return Ok(true);
                }
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = write_stdout(b"\x1b[?25h\x1b[?1049l");
        if let Some(saved) = &self.saved {
            // SAFETY: restoring the attributes read in `enter`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, saved) };
        }
    }
}

/// `sockwho 03:30:00 every 1s: 12 sockets; ESTABLISHED 5, LISTEN 3; in 4, out 3, listen 3 (q quits)`
fn header(time: &str, cfg: &Config, rows: &[(Key, Row)]) -> String {
    let mut states: Vec<(&str, usize)> = Vec::new();
    let mut dirs = [0usize; 4];
    for (_, r) in rows {
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
    format!(
        "sockwho {clock} every {}s: {} sockets; {}; in {}, out {}, listen {}, unknown {} (q quits)",
        cfg.interval.as_secs_f64(),
        rows.len(),
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

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_930_200_123);
        assert_eq!(timestamp(t), "2026-11-29T05:30:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
    }
}
