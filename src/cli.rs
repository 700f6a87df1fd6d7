//! The command line, as clap derive types. Nothing else in sockwho touches
//! clap; `config.rs` turns these raw options into a resolved configuration.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::{Parser, ValueEnum};

use crate::classify::direction::Direction;
use crate::classify::ports::PortClass;
use crate::filter::{self, Prefix};

const AFTER_HELP: &str = "\
Columns after State: Dir is the direction (listen, in, out, unknown; \
':med' or ':low' marks a guess), Ports the classes of the local and the \
remote port (wk well-known, reg registered, eph ephemeral; '*' after the \
local class: a listener is on that port).

Exit status: 0 success (also when the reader of the output goes away), \
1 the sockets could not be read (netlink, /proc), 2 usage error.";

/// List TCP and UDP sockets like `netstat -an`, and tell whose port is
/// ephemeral and who opened each connection.
#[derive(Debug, Parser)]
// Repeated flags are accepted as netstat accepts them (-ee, -nn, -tann,
// -a -a): every argument overrides itself; lists still collect.
#[command(name = "sockwho", version, after_help = AFTER_HELP, args_override_self = true)]
pub struct Cli {
    /// Show both listening and non-listening sockets.
    #[arg(short = 'a', long = "all")]
    pub all: bool,

    /// Show only listening sockets (TCP LISTEN and unconnected UDP).
    #[arg(short = 'l', long = "listening")]
    pub listening: bool,

    /// Show numeric ports and users instead of names.
    #[arg(short = 'n', long = "numeric")]
    pub numeric: bool,

    /// Numeric ports only (netstat's --numeric-ports).
    #[arg(long = "numeric-ports")]
    pub numeric_ports: bool,

    /// Numeric hosts (netstat's --numeric-hosts): the default unless -r.
    #[arg(long = "numeric-hosts")]
    pub numeric_hosts: bool,

    /// Numeric users only (netstat's --numeric-users).
    #[arg(long = "numeric-users")]
    pub numeric_users: bool,

    /// No header lines (ss's -H).
    #[arg(short = 'H', long = "no-header")]
    pub no_header: bool,

    /// Resolve host names (reverse lookups; may query DNS).
    #[arg(short = 'r', long = "resolve")]
    pub resolve: bool,

    /// TCP sockets (with -u: both; neither: both).
    #[arg(short = 't', long = "tcp")]
    pub tcp: bool,

    /// UDP sockets.
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,

    /// IPv4 only.
    #[arg(short = '4', long = "inet")]
    pub inet: bool,

    /// IPv6 only.
    #[arg(short = '6', long = "inet6")]
    pub inet6: bool,

    /// Extend: show the User and Inode columns.
    #[arg(short = 'e', long = "extend")]
    pub extend: bool,

    /// Show TCP timers (netstat's Timer column).
    #[arg(short = 'o', long = "timers")]
    pub timers: bool,

    /// Show the owning processes (PID/Program name).
    #[arg(short = 'p', long = "program", visible_alias = "programs")]
    pub program: bool,

    /// TCP internals, as ss -i shows them (netstat's -i lists interfaces):
    /// rtt, rto, cwnd, ssthresh, retransmits, bytes acknowledged, received
    /// and retransmitted, delivery and pacing rates, busy time and how much
    /// of it the receive window or the send buffer limited. In the table an
    /// indented line under each TCP socket, in ss's form; in JSON and CSV
    /// `tcp_info`. Asked of the kernel only with -i.
    #[arg(short = 'i', long = "info")]
    pub info: bool,

    /// Wide output; accepted for netstat compatibility: nothing is truncated.
    #[arg(short = 'W', long = "wide")]
    pub wide: bool,

    /// Show the FTP sessions alone, grouped, each explained: who is client
    /// and server, who opened each data connection, the mode, and what a
    /// firewall on each side must allow. With --format json, jsonl or csv:
    /// only the sockets of FTP sessions.
    #[arg(long = "ftp")]
    pub ftp: bool,

    /// Treat PORT as an FTP control port, beside 21 and 990 (repeatable).
    #[arg(long = "ftp-port", value_name = "PORT")]
    pub ftp_port: Vec<u16>,

