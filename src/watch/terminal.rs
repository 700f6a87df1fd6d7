//! The terminal of the full-screen view, through crossterm: raw mode (keys
//! one by one, unechoed, Ctrl-C as a key), the alternate screen, no cursor,
//! the window's size, and waiting for a key, a resize or the next refresh.
//! Dropping [`Terminal`] puts the terminal back as it was, on every way out.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, terminal};

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Time for the next refresh.
    Refresh,
    /// The window changed size: draw the frame again.
    Resized,
    /// `q`, Ctrl-C, or a stop signal.
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
        Ok(guard)
    }

    /// Columns and rows; 80x24 where the window cannot be asked.
    pub fn size() -> (usize, usize) {
        match terminal::size() {
            Ok((cols, rows)) if cols > 0 && rows > 0 => (usize::from(cols), usize::from(rows)),
            _ => (80, 24),
        }
    }

    /// Waits until `deadline` for a key or a resize; `stop` is set by
    /// SIGINT and SIGTERM.
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
                Event::Key(key) if key.kind != KeyEventKind::Release => {
                    let ctrl_c = key.code == KeyCode::Char('c')
                        && key.modifiers.contains(KeyModifiers::CONTROL);
                    if ctrl_c || matches!(key.code, KeyCode::Char('q' | 'Q')) {
                        return Ok(Wake::Quit);
                    }
                }
                Event::Resize(..) => return Ok(Wake::Resized),
                _ => {}
            }
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let mut stdout = io::stdout();
        let _ = execute!(stdout, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = stdout.flush();
        if self.raw {
            let _ = terminal::disable_raw_mode();
        }
    }
}
