//! Frames of the interactive view on ratatui's TestBackend, held to
//! snapshots (`src/render/screen/snapshots/`; `INSTA_UPDATE=always` writes
//! them anew, to be read before they are committed).

use super::*;
use crate::model::{Socket, State};
use clap::Parser;
use crossterm::event::KeyEvent;
use ratatui::backend::TestBackend;

fn config(args: &[&str]) -> Config {
    let argv = std::iter::once("sockwho").chain(args.iter().copied());
    let cli = crate::cli::Cli::parse_from(argv);
    Config::new(&cli, &Default::default(), |_| None).unwrap()
}

/// A watch session on made-up refreshes, a second apart.
struct Session {
    cfg: Config,
    screen: Screen,
    shown: Vec<Part>,
    t0: Instant,
    n: u64,
}

impl Session {
    fn new(args: &[&str]) -> Session {
        let cfg = config(args);
        Session {
            screen: Screen::new(&cfg),
            cfg,
            shown: Vec::new(),
            t0: Instant::now(),
            n: 0,
        }
    }

    fn refresh(&mut self, sockets: Vec<Socket>) {
        let parts = vec![Part::classified(sockets, None)];
        let at = self.t0 + Duration::from_secs(self.n);
        let time = format!("2026-01-01T03:30:{:02}.000Z", self.n % 60);
        self.screen.pack(&self.cfg, std::mem::take(&mut self.shown));
        self.screen
            .update(&self.cfg, &parts, &Names::default(), at, &time);
        self.shown = parts;
        self.n += 1;
    }

    fn terminal(&mut self, width: u16, height: u16) -> ratatui::Terminal<TestBackend> {
        let mut term = ratatui::Terminal::new(TestBackend::new(width, height)).unwrap();
        let mut page = 1;
        term.draw(|f| {
            page = self
                .screen
                .draw(&self.cfg, &self.shown, &Names::default(), f)
        })
        .unwrap();
        self.screen.set_page(page);
        term
    }

    fn frame(&mut self, width: u16, height: u16) -> String {
        self.terminal(width, height).backend().to_string()
    }

    fn key(&mut self, code: KeyCode) -> Outcome {
        let event = Event::Key(KeyEvent::new(code, KeyModifiers::NONE));
        self.screen
            .handle(&event, &self.cfg, &self.shown, &|name| match name {
                "ssh" => Some(22),
                _ => None,
            })
    }

    fn typed(&mut self, text: &str) {
        self.key(KeyCode::Char('/'));
        for _ in 0..40 {
            self.key(KeyCode::Backspace);
        }
        for c in text.chars() {
            self.key(KeyCode::Char(c));
        }
        self.key(KeyCode::Enter);
    }
}

/// A listener on 8080 with `n` connections to it, the server's and the
/// client's ends, the client's ports from 40000 up.
fn server(n: u16) -> Vec<Socket> {
    let mut sockets = vec![Socket::tcp("10.0.0.1:8080", None).cookie(1)];
    for i in 0..n {
        let client = format!("10.0.0.2:{}", 40000 + i);
        sockets.push(
            Socket::tcp("10.0.0.1:8080", Some(&client))
                .cookie(100 + u64::from(i))
                .queues(u32::from(i % 3), 0),
        );
    }
    sockets
}

fn lines(frame: &str) -> Vec<&str> {
    frame.lines().map(|l| l.trim_matches('"')).collect()
}

#[test]
fn a_wide_window_shows_every_column_and_the_counts() {
    let mut s = Session::new(&["-tan", "-c"]);
    let mut sockets = server(3);
    sockets.push(Socket::tcp("10.0.0.1:51000", Some("10.0.0.9:443")).cookie(7));
    sockets.push(
        Socket::tcp("10.0.0.1:22", Some("10.0.0.7:50001"))
            .state(State::TimeWait)
            .cookie(8),
    );
    s.refresh(sockets);
    insta::assert_snapshot!("wide", s.frame(110, 12));
}