    /// Look into one network namespace: a name under /run/netns, a path to
    /// a namespace file (/proc/PID/ns/net, a bind mount), or a PID.
    #[arg(
        short = 'N',
        long = "netns",
        value_name = "NAME|PATH|PID",
        conflicts_with = "all_netns"
    )]
    pub netns: Option<String>,

    /// Look into every network namespace on the host (a NETNS column).
    #[arg(long = "all-netns")]
    pub all_netns: bool,

    /// Output format: a table, one JSON document, JSON Lines events, CSV,
    /// or Prometheus metrics (the text exposition format, for
    /// node_exporter's textfile collector).
    #[arg(long = "format", value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// A summary instead of the sockets, as ss -s gives: sockets by protocol
    /// and state, connections by direction and by local port class,
    /// listeners, FTP sessions by mode and side. With --format json, the
    /// same as one object. Counts every socket the filters let through,
    /// listeners included (as -a).
    #[arg(short = 's', long = "summary", conflicts_with_all = ["watch", "ftp"])]
    pub summary: bool,

    /// Serve Prometheus metrics over HTTP at ADDR:PORT/metrics, collecting
    /// on each scrape (owners cached between scrapes). Only :PORT: on
    /// loopback (127.0.0.1). Read-only: GET and HEAD /metrics, nothing else.
    #[arg(
        long = "serve",
        value_name = "[ADDR]:PORT",
        value_parser = parse_serve,
        conflicts_with_all = ["watch", "summary", "ftp"]
    )]
    pub serve: Option<SocketAddr>,

    /// With --format prometheus or --serve: how many service ports get
    /// series of their own in sockwho_connections (the ports with the most
    /// connections); the others count as service_port="other".
    #[arg(long = "metrics-ports", value_name = "N", default_value_t = 50)]
    pub metrics_ports: usize,

    /// Refresh continuously (netstat's -c): full screen on a terminal, a
    /// table per refresh or JSON Lines events when piped.
    #[arg(short = 'c', long = "watch", visible_alias = "continuous")]
    pub watch: bool,

    /// Seconds between refreshes in watch mode (fractions allowed).
    #[arg(long = "interval", value_name = "SECS", default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,

    /// Stop after N refreshes (watch mode).
    #[arg(long = "count", value_name = "N", value_parser = parse_count)]
    pub count: Option<u64>,

    /// Only these states: names (established, time-wait, listening...) or
    /// ss's groups (connected, synchronized, bucket, big, all); comma-separated.
    #[arg(long = "state", value_name = "STATE[,STATE]", value_parser = StatesParser)]
    pub state: Vec<u32>,

    /// Only this local port: a number, a range LO-HI, or a service name (repeatable).
    #[arg(long = "sport", value_name = "PORT")]
    pub sport: Vec<String>,

    /// Only this remote port (repeatable).
    #[arg(long = "dport", value_name = "PORT")]
    pub dport: Vec<String>,

    /// Only this port at either end (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub port: Vec<String>,

    /// Only local addresses in this address or prefix (repeatable).
    #[arg(long = "src", value_name = "ADDR[/LEN]")]
    pub src: Vec<Prefix>,

    /// Only remote addresses in this address or prefix (repeatable).
    #[arg(long = "dst", value_name = "ADDR[/LEN]")]
    pub dst: Vec<Prefix>,

    /// Only sockets held by this process (repeatable).
    #[arg(long = "pid", value_name = "PID", value_parser = parse_pid)]
    pub pid: Vec<u32>,

    /// Only this direction: in, out, listen, unknown (repeatable).
    #[arg(long = "direction", value_name = "DIR", value_parser = filter::parse_direction)]
    pub direction: Vec<Direction>,

    /// Only sockets whose local port is of this class: well-known,
    /// registered, ephemeral (repeatable).
    #[arg(long = "class", value_name = "CLASS", value_parser = filter::parse_class)]
    pub class: Vec<PortClass>,

    /// Say on stderr what was read from the kernel.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// When to colour the table.
    #[arg(long = "color", value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Where to read sockets from: netlink (sock_diag), procfs (/proc/net),
    /// or auto (netlink, falling back to procfs).
    #[arg(long = "source", value_enum, default_value_t = SourceChoice::Auto)]
    pub source: SourceChoice,

    /// Read the filter expression from FILE (`-` for standard input), as
    /// ss -F does; it is appended to one given as arguments.
    #[arg(short = 'F', long = "filter", value_name = "FILE")]
    pub filter_file: Option<String>,

    /// An ss filter expression: `state established '( dport = :ssh or
    /// sport = :ssh )'`. See FILTER EXPRESSIONS in the man page.
    #[arg(value_name = "FILTER")]
    pub expression: Vec<String>,

    /// Print a shell completion script and exit.
    #[arg(long = "completions", value_enum, value_name = "SHELL")]
    pub completions: Option<Shell>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
    Prometheus,
}

