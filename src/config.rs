//! Options resolved once: what to dump, what to show, how to print it. The
//! environment (terminal, `NO_COLOR`, `TERM`, the replay roots) is read here
//! and nowhere else. No file is read here: service names for port filters
//! come through the lookup the caller passes.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::cli::{Cli, ColorChoice, Format, SourceChoice};
use crate::collect::{ExprFilter, Inputs, KernelFilter, PerProto, Request};
use crate::filter::expr::{self, Query};
use crate::filter::{Filter, PortSpec};
use crate::model::{Family, Proto, State};

/// Which sockets the user asked to see (netstat's default, `-l`, `-a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Everything but listeners and unconnected UDP sockets.
    Connected,
    Listening,
    All,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub protos: Vec<Proto>,
    pub families: Vec<Family>,
    pub show: Show,
    /// Ports as numbers, not service names (`-n`, `--numeric-ports`).
    pub numeric_ports: bool,
    /// Users as uids, not names (`-n`, `--numeric-users`).
    pub numeric_users: bool,
    /// No header lines (`-H`).
    pub no_header: bool,
    pub resolve: bool,
    pub extend: bool,
    pub timers: bool,
    pub program: bool,
    pub format: Format,
    /// `--ftp`: the sessions view.
    pub ftp_view: bool,
    pub ftp_ports: Vec<u16>,
    pub filter: Filter,
    pub watch: bool,
    pub interval: std::time::Duration,
    pub count: Option<u64>,
    pub verbose: bool,
    pub stdout_is_tty: bool,
    pub netns: Option<String>,
    pub all_netns: bool,
    pub color: bool,
    pub source: SourceChoice,
    /// Where the outside world is read from (live, or replayed).
    pub inputs: Inputs,
    /// An ss filter expression (arguments, `-F FILE`): its state words are
    /// in `filter.states`, its family in `families`.
    pub expression: Option<Query>,
    /// `-s`: the summary instead of the sockets.
    pub summary: bool,
    /// `--serve`: where to serve the metrics.
    pub serve: Option<std::net::SocketAddr>,
    /// `--metrics-ports`: service ports with series of their own.
    pub metrics_ports: usize,
    /// `-i`: each TCP socket's `tcp_info`, asked of the kernel, where the
    /// output shows sockets (the table, JSON, JSON Lines, CSV).
    pub tcp_info: bool,
}

/// The parts of the process environment that change what sockwho does.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub stdout_is_tty: bool,
    pub no_color: Option<String>,
    pub term: Option<String>,
    pub inputs: Inputs,
}

impl Environment {
    pub fn read() -> Environment {
        let path = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let live = Inputs::live();
        Environment {
            stdout_is_tty: std::io::stdout().is_terminal(),
            no_color: std::env::var("NO_COLOR").ok(),
            term: std::env::var("TERM").ok(),
            inputs: Inputs {
                proc: path("SOCKWHO_PROC_ROOT").unwrap_or(live.proc),
                etc: path("SOCKWHO_ETC_ROOT").unwrap_or(live.etc),
                run: path("SOCKWHO_RUN_ROOT").unwrap_or(live.run),
                diag_file: path("SOCKWHO_DIAG_FILE"),
            },
        }
    }
}

