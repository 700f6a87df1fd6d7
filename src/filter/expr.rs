//! ss's filter expressions, as positional arguments (`sockwho -tn state
//! established '( dport = :ssh or sport = :ssh )'`) or read from a file
//! (`-F FILE`): the words, the parser, the tree ([`Expr`]) and its meaning
//! in user space ([`Expr::eval`]), which is the reference the kernel's
//! bytecode (`collect::bytecode::compile_expr`) is held to.
//!
//! The grammar is iproute2's `misc/ssfilter.y`, with the state words of
//! `misc/ss.c`'s `main()` in front:
//!
//! ```text
//! query    := { (state | exclude | excl) STATE } [ list ]
//! list     := expr { [ and | & | && | or | '|' | '||' ] expr }
//! expr     := '(' list ')' | (not | !) expr | predicate
//! predicate:= (src | dst) [=] HOST
//!           | (sport | dport) [OP] PORT
//!           | dev [= | !=] DEVICE  | fwmark [= | !=] MARK[/MASK]
//!           | cgroup [= | !=] PATH | autobound
//!           | (state | exclude | excl) STATE
//! OP       := = == eq | != ne neq | < lt | <= le leq | > gt | >= ge geq
//! ```
//!
//! **Precedence.** ss's man page says `and` binds tighter than `or`, but
//! its grammar (`exprlist: exprlist '|' expr | exprlist '&' expr`) takes
//! them left to right, one after the other: `a or b and c` is
//! `(a or b) and c`. sockwho does what ss does, so that a command line
//! copied from ss selects the same sockets; use parentheses to mean the
//! other. `not` applies to the one predicate or parenthesised group after
//! it. Two expressions side by side are ANDed.
//!
//! **Words.** Each argument is split at blanks, a backslash escaping the
//! next character, as ss splits them; lines of a filter file likewise,
//! skipping blank lines and those starting with `#`. Unlike ss, a `(` at
//! the start of a word and a `)` at its end are words of their own, so
//! `'(sport = :22)'` reads like `'( sport = :22 )'`.
//!
//! **States.** `state NAME` and `exclude NAME` in front of the expression
//! are ss's state filter: they replace the states `-a`/`-l` ask for
//! ([`Query::states`]); a run of them reads as ss reads it (`state a state
//! b` is either, `exclude a` all but a). Inside the expression (an
//! extension: ss refuses them there) they are predicates like the others:
//! the socket's state is (is not) one of the named ones. NAME is one of
//! [`parse_states`]' names or groups.
//!
//! **Hosts and ports.** `[inet:|inet6:]ADDRESS[/LEN][:PORT]`,
//! `[V6][/LEN][:PORT]`, `*:PORT`, `:PORT`, `*`; `any`, `all` and `default`
//! are any address. An
//! IPv4 address may be short, as iproute2 reads it (`10/8`,
//! `193.233.7/24`); a prefix length may be a dotted netmask. An IPv6
//! address with a port needs its brackets; without them, what follows the
//! last `:` is the port when what comes before it is an address (ss's
//! reading: `fe80::1:22` is port 22), and otherwise the whole is the
//! address (`::1`, which ss refuses). PORT is a number, a service name, a
//! range `LO-HI` (an extension, with `=` and `!=` only) or `*`. Host names
//! are not looked up. `inet:`/`inet6:` also restricts the whole listing to
//! that family, wherever it appears, as in ss ([`Query::family`]).
//!
//! **Meaning.** A socket without a remote end (a listener, an unconnected
//! UDP socket) is taken as connected to `0.0.0.0:0` or `[::]:0`, as the
//! kernel and ss take it: `dport = :0` and `dst 0.0.0.0/0` hold IPv4
//! listeners (unlike `--dport`/`--dst`). Addresses compare as
//! [`Prefix::contains`] has it: IPv4-mapped addresses are IPv4, so `src
//! 10.0.0.0/8` holds `::ffff:10.1.2.3`, but no IPv6 prefix holds a mapped
//! address (ss's `src ::/0` does) and `src ::ffff:127.0.0.1` is
//! `127.0.0.1`, which holds native IPv4 sockets too.
//!
//! **Kernel-only predicates.** `autobound`, `dev` (the device the socket
//! is bound to, `SO_BINDTODEVICE`), `fwmark` and `cgroup` test facts
//! sockwho's [`Socket`] does not hold. They compile into sock_diag bytecode
//! and only the kernel can decide them: [`Expr::eval`] answers `None` where
//! the answer hangs on one, and the /proc source cannot run such a filter
//! ([`Expr::kernel_only`]). `autobound` is what ss shows for it: the
//! kernel's test ("not bound explicitly", no `SOCK_BINDPORT_LOCK`, which
//! holds for the ends of accepted connections too) and a local port inside
//! the namespace's `ip_local_port_range` ([`Expr::resolve`] sets it). ss
//! tests the two apart, in the kernel and in user space, and keeps what
//! both accept, so its `not autobound` is not the opposite of its
//! `autobound`; sockwho's is: `not autobound` holds the ends of accepted
//! connections and ports bound explicitly inside the range, which ss's
//! leaves out.

use std::fmt;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{PortSpec, Prefix, parse_states};
use crate::model::{Family, Socket, State, unspecified};

/// Deeper nesting than this (parentheses, `not`s, alternations of `and`
/// and `or`) is refused: the tree is walked recursively, and a filter file
/// is outside input.
pub const MAX_DEPTH: usize = 100;

/// Which end of the socket a predicate tests: `src`/`sport` the local one,
/// `dst`/`dport` the remote one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Local,
    Remote,
}

impl Side {
    /// The end's port; 0 without a remote end.
    pub fn port(self, s: &Socket) -> u16 {
        match self {
            Side::Local => s.local.port,
            Side::Remote => s.remote.map_or(0, |r| r.port),
        }
    }

    /// The end's address; the unspecified one without a remote end.
    pub fn addr(self, s: &Socket) -> IpAddr {
        match self {
            Side::Local => s.local.addr,
            Side::Remote => s.remote.map_or(unspecified(s.family), |r| r.addr),
        }
    }

    fn host_word(self) -> &'static str {
        match self {
            Side::Local => "src",
            Side::Remote => "dst",
        }
    }

    fn port_word(self) -> &'static str {
        match self {
            Side::Local => "sport",
            Side::Remote => "dport",
        }
    }
}

/// The comparison of `sport`/`dport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl PortOp {
    /// Whether `port` compares so with `spec`: in it, not in it, below it,
    /// not above it, above it, not below it.
    pub fn holds(self, port: u16, spec: PortSpec) -> bool {
        match self {
            PortOp::Eq => spec.contains(port),
            PortOp::Ne => !spec.contains(port),
            PortOp::Lt => port < spec.lo,
            PortOp::Le => port <= spec.hi,
            PortOp::Gt => port > spec.hi,
            PortOp::Ge => port >= spec.lo,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            PortOp::Eq => "=",
            PortOp::Ne => "!=",
            PortOp::Lt => "<",
            PortOp::Le => "<=",
            PortOp::Gt => ">",
            PortOp::Ge => ">=",
        }
    }
}

/// `dev NAME`: the index is the kernel's, known once looked up in the
/// namespace the sockets live in ([`Expr::resolve`]); a number is one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Device {
    pub name: String,
    pub index: Option<u32>,
}

/// `cgroup PATH`: the cgroup v2 id, known once looked up ([`Expr::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cgroup {
    pub path: String,
    pub id: Option<u64>,
}

/// A filter expression. `And` and `Or` hold two or more operands, taken in
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// `state NAME`: the socket's state bit ([`State::bit`]) is in the mask.
    State(u32),
    /// `exclude NAME`: it is not.
    Exclude(u32),
    /// `sport OP PORT`, `dport OP PORT`.
    Port {
        side: Side,
        op: PortOp,
        port: PortSpec,
    },
    /// `src HOST`, `dst HOST`: the address is inside `prefix` (any address
    /// without one) and the port in `port` (any port without one).
    Host {
        side: Side,
        prefix: Option<Prefix>,
        port: Option<PortSpec>,
    },
    /// `autobound`: the local port was chosen by the kernel. The kernel's
    /// test (kernel-only: no `SOCK_BINDPORT_LOCK`) and, as ss also asks,
    /// the port inside the namespace's `ip_local_port_range` (set by
    /// [`Expr::resolve`]; `None` until then): the kernel counts the ends of
    /// accepted connections as autobound, whatever their port.
    Autobound(Option<PortSpec>),
    /// `dev NAME`: the socket is bound to the device (kernel-only).
    Dev(Device),
    /// `fwmark MARK/MASK`: `socket mark & mask == mark` (kernel-only).
    Mark {
        mark: u32,
        mask: u32,
    },
    /// `cgroup PATH`: the socket belongs to the cgroup (kernel-only).
    Cgroup(Cgroup),
}