#[test]
fn a_narrow_window_drops_whole_columns_and_says_which() {
    let mut s = Session::new(&["-tanpe", "-c"]);
    let sockets: Vec<Socket> = server(2)
        .into_iter()
        .map(|x| x.process(4321, "nginx").uid(33).inode(9000))
        .chain([Socket::tcp("[2001:db8::1]:443", Some("[2001:db8:ffff::abcd]:61000")).cookie(9)])
        .collect();
    s.refresh(sockets);
    let wide = s.frame(160, 10);
    assert!(!wide.contains("hidden:"), "{wide}");
    let narrow = s.frame(72, 10);
    insta::assert_snapshot!("narrow", narrow);
    // never part of an address or a number: each is there whole
    for whole in [
        " 10.0.0.1:8080 ",
        " 10.0.0.2:40001 ",
        " 2001:db8::1:443 ",
        " 2001:db8:ffff::abcd:61000 ",
    ] {
        assert!(narrow.contains(whole), "{whole}: {narrow}");
    }
    for line in lines(&narrow) {
        assert!(line.chars().count() <= 72);
    }
    // narrower than an address: said, not cut
    let mut s = Session::new(&["-tan", "-c"]);
    s.refresh(vec![
        Socket::tcp("[2001:db8:1234:5678:9abc:def0:1234:5678]:61000", None).cookie(1),
    ]);
    let tiny = s.frame(30, 12);
    insta::assert_snapshot!("too_narrow", tiny);
    assert!(!tiny.contains("2001:db8:12"), "{tiny}");
    assert!(tiny.contains("widen to 46 columns"), "{tiny}");
    assert!(
        s.frame(50, 12)
            .contains("2001:db8:1234:5678:9abc:def0:1234:5678:61000")
    );
}

#[test]
fn a_window_shorter_than_the_table_says_which_rows_it_shows() {
    let mut s = Session::new(&["-tan", "-c"]);
    s.refresh(server(30));
    let frame = s.frame(100, 12);
    insta::assert_snapshot!("short", frame);
    assert!(frame.contains("rows 1-7 of 31"), "{frame}");
}

#[test]
fn scrolling_moves_by_rows_pages_and_to_the_ends() {
    let mut s = Session::new(&["-tan", "-c"]);
    s.refresh(server(30));
    s.frame(100, 12);
    assert_eq!(s.key(KeyCode::Down), Outcome::Redraw);
    assert_eq!(s.key(KeyCode::PageDown), Outcome::Redraw);
    let frame = s.frame(100, 12);
    insta::assert_snapshot!("scrolled", frame);
    assert!(frame.contains("rows 9-15 of 31"), "{frame}");
    s.key(KeyCode::End);
    let end = s.frame(100, 12);
    assert!(end.contains("rows 25-31 of 31"), "{end}");
    assert_eq!(s.key(KeyCode::Down), Outcome::Ignored, "no further");
    s.screen.handle(
        &Event::Mouse(crossterm::event::MouseEvent {
            kind: MouseEventKind::ScrollUp,
            column: 0,
            row: 0,
            modifiers: KeyModifiers::NONE,
        }),
        &s.cfg,
        &s.shown,
        &|_| None,
    );
    assert!(s.frame(100, 12).contains("rows 22-28 of 31"));
    s.key(KeyCode::Home);
    assert!(s.frame(100, 12).contains("rows 1-7 of 31"));
    // a taller window after a resize: the last rows fill it
    s.key(KeyCode::End);
    s.frame(100, 12);
    assert!(s.frame(100, 40).contains("rows 1-31 of 31"));
}

