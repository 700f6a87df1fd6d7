//! Everything that touches the kernel or /proc: the socket tables (over
//! sock_diag netlink, or /proc/net as fallback), the port range, owners,
//! names and conntrack. Each submodule owns one source.
//!
//! The seam: collectors take an [`Inputs`] (where the outside world is read
//! from: the live system, or a saved copy of it) and a small [`Request`]
//! (which sockets), never the whole configuration. Replayed inputs are a
//! saved `/proc` tree (`SOCKWHO_PROC_ROOT`), a raw sock_diag dump as
//! `ss -D FILE` writes it (`SOCKWHO_DIAG_FILE`), and other roots for `/etc`
//! and `/run` (`SOCKWHO_ETC_ROOT`, `SOCKWHO_RUN_ROOT`), so that everything
//! above this module, and the binary itself, runs on captured fixtures
//! without root.

pub mod addresses;
pub mod bytecode;
pub mod conntrack;
pub mod decode;
pub mod events;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod processes;
pub mod procfs;
pub mod sysctl;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::cli::SourceChoice;
use crate::error::Error;
use crate::filter::PortSpec;
use crate::filter::expr::{Expr, Lookup};
use crate::model::{Conntrack, Family, PortRange, Proto, Snapshot, Socket, Source, State};
use names::{Services, Users};

/// Non-fatal problems, each said once on stderr.
#[derive(Debug, Default)]
pub struct Notices {
    lines: Vec<String>,
}

impl Notices {
    pub fn push(&mut self, line: String) {
        if !self.lines.contains(&line) {
            self.lines.push(line);
        }
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn extend(&mut self, other: Notices) {
        for line in other.lines {
            self.push(line);
        }
    }

    /// Takes the lines out, leaving none: watch mode prints them as they come.
    pub fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }
}

/// Where the outside world is read from. [`Inputs::live`] is the running
/// system; any other root, or a sock_diag file, is a replay: then nothing is
/// read from the live kernel (no netlink dump, no conntrack, no namespace is
/// entered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// `/proc`: the socket tables, sysctls, owners, namespaces.
    pub proc: PathBuf,
    /// `/etc`: `services` and `passwd`.
    pub etc: PathBuf,
    /// `/run`: `netns/` and `docker/netns/`, where namespaces are named.
    pub run: PathBuf,
    /// A raw sock_diag dump (`ss -D FILE`) read instead of the kernel's.
    pub diag_file: Option<PathBuf>,
}

impl Default for Inputs {
    fn default() -> Inputs {
        Inputs::live()
    }
}

impl Inputs {
    pub fn live() -> Inputs {
        Inputs {
            proc: PathBuf::from("/proc"),
            etc: PathBuf::from("/etc"),
            run: PathBuf::from("/run"),
            diag_file: None,
        }
    }

    /// Whether anything is replayed rather than read from the live kernel.
    pub fn replaying(&self) -> bool {
        self.proc != Path::new("/proc") || self.diag_file.is_some()
    }

    /// Where the per-namespace /proc files are: `/proc/net` follows the
    /// thread group's leader, so a thread that entered another namespace
    /// reads `/proc/thread-self/net`. A saved tree is one namespace already.
    pub fn net_root(&self) -> PathBuf {
        if self.proc != Path::new("/proc") {
            self.proc.clone()
        } else {
            self.proc.join("thread-self")
        }
    }

    pub fn services(&self) -> Services {
        Services::load(&self.etc.join("services"))
    }

    pub fn users(&self) -> Users {
        Users::load(&self.etc.join("passwd"))
    }

    /// The port range of the namespace the calling thread is in (files
    /// under /proc/sys/net show the namespace of the thread that opens them).
    pub fn port_range(&self, notices: &mut Notices) -> PortRange {
        let (range, said) = sysctl::read_port_range(&self.proc);
        for line in said {
            notices.push(line);
        }
        range
    }

