//! sockwho: the kernel's TCP and UDP sockets as `netstat -an` lists them,
//! with port classes, the direction of every connection, and FTP sessions.
//!
//! The pipeline: [`collect`] reads the kernel (sock_diag netlink, or
//! /proc/net; owners; conntrack), in one network namespace or several,
//! [`classify`] labels each socket with pure functions, and [`render`]
//! writes a table, the FTP view or JSON.

pub mod classify;
pub mod cli;
pub mod collect;
pub mod config;
pub mod error;
pub mod filter;
pub mod model;
pub mod render;

use std::collections::{HashMap, HashSet};
use std::io::Write;

use classify::ftp::Session;
use classify::memory::Memory;
use classify::{Classified, Row};
use cli::{Cli, Format};
use collect::Notices;
use collect::names::{self, Names, Services, Users};
use collect::netns::{self, Target, Unseen};
use config::{Config, Environment};
use error::Error;
use model::{Conntrack, NetnsId, PortRange, Proto, Snapshot, Source, State};
use render::palette::Palette;

/// One network namespace's sockets, classified: all of them, whatever the
/// options show, because FTP sessions and the view need listeners too.
#[derive(Debug)]
pub struct Part {
    /// The namespace's inode (0 for the one sockwho runs in, unlabelled).
    pub inode: u64,
    /// `None` when only the namespace sockwho runs in is looked at.
    pub netns: Option<NetnsId>,
    pub port_range: PortRange,
    pub source: Source,
    /// Every socket of the namespace, and what sockwho says of each (same order).
    pub sockets: Vec<model::Socket>,
    pub labels: Vec<classify::Labels>,
    pub sessions: Vec<Session>,
    /// `None` where it was not read (no FTP in use); `Err` says why not.
    pub conntrack: Option<Result<Conntrack, String>>,
}

impl Part {
    /// The sockets with their labels, in dump order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.sockets
            .iter()
            .zip(&self.labels)
            .map(|(socket, labels)| Row { socket, labels })
    }

    pub fn row(&self, i: usize) -> Row<'_> {
        Row {
            socket: &self.sockets[i],
            labels: &self.labels[i],
        }
    }
}

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
    let cfg = Config::new(cli, env).map_err(Error::Usage)?;
    if cfg.watch {
        return render::watch::run(&cfg, out, notices);
    }
    let parts = look(&cfg, notices, None)?;
    render(&cfg, &parts, out)
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

/// What watch mode keeps from one refresh to the next, so that a refresh
/// costs no more than a one-shot run: owners of sockets already seen, names
/// already looked up, and what earlier refreshes saw (by namespace inode).
#[derive(Debug, Default)]
pub struct Cache {
    owners: HashMap<u64, Vec<model::Process>>,
    names: Option<Names>,
    pub memory: HashMap<u64, Memory>,
    /// How often /proc was walked for owners (said with -v).
    pub owner_walks: usize,
    pub refreshes: u64,
}

