//! Watch mode (`-c`, `--watch`): collect, compare with the refresh before,
//! render, wait; until `--count` refreshes, `q`, Ctrl-C or SIGTERM.
//!
//! Three outputs: on a terminal, a full-screen view in the alternate screen
//! ([`render::screen`](crate::render::screen) on a [`terminal::Terminal`]);
//! piped, a table per refresh under a timestamp line; with `--format jsonl`,
//! events ([`render::events`](crate::render::events)). What earlier
//! refreshes saw (listeners, handshakes) feeds the classifiers through the
//! [`Pipeline`]. Signals come through signal-hook: SIGINT and SIGTERM set a
//! flag the loop looks at between steps.
//!
//! The pipeline follows the kernel's events meanwhile, so a refresh also
//! holds the connections that opened and closed since the one before
//! (`closed` sockets): JSON Lines says them as `closed` events, the tables
//! show them once, marked; `--format json` and `csv` documents list what the
//! dump listed, as in a one-shot run.

pub mod terminal;

use std::cell::OnceCell;
use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::cli::Format;
use crate::collect::Notices;
use crate::collect::names::Names;
use crate::config::Config;
use crate::error::Error;
use crate::pipeline::Pipeline;
use crate::render::screen::{Outcome, Screen};
use crate::render::{self, events::Events, time::timestamp};
use crate::view::Part;
use ratatui::backend::CrosstermBackend;
use terminal::{Terminal, Wake};

/// Runs watch mode until it is told to stop.
pub fn run(cfg: &Config, out: &mut dyn Write, notices: &mut Notices) -> Result<(), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration fails only for a forbidden signal; these are not.
        let _ = signal_hook::flag::register(signal, Arc::clone(&stop));
    }
    return_large_blocks();
    let mut pipeline = Pipeline::watching(cfg);
    let mut refreshes = 0u64;
    let mut said = HashSet::new();
    let result = refresh(
        cfg,
        &mut pipeline,
        &stop,
        &mut refreshes,
        &mut said,
        out,
        notices,
    );
    if cfg.verbose {
        notices.push(format!(
            "owners: /proc walked {} times in {refreshes} refreshes",
            pipeline.owner_walks()
        ));
        if let Some((read, c)) = pipeline.event_counts() {
            notices.push(format!(
                "kernel events: {read} sockets destroyed; {} reported closed, {} removed at their destroy, {} still listed (TIME_WAIT), {} late or repeated",
                c.closed, c.removed, c.listed, c.late
            ));
        }
    }
    result
}

/// Has glibc's malloc give every large block (a refresh's socket vectors)
/// its own mapping, handed back to the system when freed. By default the
/// threshold for that rises to the largest block freed so far (up to 32
/// MiB): from the second refresh on, the vectors come from the heap, and
/// what they leave freed between refreshes stays in the process (at 200,000
/// sockets, 4.5 MiB of the peak).
fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator; any value is
    // valid, and it is called before watch mode allocates its refreshes.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

fn refresh(
    cfg: &Config,
    pipeline: &mut Pipeline,
    stop: &AtomicBool,
    refreshes: &mut u64,
    said: &mut HashSet<String>,
    out: &mut dyn Write,
    notices: &mut Notices,
) -> Result<(), Error> {
    if cfg.stdout_is_tty && cfg.format == Format::Table {
        let mut guard = Terminal::enter().map_err(Error::Output)?;
        let mut term =
            ratatui::Terminal::new(CrosstermBackend::new(&mut *out)).map_err(Error::Output)?;
        let result = interactive(
            cfg, pipeline, stop, refreshes, &mut guard, &mut term, notices,
        );
        // ratatui shows the cursor as it goes: before the terminal is put back
        drop(term);
        let _ = out.flush();
        drop(guard);
        return result;
    }
    let mut events = Events::default();
    let no_names = Names::default();
    loop {
        let started = Instant::now();
        let mut parts = pipeline.look(notices)?;
        if matches!(cfg.format, Format::Json | Format::Csv) && !cfg.ftp_view {
            crate::view::listed_only(&mut parts);
        }
        let names = if render::needs_names(cfg) {
            pipeline.names(&parts)
        } else {
            &no_names
        };
        let now = timestamp(SystemTime::now());
        let drawn = match cfg.format {
            // the parts are kept: the next refresh's removed sockets, as last seen
            Format::Jsonl => {
                let departures = pipeline.departures();
                events.write_at(cfg, std::mem::take(&mut parts), departures, &now, out)
            }
            // machine formats carry the time in themselves: no text line
            Format::Json if !cfg.ftp_view => render::json::write_at(cfg, &parts, Some(&now), out),
            Format::Csv if !cfg.ftp_view => render::csv::write_at(
                cfg,
                &parts,
                Some(&now),
                *refreshes == 0 && !cfg.no_header,
                out,
            ),
            _ => writeln!(out, "sockwho {now} (every {}s)", cfg.interval.as_secs_f64())
                .and_then(|()| render::write(cfg, &parts, names, out))
                .and_then(|()| writeln!(out)),
        };
        drawn.and_then(|()| out.flush()).map_err(Error::Output)?;
        say_new(notices, said);
        *refreshes += 1;
        if cfg.count.is_some_and(|n| *refreshes >= n) {
            return Ok(());
        }
        if sleep_until(started + cfg.interval, stop) == Wake::Quit {
            return Ok(());
        }
    }
}