/// `--serve [ADDR]:PORT`: an IP address (IPv6 in brackets) or `localhost`,
/// and a port; without an address, loopback. A name other than localhost is
/// refused rather than looked up: what a server listens on should not
/// depend on DNS.
fn parse_serve(text: &str) -> Result<SocketAddr, String> {
    let wrong =
        || format!("'{text}' is not ADDR:PORT or :PORT (e.g. :9823, 0.0.0.0:9823, [::1]:9823)");
    let (host, port) = text.rsplit_once(':').ok_or_else(wrong)?;
    let port: u16 = port.parse().map_err(|_| wrong())?;
    let addr = match host {
        "" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse()
            .map_err(|_| wrong())?,
    };
    Ok(SocketAddr::new(addr, port))
}

/// `--state`: `filter::parse_states`, with the names and groups offered to
/// shell completion.
#[derive(Debug, Clone, Copy)]
struct StatesParser;

/// The words `--state` completes to (it takes more: aliases, lists).
const STATE_WORDS: &[&str] = &[
    "established",
    "syn-sent",
    "syn-recv",
    "fin-wait-1",
    "fin-wait-2",
    "time-wait",
    "close",
    "close-wait",
    "last-ack",
    "listening",
    "closing",
    "unconnected",
    "all",
    "connected",
    "synchronized",
    "bucket",
    "big",
];

impl clap::builder::TypedValueParser for StatesParser {
    type Value = u32;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<u32, clap::Error> {
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(clap::error::ErrorKind::InvalidUtf8, "a state is ASCII").with_cmd(cmd)
        })?;
        filter::parse_states(text).map_err(|why| {
            let name = arg.map_or("--state".to_string(), |a| a.to_string());
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value '{text}' for '{name}': {why}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            STATE_WORDS
                .iter()
                .map(|w| clap::builder::PossibleValue::new(*w)),
        ))
    }
}

/// `--count N`: a positive whole number, said in sockwho's words.
fn parse_count(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{text}' is not a number of refreshes (1 or more)")),
    }
}

/// `--pid N`: a process ID.
fn parse_pid(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{text}' is not a process ID (a number from 1)")),
    }
}

fn parse_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.01..=86400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "'{text}' is not a number of seconds between 0.01 and 86400"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// `--source`: where sockets may be read from (`model::Source` says where
/// they were).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceChoice {
    Auto,
    Netlink,
    Procfs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The clap command, for the man page and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Writes the completion script for `shell` to `out`. `--netns` and `-N`
/// complete to the names under /run/netns, which clap's static scripts
/// cannot know: the generated file-name completion of those two options is
/// replaced by a listing of that directory, at completion time.
pub fn write_completions(shell: Shell, out: &mut dyn std::io::Write) {
    let (generator, file_names, netns_names) = match shell {
        Shell::Bash => (
            clap_complete::Shell::Bash,
            "COMPREPLY=($(compgen -f \"${cur}\"))",
            "COMPREPLY=($(compgen -W \"$(ls /run/netns 2>/dev/null)\" -- \"${cur}\"))",
        ),
        Shell::Zsh => (
            clap_complete::Shell::Zsh,
            ":_default",
            ":_path_files -W /run/netns",
        ),
        Shell::Fish => (
            clap_complete::Shell::Fish,
            "-r",
            "-r -f -a \"(ls /run/netns 2>/dev/null)\"",
        ),
    };
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut command(), "sockwho", &mut script);
    let script = String::from_utf8_lossy(&script);
    let mut netns_option = false;
    for line in script.split_inclusive('\n') {
        let names_netns = match shell {
            // the case arm's pattern is on the line before its reply
            Shell::Bash => {
                std::mem::replace(&mut netns_option, matches!(line.trim(), "--netns)" | "-N)"))
            }
            Shell::Zsh | Shell::Fish => {
                line.contains("netns=[") || line.contains("-N+[") || line.contains("-l netns ")
            }
        };
        let line = if names_netns {
            line.replacen(file_names, netns_names, 1)
        } else {
            line.to_string()
        };
        let _ = out.write_all(line.as_bytes());
    }
}