#[test]
fn s_cycles_the_sort_keys_and_the_header_says_which() {
    let mut s = Session::new(&["-tan", "-c"]);
    let sockets = vec![
        Socket::tcp("10.0.0.1:9000", Some("10.0.0.5:40000"))
            .cookie(1)
            .queues(0, 50),
        Socket::tcp("10.0.0.1:22", Some("10.0.0.9:40001")).cookie(2),
        Socket::tcp("10.0.0.1:80", None).cookie(3),
        Socket::tcp("10.0.0.1:45000", Some("10.0.0.1:80"))
            .cookie(4)
            .queues(7, 0),
        Socket::tcp("10.0.0.1:80", Some("10.0.0.1:45000")).cookie(5),
        Socket::tcp("10.0.0.1:3000", Some("10.0.0.3:50000"))
            .state(State::TimeWait)
            .cookie(6),
    ];
    s.refresh(sockets.clone());
    // a later connection, for the age
    let mut more = sockets;
    more.push(Socket::tcp("10.0.0.1:5000", Some("10.0.0.4:40100")).cookie(7));
    s.refresh(more);
    let order = |frame: &str| -> Vec<String> {
        lines(frame)
            .iter()
            .skip(3)
            .filter_map(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("10."))
                    .map(str::to_string)
            })
            .collect()
    };
    let by_state = s.frame(110, 14);
    assert!(by_state.contains("sort: state"), "{by_state}");
    assert_eq!(order(&by_state)[0], "10.0.0.1:80", "the listener first");
    let mut sorted = Vec::new();
    for key in &SortKey::ALL[1..] {
        s.key(KeyCode::Char('s'));
        let frame = s.frame(110, 14);
        assert!(frame.contains(&format!("sort: {}", key.name())), "{frame}");
        sorted.push(frame);
    }
    insta::assert_snapshot!("sorted_by_local_port", sorted[0]);
    let ports: Vec<u16> = order(&sorted[0])
        .iter()
        .map(|a| a.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let mut want = ports.clone();
    want.sort_unstable();
    assert_eq!(ports, want);
    assert_eq!(
        order(&sorted[3])[0],
        "10.0.0.1:9000",
        "the longest queue first"
    );
    assert_eq!(order(&sorted[4])[0], "10.0.0.1:5000", "the youngest first");
    s.key(KeyCode::Char('r'));
    let reversed = s.frame(110, 14);
    assert!(reversed.contains("sort: age (reversed)"), "{reversed}");
    assert_ne!(order(&reversed)[0], "10.0.0.1:5000");
    // and around again
    s.key(KeyCode::Char('s'));
    assert!(s.frame(110, 14).contains("sort: state"));
}

/// An FTP server on 21 with a client's control connection and an active
/// data connection (the server's port 20 end).
fn ftp_sockets() -> Vec<Socket> {
    vec![
        Socket::tcp("0.0.0.0:21", None)
            .inode(1)
            .cookie(1)
            .process(10, "python3"),
        Socket::tcp("10.0.0.1:21", Some("10.0.0.2:50000"))
            .inode(2)
            .cookie(2)
            .process(10, "python3"),
        Socket::tcp("10.0.0.1:40001", Some("10.0.0.2:20001"))
            .inode(3)
            .cookie(3)
            .process(10, "python3"),
    ]
}

#[test]
fn f_opens_a_pane_of_ftp_sessions() {
    let mut s = Session::new(&["-tan", "-c"]);
    s.refresh(ftp_sockets());
    assert_eq!(s.key(KeyCode::Char('f')), Outcome::Redraw);
    let frame = s.frame(100, 16);
    insta::assert_snapshot!("ftp_pane", frame);
    assert!(frame.contains("FTP sessions: 1"), "{frame}");
    assert!(
        frame.contains("ftp#1 active mode; this host is the server;"),
        "{frame}"
    );
    assert!(
        frame.contains("control 10.0.0.1:21 <-> 10.0.0.2:50000 ESTABLISHED"),
        "{frame}"
    );
    assert!(
        frame.contains("data    10.0.0.1:40001 <-> 10.0.0.2:20001 ESTABLISHED active"),
        "{frame}"
    );
    s.key(KeyCode::Char('f'));
    assert!(!s.frame(100, 16).contains("FTP sessions"));
}

