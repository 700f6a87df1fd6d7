//! Renderers: classified rows in, bytes out, to any `io::Write`. They read
//! a [`view`](crate::view) and the names already looked up, and never
//! collect.

pub mod before;
pub mod csv;
mod digits;
pub mod escape;
pub mod events;
pub mod ftp;
pub mod json;
pub mod metrics;
pub mod palette;
pub mod screen;
pub mod summary;
pub mod table;
pub mod time;

use std::io::{self, Write};

use crate::cli::Format;
use crate::collect::names::Names;
use crate::config::Config;
use crate::view::Part;
use palette::Palette;

/// Whether the output shows names (services, users, hosts): only the table.
pub fn needs_names(cfg: &Config) -> bool {
    !cfg.ftp_view && cfg.format == Format::Table && !cfg.summary
}

/// Writes one look in the configured format: the FTP view, the summary,
/// JSON, JSON Lines (every socket is new), CSV, Prometheus metrics or the
/// table.
pub fn write(cfg: &Config, parts: &[Part], names: &Names, out: &mut dyn Write) -> io::Result<()> {
    let palette = Palette::new(cfg.color);
    if cfg.ftp_view {
        return ftp::write(parts, palette, out);
    }
    if cfg.summary {
        return summary::write(cfg, parts, out);
    }
    match cfg.format {
        Format::Json => json::write(cfg, parts, out),
        Format::Csv => csv::write(cfg, parts, out),
        Format::Jsonl => events::Events::default().write(cfg, parts, out),
        // untimed: `serve::once` is the timed look of `--format prometheus`
        Format::Prometheus => metrics::write(cfg, parts, &metrics::Scrape::default(), out),
        Format::Table => table::Table {
            cfg,
            names,
            palette,
        }
        .write(parts, out),
    }
}

/// A writer that gathers small writes in a buffer of its own and hands
/// them on 64 KiB at a time: serde's many small writes, each through a
/// `dyn Write`, took a fifth of `--format json` at 200,000 sockets.
pub struct Chunked<'a> {
    buf: Vec<u8>,
    out: &'a mut dyn Write,
}

impl<'a> Chunked<'a> {
    const SIZE: usize = 64 * 1024;

    pub fn new(out: &'a mut dyn Write) -> Chunked<'a> {
        Chunked {
            buf: Vec::with_capacity(Self::SIZE + 1024),
            out,
        }
    }

    /// Hands on what is gathered; dropped without it, the rest is lost.
    pub fn finish(mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl Write for Chunked<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= Self::SIZE {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }
}