    /// The calling thread's namespace's sockets that `request` asks for,
    /// with its port range.
    pub fn snapshot(&self, request: &Request, notices: &mut Notices) -> Result<Snapshot, Error> {
        let port_range = self.port_range(notices);
        // an ss expression names devices, cgroups and autobound ports of
        // this namespace: resolved here, on its thread
        let expr = match &request.expr {
            Some(x) => {
                let mut expr = x.expr.clone();
                expr.resolve(&Lookup {
                    if_index: &bytecode::if_index,
                    cgroup_id: &bytecode::cgroup_id,
                    port_range: PortSpec {
                        lo: port_range.low,
                        hi: port_range.high,
                    },
                })
                .map_err(|e| Error::Usage(format!("filter: {e}")))?;
                Some(expr)
            }
            None => None,
        };
        let expr = expr.as_ref();
        let user_space = |why: &str| -> Result<(), Error> {
            match expr.and_then(Expr::kernel_only) {
                Some(word) => Err(Error::Usage(format!(
                    "filter: '{word}' is tested by the kernel's sock_diag only, and {why}"
                ))),
                None => Ok(()),
            }
        };
        // with an expression dumped live: how many sockets at the front it
        // let through (the rest are listeners for context)
        let mut selected_front = None;
        let procfs = |notices: &mut Notices| {
            user_space("the sockets come from /proc here")?;
            if request.tcp_info && request.protos.contains(&Proto::Tcp) {
                notices.push(
                    "-i: /proc/net has no tcp_info (sock_diag netlink has): tcp_info is null"
                        .to_string(),
                );
            }
            read_procfs(&self.net_root(), request, notices).map(|s| (s, Source::Procfs))
        };
        let (sockets, source) = match (request.source, &self.diag_file) {
            (SourceChoice::Procfs, _) => procfs(notices)?,
            (_, Some(file)) => {
                user_space("the sockets come from a replayed dump here")?;
                let mut replay = netlink::Replay::open(file)
                    .map_err(|e| Error::Proc {
                        path: file.clone(),
                        source: e,
                    })?
                    .with_info(request.tcp_info);
                (dump(&mut replay, request, None, notices)?, Source::Netlink)
            }
            (SourceChoice::Netlink, None) => {
                let (sockets, front) = self.dump_live(request, expr, notices)?;
                selected_front = front;
                (sockets, Source::Netlink)
            }
            // A replayed /proc tree has no netlink to go with it.
            (SourceChoice::Auto, None) if self.replaying() => procfs(notices)?,
            // No sock_diag (a kernel without inet_diag or udp_diag, a seccomp
            // filter): /proc/net has the same sockets.
            (SourceChoice::Auto, None) => match self.dump_live(request, expr, notices) {
                Ok((sockets, front)) => {
                    selected_front = front;
                    (sockets, Source::Netlink)
                }
                Err(e @ Error::Usage(_)) => return Err(e),
                Err(_) => procfs(notices)?,
            },
        };
        let mut snapshot = Snapshot {
            sockets,
            port_range,
            source,
            selected: None,
            dumped: None,
        };
        if let Some(expr) = expr {
            snapshot.selected = Some(select(&snapshot.sockets, expr, selected_front));
        }
        Ok(snapshot)
    }

    fn dump_live(
        &self,
        request: &Request,
        expr: Option<&Expr>,
        notices: &mut Notices,
    ) -> Result<(Vec<Socket>, Option<usize>), Error> {
        let mut diag = netlink::DiagSocket::open()?.with_info(request.tcp_info);
        let hint = procfs::sockstat_hint(&self.net_root(), &request.protos);
        match expr {
            Some(expr) => dump_expr(&mut diag, request, expr, notices).map(|(s, n)| (s, Some(n))),
            None => dump(&mut diag, request, Some(hint), notices).map(|s| (s, None)),
        }
    }

    /// The calling thread's namespace's conntrack; never from a replay.
    pub fn conntrack(&self) -> Result<Conntrack, String> {
        if self.replaying() {
            return Err("not read from a replayed input".to_string());
        }
        conntrack::read(&self.net_root())
    }

    /// The owners of the sockets whose inodes are in `wanted`, and how many
    /// processes could not be read.
    pub fn owners(
        &self,
        wanted: &HashSet<u64>,
        notices: &mut Notices,
    ) -> Result<processes::Owners, Error> {
        let owners = processes::find_owners(&self.proc, wanted);
        self.said_owners(owners, notices)
    }

    /// Starts walking `/proc` for the owners of every socket, on threads of
    /// its own, to run beside the dumps: [`Inputs::owners_from`] takes it.
    pub fn walk_owners(&self) -> std::thread::JoinHandle<std::io::Result<processes::Walked>> {
        let proc = self.proc.clone();
        std::thread::spawn(move || processes::walk(&proc, None))
    }

    /// The owners of the sockets in `wanted` among what
    /// [`Inputs::walk_owners`] found.
    pub fn owners_from(
        &self,
        walk: std::thread::JoinHandle<std::io::Result<processes::Walked>>,
        wanted: &HashSet<u64>,
        notices: &mut Notices,
    ) -> Result<processes::Owners, Error> {
        let walked = walk
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the walk of /proc failed")));
        let owners = walked.and_then(|w| processes::owners_among(&self.proc, w, wanted));
        self.said_owners(owners, notices)
    }