/// The man page's sections beside the options, as (heading, entries): an
/// entry is a term and its text, or a paragraph when the term is empty.
/// `tests/integration/manual.rs` renders them after clap's own sections.
pub const MAN_SECTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "FILTER EXPRESSIONS",
        &[
            (
                "",
                "After the options, an expression in ss's language (iproute2's misc/ssfilter.y) \
                 selects sockets; -F FILE reads it from a file (- for standard input), after any \
                 given as arguments. It combines with the options' filters (AND).",
            ),
            (
                "state NAME, exclude NAME",
                "In front of the expression: the states to show (they replace what -a and -l \
                 ask for), or not to show. Names as --state takes them, and ss's groups all, \
                 connected, synchronized, bucket, big.",
            ),
            (
                "src PREFIX[:PORT], dst PREFIX[:PORT]",
                "The local or remote address in an address or prefix (10.0.0.0/8, [::1], \
                 fe80::/10, * for any), and its port.",
            ),
            (
                "sport OP PORT, dport OP PORT",
                "The local or remote port: = == eq, != ne neq, < lt, <= le, > gt, >= ge; \
                 a number, :number, or a service name.",
            ),
            (
                "autobound, dev NAME, fwmark MARK[/MASK], cgroup PATH",
                "A port the kernel chose (and inside ip_local_port_range), the bound device, \
                 the mark, the cgroup. Only the kernel's sock_diag can test these: with \
                 --source procfs or a replayed dump they are a usage error.",
            ),
            (
                "and && , or ||, not !, ( )",
                "As in ss, and and or are read from left to right with equal weight: \
                 a or b and c is (a or b) and c. (ss's man page says and binds tighter; ss does \
                 not do so, and sockwho does what ss does.) A socket with no peer counts as \
                 connected to 0.0.0.0:0 or [::]:0, as in ss.",
            ),
            (
                "",
                "Ports and addresses are compiled into sock_diag bytecode laid out as ss lays it \
                 out, so the kernel sends only matching sockets; everything is tested again in \
                 user space. Two differences from ss, on purpose: an IPv4-mapped address is the \
                 IPv4 address (src ::/0 does not hold 127.0.0.1 seen through a dual-stack \
                 socket), and not autobound is the opposite of autobound.",
            ),
        ],
    ),
    (
        "WATCH MODE",
        &[
            (
                "",
                "With -c on a terminal, an interactive view: counts by state, direction and port \
                 class, rows N-M of T, the sort, the filter, the columns hidden in a narrow \
                 window (whole columns, never part of a field). New rows are marked +; rows gone \
                 or closed stay in place, dimmed and marked -, for 3 refreshes. Age is how long \
                 watch mode has seen the connection. Piped, or with --format, a table or document \
                 per refresh.",
            ),
            (
                "Up, Down, k, j, PgUp, PgDn, Home, End, g, G, mouse wheel",
                "Scroll.",
            ),
            (
                "s, r",
                "Sort by the next key (state, local port, remote address, direction, queue, age); \
                 reverse the sort.",
            ),
            (
                "/",
                "Type a filter: the options --state --sport --dport --port --src --dst --pid \
                 --direction --class --ftp, an ss expression, or a port alone. Enter applies it, \
                 Esc cancels, an empty one clears it; a bad one is said in the status line.",
            ),
            ("space, f, ?", "Pause; the FTP sessions pane; the keys."),
            ("q, Ctrl-C", "Quit."),
        ],
    ),
    (
        "EXAMPLES",
        &[
            (
                "sockwho -tulpn",
                "What listens, and which program holds it: netstat's columns in netstat's \
                 order, then sockwho's Dir,Ports,FTP field.",
            ),
            (
                "sockwho -tanp | awk '$6 == \"ESTABLISHED\" {print $5}'",
                "Scripts written for netstat keep working: the same fields in the same places.",
            ),
            (
                "sockwho -tn state established '( dport = :ssh or sport = :ssh )'",
                "ss's filter expressions; ports and addresses are tested in the kernel.",
            ),
            (
                "sockwho -tan --sport 21 --direction in",
                "Connections accepted on port 21.",
            ),
            (
                "sockwho --ftp",
                "Each FTP session: client and server, the data connections, who opened each, \
                 active or passive mode, and what a firewall on each side must allow.",
            ),
            (
                "sockwho -tan -c --interval 0.5",
                "Watch mode: an interactive view on a terminal; ? lists the keys, q quits.",
            ),
            (
                "sockwho -tan -c --format jsonl | jq -c 'select(.event == \"added\") | .socket.remote'",
                "A stream of events for scripts: every connection that appears.",
            ),
            (
                "sockwho --format json | jq '.sockets[] | select(.direction == \"outbound\" and .remote.class == \"well-known\")'",
                "Outbound connections to well-known ports, from the JSON document.",
            ),
            (
                "sockwho -ti --dport 443",
                "rtt, cwnd, retransmits and rates of each connection to port 443, in a line \
                 under its row as ss -i prints it (sockwho's -i is ss's: netstat's -i lists \
                 interfaces).",
            ),
            (
                "sockwho -tni --format json | jq '.sockets[] | select(.tcp_info.total_retrans > 0) | [.remote.addr, .tcp_info.rtt_us]'",
                "Connections that retransmitted, with their round-trip time in microseconds.",
            ),
            (
                "sockwho --all-netns -tln",
                "Listeners in every network namespace of the host (as root), with a NETNS column.",
            ),
        ],
    ),
    (
        "ENVIRONMENT",
        &[
            (
                "NO_COLOR",
                "When set and not empty, no colour (unless --color always).",
            ),
            ("TERM", "When dumb, no colour (unless --color always)."),
            (
                "SOCKWHO_PROC_ROOT",
                "Read a saved /proc tree instead of /proc: its net/tcp, net/tcp6, net/udp, \
                 net/udp6 and sys/net/ipv4/ip_local_port_range and ip_local_reserved_ports. \
                 Nothing is read from the live kernel then (no netlink, no conntrack, no \
                 namespace is entered).",
            ),
            (
                "SOCKWHO_DIAG_FILE",
                "Read sockets from a raw sock_diag dump instead of the kernel: the file \
                 ss -D FILE writes (iproute2 replays it with TCPDIAG_FILE). As with ss, its \
                 sockets are TCP; unlike ss, every dump in the file is read, not only the \
                 first. Filters run in user space.",
            ),
            (
                "SOCKWHO_ETC_ROOT",
                "Read services and passwd under this directory instead of /etc.",
            ),
            (
                "SOCKWHO_RUN_ROOT",
                "Look for named namespaces under this directory's netns/ and docker/netns/ \
                 instead of /run.",
            ),
        ],
    ),
    (
        "EXIT STATUS",
        &[
            (
                "0",
                "Success, also when the reader of the output goes away (sockwho -an | head -1).",
            ),
            (
                "1",
                "The sockets could not be read or the output could not be written (netlink \
                 error, unreadable /proc, a full disk).",
            ),
            ("2", "Usage error: an unknown option or a bad value."),
        ],
    ),
    (
        "SEE ALSO",
        &[(
            "",
            "netstat(8), ss(8), lsof(8), conntrack(8), ip-netns(8), nft(8)",
        )],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_takes_a_port_and_defaults_to_loopback() {
        let ok = |text: &str| parse_serve(text).map(|a| a.to_string());
        assert_eq!(ok(":9823").as_deref(), Ok("127.0.0.1:9823"));
        assert_eq!(ok("localhost:9823").as_deref(), Ok("127.0.0.1:9823"));
        assert_eq!(ok("0.0.0.0:9823").as_deref(), Ok("0.0.0.0:9823"));
        assert_eq!(ok("[::]:9823").as_deref(), Ok("[::]:9823"));
        assert_eq!(ok("[::1]:9823").as_deref(), Ok("[::1]:9823"));
        for bad in [
            "9823",
            ":",
            ":99999",
            "example.com:80",
            "1.2.3:80",
            "[::1:80",
        ] {
            assert!(parse_serve(bad).is_err(), "{bad}");
        }
    }
}