impl Config {
    /// Resolves the options; `service` names ports (`--sport ssh`). `Err` is
    /// a usage error (a port name that `service` does not know).
    pub fn new(
        cli: &Cli,
        env: &Environment,
        service: impl Fn(&str) -> Option<u16>,
    ) -> Result<Config, String> {
        let protos = match (cli.tcp, cli.udp) {
            (true, false) => vec![Proto::Tcp],
            (false, true) => vec![Proto::Udp],
            _ => vec![Proto::Tcp, Proto::Udp],
        };
        let mut words = cli.expression.clone();
        if let Some(file) = &cli.filter_file {
            words.extend(expr::read_filter_file(file).map_err(|e| format!("filter: {e}"))?);
        }
        let expression = if words.is_empty() {
            None
        } else {
            Some(expr::parse_with(&words, &service).map_err(|e| {
                // netstat's `-c 2`: the 2 is no filter
                match words.first().filter(|w| w.parse::<f64>().is_ok()) {
                    Some(n) if cli.watch => format!(
                        "unexpected argument '{n}' (-c takes no value: for a refresh every {n} seconds, -c --interval {n})"
                    ),
                    _ => format!("filter: {e}"),
                }
            })?)
        };
        let families = match (
            cli.inet,
            cli.inet6,
            expression.as_ref().and_then(|q| q.family),
        ) {
            (_, _, Some(family)) => vec![family],
            (true, false, None) => vec![Family::Inet],
            (false, true, None) => vec![Family::Inet6],
            _ => vec![Family::Inet, Family::Inet6],
        };
        let show = if cli.all {
            Show::All
        } else if cli.listening {
            Show::Listening
        } else {
            Show::Connected
        };
        // Counts for machines and people (metrics, the summary) are of every
        // socket, listeners too, unless -l or --state narrows them.
        let counts = cli.summary || cli.serve.is_some() || cli.format == Format::Prometheus;
        let show = if counts && !cli.listening {
            Show::All
        } else {
            show
        };
        usage_of_counts(cli)?;
        let color = match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                env.stdout_is_tty
                    && env.no_color.as_deref().is_none_or(str::is_empty)
                    && env.term.as_deref() != Some("dumb")
            }
        };
        let ports = |list: &[String]| -> Result<Vec<PortSpec>, String> {
            // ss writes ports as `:22`
            list.iter()
                .map(|p| PortSpec::parse(p.strip_prefix(':').unwrap_or(p), &service))
                .collect()
        };
        // the expression's state words replace what -a and -l ask for, and
        // narrow --state
        let flag_states = cli.state.iter().copied().reduce(|a, b| a | b);
        let states = match (flag_states, expression.as_ref().and_then(|q| q.states)) {
            (Some(a), Some(b)) => Some(a & b),
            (a, b) => a.or(b),
        };
        let filter = Filter {
            states,
            sport: ports(&cli.sport)?,
            dport: ports(&cli.dport)?,
            port: ports(&cli.port)?,
            src: cli.src.clone(),
            dst: cli.dst.clone(),
            pid: cli.pid.clone(),
            direction: cli.direction.clone(),
            class: cli.class.clone(),
            ftp: cli.ftp && cli.format != Format::Table,
        };
        Ok(Config {
            protos,
            families,
            show,
            numeric_ports: cli.numeric || cli.numeric_ports,
            numeric_users: cli.numeric || cli.numeric_users,
            no_header: cli.no_header,
            resolve: cli.resolve,
            extend: cli.extend,
            timers: cli.timers,
            program: cli.program,
            format: cli.format,
            ftp_view: cli.ftp && cli.format == Format::Table,
            filter,
            watch: cli.watch,
            interval: std::time::Duration::from_secs_f64(cli.interval),
            count: cli.count,
            verbose: cli.verbose,
            stdout_is_tty: env.stdout_is_tty,
            ftp_ports: cli.ftp_port.clone(),
            netns: cli.netns.clone(),
            all_netns: cli.all_netns,
            color: color && cli.format == Format::Table,
            source: cli.source,
            inputs: env.inputs.clone(),
            expression,
            summary: cli.summary,
            serve: cli.serve,
            metrics_ports: cli.metrics_ports,
            // the summary, the FTP view and the metrics show no socket's
            tcp_info: cli.info && !counts && !(cli.ftp && cli.format == Format::Table),
        })
    }

    /// Whether the output names namespaces (`--netns`, `--all-netns`).
    pub fn names_namespaces(&self) -> bool {
        self.netns.is_some() || self.all_netns
    }

    /// What to ask the collectors for: the states to dump and, with port
    /// or address filters, the programs the kernel runs.
    pub fn request(&self) -> Request {
        let per_proto = |f: &dyn Fn(Proto) -> u32| PerProto {
            tcp: f(Proto::Tcp),
            udp: f(Proto::Udp),
        };
        let kernel_filter = self.filter.has_endpoint_filters().then(|| KernelFilter {
            states: per_proto(&|p| self.wanted_states(p)),
            inet: crate::collect::bytecode::compile(&self.filter, Family::Inet),
            inet6: crate::collect::bytecode::compile(&self.filter, Family::Inet6),
        });
        // with an expression, the kernel runs its program (ss's) and the
        // flags' filters are applied in user space only
        let expr = self.expression.as_ref().and_then(|q| {
            Some(ExprFilter {
                expr: q.expr.clone()?,
                states: per_proto(&|p| q.dump_states(self.wanted_states(p))),
            })
        });
        let kernel_filter = kernel_filter.filter(|_| expr.is_none());
        Request {
            protos: self.protos.clone(),
            families: self.families.clone(),
            states: per_proto(&|p| self.dump_states(p)),
            kernel_filter,
            expr,
            source: self.source,
            verbose: self.verbose,
            tcp_info: self.tcp_info,
        }
    }

    /// The state bits of `proto` the user wants to see.
    pub fn wanted_states(&self, proto: Proto) -> u32 {
        let listening = match proto {
            Proto::Tcp => State::Listen.bit(),
            Proto::Udp => State::Close.bit(),
        };
        let all = match proto {
            Proto::Tcp => State::ALL.iter().map(|s| s.bit()).fold(0, |a, b| a | b),
            Proto::Udp => State::Established.bit() | State::Close.bit(),
        };
        // --state says it outright; otherwise -a and -l do
        if let Some(states) = self.filter.states {
            return states & all;
        }
        match self.show {
            Show::All => all,
            Show::Listening => listening,
            Show::Connected => all & !listening,
        }
    }

    /// The state bits to ask the kernel for: what is wanted, plus listeners,
    /// without which a connection's direction and a port's `listening`
    /// cannot be told. Unconnected UDP sockets are few; TCP listeners are
    /// walked from their own small hash table.
    pub fn dump_states(&self, proto: Proto) -> u32 {
        match proto {
            // The FTP view shows every part of a session, whatever -a or -l say.
            Proto::Tcp if self.ftp_view => State::ALL.iter().map(|s| s.bit()).fold(0, |a, b| a | b),
            Proto::Tcp => self.wanted_states(proto) | State::Listen.bit(),
            Proto::Udp => State::Established.bit() | State::Close.bit(),
        }
    }

    pub fn shows(&self, proto: Proto, state: State) -> bool {
        self.wanted_states(proto) & state.bit() != 0
    }
}