    fn said_owners(
        &self,
        owners: std::io::Result<processes::Owners>,
        notices: &mut Notices,
    ) -> Result<processes::Owners, Error> {
        let owners = owners.map_err(|source| Error::Proc {
            path: self.proc.clone(),
            source,
        })?;
        if owners.denied > 0 {
            notices.push(format!(
                "cannot see which sockets {} processes of other users hold: their owners show as - (run as root to see them)",
                owners.denied
            ));
        }
        Ok(owners)
    }
}

/// Which sockets to collect: what a collector needs to know, and no more.
#[derive(Debug, Clone)]
pub struct Request {
    pub protos: Vec<Proto>,
    pub families: Vec<Family>,
    /// The state bits (`State::bit`) to dump, per protocol, listeners
    /// included: classification needs them whatever is shown.
    pub states: PerProto,
    /// Filters the kernel can run; `None` when there are none.
    pub kernel_filter: Option<KernelFilter>,
    pub source: SourceChoice,
    /// An ss filter expression, as parsed (resolved in each namespace).
    pub expr: Option<ExprFilter>,
    /// Say what the kernel returned (`-v`).
    pub verbose: bool,
    /// Ask the kernel for each TCP socket's `tcp_info` (`-i`); without it
    /// the dump requests ask for no extension.
    pub tcp_info: bool,
}

/// An ss filter expression and the states it leaves to dump.
#[derive(Debug, Clone)]
pub struct ExprFilter {
    pub expr: Expr,
    /// `Query::dump_states` of the wanted states, per protocol.
    pub states: PerProto,
}

/// State bits for each protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerProto {
    pub tcp: u32,
    pub udp: u32,
}

impl PerProto {
    pub fn get(&self, proto: Proto) -> u32 {
        match proto {
            Proto::Tcp => self.tcp,
            Proto::Udp => self.udp,
        }
    }
}

/// Port and address filters compiled for the kernel: with one, a dump asks
/// only for the wanted states and sockets the program accepts, and the
/// listeners come from a second dump of the listening table alone.
#[derive(Debug, Clone, Default)]
pub struct KernelFilter {
    pub states: PerProto,
    /// sock_diag bytecode for IPv4 and IPv6 (`None`: the family's filter
    /// cannot be compiled; user space applies it anyway).
    pub inet: Option<Vec<u8>>,
    pub inet6: Option<Vec<u8>>,
}

impl KernelFilter {
    fn bytecode(&self, family: Family) -> Option<&[u8]> {
        match family {
            Family::Inet => self.inet.as_deref(),
            Family::Inet6 => self.inet6.as_deref(),
        }
    }
}

/// One dump per family and protocol. With port or address filters the
/// kernel runs them (sock_diag bytecode) and only matching sockets cross
/// into user space; the listeners, which classification needs whatever is
/// shown, come from a second dump of the listening table alone, which is
/// small. `hint` is how many sockets the namespace has (/proc/net/sockstat).
fn dump(
    diag: &mut dyn netlink::SockDiag,
    request: &Request,
    hint: Option<usize>,
    notices: &mut Notices,
) -> Result<Vec<Socket>, Error> {
    let filtered = request.kernel_filter.as_ref();
    let mut sockets = match hint {
        // a little over, for sockets made while we dump
        Some(hint) if filtered.is_none() => Vec::with_capacity(hint + hint / 64 + 16),
        _ => Vec::new(),
    };
    for &proto in &request.protos {
        let listening = match proto {
            Proto::Tcp => State::Listen.bit(),
            Proto::Udp => State::Close.bit(),
        };
        // TCP of both families, unfiltered: one walk of the kernel's table
        // rather than one a family; IPv4 first then IPv6, as two dumps list
        // them. A kernel that refuses it gets a dump a family.
        let both = [Family::Inet, Family::Inet6];
        if proto == Proto::Tcp && filtered.is_none() && request.families == both {
            let start = sockets.len();
            if let Some(Ok(())) = diag.dump_tcp_both(request.states.get(proto), &mut sockets) {
                let v6: Vec<Socket> = sockets
                    .extract_if(start.., |s| s.family == Family::Inet6)
                    .collect();
                let counts = [
                    (Family::Inet, sockets.len() - start),
                    (Family::Inet6, v6.len()),
                ];
                sockets.extend(v6);
                if request.verbose {
                    for (family, n) in counts {
                        notices.push(format!(
                            "netlink {}/{}: the kernel returned {n} sockets (one dump of both families)",
                            proto.name(),
                            family.name(),
                        ));
                    }
                }
                continue;
            }
            sockets.truncate(start);
        }
        for &family in &request.families {
            let start = sockets.len();
            let (states, bytecode) = match filtered {
                Some(f) => (f.states.get(proto), f.bytecode(family)),
                None => (request.states.get(proto), None),
            };
            if states != 0 {
                diag.dump_filtered(family, proto, states, bytecode, &mut sockets)?;
            }
            let matched = sockets.len() - start;
            if filtered.is_some() {
                let mut context = Vec::new();
                diag.dump_filtered(family, proto, listening, None, &mut context)?;
                let known: HashSet<Option<u64>> =
                    sockets[start..].iter().map(|s| s.cookie).collect();
                sockets.extend(context.into_iter().filter(|s| !known.contains(&s.cookie)));
            }
            if request.verbose {
                notices.push(format!(
                    "netlink {}/{}: the kernel returned {matched} sockets{} and {} listeners for context",
                    proto.name(),
                    family.name(),
                    if bytecode.is_some() { " (filtered in the kernel)" } else { "" },
                    sockets.len() - start - matched
                ));
            }
        }
    }
    Ok(sockets)
}