/// What [`Expr::resolve`] looks things up with, where the sockets are:
/// `collect::bytecode::{if_index, cgroup_id}` look in the calling thread's
/// network namespace and the cgroup2 mount.
pub struct Lookup<'a> {
    /// A network device's index by name.
    pub if_index: &'a dyn Fn(&str) -> Option<u32>,
    /// A cgroup v2's id by path.
    pub cgroup_id: &'a dyn Fn(&str) -> Option<u64>,
    /// The namespace's `net.ipv4.ip_local_port_range`.
    pub port_range: PortSpec,
}

/// What the positional arguments (and a `-F` file) ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The `state`/`exclude` words in front, read as ss reads them (state
    /// bits, [`State::bit`]): they replace the states `-a`/`-l` ask for.
    /// `None` without any.
    pub states: Option<u32>,
    /// The family an `inet:` or `inet6:` host names (the last one, as in
    /// ss): only sockets of that family are listed, whatever the expression
    /// around it says.
    pub family: Option<Family>,
    /// The expression after the state words; `None` when there is none.
    pub expr: Option<Expr>,
}

impl Query {
    /// The states to dump: those of the state words in front, or `default`
    /// (what `-a`/`-l` ask for) without any, narrowed to the states in
    /// which the expression can hold ([`Expr::states`]).
    pub fn dump_states(&self, default: u32) -> u32 {
        let wanted = self.states.unwrap_or(default);
        match &self.expr {
            Some(e) => wanted & e.states(),
            None => wanted,
        }
    }
}

/// Every state bit sockwho knows: ss's `all`.
fn all_states() -> u32 {
    State::ALL.iter().fold(0, |m, s| m | s.bit())
}

impl Expr {
    /// Whether the socket matches, in user space. `None` when the answer
    /// hangs on a predicate only the kernel can test (`autobound`, `dev`,
    /// `fwmark`, `cgroup`): keep such a socket when the kernel, having run
    /// the whole expression exactly, sent it.
    pub fn eval(&self, s: &Socket) -> Option<bool> {
        self.eval_with(s, &|_| None)
    }

    /// Like [`Expr::eval`], with `kernel` answering the kernel's tests of
    /// the kernel-only predicates (a test that knows the hidden facts of a
    /// socket); for `autobound`, the kernel's part alone.
    pub fn eval_with(&self, s: &Socket, kernel: &dyn Fn(&Expr) -> Option<bool>) -> Option<bool> {
        match self {
            // Kleene's three values: false wins an AND, true an OR
            Expr::And(list) => {
                let mut known = Some(true);
                for e in list {
                    match e.eval_with(s, kernel) {
                        Some(false) => return Some(false),
                        None => known = None,
                        Some(true) => {}
                    }
                }
                known
            }
            Expr::Or(list) => {
                let mut known = Some(false);
                for e in list {
                    match e.eval_with(s, kernel) {
                        Some(true) => return Some(true),
                        None => known = None,
                        Some(false) => {}
                    }
                }
                known
            }
            Expr::Not(e) => e.eval_with(s, kernel).map(|b| !b),
            Expr::State(mask) => Some(s.state.bit() & mask != 0),
            Expr::Exclude(mask) => Some(s.state.bit() & mask == 0),
            Expr::Port { side, op, port } => Some(op.holds(side.port(s), *port)),
            Expr::Host { side, prefix, port } => Some(
                port.is_none_or(|p| p.contains(side.port(s)))
                    && prefix.is_none_or(|p| p.contains(side.addr(s))),
            ),
            Expr::Autobound(range) => match (kernel(self), range) {
                (Some(false), _) => Some(false),
                (_, Some(r)) if !r.contains(s.local.port) => Some(false),
                (auto, Some(_)) => auto,
                (_, None) => None,
            },
            Expr::Dev(_) | Expr::Mark { .. } | Expr::Cgroup(_) => kernel(self),
        }
    }

    /// Whether the socket matches in user space: [`Expr::eval`] says so
    /// for certain. Without kernel-only predicates, exactly `eval`.
    pub fn matches(&self, s: &Socket) -> bool {
        self.eval(s) == Some(true)
    }

    /// The first kernel-only predicate in the expression (`"autobound"`,
    /// `"dev"`, `"fwmark"` or `"cgroup"`), for the /proc source to refuse.
    pub fn kernel_only(&self) -> Option<&'static str> {
        match self {
            Expr::And(list) | Expr::Or(list) => list.iter().find_map(Expr::kernel_only),
            Expr::Not(e) => e.kernel_only(),
            Expr::Autobound(_) => Some("autobound"),
            Expr::Dev(_) => Some("dev"),
            Expr::Mark { .. } => Some("fwmark"),
            Expr::Cgroup(_) => Some("cgroup"),
            Expr::State(_) | Expr::Exclude(_) | Expr::Port { .. } | Expr::Host { .. } => None,
        }
    }

    /// The state bits in which the expression can hold: a socket in
    /// another state never matches, so the dump need not ask for it. Exact
    /// where the states are ANDed with the rest; all states where the
    /// expression does not say.
    pub fn states(&self) -> u32 {
        self.state_bounds().1
    }

    /// (the states in which the expression surely holds, whatever else
    /// the socket is; those in which it can hold).
    fn state_bounds(&self) -> (u32, u32) {
        let all = all_states();
        match self {
            Expr::And(list) => list.iter().fold((all, all), |(lo, hi), e| {
                let (l, h) = e.state_bounds();
                (lo & l, hi & h)
            }),
            Expr::Or(list) => list.iter().fold((0, 0), |(lo, hi), e| {
                let (l, h) = e.state_bounds();
                (lo | l, hi | h)
            }),
            Expr::Not(e) => {
                let (lo, hi) = e.state_bounds();
                (all & !hi, all & !lo)
            }
            Expr::State(mask) => (mask & all, mask & all),
            Expr::Exclude(mask) => (all & !mask, all & !mask),
            _ => (0, all),
        }
    }

    /// Looks up what the kernel-only predicates need and the parser
    /// cannot know: the indexes of `dev` names, the ids of `cgroup` paths
    /// (those not known yet) and the port range of `autobound`, in the
    /// namespace and the cgroup mount the sockets are listed in. A `dev`
    /// that is a number and no device's name is that index, as in ss.
    pub fn resolve(&mut self, lookup: &Lookup) -> Result<(), String> {
        match self {
            Expr::And(list) | Expr::Or(list) => list.iter_mut().try_for_each(|e| e.resolve(lookup)),
            Expr::Not(e) => e.resolve(lookup),
            Expr::Autobound(range) => {
                *range = Some(lookup.port_range);
                Ok(())
            }
            Expr::Dev(d) => {
                if let Some(index) = (lookup.if_index)(&d.name) {
                    d.index = Some(index);
                }
                match d.index {
                    Some(_) => Ok(()),
                    None => Err(format!("dev {}: no such network device", d.name)),
                }
            }
            Expr::Cgroup(c) => {
                if c.id.is_none() {
                    c.id = (lookup.cgroup_id)(&c.path);
                }
                match c.id {
                    Some(_) => Ok(()),
                    None => Err(format!("cgroup {}: no such cgroup v2 directory", c.path)),
                }
            }
            _ => Ok(()),
        }
    }
}

