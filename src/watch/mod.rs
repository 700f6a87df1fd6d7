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
use crate::render::{self, events::Events, screen::Screen, time::timestamp};
use terminal::{Terminal, Wake};

/// Runs watch mode until it is told to stop.
pub fn run(cfg: &Config, out: &mut dyn Write, notices: &mut Notices) -> Result<(), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration fails only for a forbidden signal; these are not.
        let _ = signal_hook::flag::register(signal, Arc::clone(&stop));
    }
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

fn refresh(
    cfg: &Config,
    pipeline: &mut Pipeline,
    stop: &AtomicBool,
    refreshes: &mut u64,
    said: &mut HashSet<String>,
    out: &mut dyn Write,
    notices: &mut Notices,
) -> Result<(), Error> {
    let mut events = Events::default();
    let mut screen = Screen::default();
    let mut terminal = if cfg.stdout_is_tty && cfg.format == Format::Table {
        Some(Terminal::enter().map_err(Error::Output)?)
    } else {
        None
    };
    let no_names = Names::default();
    loop {
        let started = Instant::now();
        let mut parts = pipeline.look(notices)?;
        if terminal.is_none() && matches!(cfg.format, Format::Json | Format::Csv) && !cfg.ftp_view {
            crate::view::listed_only(&mut parts);
        }
        let names = if render::needs_names(cfg) {
            pipeline.names(&parts)
        } else {
            &no_names
        };
        let now = timestamp(SystemTime::now());
        let drawn = match (&terminal, cfg.format) {
            (Some(_), _) => screen
                .update(cfg, &parts, names, &now)
                .and_then(|()| screen.draw(Terminal::size(), out)),
            (None, Format::Jsonl) => events.write_at(cfg, &parts, pipeline.departures(), &now, out),
            // machine formats carry the time in themselves: no text line
            (None, Format::Json) if !cfg.ftp_view => {
                render::json::write_at(cfg, &parts, Some(&now), out)
            }
            (None, Format::Csv) if !cfg.ftp_view => render::csv::write_at(
                cfg,
                &parts,
                Some(&now),
                *refreshes == 0 && !cfg.no_header,
                out,
            ),
            (None, _) => writeln!(out, "sockwho {now} (every {}s)", cfg.interval.as_secs_f64())
                .and_then(|()| render::write(cfg, &parts, names, out))
                .and_then(|()| writeln!(out)),
        };
        drawn.and_then(|()| out.flush()).map_err(Error::Output)?;
        if terminal.is_none() {
            say_new(notices, said);
        }
        *refreshes += 1;
        if cfg.count.is_some_and(|n| *refreshes >= n) {
            return Ok(());
        }
        let deadline = started + cfg.interval;
        loop {
            let wake = match &mut terminal {
                Some(t) => t.wait(deadline, stop).map_err(Error::Output)?,
                None => sleep_until(deadline, stop),
            };
            match wake {
                Wake::Quit => return Ok(()),
                Wake::Refresh => break,
                Wake::Resized => screen.draw(Terminal::size(), out).map_err(Error::Output)?,
            }
        }
    }
}

/// Says on stderr, as they occur, the notices not said before; those said
/// are not said again at the end. On the full screen they wait for the end.
fn say_new(notices: &mut Notices, said: &mut HashSet<String>) {
    let mut stderr = std::io::stderr().lock();
    for line in notices.take() {
        if said.insert(line.clone()) {
            let _ = writeln!(stderr, "sockwho: {line}");
        }
    }
}

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
