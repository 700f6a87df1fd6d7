//! Orchestration: which namespaces to look into, collecting each (on a
//! thread inside it), the owners of every socket (one /proc walk for all
//! namespaces), classification, and the names the table shows. One-shot
//! runs and every refresh of watch mode go through [`Pipeline`]; what watch
//! mode keeps from one refresh to the next lives here too, so that a refresh
//! costs no more than a one-shot run.
//!
//! Watch mode also follows the kernel's events in each namespace
//! (`collect::events`): the sockets destroyed since the refresh before are
//! taken just before the dump, matched with it by cookie or a timewait
//! socket's ends (a [`Ledger`] per namespace), and those never listed join
//! the snapshot with `closed` set,
//! so that they are classified like the others; conntrack comes from the
//! table the events keep where there is one.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::classify::memory::Memory;
use crate::classify::{self, Classified};
use crate::cli::{Format, SourceChoice};
use crate::collect::events::{self, Counts, Departures, Destroyed, EventSource, Ledger};
use crate::collect::names::{self, Names};
use crate::collect::netns::{self, Target, Unseen};
use crate::collect::processes::Walked;
use crate::collect::{Notices, Request, addresses, sysctl};
use crate::config::Config;
use crate::error::{self, Error};
use crate::model::{self, Conntrack, Proto, Snapshot, Source, State};
use crate::view::Part;

/// Collects and classifies what the configuration names, again and again.
#[derive(Debug)]
pub struct Pipeline<'a> {
    cfg: &'a Config,
    request: Request,
    /// `None` for a one-shot run: owners move into their sockets, nothing
    /// is remembered.
    cache: Option<Cache>,
    names: Option<Names>,
    /// When the sockets that went away in the last look were destroyed.
    departures: Departures,
}

/// What watch mode keeps from one refresh to the next: owners of sockets
/// already seen and what earlier refreshes saw (by namespace inode).
#[derive(Debug, Default)]
struct Cache {
    owners: HashMap<u64, Vec<model::Process>>,
    /// The walk that found `owners` could read every process: a socket it
    /// found no owner of had been closed by its program (`owner_gone`).
    owners_complete: bool,
    memory: HashMap<u64, Memory>,
    /// How often /proc was walked for owners (said with -v).
    owner_walks: usize,
    /// The kernel's events of each namespace looked into, by inode.
    watched: HashMap<u64, Watched>,
}

/// One namespace's events and what they were matched against.
#[derive(Debug, Default)]
struct Watched {
    /// `None` where events could not be followed (said once).
    source: Option<EventSource>,
    ledger: Ledger,
}

impl Watched {
    /// Starts following `target`'s events, or says why not.
    fn start(cfg: &Config, request: &Request, target: &Target, notices: &mut Notices) -> Watched {
        let label = if cfg.names_namespaces() {
            format!("network namespace {}", target.id.label())
        } else {
            "this network namespace".to_string()
        };
        // The thread enters the namespace itself: this hands it the file.
        let netns = netns::run_in(target, || File::open("/proc/thread-self/ns/net"))
            .and_then(|opened| opened);
        let options = events::Options {
            protos: request.protos.clone(),
            families: request.families.clone(),
            verbose: cfg.verbose,
        };
        let started = netns
            .map_err(|e| error::reason(&e))
            .and_then(|file| EventSource::start(file, &options, label.clone()));
        match started {
            Ok((source, said)) => {
                for line in said {
                    notices.push(line);
                }
                Watched {
                    source: Some(source),
                    ledger: Ledger::default(),
                }
            }
            Err(why) => {
                notices.push(format!(
                    "cannot follow the kernel's socket events in {label} ({why}): connections that open and close between refreshes are not seen"
                ));
                Watched::default()
            }
        }
    }
}