/// Writes the expression so that [`parse`] reads it back: every
/// compound operand in parentheses.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operand = |f: &mut fmt::Formatter<'_>, e: &Expr| match e {
            Expr::And(_) | Expr::Or(_) => write!(f, "( {e} )"),
            _ => write!(f, "{e}"),
        };
        match self {
            Expr::And(list) | Expr::Or(list) => {
                let word = if matches!(self, Expr::And(_)) {
                    " and "
                } else {
                    " or "
                };
                for (i, e) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(word)?;
                    }
                    operand(f, e)?;
                }
                Ok(())
            }
            Expr::Not(e) => {
                f.write_str("not ")?;
                operand(f, e)
            }
            // no name says "no state"; `exclude all` does
            Expr::State(mask) if mask & all_states() == 0 => f.write_str("exclude all"),
            Expr::Exclude(mask) if mask & all_states() == 0 => f.write_str("state all"),
            Expr::State(mask) => write!(f, "state {}", StateNames(*mask)),
            Expr::Exclude(mask) => write!(f, "exclude {}", StateNames(*mask)),
            Expr::Port { side, op, port } => {
                write!(f, "{} {} :{}", side.port_word(), op.symbol(), Port(*port))
            }
            Expr::Host { side, prefix, port } => {
                write!(f, "{} ", side.host_word())?;
                match prefix {
                    // an IPv6 prefix with its length: ss reads the port
                    // after the last ':' past the '/'
                    Some(p) => write!(f, "{}/{}", p.addr, p.len)?,
                    None => f.write_str("*")?,
                }
                match port {
                    Some(p) => write!(f, ":{}", Port(*p)),
                    None => Ok(()),
                }
            }
            Expr::Autobound(_) => f.write_str("autobound"),
            Expr::Dev(d) => write!(f, "dev = {}", Escaped(&d.name)),
            Expr::Mark { mark, mask } => write!(f, "fwmark = {mark:#x}/{mask:#x}"),
            Expr::Cgroup(c) => write!(f, "cgroup = {}", Escaped(&c.path)),
        }
    }
}

struct Port(PortSpec);

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.lo == self.0.hi {
            write!(f, "{}", self.0.lo)
        } else {
            write!(f, "{}-{}", self.0.lo, self.0.hi)
        }
    }
}

/// A word with the characters that would split it escaped.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.0.chars().count().saturating_sub(1);
        for (i, c) in self.0.chars().enumerate() {
            let special =
                c.is_whitespace() || c == '\\' || (i == 0 && c == '(') || (i == last && c == ')');
            if special {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// ss's names of the states, one for each bit.
const STATE_NAMES: [(State, &str); 11] = [
    (State::Established, "established"),
    (State::SynSent, "syn-sent"),
    (State::SynRecv, "syn-recv"),
    (State::FinWait1, "fin-wait-1"),
    (State::FinWait2, "fin-wait-2"),
    (State::TimeWait, "time-wait"),
    (State::Close, "close"),
    (State::CloseWait, "close-wait"),
    (State::LastAck, "last-ack"),
    (State::Listen, "listening"),
    (State::Closing, "closing"),
];

/// A state mask, not empty, as names, comma-separated (what
/// `parse_states` reads).
struct StateNames(u32);

impl fmt::Display for StateNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = STATE_NAMES
            .iter()
            .filter(|(s, _)| self.0 & s.bit() != 0)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&names.join(","))
    }
}

/// The words of the arguments, as ss splits them: at blanks, a backslash
/// escaping the next character; and, unlike ss, a `(` at the start of a
/// word and a `)` at its end are split off.
pub fn words(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for arg in args {
        // (character, escaped) of the word being read
        let mut word: Vec<(char, bool)> = Vec::new();
        let mut chars = arg.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                // a backslash at the very end escapes nothing, as in ss
                if let Some(next) = chars.next() {
                    word.push((next, true));
                }
            } else if c.is_whitespace() {
                finish_word(&mut word, &mut out);
            } else if c == '(' && word.is_empty() {
                out.push("(".to_string());
            } else {
                word.push((c, false));
            }
        }
        finish_word(&mut word, &mut out);
    }
    out
}

fn finish_word(word: &mut Vec<(char, bool)>, out: &mut Vec<String>) {
    let mut closing = 0;
    while word.last() == Some(&(')', false)) {
        word.pop();
        closing += 1;
    }
    if !word.is_empty() {
        out.push(word.iter().map(|(c, _)| *c).collect());
    }
    out.extend(std::iter::repeat_n(")".to_string(), closing));
    word.clear();
}

/// The lines of a filter file (`-F FILE`; `-` is standard input), for
/// [`parse`] after the positional arguments: as ss does, each line is
/// read like one more argument. Blank lines and lines starting with `#`
/// are left out.
pub fn read_filter_file(path: &str) -> Result<Vec<String>, String> {
    let what = if path == "-" {
        "standard input".to_string()
    } else {
        path.to_string()
    };
    let result = if path == "-" {
        read_filter(std::io::stdin().lock())
    } else {
        std::fs::File::open(path)
            .map_err(|e| e.to_string())
            .and_then(|f| read_filter(std::io::BufReader::new(f)))
    };
    result.map_err(|e| format!("cannot read the filter from {what}: {e}"))
}

/// [`read_filter_file`] on any reader.
pub fn read_filter(reader: impl BufRead) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    for line in reader.lines() {
        let line = line.map_err(|e| e.to_string())?;
        let text = line.trim();
        if !text.is_empty() && !text.starts_with('#') {
            lines.push(line);
        }
    }
    Ok(lines)
}

/// Parses the positional arguments (and the lines of a filter file after
/// them), with port numbers only: see [`parse_with`].
pub fn parse(args: &[String]) -> Result<Query, String> {
    parse_with(args, &|_| None)
}

/// Parses the positional arguments, and the lines of a filter file after
/// them ([`read_filter_file`]); `service` names ports (`:ssh`). The error
/// is one line, for `sockwho: filter: ...`. Never panics.
pub fn parse_with(args: &[String], service: &dyn Fn(&str) -> Option<u16>) -> Result<Query, String> {
    let tokens = words(args);
    let mut p = Parser {
        tokens: &tokens,
        at: 0,
        service,
        family: None,
    };
    let mut states = None;
    // ss's main(): `state` adds to what came before (nothing at first),
    // `exclude` takes away from it (everything at first)
    while let Some(word @ ("state" | "exclude" | "excl")) = p.peek() {
        p.at += 1;
        let mask = p.state_name(word)?;
        states = Some(if word == "state" {
            states.unwrap_or(0) | mask
        } else {
            states.unwrap_or_else(all_states) & !mask
        });
    }
    if let (Some(_), Some(join @ ("and" | "&" | "&&" | "or" | "|" | "||"))) = (states, p.peek()) {
        return Err(format!(
            "'{join}' after the state words: in front of the expression they are ss's state \
             filter, ANDed with what follows; write '( state NAME {join} ... )' to combine them"
        ));
    }
    let expr = match p.peek() {
        None => None,
        Some(_) => {
            let (e, _) = p.list(0)?;
            if p.peek().is_some() {
                // list() stops only at the end or at a ')'
                return Err("unexpected ')': no '(' before it".to_string());
            }
            Some(e)
        }
    };
    Ok(Query {
        states,
        family: p.family,
        expr,
    })
}

/// Words that are never values (ss's lexer takes them first).
fn reserved(word: &str) -> bool {
    matches!(
        word,
        "(" | ")"
            | "!"
            | "not"
            | "&"
            | "&&"
            | "and"
            | "|"
            | "||"
            | "or"
            | "src"
            | "dst"
            | "sport"
            | "dport"
            | "dev"
            | "fwmark"
            | "cgroup"
            | "autobound"
            | "state"
            | "exclude"
            | "excl"
    ) || op_of(word).is_some()
}

