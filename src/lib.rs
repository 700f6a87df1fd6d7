//! sockwho: the kernel's TCP and UDP sockets as `netstat -an` lists them,
//! with port classes and the direction of every connection.
//!
//! The pipeline: [`collect`] reads the kernel (sock_diag netlink, or
//! /proc/net), [`classify`] labels each socket with pure functions, and
//! [`render`] writes a table or JSON.

pub mod classify;
pub mod cli;
pub mod collect;
pub mod config;
pub mod error;
pub mod model;
pub mod render;

use std::collections::HashSet;
use std::io::Write;

use classify::Row;
use cli::{Cli, Format};
use collect::Notices;
use collect::names::{self, Names, Services, Users};
use config::{Config, Environment};
use error::Error;
use render::palette::Palette;

/// Runs sockwho once: collect, classify, render into `out`. Nothing is
/// written until everything has been collected, so a failure leaves no
/// half-written output. Non-fatal problems go to `notices`.
pub fn run(
    cli: &Cli,
    env: &Environment,
    out: &mut dyn Write,
    notices: &mut Notices,
) -> Result<(), Error> {
    if let Some(shell) = cli.completions {
        cli::write_completions(shell, out);
        return out.flush().map_err(Error::Output);
    }
    let cfg = Config::new(cli, env);
    let snapshot = collect::snapshot(&cfg, notices)?;
    let labels = classify::classify(&snapshot);
    let (port_range, source) = (snapshot.port_range, snapshot.source);
    let mut rows: Vec<Row> = snapshot
        .sockets
        .into_iter()
        .zip(labels)
        .filter(|(s, _)| cfg.shows(s.proto, s.state))
        .map(|(socket, labels)| Row { socket, labels })
        .collect();
    if cfg.program {
        let wanted: HashSet<u64> = rows
            .iter()
            .map(|r| r.socket.inode)
            .filter(|&i| i != 0)
            .collect();
        let mut owners = collect::owners(&cfg, &wanted, notices)?;
        for row in &mut rows {
            if let Some(list) = owners.remove(&row.socket.inode) {
                row.socket.processes = list;
            }
        }
    }
    match cfg.format {
        Format::Json => render::json::write(&rows, &port_range, source, cfg.program, out),
        Format::Table => {
            let names = load_names(&cfg, &rows);
            let table = render::table::Table {
                cfg: &cfg,
                names: &names,
                port_range: &port_range,
                palette: Palette::new(cfg.color),
            };
            table.write(&rows, out)
        }
    }
    .and_then(|()| out.flush())
    .map_err(Error::Output)
}

/// Looks up only the names the table will show.
fn load_names(cfg: &Config, rows: &[Row]) -> Names {
    let mut names = Names::default();
    if !cfg.numeric {
        names.services = Some(Services::load("/etc/services".as_ref()));
        if cfg.extend {
            names.users = Some(Users::load("/etc/passwd".as_ref()));
        }
    }
    if cfg.resolve {
        let addrs: HashSet<_> = rows
            .iter()
            .flat_map(|r| {
                std::iter::once(r.socket.local.addr).chain(r.socket.remote.map(|e| e.addr))
            })
            .filter(|a| !a.is_unspecified())
            .collect();
        for addr in addrs {
            if let Some(name) = names::host_name(addr) {
                names.hosts.insert(addr, name);
            }
        }
    }
    names
}