/// Collects and classifies every namespace the configuration names; `cache`
/// carries what earlier refreshes of watch mode learnt.
pub fn look(
    cfg: &Config,
    notices: &mut Notices,
    mut cache: Option<&mut Cache>,
) -> Result<Vec<Part>, Error> {
    let labelled = cfg.names_namespaces();
    let mut collected = Vec::new();
    let (targets, mut unseen) = targets(cfg)?;
    for target in targets {
        let entered = netns::run_in(&target, || {
            let mut found = Notices::default();
            collect_one(cfg, &mut found).map(|c| (c, found))
        });
        match entered {
            Ok(Ok(((snapshot, conntrack), found))) => {
                notices.extend(found);
                collected.push((
                    target.id.inode,
                    labelled.then(|| target.id.clone()),
                    snapshot,
                    conntrack,
                ));
            }
            Ok(Err(e)) if !cfg.all_netns => return Err(e),
            Ok(Err(e)) => notices.push(format!(
                "skipped network namespace {}: {e}",
                target.id.label()
            )),
            Err(source) if !cfg.all_netns => {
                return Err(Error::Netns {
                    spec: cfg.netns.clone().unwrap_or_else(|| target.id.label()),
                    source,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => unseen.not_entered += 1,
            // EINVAL: the file is no namespace any more (`ip netns del`
            // unmounted it after we opened it)
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => unseen.vanished += 1,
            Err(e) => notices.push(format!(
                "could not enter network namespace {}: {}",
                target.id.label(),
                error::reason(&e)
            )),
        }
    }
    if let Some(line) = unseen.notice() {
        notices.push(line);
    }
    // FTP needs owners (same process, daemons); they are read once for all
    // namespaces, only where FTP is in use (collect_one then asked
    // conntrack: its answer is there) or -p asks for them.
    let ftp = collected
        .iter()
        .any(|(_, _, _, conntrack)| conntrack.is_some());
    if cfg.program || cfg.filter.needs_owners() || ftp {
        let owners = cache
            .as_deref_mut()
            .map(|c| (&mut c.owners, &mut c.owner_walks));
        fill_owners(
            cfg,
            collected.iter_mut().map(|(_, _, s, _)| s),
            owners,
            notices,
        )?;
    }
    Ok(collected
        .into_iter()
        .map(|(inode, netns, snapshot, conntrack)| {
            let Classified { labels, sessions } = classify::classify(
                &snapshot,
                classify::Context {
                    conntrack: conntrack.as_ref().and_then(|c| c.as_ref().ok()),
                    ftp_ports: &cfg.ftp_ports,
                    memory: cache.as_deref().and_then(|c| c.memory.get(&inode)),
                },
            );
            Part {
                inode,
                netns,
                port_range: snapshot.port_range,
                source: snapshot.source,
                sockets: snapshot.sockets,
                labels,
                sessions,
                conntrack,
            }
        })
        .collect())
}

fn targets(cfg: &Config) -> Result<(Vec<Target>, Unseen), Error> {
    let netns_error = |spec: &str, source| Error::Netns {
        spec: spec.to_string(),
        source,
    };
    let one = |t| Ok((vec![t], Unseen::default()));
    if cfg.replaying() {
        // a saved /proc tree is one namespace, already chosen
        return one(Target::replayed());
    }
    if let Some(spec) = &cfg.netns {
        return one(netns::resolve(spec, &cfg.proc_root).map_err(|e| netns_error(spec, e))?);
    }
    if !cfg.all_netns {
        return one(Target::replayed());
    }
    netns::discover(&cfg.proc_root).map_err(|source| Error::Proc {
        path: cfg.proc_root.clone(),
        source,
    })
}

/// The sockets of the current namespace, and conntrack where FTP is in use.
type Conntracked = Option<Result<Conntrack, String>>;

fn collect_one(cfg: &Config, notices: &mut Notices) -> Result<(Snapshot, Conntracked), Error> {
    let snapshot = collect::snapshot(cfg, notices)?;
    let ftp = cfg.ftp_view || uses_ftp_port(&snapshot, &cfg.ftp_ports);
    let conntrack = match (ftp, cfg.replaying()) {
        (false, _) => None,
        (true, true) => Some(Err("not read from a replayed /proc tree".to_string())),
        (true, false) => Some(collect::conntrack::read(&cfg.net_root())),
    };
    Ok((snapshot, conntrack))
}

pub fn render(cfg: &Config, parts: &[Part], out: &mut dyn Write) -> std::io::Result<()> {
    render_cached(cfg, parts, &mut Cache::default(), out)
}

/// Renders, looking names up only once per `cache`.
pub fn render_cached(
    cfg: &Config,
    parts: &[Part],
    cache: &mut Cache,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let palette = Palette::new(cfg.color);
    if cfg.ftp_view {
        return render::ftp::write(parts, palette, out);
    }
    match cfg.format {
        Format::Json => render::json::write(cfg, parts, out),
        Format::Csv => render::csv::write(cfg, parts, out),
        // one look: every socket is new
        Format::Jsonl => render::watch::Events::default().write(cfg, parts, out),
        Format::Table => {
            let names = cache.names.get_or_insert_with(|| load_names(cfg));
            resolve_hosts(cfg, parts, names);
            let table = render::table::Table {
                cfg,
                names,
                palette,
            };
            table.write(parts, out)
        }
    }
}

/// The rows the options show: their states, and every filter.
pub fn shown<'a>(
    cfg: &'a Config,
    parts: &'a [Part],
) -> impl Iterator<Item = (&'a Part, Row<'a>)> + 'a {
    parts
        .iter()
        .flat_map(|p| p.rows().map(move |r| (p, r)))
        .filter(|(_, r)| {
            let s = &r.socket;
            cfg.shows(s.proto, s.state)
                && cfg.filter.matches_socket(s)
                && cfg.filter.matches_labels(s, r.labels)
        })
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

/// Fills in the owners of every socket with an inode. With a `cache` (watch
/// mode), /proc is walked only when a socket not seen before needs one.
fn fill_owners<'a>(
    cfg: &Config,
    snapshots: impl Iterator<Item = &'a mut Snapshot>,
    cache: Option<(&mut HashMap<u64, Vec<model::Process>>, &mut usize)>,
    notices: &mut Notices,
) -> Result<(), Error> {
    let snapshots: Vec<&mut Snapshot> = snapshots.collect();
    let wanted: HashSet<u64> = snapshots
        .iter()
        .flat_map(|s| s.sockets.iter().map(|s| s.inode))
        .filter(|&i| i != 0)
        .collect();
    let Some((cache, walks)) = cache else {
        // one look: the owners move into their sockets
        let owners = collect::owners(cfg, &wanted, notices)?;
        for s in snapshots.into_iter().flat_map(|s| s.sockets.iter_mut()) {
            let list = collect::processes::owners_of(&owners, s.inode);
            if !list.is_empty() {
                s.processes = list.iter().map(|(_, p)| p.clone()).collect();
            }
        }
        return Ok(());
    };
    if wanted.iter().any(|i| !cache.contains_key(i)) {
        *walks += 1;
        let found = collect::owners(cfg, &wanted, notices)?;
        // sockets without a visible owner are remembered as such
        cache.clear();
        cache.extend(wanted.iter().map(|&i| {
            (
                i,
                collect::processes::owners_of(&found, i)
                    .iter()
                    .map(|(_, p)| p.clone())
                    .collect(),
            )
        }));
    } else {
        // forget the sockets that are gone
        cache.retain(|i, _| wanted.contains(i));
    }
    for s in snapshots.into_iter().flat_map(|s| s.sockets.iter_mut()) {
        if let Some(list) = cache.get(&s.inode) {
            s.processes = list.clone();
        }
    }
    Ok(())
}

/// Loads only the names the table will show.
fn load_names(cfg: &Config) -> Names {
    let mut names = Names::default();
    if !cfg.numeric {
        names.services = Some(Services::load("/etc/services".as_ref()));
        if cfg.extend {
            names.users = Some(Users::load("/etc/passwd".as_ref()));
        }
    }
    names
}

/// With `-r`, looks up the host names of addresses not looked up before.
fn resolve_hosts(cfg: &Config, parts: &[Part], names: &mut Names) {
    if cfg.resolve {
        let addrs: HashSet<_> = parts
            .iter()
            .flat_map(|p| p.rows())
            .flat_map(|r| {
                std::iter::once(r.socket.local.addr).chain(r.socket.remote.map(|e| e.addr))
            })
            .filter(|a| !a.is_unspecified() && !names.looked_up.contains(a))
            .collect();
        for addr in addrs {
            names.looked_up.insert(addr);
            if let Some(name) = names::host_name(addr) {
                names.hosts.insert(addr, name);
            }
        }
    }
}