fn op_of(word: &str) -> Option<PortOp> {
    Some(match word {
        "=" | "==" | "eq" => PortOp::Eq,
        "!=" | "ne" | "neq" => PortOp::Ne,
        "<" | "lt" => PortOp::Lt,
        "<=" | "le" | "leq" => PortOp::Le,
        ">" | "gt" => PortOp::Gt,
        ">=" | "ge" | "geq" => PortOp::Ge,
        _ => return None,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Join {
    And,
    Or,
}

struct Parser<'a> {
    tokens: &'a [String],
    at: usize,
    service: &'a dyn Fn(&str) -> Option<u16>,
    family: Option<Family>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<&'a str> {
        let t = self.peek();
        if t.is_some() {
            self.at += 1;
        }
        t
    }

    /// " after 'WORD'" for the word before the current one, or "".
    fn after(&self) -> String {
        match self.at.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some(w) => format!(" after '{w}'"),
            None => String::new(),
        }
    }

    /// `expr { [and|or] expr }`, left to right; `And`/`Or` chains of one
    /// kind gather into one node. Returns the tree and its depth.
    fn list(&mut self, depth: usize) -> Result<(Expr, usize), String> {
        let (mut acc, mut acc_depth) = self.expr(depth)?;
        loop {
            let join = match self.peek() {
                None | Some(")") => break,
                Some("&" | "&&" | "and") => {
                    self.at += 1;
                    Join::And
                }
                Some("|" | "||" | "or") => {
                    self.at += 1;
                    Join::Or
                }
                Some(_) => Join::And,
            };
            let (rhs, rhs_depth) = self.expr(depth)?;
            (acc, acc_depth) = match (join, acc) {
                (Join::And, Expr::And(mut list)) => {
                    list.push(rhs);
                    (Expr::And(list), acc_depth.max(rhs_depth + 1))
                }
                (Join::Or, Expr::Or(mut list)) => {
                    list.push(rhs);
                    (Expr::Or(list), acc_depth.max(rhs_depth + 1))
                }
                (Join::And, lhs) => (Expr::And(vec![lhs, rhs]), acc_depth.max(rhs_depth) + 1),
                (Join::Or, lhs) => (Expr::Or(vec![lhs, rhs]), acc_depth.max(rhs_depth) + 1),
            };
            if depth + acc_depth > MAX_DEPTH {
                return Err(too_deep());
            }
        }
        Ok((acc, acc_depth))
    }

    /// `( list )`, `not expr`, or a predicate.
    fn expr(&mut self, depth: usize) -> Result<(Expr, usize), String> {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let after = self.after();
        let Some(word) = self.next() else {
            return Err(format!("expected an expression{after}"));
        };
        let predicate = |e: Expr| Ok((e, 1));
        match word {
            "(" => {
                let (e, d) = self.list(depth + 1)?;
                match self.next() {
                    Some(")") => Ok((e, d)),
                    _ => Err("missing ')': a '(' is not closed".to_string()),
                }
            }
            ")" => Err(format!("expected an expression{after} at ')'")),
            "!" | "not" => {
                let (e, d) = self.expr(depth + 1)?;
                Ok((Expr::Not(Box::new(e)), d + 1))
            }
            "src" | "dst" => {
                let side = if word == "src" {
                    Side::Local
                } else {
                    Side::Remote
                };
                let context = match self.peek() {
                    Some(op @ ("=" | "==" | "eq")) => {
                        self.at += 1;
                        format!("{word} {op}")
                    }
                    Some(op) if op_of(op).is_some() => {
                        return Err(format!(
                            "'{word}' takes '=' or nothing before the address, not '{op}' \
                             (write 'not {word} ...')"
                        ));
                    }
                    _ => word.to_string(),
                };
                let value = self.value("an address", &context)?;
                let (prefix, port) = self.host(value).map_err(|why| {
                    format!("expected an address after '{context}' at '{value}': {why}")
                })?;
                predicate(Expr::Host { side, prefix, port })
            }
            "sport" | "dport" => {
                let side = if word == "sport" {
                    Side::Local
                } else {
                    Side::Remote
                };
                let (op, context) = match self.peek().and_then(|w| Some((w, op_of(w)?))) {
                    Some((w, op)) => {
                        self.at += 1;
                        (op, format!("{word} {w}"))
                    }
                    None => (PortOp::Eq, word.to_string()),
                };
                let value = self.value("a port", &context)?;
                let port = self.port(value, op).map_err(|why| {
                    format!("expected a port after '{context}' at '{value}': {why}")
                })?;
                predicate(Expr::Port { side, op, port })
            }
            "dev" | "fwmark" | "cgroup" => {
                let (negated, context) = match self.peek() {
                    Some(op @ ("=" | "==" | "eq")) => {
                        self.at += 1;
                        (false, format!("{word} {op}"))
                    }
                    Some(op @ ("!=" | "ne" | "neq")) => {
                        self.at += 1;
                        (true, format!("{word} {op}"))
                    }
                    Some(op) if op_of(op).is_some() => {
                        return Err(format!("'{word}' takes '=', '!=' or nothing, not '{op}'"));
                    }
                    _ => (false, word.to_string()),
                };
                let e = match word {
                    "dev" => {
                        let name = self.value("a device", &context)?;
                        if name.len() >= IFNAMSIZ {
                            return Err(format!(
                                "expected a device after '{context}' at '{name}': \
                                 device names are shorter than {IFNAMSIZ} bytes"
                            ));
                        }
                        Expr::Dev(Device {
                            name: name.to_string(),
                            index: name.parse().ok(),
                        })
                    }
                    "fwmark" => {
                        let text = self.value("a mark", &context)?;
                        let (mark, mask) = markmask(text).ok_or_else(|| {
                            format!(
                                "expected a mark after '{context}' at '{text}': \
                                 MARK or MARK/MASK, numbers in decimal, 0x hex or 0 octal"
                            )
                        })?;
                        Expr::Mark { mark, mask }
                    }
                    _ => Expr::Cgroup(Cgroup {
                        path: self.value("a cgroup path", &context)?.to_string(),
                        id: None,
                    }),
                };
                if negated {
                    Ok((Expr::Not(Box::new(e)), 2))
                } else {
                    predicate(e)
                }
            }
            "autobound" => predicate(Expr::Autobound(None)),
            "state" => predicate(Expr::State(self.state_name(word)?)),
            "exclude" | "excl" => predicate(Expr::Exclude(self.state_name(word)?)),
            "&" | "&&" | "and" | "|" | "||" | "or" => {
                Err(format!("expected an expression{after} at '{word}'"))
            }
            _ if op_of(word).is_some() => Err(format!(
                "expected an expression{after} at '{word}': an operator follows sport, dport, \
                 src, dst, dev, fwmark or cgroup"
            )),
            _ => Err(format!(
                "unexpected '{word}'{after}: expected src, dst, sport, dport, dev, fwmark, \
                 cgroup, autobound, state, exclude, not or '('"
            )),
        }
    }

    /// The value after `context`: the next word, if it is not one of the
    /// grammar's own.
    fn value(&mut self, what: &str, context: &str) -> Result<&'a str, String> {
        match self.peek() {
            Some(w) if !reserved(w) => {
                self.at += 1;
                Ok(w)
            }
            Some(w) => Err(format!("expected {what} after '{context}' at '{w}'")),
            None => Err(format!("expected {what} after '{context}'")),
        }
    }

    /// The state name after `word` (`state`, `exclude`), as a mask.
    fn state_name(&mut self, word: &str) -> Result<u32, String> {
        let name = self.value("a state", word)?;
        parse_states(name)
            .map_err(|why| format!("expected a state after '{word}' at '{name}': {why}"))
    }

    /// `inet:` / `inet6:` in front of a host or port: the family, noted for
    /// the whole query as ss does; the rest of the text.
    fn family_prefix<'t>(&mut self, text: &'t str) -> Result<(Option<Family>, &'t str), String> {
        for (prefix, family) in [("inet6:", Family::Inet6), ("inet:", Family::Inet)] {
            if let Some(rest) = text.strip_prefix(prefix) {
                self.family = Some(family);
                return Ok((Some(family), rest));
            }
        }
        for other in ["unix:", "link:", "netlink:", "vsock:"] {
            if text.starts_with(other) {
                return Err(format!(
                    "'{other}' is not a family sockwho lists (inet and inet6 only)"
                ));
            }
        }
        Ok((None, text))
    }

    /// `[FAMILY:][:]PORT`, `*`.
    fn port(&mut self, text: &str, op: PortOp) -> Result<PortSpec, String> {
        let (_, rest) = self.family_prefix(text)?;
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        let spec = if rest == "*" {
            PortSpec {
                lo: 0,
                hi: u16::MAX,
            }
        } else {
            PortSpec::parse(rest, self.service)?
        };
        if spec.lo != spec.hi && !matches!(op, PortOp::Eq | PortOp::Ne) {
            return Err(format!(
                "'{}' compares with one port, not a range",
                op.symbol()
            ));
        }
        Ok(spec)
    }

    /// `[FAMILY:]ADDRESS[/LEN][:PORT]` and the other host forms.
    fn host(&mut self, text: &str) -> Result<(Option<Prefix>, Option<PortSpec>), String> {
        let (family, rest) = self.family_prefix(text)?;
        let (addr, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner.split_once(']').ok_or("a '[' without its ']'")?;
            // `[v6]/LEN:PORT`: the length goes with the address
            let (len, port) = match after.strip_prefix('/') {
                Some(tail) => match tail.split_once(':') {
                    Some((len, port)) => (Some(len), Some(port)),
                    None => (Some(tail), None),
                },
                None => match after.strip_prefix(':') {
                    Some(port) => (None, Some(port)),
                    None if after.is_empty() => (None, None),
                    None => return Err(format!("'{after}' after the ']'")),
                },
            };
            let prefix = prefix(addr, len, family)?;
            (Some(prefix), port)
        } else if let Some(after) = rest.strip_prefix('*') {
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(format!("'{after}' after the '*'")),
            };
            (None, port)
        } else {
            // ss: the port follows the last ':' past any '/'
            let from = rest.find('/').unwrap_or(0);
            if let Some(i) = rest[from..].rfind(':').map(|i| i + from) {
                let (addr, port) = (&rest[..i], &rest[i + 1..]);
                return match address(addr, family)
                    .and_then(|prefix| Ok((prefix, self.host_port(Some(port))?)))
                {
                    Ok(found) => Ok(found),
                    // `::1`, `2001:db8::5`: no port, all address
                    Err(why) => address(rest, family).map(|p| (p, None)).map_err(|_| why),
                };
            }
            (address(rest, family)?, None)
        };
        Ok((addr, self.host_port(port)?))
    }

    /// The port of a host: none, empty or `*` is any port.
    fn host_port(&self, text: Option<&str>) -> Result<Option<PortSpec>, String> {
        match text {
            None | Some("" | "*") => Ok(None),
            Some(p) => PortSpec::parse(p, self.service).map(Some),
        }
    }
}