#[test]
fn new_rows_are_marked_and_gone_ones_stay_dimmed_for_three_refreshes() {
    let mut s = Session::new(&["-tan", "-c"]);
    let listener = Socket::tcp("10.0.0.1:8080", None).cookie(1);
    let a = Socket::tcp("10.0.0.1:8080", Some("10.0.0.2:40000")).cookie(2);
    let b = Socket::tcp("10.0.0.1:8080", Some("10.0.0.2:40001")).cookie(3);
    let c = Socket::tcp("10.0.0.1:8080", Some("10.0.0.2:40002")).cookie(4);
    let mut closed = Socket::tcp("10.0.0.1:8080", Some("10.0.0.2:40003"))
        .state(State::Close)
        .cookie(5);
    closed.closed = true;
    s.refresh(vec![listener.clone(), a.clone(), b]);
    let first = s.frame(100, 10);
    assert!(
        !lines(&first).iter().any(|l| l.starts_with('+')),
        "nothing new at first: {first}"
    );
    s.refresh(vec![listener.clone(), a.clone(), c.clone(), closed]);
    let term = s.terminal(100, 10);
    let frame = term.backend().to_string();
    insta::assert_snapshot!("new_and_gone", frame);
    let buffer = term.backend().buffer();
    let row_of = |needle: &str| {
        lines(&frame)
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {frame}")) as u16
    };
    let style_at = |y: u16| buffer[(10, y)].modifier;
    let (new, gone, kept, shut) = (
        row_of("10.0.0.2:40002"),
        row_of("10.0.0.2:40001"),
        row_of("10.0.0.2:40000"),
        row_of("10.0.0.2:40003"),
    );
    assert!(lines(&frame)[new as usize].starts_with('+'));
    assert!(style_at(new).contains(Modifier::BOLD));
    assert!(lines(&frame)[gone as usize].starts_with('-'));
    assert!(style_at(gone).contains(Modifier::DIM));
    assert!(lines(&frame)[shut as usize].starts_with('-'));
    assert!(lines(&frame)[shut as usize].contains("CLOSED"));
    assert!(style_at(shut).contains(Modifier::DIM));
    assert!(!style_at(kept).contains(Modifier::DIM) && !style_at(kept).contains(Modifier::BOLD));
    // in place: sorted among the others, not appended
    assert!(kept < gone && gone < new && new < shut, "{frame}");
    assert!(frame.contains("3 sockets (+1 closed, 1 gone)"), "{frame}");
    // the gone and closed rows show in three refreshes, then go
    s.refresh(vec![listener.clone(), a.clone(), c.clone()]);
    s.refresh(vec![listener.clone(), a.clone(), c.clone()]);
    let third = s.frame(100, 10);
    assert!(
        third.contains("10.0.0.2:40001") && third.contains("10.0.0.2:40003"),
        "{third}"
    );
    assert!(
        third.contains("+ tcp"),
        "new for three refreshes too: {third}"
    );
    s.refresh(vec![listener, a, c]);
    let after = s.frame(100, 10);
    assert!(
        !after.contains("10.0.0.2:40001") && !after.contains("10.0.0.2:40003"),
        "{after}"
    );
    assert!(!after.contains("+ tcp"), "{after}");
    // first-seen times: only of what is still shown
    assert_eq!(s.screen.firsts.len(), 3);
    assert!(s.screen.ghosts.is_empty());
}

#[test]
fn ages_count_from_the_refresh_that_first_saw_a_connection() {
    let mut s = Session::new(&["-tan", "-c"]);
    let old = Socket::tcp("10.0.0.1:8080", Some("10.0.0.2:40000")).cookie(2);
    s.refresh(vec![old.clone()]);
    for _ in 0..64 {
        s.refresh(vec![old.clone()]);
    }
    s.refresh(vec![
        old,
        Socket::tcp("10.0.0.1:8080", Some("10.0.0.2:40001")).cookie(3),
    ]);
    let frame = s.frame(100, 8);
    assert!(frame.contains(" 1m05s "), "{frame}");
    assert!(frame.contains(" 0s "), "{frame}");
    assert_eq!(age_cell(Duration::from_secs(7200 + 300)), "2h05m");
    assert_eq!(age_cell(Duration::from_secs(86400 * 4 + 3600 * 3)), "4d03h");
}