impl<'a> Pipeline<'a> {
    /// For one look.
    pub fn once(cfg: &'a Config) -> Pipeline<'a> {
        Pipeline {
            cfg,
            request: cfg.request(),
            cache: None,
            names: None,
            departures: Departures::new(),
        }
    }

    /// For watch mode: owners and what was seen are remembered.
    pub fn watching(cfg: &'a Config) -> Pipeline<'a> {
        Pipeline {
            cache: Some(Cache::default()),
            ..Pipeline::once(cfg)
        }
    }

    /// How often /proc was walked for owners so far.
    pub fn owner_walks(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.owner_walks)
    }

    /// When the sockets that went away in the last look were destroyed
    /// (watch mode; empty otherwise): the times of their `removed` and
    /// `closed` events.
    pub fn departures(&self) -> &Departures {
        &self.departures
    }

    /// The destroy events read so far and what they came to, over every
    /// namespace; `None` where none was followed.
    pub fn event_counts(&self) -> Option<(u64, Counts)> {
        let watched = &self.cache.as_ref()?.watched;
        let mut read = 0;
        let mut counts = Counts::default();
        let mut any = false;
        for w in watched.values() {
            let Some(source) = &w.source else { continue };
            any = true;
            read += source.read();
            let c = w.ledger.counts;
            counts.closed += c.closed;
            counts.removed += c.removed;
            counts.listed += c.listed;
            counts.late += c.late;
        }
        any.then_some((read, counts))
    }

    /// Whether kernel events are followed: watch mode on the live system,
    /// with sock_diag (whose cookies match events to dumped sockets).
    fn follows_events(&self) -> bool {
        self.cache.is_some()
            && !self.cfg.inputs.replaying()
            && self.cfg.source != SourceChoice::Procfs
    }

    /// Collects and classifies every namespace the configuration names.
    pub fn look(&mut self, notices: &mut Notices) -> Result<Vec<Part>, Error> {
        let cfg = self.cfg;
        let labelled = cfg.names_namespaces();
        let mut collected = Vec::new();
        let (targets, mut unseen) = targets(cfg)?;
        // One look that shows owners walks /proc beside the dumps, on the
        // other core (watch mode walks only for sockets it has not seen).
        let owners_wanted = cfg.program || cfg.filter.needs_owners();
        let mut walk = (owners_wanted && self.cache.is_none()).then(|| cfg.inputs.walk_owners());
        let follow = self.follows_events();
        let request = &self.request;
        let mut watched = self.cache.as_mut().map(|c| &mut c.watched);
        let mut departures = Departures::new();
        let mut looked = HashSet::new();
        // without events to follow, the namespaces are read two at a time
        let mut early = match watched.is_some() && follow {
            false if targets.len() > 1 => collect_all(cfg, request, &targets),
            _ => Vec::new(),
        };
        for (k, target) in targets.into_iter().enumerate() {
            let inode = target.id.inode;
            looked.insert(inode);
            let events = match (&mut watched, follow) {
                (Some(watched), true) => Some(
                    watched
                        .entry(inode)
                        .or_insert_with(|| Watched::start(cfg, request, &target, notices)),
                ),
                _ => None,
            };
            // taken before the dump begins: see collect::events
            let destroyed = match events.as_ref().and_then(|w| w.source.as_ref()) {
                Some(source) => {
                    let drained = source.drain();
                    for line in drained.notices {
                        notices.push(line);
                    }
                    drained.destroyed
                }
                None => Vec::new(),
            };
            let entered = match early.get_mut(k).and_then(Option::take) {
                Some(entered) => entered,
                None => netns::run_in(&target, || {
                    let mut found = Notices::default();
                    let events = events.map(|w| (&mut w.ledger, w.source.as_ref()));
                    collect_one(cfg, request, events, destroyed, &mut found).map(|c| (c, found))
                }),
            };
            match entered {
                Ok(Ok(((snapshot, conntrack, destroyed_at), found))) => {
                    notices.extend(found);
                    departures.extend(
                        destroyed_at
                            .into_iter()
                            .map(|(cookie, at)| ((inode, cookie), at)),
                    );
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
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    unseen.not_entered += 1
                }
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
        // the namespaces that went away take their threads and what was
        // remembered of them with them
        if let Some(watched) = watched {
            watched.retain(|inode, _| looked.contains(inode));
        }
        if let Some(cache) = &mut self.cache {
            cache.memory.retain(|inode, _| looked.contains(inode));
        }
        if let Some(cache) = &mut self.cache {
            learn_ends(&mut cache.memory, &departures);
        }
        self.departures = departures;
        // FTP needs owners (same process, daemons); they are read once for
        // all namespaces, only where FTP is in use (collect_one then asked
        // conntrack: its answer is there) or -p asks for them.
        let ftp = collected
            .iter()
            .any(|(_, _, _, conntrack)| conntrack.is_some());
        if owners_wanted || ftp {
            let walk = walk.take();
            self.fill_owners(collected.iter_mut().map(|(_, _, s, _)| s), walk, notices)?;
        }
        for (_, _, snapshot, _) in &mut collected {
            queued_where_owners_went(&mut snapshot.sockets);
        }
        let memory = self.cache.as_ref().map(|c| &c.memory);
        let parts: Vec<Part> = collected
            .into_iter()
            .map(|(inode, netns, snapshot, conntrack)| {
                let Classified {
                    labels,
                    sessions,
                    crossings,
                } = classify::classify(
                    &snapshot,
                    classify::Context {
                        conntrack: conntrack.as_ref().and_then(|c| c.as_ref().ok()),
                        ftp_ports: &cfg.ftp_ports,
                        memory: memory.and_then(|m| m.get(&inode)),
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
                    crossings,
                    conntrack,
                    selected: snapshot.selected,
                }
            })
            .collect();
        if let Some(cache) = &mut self.cache {
            // what this refresh saw is evidence for the next ones
            let now = std::time::Instant::now();
            for p in &parts {
                cache.memory.entry(p.inode).or_default().learn(
                    now,
                    &p.sockets,
                    &p.labels,
                    &p.sessions,
                );
            }
        }
        Ok(parts)
    }

    /// The names the table shows: read once, and with `-r` the host names
    /// of addresses not looked up before.
    pub fn names(&mut self, parts: &[Part]) -> &Names {
        let cfg = self.cfg;
        let names = self.names.get_or_insert_with(|| {
            let mut names = Names::default();
            if !cfg.numeric_ports {
                names.services = Some(cfg.inputs.services());
            }
            if cfg.extend && !cfg.numeric_users {
                names.users = Some(cfg.inputs.users());
            }
            names
        });
        if cfg.resolve {
            resolve_hosts(parts, names);
        }
        names
    }

    /// Fills in the owners of every socket with an inode. In watch mode,
    /// /proc is walked only when a socket not seen before needs one.
    fn fill_owners<'s>(
        &mut self,
        snapshots: impl Iterator<Item = &'s mut Snapshot>,
        walk: Option<JoinHandle<std::io::Result<Walked>>>,
        notices: &mut Notices,
    ) -> Result<(), Error> {
        let inputs = &self.cfg.inputs;
        let snapshots: Vec<&mut Snapshot> = snapshots.collect();
        let wanted: HashSet<u64> = snapshots
            .iter()
            .flat_map(|s| s.sockets.iter().map(|s| s.inode))
            .filter(|&i| i != 0)
            .collect();
        let Some(cache) = &mut self.cache else {
            // one look: the owners move into their sockets. A walk begun
            // beside the dump can miss a socket opened after it passed its
            // owner; one made after the dump cannot.
            let after_dump = walk.is_none();
            let owners = match walk {
                Some(walk) => inputs.owners_from(walk, &wanted, notices)?,
                None => inputs.owners(&wanted, notices)?,
            };
            let all: Vec<&mut model::Socket> = snapshots
                .into_iter()
                .flat_map(|s| s.sockets.iter_mut())
                .collect();
            let mut keys: Vec<(u64, u32)> = all
                .iter()
                .enumerate()
                .filter(|(_, s)| s.inode != 0)
                .map(|(i, s)| (s.inode, i as u32))
                .collect();
            keys.sort_unstable();
            // where each socket's owners are, found in inode order; their
            // lists are then made in the sockets' order, so that the table
            // reads them in the order they lie in memory (made in inode
            // order, a socket's list missed the cache: 50 ms of `-tanp`)
            let mut at = vec![(0u32, 0u32); all.len()];
            crate::collect::processes::join_owners(&owners.by_inode, keys, |i, found| {
                at[i as usize] = (found.start as u32, found.end as u32);
            });
            let complete = after_dump && owners.denied == 0;
            for (s, (from, to)) in all.into_iter().zip(at) {
                let found = &owners.by_inode[from as usize..to as usize];
                s.processes = found.iter().map(|(_, p)| p.clone()).collect();
                if complete && s.inode != 0 {
                    s.owner_gone = found.is_empty();
                }
            }
            return Ok(());
        };
        if wanted.iter().any(|i| !cache.owners.contains_key(i)) {
            cache.owner_walks += 1;
            let found = inputs.owners(&wanted, notices)?;
            cache.owners_complete = found.denied == 0;
            // sockets without a visible owner are remembered as such
            cache.owners.clear();
            let mut keys: Vec<u64> = wanted.iter().copied().collect();
            keys.sort_unstable();
            cache.owners.extend(keys.iter().map(|&i| (i, Vec::new())));
            let owners = &mut cache.owners;
            crate::collect::processes::join_owners(
                &found.by_inode,
                keys.iter().map(|&i| (i, i)),
                |i, at| {
                    let list = found.by_inode[at].iter().map(|(_, p)| p.clone());
                    owners.insert(i, list.collect());
                },
            );
        } else {
            // forget the sockets that are gone
            cache.owners.retain(|i, _| wanted.contains(i));
        }
        for s in snapshots.into_iter().flat_map(|s| s.sockets.iter_mut()) {
            if let Some(list) = cache.owners.get(&s.inode) {
                s.processes = list.clone();
                s.owner_gone = cache.owners_complete && list.is_empty();
            }
        }
        Ok(())
    }
}

fn targets(cfg: &Config) -> Result<(Vec<Target>, Unseen), Error> {
    let netns_error = |spec: &str, source| Error::Netns {
        spec: spec.to_string(),
        source,
    };
    let one = |t| Ok((vec![t], Unseen::default()));
    if cfg.inputs.replaying() {
        // a replayed input is one namespace, already chosen
        return one(Target::replayed());
    }
    if let Some(spec) = &cfg.netns {
        return one(netns::resolve(spec, &cfg.inputs).map_err(|e| netns_error(spec, e))?);
    }
    if !cfg.all_netns {
        return one(Target::replayed());
    }
    netns::discover(&cfg.inputs).map_err(|source| Error::Proc {
        path: cfg.inputs.proc.clone(),
        source,
    })
}

/// The sockets of the current namespace, and conntrack where FTP is in use.
type Conntracked = Option<Result<Conntrack, String>>;

/// When the sockets of a namespace that went away were destroyed, by cookie.
type DestroyedAt = HashMap<u64, std::time::SystemTime>;

/// Collects the current namespace. With its events (watch mode), the
/// sockets `destroyed` since the refresh before that the dump does not
/// explain join the snapshot after the dumped ones, `closed`, and conntrack
/// comes from the table the events keep, where they keep one.
/// What collecting one namespace came to: `Err` where it could not be
/// entered, else what [`collect_one`] returned with its notices.
type Entered = std::io::Result<Result<((Snapshot, Conntracked, DestroyedAt), Notices), Error>>;

/// Collects every target with no events to follow, on two threads (each
/// enters one namespace after another): with `--all-netns` most of a look
/// is the kernel's dumps, one core each. In the targets' order.
fn collect_all(cfg: &Config, request: &Request, targets: &[Target]) -> Vec<Option<Entered>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Entered>>> = targets
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(target) = targets.get(k) else { break };
                    let entered = netns::run_in(target, || {
                        let mut found = Notices::default();
                        collect_one(cfg, request, None, Vec::new(), &mut found).map(|c| (c, found))
                    });
                    *slots[k].lock().unwrap_or_else(|p| p.into_inner()) = Some(entered);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect()
}

/// A connection waiting in a listener's queue (accepted by no process yet:
/// TCP, inode 0, ESTABLISHED, CLOSE_WAIT or SYN_RECV) whose listener is not
/// in the table, or whose listener's program closed it between the dump and
/// the walk of /proc (`owner_gone`), goes with its listener (`owner_gone`
/// too): the queue is reset with the listener, or its program took the
/// connection a moment before and nothing tells which process has it.
/// Curl's active data connections are so, when the server connects, sends
/// and closes before curl accepts and curl's listener is gone by the walk
/// or by the dump: they were left unlabelled, the listener covering them
/// like a service's, or nothing tying them to a session at all.
fn queued_where_owners_went(sockets: &mut [model::Socket]) {
    let queued = |s: &model::Socket| {
        s.proto == Proto::Tcp
            && s.inode == 0
            && !s.closed
            && matches!(
                s.state,
                State::Established | State::CloseWait | State::SynRecv
            )
    };
    if !sockets.iter().any(queued) {
        return;
    }
    // the listeners in the table whose owners did not go
    let staying = classify::ports::Listeners::from_sockets(
        sockets
            .iter()
            .filter(|s| s.state == State::Listen && !s.closed && !s.owner_gone),
    );
    for s in sockets.iter_mut().filter(|s| queued(s)) {
        // no listener takes it, or the one that does went with its owner
        if !staying.covers(Proto::Tcp, &s.local) {
            s.owner_gone = true;
        }
    }
}

fn collect_one(
    cfg: &Config,
    request: &Request,
    events: Option<(&mut Ledger, Option<&EventSource>)>,
    destroyed: Vec<Destroyed>,
    notices: &mut Notices,
) -> Result<(Snapshot, Conntracked, DestroyedAt), Error> {
    let mut snapshot = cfg.inputs.snapshot(request, notices)?;
    // one moment on both clocks: events carry wall-clock times
    let (dumped, wall) = (Instant::now(), std::time::SystemTime::now());
    snapshot.dumped = Some(dumped);
    for s in &mut snapshot.sockets {
        s.ended = s.time_wait_began(dumped);
    }
    let mut destroyed_at = DestroyedAt::new();
    let (ledger, source) = match events {
        Some((ledger, source)) => (Some(ledger), source),
        None => (None, None),
    };
    // without cookies (/proc) nothing matches an event to a socket
    if let Some(ledger) = ledger.filter(|_| snapshot.source == Source::Netlink) {
        let merged = ledger.merge(&snapshot.sockets, destroyed, dumped);
        destroyed_at = merged.removed_at;
        for mut d in merged.closed {
            if let Some(cookie) = d.socket.cookie {
                destroyed_at.insert(cookie, d.at);
            }
            // the destroy's wall-clock time, on the monotonic clock
            let ago = wall.duration_since(d.at).unwrap_or_default();
            d.socket.ended = dumped.checked_sub(ago);
            snapshot.sockets.push(d.socket);
        }
    }
    // a router's FTP sessions have no socket here: conntrack alone holds them
    let crossing = shows_sessions(cfg)
        && !cfg.inputs.replaying()
        && sysctl::forwards_tracked_flows(&cfg.inputs.proc);
    let ftp = cfg.ftp_view || crossing || uses_ftp_port(&snapshot, &cfg.ftp_ports);
    // A router's sessions are judged on each flow's state now (a passive
    // data flow that stays unreplied): the events do not carry a flow's
    // updates, so its table is dumped again; the flows that ended between
    // refreshes still come from the events.
    let kept = source
        .filter(|s| s.keeps_conntrack())
        .and_then(|s| match crossing {
            true => s.conntrack_now(),
            false => s.conntrack(ftp),
        });
    let mut conntrack = match kept {
        Some(ct) => Some(Ok(ct)),
        None => ftp.then(|| cfg.inputs.conntrack()),
    };
    match &mut conntrack {
        Some(Ok(ct)) => {
            // which flows this namespace forwards rather than ends; without
            // its addresses, its sockets' stand in (classify)
            ct.local = addresses::read().unwrap_or_default();
        }
        Some(Err(why)) if crossing => notices.push(format!(
            "FTP sessions this host forwards are not shown: {why}"
        )),
        _ => {}
    }
    Ok((snapshot, conntrack, destroyed_at))
}

/// Whether the output shows FTP sessions beside sockets: the `--ftp` view,
/// JSON's `ftp_sessions`, the metrics and `-s`.
fn shows_sessions(cfg: &Config) -> bool {
    cfg.ftp_view
        || cfg.summary
        || cfg.serve.is_some()
        || matches!(cfg.format, Format::Json | Format::Prometheus)
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

/// Tells each namespace's memory when the sockets that went were destroyed,
/// on the monotonic clock its other times are on.
fn learn_ends(memory: &mut HashMap<u64, Memory>, departures: &Departures) {
    let (now, wall) = (Instant::now(), std::time::SystemTime::now());
    let mut by_netns: HashMap<u64, HashMap<u64, Instant>> = HashMap::new();
    for (&(inode, cookie), &at) in departures {
        let ago = wall.duration_since(at).unwrap_or_default();
        if let Some(at) = now.checked_sub(ago) {
            by_netns.entry(inode).or_default().insert(cookie, at);
        }
    }
    for (inode, ended) in by_netns {
        if let Some(m) = memory.get_mut(&inode) {
            m.learn_ends(&ended);
        }
    }
}

/// With `-r`, looks up the host names of addresses not looked up before;
/// the names of addresses no longer listed are forgotten (watch mode under
/// churn from many addresses must not grow), and looked up again if they
/// come back.
fn resolve_hosts(parts: &[Part], names: &mut Names) {
    let addrs: HashSet<_> = parts
        .iter()
        .flat_map(|p| p.rows())
        .flat_map(|r| std::iter::once(r.socket.local.addr).chain(r.socket.remote.map(|e| e.addr)))
        .filter(|a| !a.is_unspecified())
        .collect();
    names.looked_up.retain(|a| addrs.contains(a));
    names.hosts.retain(|a, _| addrs.contains(a));
    for &addr in &addrs {
        if names.looked_up.insert(addr)
            && let Some(name) = names::host_name(addr)
        {
            names.hosts.insert(addr, name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Socket;

    /// What `ftp_brief`'s watched active sessions showed under load: curl's
    /// PORT listener in the table with the server's connection in its
    /// queue (inode 0, CLOSE_WAIT: the listing sent and closed before curl
    /// accepted), and the listener closed before the walk of /proc. The
    /// queued connection goes with its listener and joins the session open
    /// when the table was read; it was left unlabelled.
    #[test]
    fn a_connection_queued_in_a_listener_that_went_goes_with_it() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        let (client, server) = ("10.233.0.2", "10.233.0.1");
        let earlier = Socket::tcp(&format!("{client}:51744"), Some(&format!("{server}:21")))
            .state(State::TimeWait)
            .ended(ms(0));
        let open = Socket::tcp(&format!("{client}:51816"), Some(&format!("{server}:21")))
            .inode(7)
            .process(20, "curl");
        let mut listener = Socket::tcp(&format!("{client}:56573"), None)
            .state(State::Listen)
            .inode(8)
            .backlog(1);
        listener.owner_gone = true;
        let queued = Socket::tcp(&format!("{client}:56573"), Some(&format!("{server}:57365")))
            .state(State::CloseWait)
            .queues(63, 0);
        // accepted already (an inode), and in the queue of a listener that
        // stays
        let accepted =
            Socket::tcp(&format!("{client}:56573"), Some(&format!("{server}:57366"))).inode(9);
        let stays = Socket::tcp("[::]:8080", None)
            .state(State::Listen)
            .inode(10);
        let waits = Socket::tcp(&format!("{client}:8080"), Some(&format!("{server}:57367")));
        let mut sockets = vec![earlier, open, listener, queued, accepted, stays, waits];
        queued_where_owners_went(&mut sockets);
        assert!(sockets[3].owner_gone, "queued in the listener that went");
        assert!(!sockets[4].owner_gone, "accepted");
        assert!(!sockets[6].owner_gone, "queued in a listener that stays");
        // and where its listener was gone by the dump already
        let mut alone = vec![sockets[1].clone(), sockets[3].clone()];
        alone[1].owner_gone = false;
        queued_where_owners_went(&mut alone);
        assert!(alone[1].owner_gone, "queued in no listener");
        let snapshot = Snapshot {
            sockets,
            dumped: Some(ms(50)),
            ..Default::default()
        };
        let c = classify::classify(
            &snapshot,
            classify::Context {
                conntrack: None,
                ftp_ports: &[],
                memory: None,
            },
        );
        let f = c.labels[3].ftp.as_deref().expect("labelled");
        assert_eq!(
            (f.role, f.side),
            (classify::ftp::Role::Data, classify::ftp::Side::Client)
        );
        assert_eq!(c.sessions[f.session as usize - 1].client.port, 51816);
        let e = &f.evidence;
        assert!(e.contains(&classify::ftp::FtpEvidence::OwnerGone), "{e:?}");
    }

    /// Watch mode with `-r` under churn from many addresses: the names of
    /// addresses no longer listed are forgotten.
    #[test]
    fn host_names_are_kept_only_for_the_addresses_listed() {
        let mut names = Names::default();
        let part = |remote: &str| {
            Part::classified(vec![Socket::tcp("127.0.0.1:5000", Some(remote))], None)
        };
        resolve_hosts(&[part("127.0.0.2:80")], &mut names);
        let listed = |names: &Names| {
            let mut v: Vec<String> = names.looked_up.iter().map(|a| a.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(listed(&names), ["127.0.0.1", "127.0.0.2"]);
        resolve_hosts(&[part("127.0.0.3:80")], &mut names);
        assert_eq!(listed(&names), ["127.0.0.1", "127.0.0.3"]);
        assert!(names.hosts.keys().all(|a| names.looked_up.contains(a)));
    }
}