/// `IFNAMSIZ`: a device name and its NUL.
const IFNAMSIZ: usize = 16;

fn too_deep() -> String {
    format!("the expression nests deeper than {MAX_DEPTH} levels")
}

/// An address with an optional `/LEN`; `any`, `all`, `default` and the
/// empty address are none (any address).
fn address(text: &str, family: Option<Family>) -> Result<Option<Prefix>, String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    match addr {
        "" if len.is_none() => Ok(None),
        "any" | "all" | "default" => match len {
            None => Ok(None),
            Some(_) => Err(format!("'{addr}' takes no prefix length")),
        },
        _ => prefix(addr, len, family).map(Some),
    }
}

/// `addr/len`, in the form sockets are compared with ([`Prefix::canonical`]).
fn prefix(addr: &str, len: Option<&str>, family: Option<Family>) -> Result<Prefix, String> {
    let ip = if addr.contains(':') {
        IpAddr::V6(
            addr.parse::<Ipv6Addr>()
                .map_err(|_| format!("'{addr}' is not an IPv6 address"))?,
        )
    } else {
        IpAddr::V4(short_ipv4(addr).ok_or_else(|| format!("'{addr}' is not an address"))?)
    };
    match (family, ip) {
        (Some(Family::Inet), IpAddr::V6(_)) => {
            return Err(format!("'{addr}' is not an IPv4 address, as 'inet:' says"));
        }
        (Some(Family::Inet6), IpAddr::V4(_)) => {
            return Err(format!("'{addr}' is not an IPv6 address, as 'inet6:' says"));
        }
        _ => {}
    }
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => prefix_len(l, max)
            .ok_or_else(|| format!("'{l}' is not a prefix length (0-{max}) or netmask"))?,
    };
    Ok(Prefix { addr: ip, len }.canonical())
}

/// iproute2's `get_addr_ipv4()`, in decimal: one to four parts, the
/// missing ones zero (`10` is 10.0.0.0, `193.233.7` 193.233.7.0).
fn short_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        match parts.next() {
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                *octet = p.parse().ok()?;
            }
            Some(_) => return None,
            None => break,
        }
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// `/LEN` in bits, or an IPv4 netmask of contiguous ones (`255.255.0.0`).
fn prefix_len(text: &str, max: u8) -> Option<u8> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u8>().ok().filter(|&l| l <= max);
    }
    if max != 32 {
        return None;
    }
    let mask: Ipv4Addr = text.parse().ok()?;
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    // contiguous: nothing set past the leading ones
    (bits.checked_shl(len).unwrap_or(0) == 0 && len <= u32::from(max)).then_some(len as u8)
}