#[test]
fn a_typed_filter_selects_rows_and_a_bad_one_is_said_not_fatal() {
    let mut s = Session::new(&["-tan", "-c"]);
    let mut sockets = server(4);
    sockets.push(Socket::tcp("10.0.0.1:22", Some("10.0.0.9:50000")).cookie(9));
    s.refresh(sockets);
    s.typed("sport = :22 or dport = :40001");
    let frame = s.frame(100, 10);
    insta::assert_snapshot!("filtered", frame);
    assert!(frame.contains("rows 1-2 of 2"), "{frame}");
    assert!(
        frame.contains("filter: sport = :22 or dport = :40001"),
        "{frame}"
    );
    // the command line's options, a service name
    s.typed("--sport ssh");
    assert!(s.frame(100, 10).contains("rows 1-1 of 1"));
    s.typed("--direction in --state established");
    assert!(s.frame(100, 10).contains("rows 1-5 of 5"));
    // a port alone: either end
    s.typed("40002");
    assert!(s.frame(100, 10).contains("rows 1-1 of 1"));
    // bad: said in the status line; the filter before stays
    s.typed("sport = :99999");
    let bad = s.frame(100, 10);
    insta::assert_snapshot!("bad_filter", bad);
    assert!(bad.contains("port 99999 is out of range"), "{bad}");
    assert!(bad.contains("rows 1-1 of 1"), "{bad}");
    for (text, says) in [
        ("--format json", "is no filter here"),
        ("--direction sideways", "sideways"),
        ("autobound", "only the kernel tests it"),
        ("( sport = :22", "filter:"),
    ] {
        s.typed(text);
        let frame = s.frame(100, 10);
        assert!(frame.contains(says), "{text}: {frame}");
    }
    // Esc while typing keeps the filter; an empty one clears it
    s.key(KeyCode::Char('/'));
    s.key(KeyCode::Char('x'));
    assert!(s.frame(100, 10).contains("/40002x"));
    s.key(KeyCode::Esc);
    assert!(s.frame(100, 10).contains("filter: 40002"));
    // q while typing is a letter
    s.key(KeyCode::Char('/'));
    assert_eq!(s.key(KeyCode::Char('q')), Outcome::Redraw);
    s.key(KeyCode::Esc);
    s.typed("");
    let all = s.frame(100, 10);
    assert!(all.contains("rows 1-5 of 6"), "{all}");
}

#[test]
fn help_pause_and_quit() {
    let mut s = Session::new(&["-tan", "-c"]);
    s.refresh(server(2));
    s.key(KeyCode::Char('?'));
    let help = s.frame(90, 20);
    insta::assert_snapshot!("help", help);
    s.key(KeyCode::Char('x'));
    assert!(!s.frame(90, 20).contains("any key closes"));
    s.key(KeyCode::Char(' '));
    assert!(s.screen.paused());
    assert!(s.frame(90, 20).contains("PAUSED"));
    s.key(KeyCode::Char(' '));
    assert!(!s.screen.paused());
    assert_eq!(s.key(KeyCode::Char('q')), Outcome::Quit);
    let ctrl_c = Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    s.key(KeyCode::Char('/'));
    assert_eq!(
        s.screen.handle(&ctrl_c, &s.cfg, &s.shown, &|_| None),
        Outcome::Quit,
        "even while typing"
    );
}

