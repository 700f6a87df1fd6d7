//! Renderers: classified rows in, bytes out, to any `io::Write`. They read
//! a [`view`](crate::view) and the names already looked up, and never
//! collect.

pub mod before;
pub mod csv;
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
