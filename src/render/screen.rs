//! The interactive view of watch mode on a terminal, drawn with ratatui: a
//! header with counts by state, direction and port class, the table with
//! its rows sorted, filtered and scrolled, a pane of FTP sessions, help, and
//! a status line.
//!
//! [`Screen`] is the view's state: what each refresh showed (the rows, the
//! first time each connection was seen, the rows that went away), the sort,
//! the filter, the scroll position, the panes. A refresh goes in through
//! [`Screen::update`], a key or the mouse through [`Screen::handle`], and
//! [`Screen::draw`] is a pure function of the state and the refresh's
//! parts into a ratatui [`Frame`]: it collects nothing and changes nothing.
//! The terminal itself (raw mode, events, the diffed redraw) belongs to
//! `watch`.
//!
//! Rows that went away since the refresh before, and sockets seen only as
//! the kernel destroyed them (`closed`), stay in place, dimmed and marked
//! `-`, for [`LINGER`] refreshes; new rows are highlighted and marked `+`
//! for as long. No cell is ever cut: when the window is too narrow, whole
//! columns are dropped, netstat's first and sockwho's own last, and the
//! header says which. All outside text is escaped by `render::escape`.

use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers, MouseEventKind};
use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::before::{Before, Id};
use super::escape::{Rules, terminal_safe};
use super::palette::Palette;
use super::table::{self, Table};
use crate::classify::direction::Direction;
use crate::classify::ftp::{Mode, Role, Session, Side};
use crate::classify::ports::PortClass;
use crate::classify::{Labels, Row};
use crate::collect::names::Names;
use crate::config::Config;
use crate::filter::Filter;
use crate::filter::expr::Query;
use crate::model::{Family, Proto, Socket, State, canonical};
use crate::view::{Part, shown_at};

/// How many refreshes a row that went away stays on screen, dimmed, and a
/// new one stays highlighted.
pub const LINGER: u64 = 3;

/// Rows the mouse wheel scrolls at a time.
const WHEEL: usize = 3;

/// The columns of the view, in their order on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Col {
    Netns,
    Proto,
    RecvQ,
    SendQ,
    Local,
    Remote,
    State,
    User,
    Inode,
    Program,
    More,
    Age,
    Dir,
    Ports,
    Ftp,
    Timer,
}

/// The order in which columns are dropped from a window too narrow for
/// them all: netstat's extras first, sockwho's own last; the local
/// address never.
const DROP_ORDER: [Col; 15] = [
    Col::Timer,
    Col::Inode,
    Col::User,
    Col::More,
    Col::SendQ,
    Col::RecvQ,
    Col::Proto,
    Col::Netns,
    Col::Program,
    Col::State,
    Col::Remote,
    Col::Age,
    Col::Ports,
    Col::Ftp,
    Col::Dir,
];

impl Col {
    pub fn title(self) -> &'static str {
        match self {
            Col::Netns => "NETNS",
            Col::Proto => "Proto",
            Col::RecvQ => "Recv-Q",
            Col::SendQ => "Send-Q",
            Col::Local => "Local Address",
            Col::Remote => "Foreign Address",
            Col::State => "State",
            Col::User => "User",
            Col::Inode => "Inode",
            Col::Program => "PID/Program name",
            Col::More => "More",
            Col::Age => "Age",
            Col::Dir => "Dir",
            Col::Ports => "Ports",
            Col::Ftp => "FTP",
            Col::Timer => "Timer",
        }
    }

    fn right(self) -> bool {
        matches!(self, Col::RecvQ | Col::SendQ | Col::Inode | Col::Age)
    }
}

/// The columns the options ask for.
fn columns(cfg: &Config) -> Vec<Col> {
    let mut cols = Vec::new();
    if cfg.names_namespaces() {
        cols.push(Col::Netns);
    }
    cols.extend([
        Col::Proto,
        Col::RecvQ,
        Col::SendQ,
        Col::Local,
        Col::Remote,
        Col::State,
    ]);
    if cfg.extend {
        cols.extend([Col::User, Col::Inode]);
    }
    if cfg.program {
        cols.extend([Col::Program, Col::More]);
    }
    cols.extend([Col::Age, Col::Dir, Col::Ports, Col::Ftp]);
    if cfg.timers {
        cols.push(Col::Timer);
    }
    cols
}

/// What the rows are sorted by; `s` cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    State,
    LocalPort,
    Remote,
    Direction,
    Queue,
    Age,
}

impl SortKey {
    pub const ALL: [SortKey; 6] = [
        SortKey::State,
        SortKey::LocalPort,
        SortKey::Remote,
        SortKey::Direction,
        SortKey::Queue,
        SortKey::Age,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SortKey::State => "state",
            SortKey::LocalPort => "local port",
            SortKey::Remote => "remote address",
            SortKey::Direction => "direction",
            SortKey::Queue => "queue",
            SortKey::Age => "age",
        }
    }

    fn next(self) -> SortKey {
        let i = SortKey::ALL.iter().position(|k| *k == self).unwrap_or(0);
        SortKey::ALL[(i + 1) % SortKey::ALL.len()]
    }
}

/// When watch mode first saw a connection (tenths of a second after the
/// view's first refresh), and in which refresh: 8 bytes a row.
#[derive(Debug, Clone, Copy)]
struct Seen {
    tenths: u32,
    refresh: u32,
}

/// A row no longer listed: gone since the refresh before, or seen only as
/// the kernel destroyed it. Its cells are kept as they were shown.
#[derive(Debug)]
struct Ghost {
    key: Id,
    seen: Seen,
    socket: Socket,
    labels: Labels,
    /// One per column of the screen (Age's is made when drawn).
    cells: Vec<String>,
    /// Refreshes it still shows in.
    left: u64,
}

/// A row of the list: a listed socket (`parts[part].row(index)`) or a ghost.
#[derive(Debug, Clone, Copy)]
enum At {
    Live { part: usize, index: usize },
    Ghost(usize),
}

/// A row of the list in 16 bytes (200,000 of them are made each refresh):
/// `part` is [`Item::GHOST`] for a ghost, `index` then the ghost's.
#[derive(Debug, Clone, Copy)]
struct Item {
    part: u32,
    index: u32,
    /// When it was first seen, as [`Seen::tenths`].
    first: u32,
    new: bool,
}

impl Item {
    const GHOST: u32 = u32::MAX;