#[test]
fn outside_text_reaches_no_cell_raw() {
    let mut s = Session::new(&["-tanp", "-c", "--all-netns"]);
    let sockets = vec![
        Socket::tcp("10.0.0.1:8080", None)
            .cookie(1)
            .process(1, "q\x1b[2J\u{202e}x"),
    ];
    let netns = crate::model::NetnsId {
        name: Some("ns\x1b]0;pwn\x07".to_string()),
        inode: 7,
        pid: None,
    };
    let parts = vec![Part::classified(sockets, Some(netns))];
    s.screen.update(
        &s.cfg,
        &parts,
        &Names::default(),
        s.t0,
        "2026-01-01T03:30:00.000Z",
    );
    s.shown = parts;
    s.typed("\x1b[31m");
    let term = s.terminal(160, 10);
    for cell in term.backend().buffer().content() {
        assert!(
            !cell.symbol().chars().any(crate::render::escape::is_hazard),
            "{:?}",
            cell.symbol()
        );
    }
    let frame = term.backend().to_string();
    assert!(frame.contains("1/q\\x1b[2J\\u{202e}x"), "{frame}");
    assert!(frame.contains("ns\\x1b]0;pwn\\x07"), "{frame}");
}

/// The word each row is sorted by first agrees with the whole order:
/// where two words differ, `compare` orders the rows the same way.
#[test]
fn the_leading_word_agrees_with_the_order() {
    let ends = [
        ("10.0.0.1:80", Some("10.0.0.2:40000")),
        ("10.0.0.1:80", Some("10.0.0.3:40000")),
        ("10.0.0.1:81", Some("10.0.0.2:39999")),
        ("10.0.0.2:80", None),
        ("0.0.0.0:80", None),
        ("[::ffff:10.0.0.1]:80", Some("[::ffff:10.0.0.2]:40001")),
        ("[2001:db8::1]:80", Some("[2001:db8::2]:40000")),
        ("[2001:db8::1:0:0:1]:80", Some("[2001:db8::2]:1")),
        ("[2001:db8::1]:79", Some("[::ffff:10.0.0.2]:40000")),
        ("[::]:22", None),
    ];
    let mut sockets = Vec::new();
    for (n, (local, remote)) in ends.iter().enumerate() {
        for (k, state) in [State::Established, State::Listen, State::TimeWait]
            .into_iter()
            .enumerate()
        {
            let mut s = Socket::tcp(local, *remote).state(state);
            s.recv_q = (n * 7 + k) as u32 % 5;
            s.send_q = if n % 3 == 0 { u32::MAX } else { 0 };
            s.closed = n % 4 == 1 && k == 2;
            sockets.push(s);
        }
        let mut udp = Socket::udp(local, *remote);
        udp.recv_q = n as u32;
        sockets.push(udp);
    }
    let part = Part::classified(sockets, None);
    let rows: Vec<(Row, u32)> = part
        .rows()
        .enumerate()
        .map(|(i, r)| (r, [0, 1, 7, 1000, 1 << 20, u32::MAX][(i * 37) % 6]))
        .collect();
    for key in SortKey::ALL {
        for (a, fa) in &rows {
            for (b, fb) in &rows {
                let (wa, wb) = (
                    leading(key, a.socket, a.labels, *fa),
                    leading(key, b.socket, b.labels, *fb),
                );
                let order = compare(key, (a.socket, a.labels, *fa), (b.socket, b.labels, *fb));
                if wa != wb {
                    assert_eq!(order, wa.cmp(&wb), "{key:?}: {a:?} {b:?}");
                }
                // two IPv4 rows are told apart by their words alone (but
                // for ages of more than 1 << 21 tenths of a second)
                let v4 = |s: &Socket| {
                    canonical(s.local.addr).is_ipv4()
                        && s.remote.is_none_or(|r| canonical(r.addr).is_ipv4())
                };
                let young = key != SortKey::Age || (*fa < 1 << 21 && *fb < 1 << 21);
                if v4(a.socket) && v4(b.socket) && young && wa == wb {
                    assert_eq!(order, Ordering::Equal, "{key:?}: {a:?} {b:?}");
                }
            }
        }
    }
}