/// The formats the summary, the metrics and the server take: the rest make
/// no sense together, and are said to be a usage error rather than ignored.
fn usage_of_counts(cli: &Cli) -> Result<(), String> {
    if cli.summary && !matches!(cli.format, Format::Table | Format::Json) {
        return Err("--summary is written as a table or with --format json".to_string());
    }
    if cli.serve.is_some() && !matches!(cli.format, Format::Table | Format::Prometheus) {
        return Err("--serve serves the prometheus format only".to_string());
    }
    if cli.watch && cli.format == Format::Prometheus {
        return Err(
            "--format prometheus is one look; to collect on every scrape, --serve ADDR:PORT"
                .to_string(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str], env: &Environment) -> Config {
        let mut argv = vec!["sockwho"];
        argv.extend_from_slice(args);
        Config::new(&Cli::parse_from(argv), env, |_| None).unwrap()
    }

    /// -i asks the kernel for tcp_info only where the output shows sockets.
    #[test]
    fn tcp_info_is_asked_for_only_with_i_and_a_socket_output() {
        let env = Environment::default();
        let asked = |args: &[&str]| {
            let cfg = config(args, &env);
            assert_eq!(cfg.tcp_info, cfg.request().tcp_info);
            cfg.tcp_info
        };
        for args in [
            &["-ti"][..],
            &["--info", "--format", "json"],
            &["-i", "--format", "jsonl", "-c"],
            &["-i", "--format", "csv"],
            &["-i", "--ftp", "--format", "json"],
        ] {
            assert!(asked(args), "{args:?}");
        }
        for args in [
            &["-t"][..],
            &["--format", "json"],
            &["-si"],
            &["-i", "--ftp"],
            &["-i", "--format", "prometheus"],
            &["-i", "--serve", ":9823"],
        ] {
            assert!(!asked(args), "{args:?}");
        }
    }

    #[test]
    fn colour_follows_tty_no_color_and_term() {
        let tty = Environment {
            stdout_is_tty: true,
            ..Default::default()
        };
        assert!(config(&[], &tty).color);
        assert!(!config(&[], &Environment::default()).color);
        let no_color = Environment {
            no_color: Some("1".into()),
            ..tty.clone()
        };
        assert!(!config(&[], &no_color).color);
        let empty_no_color = Environment {
            no_color: Some(String::new()),
            ..tty.clone()
        };
        assert!(config(&[], &empty_no_color).color);
        let dumb = Environment {
            term: Some("dumb".into()),
            ..tty.clone()
        };
        assert!(!config(&[], &dumb).color);
        assert!(config(&["--color", "always"], &Environment::default()).color);
        assert!(!config(&["--color", "never"], &tty).color);
        assert!(!config(&["--format", "json", "--color", "always"], &tty).color);
    }

    #[test]
    fn netstat_flags_combine() {
        let env = Environment::default();
        let c = config(&["-tulpn"], &env);
        assert_eq!(c.protos, vec![Proto::Tcp, Proto::Udp]);
        assert_eq!(c.show, Show::Listening);
        assert!(c.program && c.numeric_ports && c.numeric_users);
        assert!(c.shows(Proto::Tcp, State::Listen));
        assert!(!c.shows(Proto::Tcp, State::Established));
        assert!(c.shows(Proto::Udp, State::Close));
        let c = config(&["-tan"], &env);
        assert_eq!(c.protos, vec![Proto::Tcp]);
        assert!(c.shows(Proto::Tcp, State::TimeWait) && c.shows(Proto::Tcp, State::Listen));
        let c = config(&["-t"], &env);
        assert!(!c.shows(Proto::Tcp, State::Listen));
        assert!(c.dump_states(Proto::Tcp) & State::Listen.bit() != 0);
        let c = config(&["-u6"], &env);
        assert_eq!(
            (c.protos.as_slice(), c.families.as_slice()),
            (&[Proto::Udp][..], &[Family::Inet6][..])
        );
        assert!(!c.shows(Proto::Udp, State::Close));
    }

    #[test]
    fn counts_are_of_every_socket_unless_listening() {
        let env = Environment::default();
        for args in [
            &["-s"][..],
            &["--format", "prometheus"],
            &["--serve", ":9823"],
            &["-s", "-t"],
        ] {
            assert_eq!(config(args, &env).show, Show::All, "{args:?}");
        }
        assert_eq!(config(&["-s", "-l"], &env).show, Show::Listening);
        assert_eq!(config(&["-t"], &env).show, Show::Connected);
        let c = config(&["--serve", ":9823", "--metrics-ports", "7"], &env);
        assert_eq!(
            c.serve.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:9823")
        );
        assert_eq!(c.metrics_ports, 7);
        assert_eq!(config(&[], &env).metrics_ports, 50);
    }

    #[test]
    fn counts_refuse_the_formats_they_cannot_write() {
        let env = Environment::default();
        let refused = |args: &[&str]| {
            let mut argv = vec!["sockwho"];
            argv.extend_from_slice(args);
            Config::new(&Cli::parse_from(argv), &env, |_| None).is_err()
        };
        assert!(refused(&["-s", "--format", "csv"]));
        assert!(refused(&["-s", "--format", "prometheus"]));
        assert!(refused(&["--serve", ":1", "--format", "json"]));
        assert!(refused(&["-c", "--format", "prometheus"]));
        assert!(!refused(&["-s", "--format", "json"]));
        assert!(!refused(&["--serve", ":1", "--format", "prometheus"]));
    }
}