    fn at(&self) -> At {
        match self.part {
            Item::GHOST => At::Ghost(self.index as usize),
            part => At::Live {
                part: part as usize,
                index: self.index as usize,
            },
        }
    }
}

/// The filter typed after `/`: the command line's filters (`--sport 22`,
/// `--direction in`...) and ss's expressions (`sport = :22 or dst
/// 10.0.0.0/8`), applied to what was collected.
#[derive(Debug, Clone)]
pub struct ViewFilter {
    text: String,
    filter: Filter,
    query: Option<Query>,
}

/// The options a filter typed after `/` may use; those taking no value
/// are listed in [`FLAGS_ALONE`].
const FLAGS: [&str; 9] = [
    "--state",
    "--sport",
    "--dport",
    "--port",
    "--src",
    "--dst",
    "--pid",
    "--direction",
    "--class",
];
const FLAGS_ALONE: [&str; 1] = ["--ftp"];

impl ViewFilter {
    /// Parses what was typed after `/`, with the command line's parsers:
    /// options as `sockwho` takes them, ss's expression words, or a port
    /// alone (`22`, `:22`, `1000-2000`: either end). The error is one line.
    pub fn parse(
        text: &str,
        cfg: &Config,
        service: &dyn Fn(&str) -> Option<u16>,
    ) -> Result<ViewFilter, String> {
        let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        let is_port = |w: &str| {
            let w = w.strip_prefix(':').unwrap_or(w);
            !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '-')
        };
        if let [word] = words.as_slice()
            && is_port(word)
        {
            words = vec!["--port".to_string(), word.clone()];
        }
        let mut ftp = false;
        words.retain(|w| {
            let alone = FLAGS_ALONE.contains(&w.as_str());
            ftp |= alone;
            !alone
        });
        for w in words.iter().filter(|w| w.starts_with('-')) {
            let name = w.split_once('=').map_or(w.as_str(), |(n, _)| n);
            if !FLAGS.contains(&name) {
                return Err(format!(
                    "'{w}' is no filter here (options: {} {}; or ss's expressions)",
                    FLAGS.join(" "),
                    FLAGS_ALONE.join(" ")
                ));
            }
        }
        let argv = std::iter::once("sockwho".to_string()).chain(words);
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(argv).map_err(|e| {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid filter").to_string();
            first.strip_prefix("error: ").unwrap_or(&first).to_string()
        })?;
        let env = crate::config::Environment {
            stdout_is_tty: false,
            no_color: None,
            term: None,
            inputs: cfg.inputs.clone(),
        };
        let parsed = Config::new(&cli, &env, service)?;
        if let Some(word) = parsed
            .expression
            .as_ref()
            .and_then(|q| q.expr.as_ref())
            .and_then(|e| e.kernel_only())
        {
            return Err(format!(
                "{word}: only the kernel tests it, as it lists the sockets; give it on the command line"
            ));
        }
        let mut filter = parsed.filter;
        filter.ftp = ftp;
        Ok(ViewFilter {
            text: text.trim().to_string(),
            filter,
            query: parsed.expression,
        })
    }

    pub fn matches(&self, s: &Socket, l: &Labels) -> bool {
        self.filter.matches_socket(s)
            && self.filter.matches_labels(s, l)
            && self.query.as_ref().is_none_or(|q| {
                q.states.is_none_or(|m| m & s.state.bit() != 0)
                    && q.family.is_none_or(|f| f == s.family)
                    && q.expr.as_ref().is_none_or(|e| e.matches(s))
            })
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// What a key or the mouse came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Draw again.
    Redraw,
    /// Nothing changed.
    Ignored,
    /// `q` or Ctrl-C.
    Quit,
}

/// Counts of the listed rows, for the header.
#[derive(Debug, Default)]
struct Counts {
    listed: usize,
    closed: usize,
    gone: usize,
    states: Vec<(&'static str, usize)>,
    /// in, out, listen, unknown
    directions: [usize; 4],
    /// well-known, registered, ephemeral
    classes: [usize; 3],
}

impl Counts {
    /// Counts a live row.
    fn live(&mut self, s: &Socket, l: &Labels) {
        self.listed += 1;
        let name = table::state_cell(s);
        let name = if name.is_empty() { "UNCONN" } else { name };
        match self.states.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => self.states.push((name, 1)),
        }
        self.directions[match l.direction.direction {
            Direction::Inbound => 0,
            Direction::Outbound => 1,
            Direction::Listen => 2,
            Direction::Unknown => 3,
        }] += 1;
        self.classes[match l.local_class {
            PortClass::WellKnown => 0,
            PortClass::Registered => 1,
            PortClass::Ephemeral => 2,
        }] += 1;
    }
}

/// The state of the view across refreshes and keys.
#[derive(Debug)]
pub struct Screen {
    columns: Vec<Col>,
    color: bool,
    interval: f64,
    /// Refreshes taken in so far (the first is 1).
    refreshes: u64,
    /// When the first refresh was taken in: what [`Seen::tenths`] count from.
    origin: Option<Instant>,
    /// When each listed row of the refresh shown was first seen, in the
    /// order [`Before::of`] packs them.
    firsts: Vec<Seen>,
    /// The rows shown, packed while the next refresh is collected
    /// ([`Screen::pack`]).
    before: Before,
    ghosts: Vec<Ghost>,
    items: Vec<Item>,
    counts: Counts,
    sort: SortKey,
    reverse: bool,
    filter: Option<ViewFilter>,
    /// What is being typed after `/`.
    typing: Option<String>,
    /// The last filter's error, said in the status line.
    error: Option<String>,
    offset: usize,
    /// The rows the last frame showed: a page for PgUp and PgDn.
    page: usize,
    paused: bool,
    ftp: bool,
    help: bool,
    /// The last refresh's time (`2026-01-01T03:30:00.000Z`), and its instant:
    /// ages are as of then.
    time: String,
    at: Option<Instant>,
}

