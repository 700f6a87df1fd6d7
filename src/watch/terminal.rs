//! The terminal of the interactive view, through crossterm: raw mode (keys
//! one by one, unechoed, Ctrl-C as a key), the alternate screen, no cursor,
//! the mouse's wheel, and waiting for a key, the mouse, a resize or the
//! next refresh. Dropping [`Terminal`] puts the terminal back as it was, on
//! every way out. Drawing goes through ratatui (`watch::run`), which writes
//! only the cells that changed.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event, KeyEventKind};
use crossterm::{cursor, execute, terminal};

/// Why a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// Time for the next refresh.
    Refresh,
    /// A key, the mouse, or a resize, for the view to handle.
    Input(Event),
    /// A stop signal (SIGINT, SIGTERM).
    Quit,
}

pub struct Terminal {
    /// Whether raw mode could be had: keys are read only then (stdin and
    /// /dev/tty may both be no terminal).
    raw: bool,
}

impl Terminal {
    pub fn enter() -> io::Result<Terminal> {
        let raw = terminal::enable_raw_mode().is_ok();
        let guard = Terminal { raw };
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        if raw {
            execute!(io::stdout(), EnableMouseCapture)?;
        }
        Ok(guard)
    }

    /// Waits until `deadline` for input; `stop` is set by SIGINT and SIGTERM.
    pub fn wait(&mut self, deadline: Instant, stop: &AtomicBool) -> io::Result<Wake> {
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(Wake::Quit);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Wake::Refresh);
            }
            // short slices, so that a stop signal is seen soon
            let slice = (deadline - now).min(Duration::from_millis(200));
            if !self.raw {
                std::thread::sleep(slice);
                continue;
            }
            if !event::poll(slice)? {
                continue;
            }
            match event::read()? {
                Event::Key(key) if key.kind == KeyEventKind::Release => {}
                e @ (Event::Key(_) | Event::Mouse(_) | Event::Resize(..)) => {
                    return Ok(Wake::Input(e));
                }
                _ => {}
            }
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let mut stdout = io::stdout();
        if self.raw {
            let _ = execute!(stdout, DisableMouseCapture);
        }
        let _ = execute!(stdout, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = stdout.flush();
        if self.raw {
            let _ = terminal::disable_raw_mode();
        }
    }
}
