//! sockwho: the kernel's TCP and UDP sockets as `netstat -an` lists them,
//! with port classes, the direction of every connection, and FTP sessions.
//!
//! The pipeline: [`collect`] reads the kernel (sock_diag netlink, or
//! /proc/net; owners; conntrack), [`classify`] labels each socket with pure
//! functions, and [`render`] writes a table, the FTP view or JSON.

pub mod classify;
pub mod cli;
pub mod collect;
pub mod config;
pub mod error;
pub mod model;
pub mod render;

use std::collections::HashSet;
use std::io::Write;

use classify::{Classified, Row};
use cli::{Cli, Format};
use collect::Notices;
use collect::names::{self, Names, Services, Users};
use config::{Config, Environment};
use error::Error;
use model::{Proto, Snapshot, State};
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
    let mut snapshot = collect::snapshot(&cfg, notices)?;
    // FTP needs owners (same process, daemons) and conntrack; both are read
    // only where an FTP port is in use, or the FTP view is asked for.
    let ftp_here = cfg.ftp_view || uses_ftp_port(&snapshot, &cfg.ftp_ports);
    if cfg.program || ftp_here {
        fill_owners(&cfg, &mut snapshot, notices)?;
    }
    let conntrack = if ftp_here && !cfg.replaying() {
        collect::conntrack::read(&cfg.proc_root).ok()
    } else {
        None
    };
    let Classified { labels, sessions } = classify::classify(
        &snapshot,
        classify::Context {
            conntrack: conntrack.as_ref(),
            ftp_ports: &cfg.ftp_ports,
        },
    );
    let (port_range, source) = (snapshot.port_range, snapshot.source);
    let all: Vec<Row> = snapshot
        .sockets
        .into_iter()
        .zip(labels)
        .map(|(socket, labels)| Row { socket, labels })
        .collect();
    if cfg.ftp_view {
        let view = render::ftp::View {
            rows: &all,
            sessions: &sessions,
            range: &port_range,
            conntrack: conntrack.as_ref(),
            palette: Palette::new(cfg.color),
        };
        return view
            .write(out)
            .and_then(|()| out.flush())
            .map_err(Error::Output);
    }
    let rows: Vec<Row> = all
        .into_iter()
        .filter(|r| cfg.shows(r.socket.proto, r.socket.state))
        .collect();
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

/// Whether any TCP socket uses a control port (21, 990, `--ftp-port`).
fn uses_ftp_port(snapshot: &Snapshot, extra: &[u16]) -> bool {
    let control =
        |port: u16| classify::ftp::DEFAULT_CONTROL_PORTS.contains(&port) || extra.contains(&port);
    snapshot.sockets.iter().any(|s| {
        s.proto == Proto::Tcp
            && s.state != State::Listen
            && (control(s.local.port) || s.remote.is_some_and(|r| control(r.port)))
    })
}

fn fill_owners(cfg: &Config, snapshot: &mut Snapshot, notices: &mut Notices) -> Result<(), Error> {
    let wanted: HashSet<u64> = snapshot
        .sockets
        .iter()
        .map(|s| s.inode)
        .filter(|&i| i != 0)
        .collect();
    let mut owners = collect::owners(cfg, &wanted, notices)?;
    for s in &mut snapshot.sockets {
        if let Some(list) = owners.remove(&s.inode) {
            s.processes = list;
        }
    }
    Ok(())
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
