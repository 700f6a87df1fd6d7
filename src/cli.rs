//! The command line, as clap derive types. Nothing else in sockwho touches
//! clap; `config.rs` turns these raw options into a resolved configuration.

use clap::{Parser, ValueEnum};

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
#[command(name = "sockwho", version, after_help = AFTER_HELP)]
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
    #[arg(short = 'p', long = "program")]
    pub program: bool,

    /// Wide output; accepted for netstat compatibility: nothing is truncated.
    #[arg(short = 'W', long = "wide")]
    pub wide: bool,

    /// Show the FTP sessions alone, grouped, each explained: who is client
    /// and server, who opened each data connection, the mode, and what a
    /// firewall on each side must allow.
    #[arg(long = "ftp")]
    pub ftp: bool,

    /// Treat PORT as an FTP control port, beside 21 and 990 (repeatable).
    #[arg(long = "ftp-port", value_name = "PORT")]
    pub ftp_port: Vec<u16>,

    /// Look into one network namespace: a name under /run/netns, a path to
    /// a namespace file (/proc/PID/ns/net, a bind mount), or a PID.
    #[arg(
        long = "netns",
        value_name = "NAME|PATH|PID",
        conflicts_with = "all_netns"
    )]
    pub netns: Option<String>,

    /// Look into every network namespace on the host (a NETNS column).
    #[arg(long = "all-netns")]
    pub all_netns: bool,

    /// Output format.
    #[arg(long = "format", value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// When to colour the table.
    #[arg(long = "color", value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Where to read sockets from: netlink (sock_diag), procfs (/proc/net),
    /// or auto (netlink, falling back to procfs).
    #[arg(long = "source", value_enum, default_value_t = Source::Auto)]
    pub source: Source,

    /// Print a shell completion script and exit.
    #[arg(long = "completions", value_enum, value_name = "SHELL")]
    pub completions: Option<Shell>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
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

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: Shell, out: &mut dyn std::io::Write) {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut command(), "sockwho", out);
}