type Tui<W> = ratatui::Terminal<CrosstermBackend<W>>;

/// The interactive view: each refresh taken in by the [`Screen`] (none is
/// collected while paused), keys and the mouse handled between refreshes, every change
/// drawn through ratatui, which writes only the cells that changed (and
/// the whole screen after a resize). Notices wait for the end.
fn interactive<W: Write>(
    cfg: &Config,
    pipeline: &mut Pipeline,
    stop: &AtomicBool,
    refreshes: &mut u64,
    keys: &mut Terminal,
    term: &mut Tui<W>,
    notices: &mut Notices,
) -> Result<(), Error> {
    let mut screen = Screen::new(cfg);
    let mut shown: Vec<Part> = Vec::new();
    let services = OnceCell::new();
    let service = |name: &str| services.get_or_init(|| cfg.inputs.services()).port(name);
    let draw = |term: &mut Tui<W>, screen: &mut Screen, pipeline: &mut Pipeline, shown: &[Part]| {
        let names = pipeline.names(shown);
        let mut page = 1;
        term.draw(|frame| page = screen.draw(cfg, shown, names, frame))
            .map_err(Error::Output)?;
        screen.set_page(page);
        Ok::<(), Error>(())
    };
    loop {
        let started = Instant::now();
        // paused, nothing is collected: what is shown stays as it is
        if !screen.paused() {
            // what is shown is packed, and goes before the next is collected
            screen.pack(cfg, std::mem::take(&mut shown));
            let parts = pipeline.look(notices)?;
            let names = pipeline.names(&parts);
            let now = timestamp(SystemTime::now());
            screen.update(cfg, &parts, names, started, &now);
            shown = parts;
        }
        draw(term, &mut screen, pipeline, &shown)?;
        *refreshes += 1;
        if cfg.count.is_some_and(|n| *refreshes >= n) {
            return Ok(());
        }
        let deadline = started + cfg.interval;
        loop {
            match keys.wait(deadline, stop).map_err(Error::Output)? {
                Wake::Quit => return Ok(()),
                Wake::Refresh => break,
                Wake::Input(event) => match screen.handle(&event, cfg, &shown, &service) {
                    Outcome::Quit => return Ok(()),
                    Outcome::Redraw => draw(term, &mut screen, pipeline, &shown)?,
                    Outcome::Ignored => {}
                },
            }
        }
    }
}

/// Says on stderr, as they occur, the notices not said before; those said
/// are not said again at the end. In the interactive view they wait for
/// the end.
fn say_new(notices: &mut Notices, said: &mut HashSet<String>) {
    let mut stderr = std::io::stderr().lock();
    for line in notices.take() {
        // bounded: most notices are few and fixed, but some name a
        // namespace, and namespaces come and go
        if said.len() >= SAID_CAP {
            said.clear();
        }
        if said.insert(line.clone()) {
            let _ = writeln!(stderr, "sockwho: {line}");
        }
    }
}

/// How many notices are remembered as said; beyond it a notice may be said
/// again.
const SAID_CAP: usize = 4096;

/// Sleeps until `deadline` or a stop signal.
fn sleep_until(deadline: Instant, stop: &AtomicBool) -> Wake {
    loop {
        if stop.load(Ordering::SeqCst) {
            return Wake::Quit;
        }
        let now = Instant::now();
        if now >= deadline {
            return Wake::Refresh;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}