/// `MARK` or `MARK/MASK`, as C's `%i` reads numbers.
fn markmask(text: &str) -> Option<(u32, u32)> {
    let number = |t: &str| -> Option<u32> {
        if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16).ok()
        } else if t.len() > 1 && t.starts_with('0') {
            u32::from_str_radix(&t[1..], 8).ok()
        } else {
            t.parse().ok()
        }
    };
    match text.split_once('/') {
        Some((mark, mask)) => Some((number(mark)?, number(mask)?)),
        None => Some((number(text)?, u32::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str) -> Option<u16> {
        match name {
            "ssh" => Some(22),
            "http" => Some(80),
            "https" => Some(443),
            "domain" => Some(53),
            _ => None,
        }
    }

    fn q(text: &str) -> Result<Query, String> {
        parse_with(&[text.to_string()], &svc)
    }

    /// The expression of `text`, a leading `state` included.
    fn e(text: &str) -> Expr {
        let query = q(&format!("( {text} )")).unwrap_or_else(|err| panic!("{text}: {err}"));
        assert_eq!(query.states, None, "{text}");
        query
            .expr
            .unwrap_or_else(|| panic!("{text}: no expression"))
    }

    fn err(text: &str) -> String {
        match q(text) {
            Ok(query) => panic!("{text}: parsed as {query:?}"),
            Err(e) => e,
        }
    }

    fn one(p: u16) -> PortSpec {
        PortSpec { lo: p, hi: p }
    }

    fn port(side: Side, op: PortOp, p: u16) -> Expr {
        Expr::Port {
            side,
            op,
            port: one(p),
        }
    }

    fn sport(p: u16) -> Expr {
        port(Side::Local, PortOp::Eq, p)
    }

    fn dport(p: u16) -> Expr {
        port(Side::Remote, PortOp::Eq, p)
    }

    fn host(side: Side, prefix: Option<&str>, p: Option<u16>) -> Expr {
        Expr::Host {
            side,
            prefix: prefix.map(|p| p.parse().unwrap()),
            port: p.map(one),
        }
    }

    fn not(e: Expr) -> Expr {
        Expr::Not(Box::new(e))
    }

    fn bits(states: &[State]) -> u32 {
        states.iter().fold(0, |m, s| m | s.bit())
    }

    fn sock(local: &str, remote: Option<&str>, state: State) -> Socket {
        let mut s = crate::collect::bytecode::tests::sock(local, remote);
        s.state = state;
        s
    }

    #[test]
    fn words_split_like_ss() {
        let w = |args: &[&str]| words(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        assert_eq!(
            w(&["state", "established '( dport = :ssh or\tsport = :ssh )'"]),
            [
                "state",
                "established",
                "'(",
                "dport",
                "=",
                ":ssh",
                "or",
                "sport",
                "=",
                ":ssh",
                ")'"
            ]
        );
        assert_eq!(
            w(&["( dport = :ssh )", "  ", ""]),
            ["(", "dport", "=", ":ssh", ")"]
        );
        // parentheses at the ends of a word are words of their own
        assert_eq!(
            w(&["((sport = :22) or (dport = :22))"]),
            [
                "(", "(", "sport", "=", ":22", ")", "or", "(", "dport", "=", ":22", ")", ")"
            ]
        );
        // a backslash escapes blanks and parentheses
        assert_eq!(
            w(&[r"cgroup = /a\ b/c\)", r"\(x", "end\\"]),
            ["cgroup", "=", "/a b/c)", "(x", "end"]
        );
        assert_eq!(w(&["a(b)c"]), ["a(b)c"]);
    }

    #[test]
    fn hosts() {
        use Side::{Local, Remote};
        let table: &[(&str, Expr)] = &[
            ("src 10.0.0.1", host(Local, Some("10.0.0.1"), None)),
            ("src = 10.0.0.1:22", host(Local, Some("10.0.0.1"), Some(22))),
            ("dst == 10.0.0.0/8", host(Remote, Some("10.0.0.0/8"), None)),
            (
                "dst eq 10.0.0.0/8:ssh",
                host(Remote, Some("10.0.0.0/8"), Some(22)),
            ),
            ("dst [::1]:80", host(Remote, Some("::1"), Some(80))),
            ("dst [::1]", host(Remote, Some("::1"), None)),
            (
                "dst [fe80::]/10:22",
                host(Remote, Some("fe80::/10"), Some(22)),
            ),
            ("dst [fe80::]/10", host(Remote, Some("fe80::/10"), None)),
            ("src fe80::/10", host(Local, Some("fe80::/10"), None)),
            // ss: the port follows the last ':' past the '/'
            ("src fe80::/10:22", host(Local, Some("fe80::/10"), Some(22))),
            ("src fe80::1:22", host(Local, Some("fe80::1"), Some(22))),
            // no address before the last ':': all of it is the address
            ("src ::1", host(Local, Some("::1"), None)),
            ("src ::", host(Local, Some("::"), None)),
            ("src 2001:db8::5", host(Local, Some("2001:db8::5"), None)),
            ("src ::ffff:10.0.0.1", host(Local, Some("10.0.0.1"), None)),
            ("src *:22", host(Local, None, Some(22))),
            ("src :22", host(Local, None, Some(22))),
            ("src *", host(Local, None, None)),
            ("src *:*", host(Local, None, None)),
            ("src 10.0.0.1:*", host(Local, Some("10.0.0.1"), None)),
            ("src 10.0.0.1:", host(Local, Some("10.0.0.1"), None)),
            ("src any", host(Local, None, None)),
            ("src all:80", host(Local, None, Some(80))),
            ("dst default", host(Remote, None, None)),
            // iproute2's short IPv4 forms and netmasks
            (
                "dst 193.233.7/24",
                host(Remote, Some("193.233.7.0/24"), None),
            ),
            ("dst 10/8", host(Remote, Some("10.0.0.0/8"), None)),
            ("dst 127.1", host(Remote, Some("127.1.0.0"), None)),
            (
                "dst 10.1.0.0/255.255.0.0",
                host(Remote, Some("10.1.0.0/16"), None),
            ),
            (
                "src inet:127.0.0.1:22",
                host(Local, Some("127.0.0.1"), Some(22)),
            ),
            ("src inet6:[::1]:22", host(Local, Some("::1"), Some(22))),
            (
                "src 10.0.0.1:1000-2000",
                Expr::Host {
                    side: Local,
                    prefix: Some("10.0.0.1".parse().unwrap()),
                    port: Some(PortSpec { lo: 1000, hi: 2000 }),
                },
            ),
        ];
        for (text, want) in table {
            assert_eq!(&e(text), want, "{text}");
        }
        assert_eq!(q("src inet:*").unwrap().family, Some(Family::Inet));
        assert_eq!(
            q("src inet6:* or src 1.2.3.4").unwrap().family,
            Some(Family::Inet6)
        );
        assert_eq!(
            q("src inet6:* or src inet:*").unwrap().family,
            Some(Family::Inet)
        );
        assert_eq!(q("src 1.2.3.4").unwrap().family, None);
    }

    #[test]
    fn ports_and_their_operators() {
        use PortOp::*;
        use Side::{Local, Remote};
        for (words, op) in [
            (&["", "=", "==", "eq"][..], Eq),
            (&["!=", "ne", "neq"], Ne),
            (&["<", "lt"], Lt),
            (&["<=", "le", "leq"], Le),
            (&[">", "gt"], Gt),
            (&[">=", "ge", "geq"], Ge),
        ] {
            for w in words {
                for (value, p) in [(":22", 22), ("22", 22), (":ssh", 22), ("https", 443)] {
                    assert_eq!(e(&format!("sport {w} {value}")), port(Local, op, p));
                    assert_eq!(e(&format!("dport {w} {value}")), port(Remote, op, p));
                }
            }
        }
        assert_eq!(
            e("dport = :1000-2000"),
            Expr::Port {
                side: Remote,
                op: Eq,
                port: PortSpec { lo: 1000, hi: 2000 }
            }
        );
        assert_eq!(
            e("sport != *"),
            Expr::Port {
                side: Local,
                op: Ne,
                port: PortSpec { lo: 0, hi: 65535 }
            }
        );
        let inet6 = q("sport = inet6::443").unwrap();
        assert_eq!(inet6.expr, Some(port(Local, Eq, 443)));
        assert_eq!(inet6.family, Some(Family::Inet6));
    }

    #[test]
    fn kernel_only_predicates() {
        let dev = |name: &str, index| {
            Expr::Dev(Device {
                name: name.into(),
                index,
            })
        };
        assert_eq!(e("dev lo"), dev("lo", None));
        assert_eq!(e("dev = eth0"), dev("eth0", None));
        assert_eq!(e("dev != 3"), not(dev("3", Some(3))));
        assert_eq!(
            e("fwmark = 0x10/0xf0"),
            Expr::Mark {
                mark: 16,
                mask: 240
            }
        );
        assert_eq!(
            e("fwmark 17"),
            Expr::Mark {
                mark: 17,
                mask: u32::MAX
            }
        );
        assert_eq!(
            e("fwmark ne 010"),
            not(Expr::Mark {
                mark: 8,
                mask: u32::MAX
            })
        );
        let cgroup = Expr::Cgroup(Cgroup {
            path: "/system.slice".into(),
            id: None,
        });
        assert_eq!(e("cgroup = /system.slice"), cgroup);
        assert_eq!(e("cgroup neq /system.slice"), not(cgroup.clone()));
        assert_eq!(e("autobound"), Expr::Autobound(None));
        for (text, name) in [
            ("autobound", "autobound"),
            ("sport = :22 or not dev lo", "dev"),
            ("( fwmark 1 )", "fwmark"),
            ("cgroup / dev lo", "cgroup"),
        ] {
            assert_eq!(e(text).kernel_only(), Some(name), "{text}");
        }
        assert_eq!(e("sport = :22 or state listening").kernel_only(), None);
        // resolved where the sockets are
        let mut x = e("dev lo or dev 7 or not dev eth0 or cgroup = /a");
        let index = |name: &str| match name {
            "lo" => Some(1),
            "eth0" => Some(2),
            _ => None,
        };
        let cgroup = |path: &str| (path == "/a").then_some(99);
        let range = PortSpec {
            lo: 32768,
            hi: 60999,
        };
        let lookup = Lookup {
            if_index: &index,
            cgroup_id: &cgroup,
            port_range: range,
        };
        x.resolve(&lookup).unwrap();
        assert_eq!(
            x,
            Expr::Or(vec![
                dev("lo", Some(1)),
                dev("7", Some(7)),
                not(dev("eth0", Some(2))),
                Expr::Cgroup(Cgroup {
                    path: "/a".into(),
                    id: Some(99)
                }),
            ])
        );
        let mut y = e("dev eth9");
        assert!(y.resolve(&lookup).unwrap_err().contains("eth9"));
        let mut z = e("cgroup /b");
        assert!(z.resolve(&lookup).unwrap_err().contains("/b"));
        let mut auto = e("autobound or not autobound");
        auto.resolve(&lookup).unwrap();
        assert_eq!(
            auto,
            Expr::Or(vec![
                Expr::Autobound(Some(range)),
                not(Expr::Autobound(Some(range)))
            ])
        );
    }

    #[test]
    fn leading_state_words_are_ss_state_filter() {
        let est = State::Established.bit();
        let listen = State::Listen.bit();
        let all = all_states();
        let states = |text: &str| q(text).unwrap().states;
        assert_eq!(states("state established"), Some(est));
        assert_eq!(
            states("state established state listening"),
            Some(est | listen)
        );
        assert_eq!(states("exclude listening"), Some(all & !listen));
        assert_eq!(states("excl listening state listening"), Some(all));
        assert_eq!(states("state established exclude established"), Some(0));
        assert_eq!(
            states("state connected"),
            Some(parse_states("connected").unwrap())
        );
        assert_eq!(states("state syn-rcv"), Some(State::SynRecv.bit()));
        assert_eq!(
            states("state ESTABLISHED,time-wait"),
            Some(est | State::TimeWait.bit())
        );
        assert_eq!(states("sport = :22"), None);
        let query = q("state established ( dport = :ssh or sport = :ssh )").unwrap();
        assert_eq!(query.states, Some(est));
        assert_eq!(query.expr, Some(Expr::Or(vec![dport(22), sport(22)])));
        // inside the expression they are predicates
        assert_eq!(
            e("sport = :22 state established exclude listening"),
            Expr::And(vec![sport(22), Expr::State(est), Expr::Exclude(listen)])
        );
        assert_eq!(q("").unwrap(), Query::default());
        assert_eq!(
            q("exclude listening sport gt :1024 and not dst 10.0.0.0/8").unwrap(),
            Query {
                states: Some(all & !listen),
                family: None,
                expr: Some(Expr::And(vec![
                    port(Side::Local, PortOp::Gt, 1024),
                    not(host(Side::Remote, Some("10.0.0.0/8"), None)),
                ])),
            }
        );
    }

    #[test]
    fn operators_and_their_spellings() {
        for and in ["and", "&", "&&", ""] {
            assert_eq!(
                e(&format!("sport = :1 {and} dport = :2")),
                Expr::And(vec![sport(1), dport(2)])
            );
        }
        for or in ["or", "|", "||"] {
            assert_eq!(
                e(&format!("sport = :1 {or} dport = :2")),
                Expr::Or(vec![sport(1), dport(2)])
            );
        }
        for not_ in ["not", "!"] {
            assert_eq!(e(&format!("{not_} sport = :1")), not(sport(1)));
        }
        assert_eq!(e("not not sport = :1"), not(not(sport(1))));
        assert_eq!(e("( ( sport = :1 ) )"), sport(1));
        assert_eq!(
            e("sport = :1 or sport = :2 or sport = :3"),
            Expr::Or(vec![sport(1), sport(2), sport(3)])
        );
    }

    /// ss takes `and` and `or` left to right, whatever its man page says:
    /// `a or b and c` is `(a or b) and c`.
    #[test]
    fn and_and_or_go_left_to_right_as_in_ss() {
        let (a, b, c) = (sport(1), sport(2), dport(3));
        assert_eq!(
            e("sport = :1 or sport = :2 and dport = :3"),
            Expr::And(vec![Expr::Or(vec![a.clone(), b.clone()]), c.clone()])
        );
        assert_eq!(
            e("sport = :1 and sport = :2 or dport = :3"),
            Expr::Or(vec![Expr::And(vec![a.clone(), b.clone()]), c.clone()])
        );
        assert_eq!(
            e("sport = :1 or sport = :2 dport = :3"),
            Expr::And(vec![Expr::Or(vec![a.clone(), b.clone()]), c.clone()])
        );
        // parentheses say the other
        assert_eq!(
            e("sport = :1 or ( sport = :2 and dport = :3 )"),
            Expr::Or(vec![a.clone(), Expr::And(vec![b.clone(), c.clone()])])
        );
        // not takes one predicate or group
        assert_eq!(
            e("not sport = :1 or sport = :2"),
            Expr::Or(vec![not(a.clone()), b.clone()])
        );
        assert_eq!(
            e("not ( sport = :1 or sport = :2 )"),
            not(Expr::Or(vec![a.clone(), b.clone()]))
        );
        // and the difference shows: port 1 to port 5 is in `a or (b and c)`
        let s = sock("10.0.0.1:1", Some("10.0.0.2:5"), State::Established);
        assert!(!e("sport = :1 or sport = :2 and dport = :3").matches(&s));
        assert!(e("sport = :1 or ( sport = :2 and dport = :3 )").matches(&s));
    }

    #[test]
    fn errors_say_what_was_expected_where() {
        for (text, want) in [
            (
                "sport = xyz",
                "expected a port after 'sport =' at 'xyz': unknown port or service name 'xyz'",
            ),
            ("sport", "expected a port after 'sport'"),
            ("sport >", "expected a port after 'sport >'"),
            ("sport = and", "expected a port after 'sport =' at 'and'"),
            ("sport = :70000", "port 70000 is out of range"),
            ("sport < :1-5", "'<' compares with one port, not a range"),
            ("sport > *", "'>' compares with one port, not a range"),
            ("dst", "expected an address after 'dst'"),
            ("dst =", "expected an address after 'dst ='"),
            (
                "dst != 10.0.0.1",
                "'dst' takes '=' or nothing before the address, not '!='",
            ),
            (
                "src nosuchhost",
                "expected an address after 'src' at 'nosuchhost': 'nosuchhost' is not an address",
            ),
            (
                "src 10.0.0.0/33",
                "'33' is not a prefix length (0-32) or netmask",
            ),
            ("src 10.0.0.0/255.0.255.0", "not a prefix length"),
            ("src [::1", "a '[' without its ']'"),
            ("src [::1]x", "'x' after the ']'"),
            (
                "src 1.2.3.4:nosuch",
                "unknown port or service name 'nosuch'",
            ),
            ("src 256.1.1.1", "'256.1.1.1' is not an address"),
            ("src default/8", "'default' takes no prefix length"),
            ("src inet:[::1]", "is not an IPv4 address, as 'inet:' says"),
            (
                "src inet6:1.2.3.4",
                "is not an IPv6 address, as 'inet6:' says",
            ),
            ("src unix:/tmp/x", "'unix:' is not a family sockwho lists"),
            ("dev", "expected a device after 'dev'"),
            ("dev < lo", "'dev' takes '=', '!=' or nothing, not '<'"),
            (
                "dev = averyveryverylongname",
                "device names are shorter than 16 bytes",
            ),
            ("fwmark = x", "expected a mark after 'fwmark =' at 'x'"),
            ("fwmark = 1/", "expected a mark after 'fwmark =' at '1/'"),
            ("cgroup !=", "expected a cgroup path after 'cgroup !='"),
            ("state", "expected a state after 'state'"),
            (
                "state bogus",
                "expected a state after 'state' at 'bogus': unknown state 'bogus'",
            ),
            ("sport = :1 exclude", "expected a state after 'exclude'"),
            (
                "state listening or sport = :1",
                "'or' after the state words",
            ),
            ("(", "expected an expression after '('"),
            ("( sport = :1", "missing ')': a '(' is not closed"),
            ("sport = :1 )", "unexpected ')': no '(' before it"),
            ("( )", "expected an expression after '(' at ')'"),
            ("sport = :1 and", "expected an expression after 'and'"),
            (
                "sport = :1 or or dport = :1",
                "expected an expression after 'or' at 'or'",
            ),
            ("and sport = :1", "expected an expression at 'and'"),
            ("not", "expected an expression after 'not'"),
            (
                "= :22",
                "expected an expression at '=': an operator follows sport",
            ),
            ("bogus", "unexpected 'bogus': expected src, dst, sport"),
            ("sport = :1 bogus", "unexpected 'bogus' after ':1'"),
        ] {
            let got = err(text);
            assert!(got.contains(want), "{text}: {got}");
            assert!(!got.contains('\n'), "{text}: one line: {got}");
        }
    }

    #[test]
    fn depth_is_bounded_and_long_lists_are_flat() {
        let deep = format!("{}sport = :1{}", "( ".repeat(150), " )".repeat(150));
        assert!(err(&deep).contains("nests deeper than"));
        let nots = format!("{}sport = :1", "not ".repeat(150));
        assert!(err(&nots).contains("nests deeper than"));
        let alternating: Vec<String> = (0..300)
            .map(|i| format!("sport = :{i} {}", if i % 2 == 0 { "or" } else { "and" }))
            .collect();
        let alternating = format!("{} sport = :0", alternating.join(" "));
        assert!(err(&alternating).contains("nests deeper than"));
        // thousands of alternatives of one kind are one node
        let many: Vec<String> = (0..5000).map(|i| format!("sport = :{i}")).collect();
        match e(&many.join(" or ")) {
            Expr::Or(list) => assert_eq!(list.len(), 5000),
            other => panic!("{other:?}"),
        }
        // just within the limit
        let ok = format!("{}sport = :1{}", "( ".repeat(90), " )".repeat(90));
        assert_eq!(e(&ok), sport(1));
    }

    #[test]
    fn filter_files_skip_comments_and_blank_lines() {
        let text = "# ssh, either way\nstate established\n\n  ( dport = :ssh\n or sport = :ssh )\n# done\n";
        let lines = read_filter(text.as_bytes()).unwrap();
        assert_eq!(lines.len(), 3);
        let query = parse_with(&lines, &svc).unwrap();
        assert_eq!(query.states, Some(State::Established.bit()));
        assert_eq!(query.expr, Some(Expr::Or(vec![dport(22), sport(22)])));
        // after the positional arguments, as ss reads them
        let mut args = vec!["state".to_string(), "listening".to_string()];
        args.extend(read_filter("sport = :22\n".as_bytes()).unwrap());
        let query = parse_with(&args, &svc).unwrap();
        assert_eq!(query.states, Some(State::Listen.bit()));
        assert_eq!(query.expr, Some(sport(22)));
        let dir = std::env::temp_dir().join(format!("sockwho-filter-{}", std::process::id()));
        std::fs::write(&dir, "dport = :80 # not a comment here\n").unwrap();
        let lines = read_filter_file(dir.to_str().unwrap()).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert!(parse_with(&lines, &svc).unwrap_err().contains("'#'"));
        let missing = read_filter_file("/nonexistent/filter").unwrap_err();
        assert!(missing.starts_with("cannot read the filter from /nonexistent/filter: "));
    }

    #[test]
    fn meaning_on_sockets() {
        use State::*;
        let listener = sock("0.0.0.0:22", None, Listen);
        let listener6 = sock("[::]:22", None, Listen);
        let conn = sock("10.1.2.3:22", Some("192.168.1.5:51000"), Established);
        let mapped = sock(
            "[::ffff:10.1.2.3]:80",
            Some("[::ffff:192.168.1.5]:50000"),
            Established,
        );
        let v6 = sock("[fe80::1]:443", Some("[fe80::2]:50001"), TimeWait);
        let all = [&listener, &listener6, &conn, &mapped, &v6];
        let picks = |text: &str| -> Vec<bool> { all.iter().map(|s| e(text).matches(s)).collect() };
        let t = true;
        let f = false;
        assert_eq!(picks("sport = :22"), [t, t, t, f, f]);
        assert_eq!(picks("sport = :ssh"), [t, t, t, f, f]);
        // no remote end is 0.0.0.0:0 or [::]:0, as in ss and the kernel
        assert_eq!(picks("dport = :0"), [t, t, f, f, f]);
        assert_eq!(picks("dst 0.0.0.0"), [t, f, f, f, f]);
        assert_eq!(picks("dst ::"), [f, t, f, f, f]);
        assert_eq!(picks("dst 0.0.0.0/0"), [t, f, t, t, f]);
        assert_eq!(picks("dst ::/0"), [f, t, f, f, t]);
        assert_eq!(picks("src 10.0.0.0/8"), [f, f, t, t, f]);
        assert_eq!(picks("src ::ffff:10.1.2.3"), [f, f, t, t, f]);
        assert_eq!(picks("dst 192.168.1.5:50000"), [f, f, f, t, f]);
        assert_eq!(picks("dst *:50000-51000"), [f, f, t, t, t]);
        assert_eq!(picks("dport > :50000"), [f, f, t, f, t]);
        assert_eq!(picks("dport >= :50000"), [f, f, t, t, t]);
        assert_eq!(picks("dport < :50001"), [t, t, f, t, f]);
        assert_eq!(picks("dport <= :50001"), [t, t, f, t, t]);
        assert_eq!(picks("dport != :0"), [f, f, t, t, t]);
        assert_eq!(picks("sport != :1-100"), [f, f, f, f, t]);
        assert_eq!(picks("state listening"), [t, t, f, f, f]);
        assert_eq!(picks("exclude listening"), [f, f, t, t, t]);
        assert_eq!(picks("state bucket"), [f, f, f, f, t]);
        assert_eq!(picks("src *"), [t, t, t, t, t]);
        assert_eq!(
            picks("exclude listening sport gt :21 and not dst 10.0.0.0/8 dst fe80::/10"),
            [f, f, f, f, t]
        );
        // kernel-only: unknown here, unless something else decides
        assert_eq!(e("autobound").eval(&conn), None);
        assert_eq!(e("autobound and sport = :1").eval(&conn), Some(false));
        assert_eq!(e("autobound or sport = :22").eval(&conn), Some(true));
        assert_eq!(e("not dev lo").eval(&conn), None);
        assert!(!e("not dev lo").matches(&conn));
        let facts = |x: &Expr| match x {
            Expr::Mark { mark, mask } => Some(0x13 & mask == *mark),
            _ => None,
        };
        assert_eq!(e("fwmark 0x10/0xf0").eval_with(&conn, &facts), Some(true));
        assert_eq!(e("fwmark != 0x13").eval_with(&conn, &facts), Some(false));
    }

    #[test]
    fn the_states_an_expression_can_hold_in() {
        use State::*;
        let all = all_states();
        let states = |text: &str| e(text).states();
        assert_eq!(states("sport = :22"), all);
        assert_eq!(states("state listening"), Listen.bit());
        assert_eq!(
            states("sport = :22 state established,listening"),
            bits(&[Established, Listen])
        );
        assert_eq!(
            states("state listening or state established and sport = :1"),
            Listen.bit() | Established.bit()
        );
        assert_eq!(states("state listening or sport = :1"), all);
        assert_eq!(states("not state listening"), all & !Listen.bit());
        assert_eq!(states("exclude listening"), all & !Listen.bit());
        assert_eq!(states("not exclude listening"), Listen.bit());
        // not (listening and port 1) may hold when listening
        assert_eq!(states("not ( state listening sport = :1 )"), all);
        assert_eq!(states("state listening exclude listening"), 0);
        let query = q("state established,listening sport = :22 exclude established").unwrap();
        assert_eq!(query.dump_states(all), Listen.bit());
        assert_eq!(
            q("sport = :22").unwrap().dump_states(Listen.bit()),
            Listen.bit()
        );
        assert_eq!(
            q("state time-wait").unwrap().dump_states(Listen.bit()),
            TimeWait.bit()
        );
    }

    /// xorshift64: reproducible draws.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// A random expression with no AND directly under an AND (nor OR under
    /// OR), as the parser builds them.
    fn random_expr(rng: &mut Rng, depth: usize) -> Expr {
        let leaf = depth == 0 || rng.below(3) == 0;
        if !leaf {
            return match rng.below(3) {
                0 => not(random_expr(rng, depth - 1)),
                kind => {
                    let n = 2 + rng.below(3);
                    let list = (0..n)
                        .map(|_| {
                            loop {
                                let x = random_expr(rng, depth - 1);
                                let same =
                                    matches!((&x, kind), (Expr::And(_), 1) | (Expr::Or(_), 2));
                                if !same {
                                    break x;
                                }
                            }
                        })
                        .collect();
                    if kind == 1 {
                        Expr::And(list)
                    } else {
                        Expr::Or(list)
                    }
                }
            };
        }
        let side = if rng.below(2) == 0 {
            Side::Local
        } else {
            Side::Remote
        };
        let ops = [
            PortOp::Eq,
            PortOp::Ne,
            PortOp::Lt,
            PortOp::Le,
            PortOp::Gt,
            PortOp::Ge,
        ];
        let prefixes = [
            "10.0.0.0/8",
            "::1",
            "fe80::/10",
            "0.0.0.0/0",
            "::/0",
            "127.0.0.1",
        ];
        match rng.below(8) {
            0 => Expr::Port {
                side,
                op: ops[rng.below(6)],
                port: one([0, 22, 80, 65535][rng.below(4)]),
            },
            1 => Expr::Port {
                side,
                op: [PortOp::Eq, PortOp::Ne][rng.below(2)],
                port: PortSpec { lo: 1000, hi: 2000 },
            },
            2 => Expr::Host {
                side,
                prefix: [
                    None,
                    Some(prefixes[rng.below(prefixes.len())].parse().unwrap()),
                ][rng.below(2)],
                port: [None, Some(one(22)), Some(PortSpec { lo: 0, hi: 10 })][rng.below(3)],
            },
            3 => Expr::State(1 << (1 + rng.below(11))),
            4 => Expr::Exclude(bits(&[State::Listen, State::TimeWait])),
            5 => Expr::Autobound(None),
            6 => Expr::Mark {
                mark: rng.below(3) as u32,
                mask: [u32::MAX, 0xf][rng.below(2)],
            },
            _ => Expr::Dev(Device {
                name: ["lo", "eth0", "my\\ dev)"][rng.below(3)].into(),
                index: None,
            }),
        }
    }

    #[test]
    fn what_display_writes_parses_back() {
        let mut rng = Rng(0xd15_91a7);
        for _ in 0..2000 {
            let x = random_expr(&mut rng, 4);
            let text = x.to_string();
            // in parentheses, so that a leading `state` stays a predicate
            let back = q(&format!("( {text} )")).unwrap_or_else(|err| panic!("{text}: {err}"));
            let back = back.expr.unwrap();
            assert_eq!(back, x, "{text}");
        }
    }

    #[test]
    fn never_panics_on_random_words() {
        let vocabulary = [
            "(",
            ")",
            "!",
            "not",
            "and",
            "&&",
            "|",
            "or",
            "src",
            "dst",
            "sport",
            "dport",
            "dev",
            "fwmark",
            "cgroup",
            "autobound",
            "state",
            "exclude",
            "=",
            "!=",
            "<",
            ">=",
            ":22",
            "ssh",
            "*",
            "[::1]:80",
            "10/8",
            "::",
            "established",
            "lo",
            "0x1/0x3",
            "/a",
            "",
            "[",
            "]:",
            "/",
            ":",
            "9999999",
            "1.2.3.4/",
            "inet:",
            "-",
        ];
        let mut rng = Rng(0xf022);
        let mut parsed = 0;
        for _ in 0..20000 {
            let n = rng.below(8);
            let text: Vec<&str> = (0..n)
                .map(|_| vocabulary[rng.below(vocabulary.len())])
                .collect();
            parsed += usize::from(q(&text.join(" ")).is_ok());
        }
        assert!(parsed > 500, "{parsed}");
    }
}