impl Screen {
    pub fn new(cfg: &Config) -> Screen {
        Screen {
            columns: columns(cfg),
            color: cfg.color,
            interval: cfg.interval.as_secs_f64(),
            refreshes: 0,
            origin: None,
            firsts: Vec::new(),
            before: Before::default(),
            ghosts: Vec::new(),
            items: Vec::new(),
            counts: Counts::default(),
            sort: SortKey::State,
            reverse: false,
            filter: None,
            typing: None,
            error: None,
            offset: 0,
            page: 1,
            paused: false,
            // `-c --ftp` opens with the FTP pane
            ftp: cfg.ftp_view,
            help: false,
            time: String::new(),
            at: None,
        }
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Packs the rows of `shown` (what the last refresh showed), which
    /// then go: called before the next refresh is collected, so that two
    /// refreshes' sockets are never alive at once. Until [`Screen::update`]
    /// the list is empty.
    pub fn pack(&mut self, cfg: &Config, shown: Vec<Part>) {
        self.items = Vec::new();
        self.before = Before::default();
        self.before = Before::of(cfg, shown);
    }

    /// When `at` is, as [`Seen::tenths`].
    fn tenths(&self, at: Instant) -> u32 {
        let since = self
            .origin
            .map_or(Duration::ZERO, |o| at.saturating_duration_since(o));
        u32::try_from(since.as_millis() / 100).unwrap_or(u32::MAX)
    }

    /// Takes in a refresh: `parts` replace what [`Screen::pack`] packed at
    /// `at`, the wall clock saying `time`.
    pub fn update(&mut self, cfg: &Config, parts: &[Part], names: &Names, at: Instant, time: &str) {
        let table = Table {
            cfg,
            names,
            palette: Palette::new(false),
        };
        self.refreshes += 1;
        self.origin.get_or_insert(at);
        let now = Seen {
            tenths: self.tenths(at),
            refresh: u32::try_from(self.refreshes).unwrap_or(u32::MAX),
        };
        let before = std::mem::take(&mut self.before);
        // the ghosts of earlier refreshes fade by one
        for g in &mut self.ghosts {
            g.left = g.left.saturating_sub(1);
        }
        self.ghosts.retain(|g| g.left > 0);
        let mut ghosted: HashSet<Id> = self.ghosts.iter().map(|g| g.key).collect();
        let mut again = vec![false; before.len()];
        let mut firsts = Vec::with_capacity(before.len());
        let mut fresh = Vec::new();
        let mut last = None;
        for (_, _, part, row) in shown_at(cfg, parts) {
            let key = Id::of(part, row.socket);
            if row.socket.closed {
                // seen only as it went: this once, then as a ghost
                fresh.push(self.ghost(&table, part, row, key, now));
                continue;
            }
            let found = before.find_after(&key, last);
            last = found.or(last);
            let seen = match found {
                Some(i) => {
                    again[i] = true;
                    self.firsts.get(i).copied().unwrap_or(now)
                }
                None => now,
            };
            firsts.push(seen);
            // a key listed again is no ghost (a /proc socket's ends reused)
            ghosted.remove(&key);
        }
        self.ghosts.retain(|g| ghosted.contains(&g.key));
        for i in (0..before.len()).filter(|&i| !again[i]) {
            let key = before.id(i);
            if ghosted.insert(key) {
                let (part, socket, labels) = before.row(i);
                let row = Row {
                    socket: &socket,
                    labels: &labels,
                };
                let seen = self.firsts.get(i).copied().unwrap_or(now);
                fresh.push(self.ghost(&table, part, row, key, seen));
            }
        }
        drop(before);
        self.ghosts.extend(fresh);
        self.firsts = firsts;
        self.time = time.to_string();
        self.at = Some(at);
        self.relist(cfg, parts);
    }

    fn ghost(&self, table: &Table, part: &Part, row: Row, key: Id, seen: Seen) -> Ghost {
        Ghost {
            cells: self
                .columns
                .iter()
                .map(|&c| cell(table, part, row, c).into_owned())
                .collect(),
            key,
            seen,
            socket: row.socket.clone(),
            labels: row.labels.clone(),
            left: LINGER,
        }
    }

    /// The list again: the rows shown, filtered, sorted; and their counts.
    fn relist(&mut self, cfg: &Config, parts: &[Part]) {
        let new = |s: &Seen| {
            let refresh = u64::from(s.refresh);
            refresh > 1 && self.refreshes - refresh < LINGER
        };
        let keep = |s: &Socket, l: &Labels| self.filter.as_ref().is_none_or(|f| f.matches(s, l));
        let sort = self.sort;
        // One pass in the refresh's order (its sockets in memory's order)
        // counts the rows and gives each its key in 128 bits, compared
        // first: all pairs but those of IPv6 rows are told apart by it,
        // without reaching into their sockets.
        let mut items = Vec::new();
        let mut keyed: Vec<(u128, u32)> = Vec::new();
        let mut counts = Counts::default();
        let mut listed = self.firsts.iter();
        for (p, i, _, row) in shown_at(cfg, parts) {
            if row.socket.closed {
                continue;
            }
            let seen = listed.next().copied().unwrap_or(Seen {
                tenths: 0,
                refresh: 0,
            });
            if !keep(row.socket, row.labels) {
                continue;
            }
            counts.live(row.socket, row.labels);
            keyed.push((
                leading(sort, row.socket, row.labels, seen.tenths),
                items.len() as u32,
            ));
            items.push(Item {
                part: p as u32,
                index: i as u32,
                first: seen.tenths,
                new: new(&seen),
            });
        }
        for (g, ghost) in self.ghosts.iter().enumerate() {
            if keep(&ghost.socket, &ghost.labels) {
                match ghost.socket.closed {
                    true => counts.closed += 1,
                    false => counts.gone += 1,
                }
                let key = leading(sort, &ghost.socket, &ghost.labels, ghost.seen.tenths);
                keyed.push((key, items.len() as u32));
                items.push(Item {
                    part: Item::GHOST,
                    index: g as u32,
                    first: ghost.seen.tenths,
                    new: false,
                });
            }
        }
        let fields = |item: &Item| -> (&Socket, &Labels) {
            match item.at() {
                At::Live { part, index } => {
                    (&parts[part].sockets[index], &parts[part].labels[index])
                }
                At::Ghost(g) => (&self.ghosts[g].socket, &self.ghosts[g].labels),
            }
        };
        // unstable, with the list's order last
        keyed.sort_unstable_by(|&(ka, a), &(kb, b)| {
            let (a, b) = (&items[a as usize], &items[b as usize]);
            let order = ka.cmp(&kb).then_with(|| {
                let (sa, la) = fields(a);
                let (sb, lb) = fields(b);
                compare(sort, (sa, la, a.first), (sb, lb, b.first))
            });
            let order = if self.reverse { order.reverse() } else { order };
            order.then_with(|| (a.part, a.index).cmp(&(b.part, b.index)))
        });
        let items: Vec<Item> = keyed.into_iter().map(|(_, i)| items[i as usize]).collect();
        counts
            .states
            .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        self.items = items;
        self.counts = counts;
        self.offset = self.offset.min(self.max_offset());
    }

    fn max_offset(&self) -> usize {
        self.items.len().saturating_sub(self.page.max(1))
    }

    /// A key, the mouse or a resize. `parts` are what is shown (to sort
    /// and filter them again); `service` names ports in a typed filter.
    pub fn handle(
        &mut self,
        event: &Event,
        cfg: &Config,
        parts: &[Part],
        service: &dyn Fn(&str) -> Option<u16>,
    ) -> Outcome {
        let key = match event {
            Event::Resize(..) => return Outcome::Redraw,
            Event::Mouse(m) => {
                return match m.kind {
                    MouseEventKind::ScrollUp => self.scroll(-(WHEEL as isize)),
                    MouseEventKind::ScrollDown => self.scroll(WHEEL as isize),
                    _ => Outcome::Ignored,
                };
            }
            Event::Key(k) if k.kind != KeyEventKind::Release => k,
            _ => return Outcome::Ignored,
        };
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            return Outcome::Quit;
        }
        if let Some(text) = &mut self.typing {
            match key.code {
                KeyCode::Enter => {
                    let text = std::mem::take(text);
                    self.typing = None;
                    self.apply_filter(&text, cfg, parts, service);
                }
                KeyCode::Esc => self.typing = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => text.push(c),
                _ => return Outcome::Ignored,
            }
            return Outcome::Redraw;
        }
        if self.help && !matches!(key.code, KeyCode::Char('q' | 'Q')) {
            self.help = false;
            return Outcome::Redraw;
        }
        let page = self.page.max(1) as isize;
        match key.code {
            KeyCode::Char('q' | 'Q') => return Outcome::Quit,
            KeyCode::Up | KeyCode::Char('k') => return self.scroll(-1),
            KeyCode::Down | KeyCode::Char('j') => return self.scroll(1),
            KeyCode::PageUp => return self.scroll(-page),
            KeyCode::PageDown => return self.scroll(page),
            KeyCode::Home | KeyCode::Char('g') => self.offset = 0,
            KeyCode::End | KeyCode::Char('G') => self.offset = self.max_offset(),
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.relist(cfg, parts);
            }
            KeyCode::Char('r') => {
                self.reverse = !self.reverse;
                self.relist(cfg, parts);
            }
            KeyCode::Char('/') => {
                self.typing = Some(
                    self.filter
                        .as_ref()
                        .map_or(String::new(), |f| f.text.clone()),
                );
                self.error = None;
            }
            KeyCode::Esc => self.error = None,
            KeyCode::Char(' ') => self.paused = !self.paused,
            KeyCode::Char('f') => self.ftp = !self.ftp,
            KeyCode::Char('?' | 'h') => self.help = true,
            _ => return Outcome::Ignored,
        }
        Outcome::Redraw
    }

    fn scroll(&mut self, by: isize) -> Outcome {
        let to = self.offset.saturating_add_signed(by).min(self.max_offset());
        if to == self.offset {
            return Outcome::Ignored;
        }
        self.offset = to;
        Outcome::Redraw
    }

    /// Applies a typed filter; a bad one is said in the status line and
    /// the filter before stays.
    pub fn apply_filter(
        &mut self,
        text: &str,
        cfg: &Config,
        parts: &[Part],
        service: &dyn Fn(&str) -> Option<u16>,
    ) {
        if text.trim().is_empty() {
            self.filter = None;
            self.error = None;
        } else {
            match ViewFilter::parse(text, cfg, service) {
                Ok(f) => {
                    self.filter = Some(f);
                    self.error = None;
                }
                Err(e) => {
                    let e = e.strip_prefix("filter: ").unwrap_or(&e);
                    self.error = Some(format!("filter: {e}"));
                    return;
                }
            }
        }
        self.offset = 0;
        self.relist(cfg, parts);
    }

    /// Sets what the last frame could show, from [`Screen::draw`]'s answer.
    pub fn set_page(&mut self, rows: usize) {
        self.page = rows.max(1);
        self.offset = self.offset.min(self.max_offset());
    }

    /// Draws the view of `parts` (those of the last refresh taken in) into
    /// `frame`. Returns how many table rows it had room for (a page).
    pub fn draw(&self, cfg: &Config, parts: &[Part], names: &Names, frame: &mut Frame) -> usize {
        let area = frame.area();
        let (width, height) = (usize::from(area.width), usize::from(area.height));
        if width == 0 || height == 0 {
            return 1;
        }
        let table = Table {
            cfg,
            names,
            palette: Palette::new(false),
        };
        // The cells of every row the frame can show, whatever the header
        // and panes leave: the columns are chosen to fit all of them.
        let len = self.items.len();
        let from = self.offset.min(len.saturating_sub(height));
        let to = (self.offset.min(len) + height).min(len);
        let candidates: Vec<Vec<Cow<str>>> = self.items[from..to]
            .iter()
            .map(|item| self.cells(&table, parts, item))
            .collect();
        let (shown, hidden) = self.fit(&candidates, width);

        let header = flow(self.header_units(), width);
        let mut status = flow(self.status_units(), width);
        // the keys' hints: what fits on one line; an error: on three at most
        status.truncate(if self.error.is_some() { 3 } else { 1 });
        let mut info_units = Vec::new();
        // the rows' range is known once the table's height is: a
        // placeholder as wide as it can be, for the layout
        let rows_unit = |first: usize, last: usize| {
            if len == 0 {
                "rows 0 of 0".to_string()
            } else {
                format!("rows {first}-{last} of {len}")
            }
        };
        info_units.push(vec![Span::raw(rows_unit(len, len))]);
        info_units.extend(self.info_units(&hidden));
        let info = flow(info_units.clone(), width);
        // room: the status line and the table's title row and one row
        // first, then the rows' range, then the header, then the rest
        let mut left = height;
        let status_h = status.len().min(left);
        left -= status_h;
        let table_min = left.min(2);
        let mut spare = left - table_min;
        let info_h = info.len().min(spare);
        spare -= info_h;
        let header_h = header.len().min(spare);
        spare -= header_h;
        let body_h = table_min + spare;
        let (table_h, pane_h) = if self.ftp && body_h >= 8 {
            let pane = body_h / 2;
            (body_h - pane, pane)
        } else {
            (body_h, 0)
        };
        let rows_h = table_h.saturating_sub(1);
        let offset = self.offset.min(len.saturating_sub(rows_h.max(1)));
        let visible = rows_h.min(len - offset.min(len));
        let mut y = area.y;
        let put = |lines: Vec<Line>, h: usize, frame: &mut Frame, y: &mut u16| {
            for line in lines.into_iter().take(h) {
                frame.render_widget(line, Rect::new(area.x, *y, area.width, 1));
                *y += 1;
            }
        };
        put(header, header_h, frame, &mut y);
        // the info lines again, with the rows' real range
        info_units[0] = vec![Span::raw(rows_unit(offset + 1, offset + visible))];
        put(flow(info_units, width), info_h, frame, &mut y);
        let table_area = Rect::new(area.x, y, area.width, table_h as u16);
        if shown.is_empty() {
            let need = candidates
                .iter()
                .map(|c| text_width(&c[self.col(Col::Local)]))
                .max()
                .unwrap_or(0)
                + 2;
            let text = format!("Too narrow for the addresses: widen to {need} columns.");
            let units = text
                .split(' ')
                .map(|w| vec![Span::raw(w.to_string())])
                .collect();
            frame.render_widget(Paragraph::new(flow(units, width)), table_area);
        } else {
            let skip = offset - from;
            self.draw_table(
                &shown,
                &candidates[skip..],
                from + skip,
                visible,
                table_area,
                frame,
            );
        }
        y += table_h as u16;
        if pane_h > 0 {
            let pane = Rect::new(area.x, y, area.width, pane_h as u16);
            self.draw_ftp(parts, pane, frame);
            y += pane_h as u16;
        }
        let status_area = Rect::new(area.x, y, area.width, status_h as u16);
        frame.render_widget(Paragraph::new(status), status_area);
        if let Some(text) = &self.typing {
            let at = 1 + text_width(&prose(text));
            if at < width && status_h > 0 {
                frame.set_cursor_position(Position::new(area.x + at as u16, status_area.y));
            }
        }
        if self.help {
            let body = Rect::new(area.x, area.y, area.width, (height - status_h) as u16);
            draw_help(body, frame);
        }
        rows_h.max(1)
    }

    fn col(&self, c: Col) -> usize {
        self.columns.iter().position(|x| *x == c).unwrap_or(0)
    }

    /// The cells of one row, one per column of the screen.
    fn cells<'a>(&'a self, table: &Table, parts: &'a [Part], item: &Item) -> Vec<Cow<'a, str>> {
        let age = self.at.map_or(Duration::ZERO, |at| {
            Duration::from_millis(100 * u64::from(self.tenths(at).saturating_sub(item.first)))
        });
        self.columns
            .iter()
            .enumerate()
            .map(|(i, &c)| match (c, item.at()) {
                (Col::Age, _) => Cow::Owned(age_cell(age)),
                (_, At::Ghost(g)) => Cow::Borrowed(self.ghosts[g].cells[i].as_str()),
                (_, At::Live { part, index }) => {
                    Cow::Owned(cell(table, &parts[part], parts[part].row(index), c).into_owned())
                }
            })
            .collect()
    }

    /// The columns that fit `width` (as indices into `self.columns`) and the
    /// titles of those dropped. Empty when not even the local address fits.
    fn fit(
        &self,
        rows: &[Vec<Cow<str>>],
        width: usize,
    ) -> (Vec<(usize, usize)>, Vec<&'static str>) {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                rows.iter()
                    .map(|r| text_width(&r[i]))
                    .chain([c.title().len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut keep: Vec<bool> = vec![true; self.columns.len()];
        // the marker column and a space
        let total = |keep: &[bool]| -> usize {
            let n = keep.iter().filter(|k| **k).count();
            2 + widths
                .iter()
                .zip(keep)
                .filter(|(_, k)| **k)
                .map(|(w, _)| *w)
                .sum::<usize>()
                + n.saturating_sub(1)
        };
        let mut hidden = Vec::new();
        for c in DROP_ORDER {
            if total(&keep) <= width {
                break;
            }
            if let Some(i) = self.columns.iter().position(|x| *x == c) {
                keep[i] = false;
                hidden.push(c.title());
            }
        }
        if total(&keep) > width {
            return (Vec::new(), Vec::new());
        }
        let shown = (0..self.columns.len())
            .filter(|&i| keep[i])
            .map(|i| (i, widths[i]))
            .collect();
        (shown, hidden)
    }

    fn draw_table(
        &self,
        shown: &[(usize, usize)],
        rows: &[Vec<Cow<str>>],
        first: usize,
        visible: usize,
        area: Rect,
        frame: &mut Frame,
    ) {
        if area.height == 0 {
            return;
        }
        let line = |cells: &mut dyn Iterator<Item = (usize, &str, Style)>, mark: &str| {
            let mut spans = vec![Span::raw(format!("{mark} "))];
            let last = shown.len() - 1;
            for (n, (i, text, style)) in cells.enumerate() {
                let w = shown[n].1;
                let pad = w.saturating_sub(text_width(text));
                let col = self.columns[i];
                if n > 0 {
                    spans.push(Span::raw(" "));
                }
                if col.right() {
                    spans.push(Span::raw(" ".repeat(pad)));
                }
                spans.push(Span::styled(text.to_string(), style));
                if !col.right() && n != last {
                    spans.push(Span::raw(" ".repeat(pad)));
                }
            }
            spans
        };
        let title_style = Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED);
        let mut titles = shown
            .iter()
            .map(|&(i, _)| (i, self.columns[i].title(), Style::new()));
        let title = Line::from(line(&mut titles, " ")).style(title_style);
        frame.render_widget(title, Rect::new(area.x, area.y, area.width, 1));
        for (n, cells) in rows.iter().take(visible).enumerate() {
            let y = area.y + 1 + n as u16;
            if y >= area.y + area.height {
                break;
            }
            let item = &self.items[first + n];
            let (mark, row_style) = match item.at() {
                At::Ghost(_) => ("-", Style::new().add_modifier(Modifier::DIM)),
                At::Live { .. } if item.new => {
                    let s = Style::new().add_modifier(Modifier::BOLD);
                    ("+", if self.color { s.fg(Color::Green) } else { s })
                }
                At::Live { .. } => (" ", Style::new()),
            };
            let ghost = matches!(item.at(), At::Ghost(_));
            let mut it = shown.iter().map(|&(i, _)| {
                let style = match self.columns[i] {
                    Col::Dir if self.color && !ghost && !item.new => dir_style(&cells[i]),
                    _ => Style::new(),
                };
                (i, cells[i].as_ref(), style)
            });
            let spans = line(&mut it, mark);
            frame.render_widget(
                Line::from(spans).style(row_style),
                Rect::new(area.x, y, area.width, 1),
            );
        }
    }

    fn header_units(&self) -> Vec<Vec<Span<'static>>> {
        let c = &self.counts;
        let clock = self.time.get(11..19).unwrap_or(&self.time).to_string();
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let mut units = vec![
            vec![Span::styled("sockwho".to_string(), bold)],
            vec![Span::raw(format!("{clock} every {}s:", self.interval))],
        ];
        let mut apart = Vec::new();
        if c.closed > 0 {
            apart.push(format!("+{} closed", c.closed));
        }
        if c.gone > 0 {
            apart.push(format!("{} gone", c.gone));
        }
        let apart = if apart.is_empty() {
            String::new()
        } else {
            format!(" ({})", apart.join(", "))
        };
        units.push(vec![Span::raw(format!("{} sockets{apart};", c.listed))]);
        let n = c.states.len();
        for (i, (name, count)) in c.states.iter().enumerate() {
            let end = if i + 1 == n { ";" } else { "," };
            units.push(vec![Span::raw(format!("{name} {count}{end}"))]);
        }
        let d = c.directions;
        for (i, (name, count)) in [
            ("in", d[0]),
            ("out", d[1]),
            ("listen", d[2]),
            ("unknown", d[3]),
        ]
        .iter()
        .enumerate()
        {
            let end = if i == 3 { ";" } else { "," };
            units.push(vec![Span::raw(format!("{name} {count}{end}"))]);
        }
        let k = c.classes;
        for (i, (name, count)) in [
            ("well-known", k[0]),
            ("registered", k[1]),
            ("ephemeral", k[2]),
        ]
        .iter()
        .enumerate()
        {
            let end = if i == 2 { "" } else { "," };
            units.push(vec![Span::raw(format!("{name} {count}{end}"))]);
        }
        units
    }

    /// What follows the rows' range on the second line: the sort, the
    /// filter, the hidden columns, a pause.
    fn info_units(&self, hidden: &[&str]) -> Vec<Vec<Span<'static>>> {
        let mut units = vec![vec![Span::raw(format!(
            "| sort: {}{}",
            self.sort.name(),
            if self.reverse { " (reversed)" } else { "" }
        ))]];
        if let Some(f) = &self.filter {
            units.push(vec![Span::raw(format!("| filter: {}", prose(&f.text)))]);
        }
        if !hidden.is_empty() {
            units.push(vec![Span::raw("| hidden:".to_string())]);
            let n = hidden.len();
            for (i, h) in hidden.iter().enumerate() {
                let end = if i + 1 == n { "" } else { "," };
                units.push(vec![Span::raw(format!("{h}{end}"))]);
            }
        }
        if self.paused {
            units.push(vec![Span::styled(
                "| PAUSED (space resumes)".to_string(),
                Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED),
            )]);
        }
        units
    }

    fn status_units(&self) -> Vec<Vec<Span<'static>>> {
        if let Some(text) = &self.typing {
            return vec![vec![
                Span::raw(format!("/{}", prose(text))),
                Span::styled(
                    "  (Enter applies, Esc cancels, empty clears)".to_string(),
                    Style::new().add_modifier(Modifier::DIM),
                ),
            ]];
        }
        if let Some(e) = &self.error {
            let style = if self.color {
                Style::new().fg(Color::Red)
            } else {
                Style::new().add_modifier(Modifier::BOLD)
            };
            return prose(e)
                .split(' ')
                .map(|w| vec![Span::styled(w.to_string(), style)])
                .collect();
        }
        let dim = Style::new().add_modifier(Modifier::DIM);
        [
            "arrows/PgUp/PgDn scroll",
            "s sort",
            "r reverse",
            "/ filter",
            "space pause",
            "f FTP",
            "? help",
            "q quit",
        ]
        .iter()
        .map(|h| vec![Span::styled(format!("{h} "), dim)])
        .collect()
    }

    fn draw_ftp(&self, parts: &[Part], area: Rect, frame: &mut Frame) {
        let sessions: usize = parts.iter().map(|p| p.sessions.len()).sum();
        let block = Block::default()
            .borders(Borders::TOP)
            .title(format!(" FTP sessions: {sessions} (f closes) "));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let width = usize::from(inner.width);
        let mut lines = Vec::new();
        for part in parts {
            for session in &part.sessions {
                lines.extend(ftp_lines(part, session, width));
            }
        }
        if sessions == 0 {
            lines = flow(
                "No FTP control connection (ports 21, 990, --ftp-port, or an FTP daemon's listener) is open."
                    .split(' ')
                    .map(|w| vec![Span::raw(w.to_string())])
                    .collect(),
                width,
            );
        }
        let room = usize::from(inner.height);
        if lines.len() > room && room > 0 {
            let more = lines.len() - (room - 1);
            lines.truncate(room - 1);
            lines.push(Line::from(format!("... {more} more lines")));
        }
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

/// One cell of a listed socket, as the table writes it (outside text
/// escaped); Age is the screen's own.
fn cell<'a>(table: &Table, part: &'a Part, row: Row<'a>, col: Col) -> Cow<'a, str> {
    let s = row.socket;
    let range = &part.port_range;
    match col {
        Col::Netns => Cow::Owned(
            part.netns
                .as_ref()
                .map_or("-".to_string(), |n| terminal_safe(&n.label()).into_owned()),
        ),
        Col::Proto => Cow::Borrowed(table::proto_cell(s)),
        Col::RecvQ => Cow::Owned(s.recv_q.to_string()),
        Col::SendQ => Cow::Owned(s.send_q.to_string()),
        Col::Local => Cow::Owned(table.local_cell(s, range)),
        Col::Remote => Cow::Owned(table.remote_cell(s, range)),
        Col::State => Cow::Borrowed(match table::state_cell(s) {
            "" => "UNCONN",
            state => state,
        }),
        Col::User => Cow::Owned(table.user_cell(s)),
        Col::Inode => Cow::Owned(s.inode.to_string()),
        Col::Program => Cow::Owned(table::owner_cell(s)),
        Col::More => Cow::Owned(table::more_cell(s)),
        Col::Age => Cow::Borrowed(""),
        Col::Dir => Cow::Borrowed(table::direction_cell(&row.labels.direction)),
        Col::Ports => Cow::Borrowed(table::ports_cell(&row)),
        Col::Ftp => Cow::Owned(table::ftp_cell(&row)),
        Col::Timer => Cow::Owned(table::timer_cell(s)),
    }
}

fn dir_style(cell: &str) -> Style {
    let s = Style::new();
    match cell.split(':').next() {
        Some("in") => s.fg(Color::Cyan),
        Some("out") => s.fg(Color::Magenta),
        Some("listen") => s.fg(Color::Green),
        _ => s.add_modifier(Modifier::DIM),
    }
}

/// `0s`, `59s`, `3m07s`, `2h05m`, `4d03h`.
pub fn age_cell(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// The start of [`compare`]'s order in 128 bits: where two rows' keys
/// differ, [`compare`] orders them as their keys do, and where both rows
/// are IPv4 the key is the whole order, so that sorting reaches into no
/// socket (at 200,000 rows a comparison that did took a fifth of a
/// refresh). The fields are written top first, each in a code that keeps
/// their order and where no code is the start of another (an IPv4 address
/// in 1 + 32 bits, an IPv6 one in 1 + 128; an absent remote end in a 0
/// bit), so that the bits compare as the tuple does; what does not fit
/// is cut off, and two equal keys go to [`compare`].
fn leading(key: SortKey, s: &Socket, l: &Labels, first: u32) -> u128 {
    let mut k = Bits::default();
    let addr = |k: &mut Bits, a: IpAddr| match canonical(a) {
        IpAddr::V4(a) => k.put(u128::from(u32::from(a)), 33),
        IpAddr::V6(a) => {
            k.put(1, 1);
            k.put(u128::from(a), 128);
        }
    };
    match key {
        SortKey::State => {
            let rank = match s.state {
                State::Listen => 0,
                _ if s.closed => 100,
                state => state as u128,
            };
            k.put(rank, 7);
        }
        SortKey::LocalPort => {}
        SortKey::Direction => {
            let dir = match l.direction.direction {
                Direction::Listen => 0,
                Direction::Inbound => 1,
                Direction::Outbound => 2,
                Direction::Unknown => 3,
            };
            k.put(dir, 2);
        }
        SortKey::Queue => k.put_greatest_first(u64::from(s.recv_q) + u64::from(s.send_q)),
        SortKey::Age => k.put_greatest_first(u64::from(first)),
        SortKey::Remote => match s.remote {
            None => k.put(0, 2),
            Some(r) => {
                k.put(1, 1);
                addr(&mut k, r.addr);
                k.put((1 << 16) | u128::from(r.port), 17);
            }
        },
    }
    // then the ends, as `compare` orders them: the local port and address,
    // the remote end (already written for the remote key: equal where it
    // is reached); then UDP after TCP, IPv6 sockets after IPv4 ones
    k.put(u128::from(s.local.port), 16);
    addr(&mut k, s.local.addr);
    match s.remote {
        _ if key == SortKey::Remote => {}
        None => k.put(0, 1),
        Some(r) => {
            k.put(1, 1);
            addr(&mut k, r.addr);
            k.put(u128::from(r.port), 16);
        }
    }
    k.put(u128::from(s.proto == Proto::Udp), 1);
    k.put(u128::from(s.family == Family::Inet6), 1);
    k.word
}

/// A 128-bit word written from its top; what does not fit is cut off.
#[derive(Default)]
struct Bits {
    word: u128,
    used: u32,
}

impl Bits {
    /// Appends the low `width` bits of `value` (which has no others).
    fn put(&mut self, value: u128, width: u32) {
        let room = 128 - self.used;
        if room == 0 || width == 0 {
            return;
        }
        if width <= room {
            self.word |= value << (room - width);
            self.used += width;
        } else {
            self.word |= value >> (width - room);
            self.used = 128;
        }
    }

    /// Appends `n` so that greater numbers come first, in as few bits as
    /// it takes (most queues and ages are small): its length in 6 bits,
    /// then its bits, all inverted.
    fn put_greatest_first(&mut self, n: u64) {
        let len = 64 - n.leading_zeros();
        self.put(u128::from(63 - len), 6);
        let mask = (1u128 << len) - 1;
        self.put(!u128::from(n) & mask, len);
    }
}

/// The order of two rows by `key`, then by their ends, so that equal keys
/// keep a stable order.
fn compare(key: SortKey, a: (&Socket, &Labels, u32), b: (&Socket, &Labels, u32)) -> Ordering {
    let ends = |s: &Socket| {
        (
            s.local.port,
            canonical(s.local.addr),
            s.remote.map(|r| (canonical(r.addr), r.port)),
        )
    };
    let remote = |s: &Socket| -> (Option<IpAddr>, Option<u16>) {
        (
            s.remote.map(|r| canonical(r.addr)),
            s.remote.map(|r| r.port),
        )
    };
    let state_rank = |s: &Socket| match s.state {
        // listeners first, as netstat lists them; closed ones last
        State::Listen => 0,
        _ if s.closed => 100,
        state => state as u8,
    };
    let dir_rank = |l: &Labels| match l.direction.direction {
        Direction::Listen => 0,
        Direction::Inbound => 1,
        Direction::Outbound => 2,
        Direction::Unknown => 3,
    };
    let queue = |s: &Socket| u64::from(s.recv_q) + u64::from(s.send_q);
    let (sa, la, fa) = a;
    let (sb, lb, fb) = b;
    let first = match key {
        SortKey::State => state_rank(sa).cmp(&state_rank(sb)),
        SortKey::LocalPort => Ordering::Equal,
        SortKey::Remote => remote(sa).cmp(&remote(sb)),
        SortKey::Direction => dir_rank(la).cmp(&dir_rank(lb)),
        SortKey::Queue => Reverse(queue(sa)).cmp(&Reverse(queue(sb))),
        SortKey::Age => Reverse(fa).cmp(&Reverse(fb)),
    };
    first
        .then_with(|| ends(sa).cmp(&ends(sb)))
        .then_with(|| (sa.proto == Proto::Udp).cmp(&(sb.proto == Proto::Udp)))
        .then_with(|| (sa.family == Family::Inet6).cmp(&(sb.family == Family::Inet6)))
}

/// Outside text in prose (a typed filter, an error about it): hazards and
/// backslashes escaped, spaces kept.
fn prose(text: &str) -> Cow<'_, str> {
    Rules {
        whitespace: false,
        separators: &[],
    }
    .apply(text)
}

fn text_width(text: &str) -> usize {
    Span::raw(text).width()
}

/// Lays units (spans that stay together) out on lines of `width`, a space
/// between two; a unit wider than a line is broken by characters over
/// lines of its own, never cut.
fn flow(units: Vec<Vec<Span<'static>>>, width: usize) -> Vec<Line<'static>> {
    let mut lines: Vec<Line<'static>> = Vec::new();
    let mut line: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for unit in units {
        let w: usize = unit.iter().map(Span::width).sum();
        if w == 0 {
            continue;
        }
        if used > 0 && used + 1 + w > width {
            lines.push(Line::from(std::mem::take(&mut line)));
            used = 0;
        }
        if w > width {
            // one long unit: its characters over whole lines
            let style = unit.first().map_or(Style::new(), |s| s.style);
            let text: String = unit.iter().map(|s| s.content.as_ref()).collect();
            let mut chunk = String::new();
            let mut cw = 0;
            for c in text.chars() {
                let c_w = text_width(c.encode_utf8(&mut [0; 4]));
                if cw + c_w > width && !chunk.is_empty() {
                    lines.push(Line::from(Span::styled(std::mem::take(&mut chunk), style)));
                    cw = 0;
                }
                chunk.push(c);
                cw += c_w;
            }
            line = vec![Span::styled(chunk, style)];
            used = cw;
            continue;
        }
        if used > 0 {
            line.push(Span::raw(" "));
            used += 1;
        }
        line.extend(unit);
        used += w;
    }
    if !line.is_empty() {
        lines.push(Line::from(line));
    }
    lines
}

/// The lines of one FTP session in the pane: its mode and ends, then each
/// connection with its role, ends, state and mode.
fn ftp_lines(part: &Part, session: &Session, width: usize) -> Vec<Line<'static>> {
    let mut members: Vec<Row> = session.members.iter().map(|&i| part.row(i)).collect();
    members.sort_by_key(|r| r.labels.ftp.as_ref().map(|f| f.role as u8));
    let mut modes: Vec<Mode> = members
        .iter()
        .filter_map(|r| r.labels.ftp.as_ref())
        .filter(|f| f.role != Role::Control)
        .filter_map(|f| f.mode)
        .collect();
    modes.sort_by_key(|m| *m as u8);
    modes.dedup();
    let mode = match modes.as_slice() {
        [] => "mode not seen yet".to_string(),
        [m] => format!("{} mode", m.name()),
        _ => "active and passive".to_string(),
    };
    let sides: Vec<Side> = members
        .iter()
        .filter_map(|r| r.labels.ftp.as_ref())
        .map(|f| f.side)
        .collect();
    let here = match (sides.contains(&Side::Client), sides.contains(&Side::Server)) {
        (true, false) => "this host is the client",
        (false, true) => "this host is the server",
        _ => "this host is both",
    };
    let endpoint = |e: &crate::model::Endpoint| match canonical(e.addr) {
        IpAddr::V6(a) => format!("[{a}]:{}", e.port),
        a => format!("{a}:{}", e.port),
    };
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut units = vec![
        vec![Span::styled(format!("ftp#{}", session.id), bold)],
        vec![Span::raw(format!("{mode};"))],
        vec![Span::raw(format!("{here};"))],
        vec![Span::raw(format!("client {}", endpoint(&session.client)))],
        vec![Span::raw(format!(
            "-> server {}",
            endpoint(&session.server)
        ))],
    ];
    if let Some(netns) = &part.netns {
        units.push(vec![Span::raw(format!(
            "(netns {})",
            terminal_safe(&netns.label())
        ))]);
    }
    let mut lines = flow(units, width);
    for r in members {
        let Some(f) = &r.labels.ftp else { continue };
        let s = r.socket;
        let role = match f.role {
            Role::Control => "control",
            Role::Data => "data",
            Role::Pending => "pending",
        };
        let mut units = vec![
            vec![Span::raw(format!("  {role:<7}"))],
            vec![Span::raw(endpoint(&s.local))],
        ];
        if let Some(remote) = &s.remote {
            units.push(vec![Span::raw(format!("<-> {}", endpoint(remote)))]);
        }
        units.push(vec![Span::raw(table::state_cell(s).to_string())]);
        if f.role != Role::Control {
            units.push(vec![Span::raw(
                f.mode.map_or("mode unknown", Mode::name).to_string(),
            )]);
        }
        lines.extend(flow(units, width));
    }
    lines
}

const HELP: &[(&str, &str)] = &[
    ("Up/Down, k/j", "scroll a row"),
    ("PgUp/PgDn", "scroll a page"),
    ("Home/End, g/G", "first, last rows"),
    ("mouse wheel", "scroll"),
    (
        "s",
        "sort by the next key: state, local port, remote address, direction, queue, age",
    ),
    ("r", "reverse the sort"),
    (
        "/",
        "filter: --sport 22, --direction in, sport = :22 or dst 10.0.0.0/8, 22 (either port); Enter applies, empty clears",
    ),
    ("space", "pause, resume"),
    ("f", "FTP sessions pane"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit"),
    (
        "+ (bold)",
        "a new row; - (dimmed): gone or closed, shown for 3 refreshes",
    ),
];

fn draw_help(area: Rect, frame: &mut Frame) {
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" keys (any key closes) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let key_w = HELP.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut lines = Vec::new();
    for (key, what) in HELP {
        let mut units = vec![vec![Span::styled(
            format!("{key:<key_w$}"),
            Style::new().add_modifier(Modifier::BOLD),
        )]];
        units.extend(what.split(' ').map(|w| vec![Span::raw(w.to_string())]));
        lines.extend(flow(units, width));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

#[cfg(test)]
mod tests;