/// The dump for an ss expression: each family and protocol with the
/// expression's own program (ss's layout; `--sport`-style flags are applied
/// in user space, as always), and the listeners apart for context. Sockets
/// the expression holds on a kernel-only test (dev, fwmark, cgroup,
/// autobound) are kept as the kernel judged them, only where its program is
/// exact. Returns the sockets, the selected ones first, and how many those
/// are.
fn dump_expr(
    diag: &mut dyn netlink::SockDiag,
    request: &Request,
    expr: &Expr,
    notices: &mut Notices,
) -> Result<(Vec<Socket>, usize), Error> {
    let states = request.expr.as_ref().map(|x| x.states).unwrap_or_default();
    let mut sockets = Vec::new();
    let mut context = Vec::new();
    for &proto in &request.protos {
        let listening = match proto {
            Proto::Tcp => State::Listen.bit(),
            Proto::Udp => State::Close.bit(),
        };
        for &family in &request.families {
            let wanted = states.get(proto);
            let start = sockets.len();
            let program = bytecode::compile_expr_in(expr, family, wanted);
            if wanted != 0 {
                diag.dump_filtered(
                    family,
                    proto,
                    wanted,
                    program.bytecode.as_deref(),
                    &mut sockets,
                )?;
            }
            // undecidable in user space: only the kernel's exact verdict counts
            for s in &sockets[start..] {
                if expr.eval(s).is_none() && !program.exact {
                    return Err(Error::Usage(format!(
                        "filter: '{}' cannot be decided for {}/{} here (the kernel's program is not exact)",
                        expr.kernel_only().unwrap_or("this test"),
                        proto.name(),
                        family.name()
                    )));
                }
            }
            let matched = sockets.len() - start;
            diag.dump_filtered(family, proto, listening, None, &mut context)?;
            if request.verbose {
                notices.push(format!(
                    "netlink {}/{}: the kernel returned {matched} sockets for the filter expression{}",
                    proto.name(),
                    family.name(),
                    if program.bytecode.is_some() { " (filtered in the kernel)" } else { "" },
                ));
            }
        }
    }
    let known: HashSet<Option<u64>> = sockets.iter().map(|s| s.cookie).collect();
    let selected = sockets.len();
    sockets.extend(context.into_iter().filter(|s| !known.contains(&s.cookie)));
    Ok((sockets, selected))
}

/// Which sockets the expression selects: by the user-space matcher, and
/// where it cannot judge (a kernel-only test), as the kernel did: the
/// `front` sockets of a live dump came through its program.
fn select(sockets: &[Socket], expr: &Expr, front: Option<usize>) -> Vec<bool> {
    sockets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let through_kernel = front.is_some_and(|n| i < n);
            match expr.eval(s) {
                Some(verdict) => verdict && (front.is_none() || through_kernel),
                None => through_kernel,
            }
        })
        .collect()
}

fn read_procfs(
    net_root: &Path,
    request: &Request,
    notices: &mut Notices,
) -> Result<Vec<Socket>, Error> {
    let mut sockets = Vec::new();
    for &proto in &request.protos {
        for &family in &request.families {
            let malformed = procfs::read_table(
                net_root,
                family,
                proto,
                request.states.get(proto),
                &mut sockets,
            )
            .map_err(|source| Error::Proc {
                path: net_root.join("net").join(procfs::file_name(family, proto)),
                source,
            })?;
            if let Some(first) = malformed.first() {
                notices.push(format!(
                    "skipped {} malformed line(s); the first: {first}",
                    malformed.len()
                ));
            }
        }
    }
    Ok(sockets)
}
