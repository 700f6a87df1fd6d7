//! The filters a user types: `filter::parse_states`, `PortSpec::parse`,
//! `Prefix`'s `FromStr`, `parse_direction` and `parse_class` on any string,
//! and a whole command line (the input split at NUL bytes) through clap and
//! `Config::new`, whose request compiles the kernel's bytecode.
//!
//! Besides "no panic": what parses is well formed and reads back the same
//! from its own printed form, names are matched without regard to ASCII
//! case, and the programs a configuration sends pass the kernel's audit.

#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use sockwho::cli::Cli;
use sockwho::collect::bytecode::kernel::audit;
use sockwho::config::{Config, Environment};
use sockwho::filter::{PortSpec, Prefix, parse_class, parse_direction, parse_states};
use sockwho_fuzz::all_states;

/// Service names as a services file would give them, `-` in them too.
fn service(name: &str) -> Option<u16> {
    match name {
        "ssh" => Some(22),
        "ftp-data" => Some(20),
        "x-1" => Some(7),
        "http" => Some(80),
        _ => None,
    }
}

fn states(s: &str) {
    let Ok(mask) = parse_states(s) else {
        return;
    };
    assert!(mask != 0 && mask & !all_states() == 0, "{s:?}: {mask:#x}");
    assert_eq!(parse_states(&s.to_ascii_uppercase()), Ok(mask), "{s:?}");
    assert_eq!(parse_states(&s.replace('-', "_")), Ok(mask), "{s:?}");
}

fn ports(s: &str) {
    let Ok(p) = PortSpec::parse(s, service) else {
        return;
    };
    assert!(p.lo <= p.hi, "{s:?}: {p:?}");
    assert!(p.contains(p.lo) && p.contains(p.hi));
    let printed = if p.lo == p.hi {
        p.lo.to_string()
    } else {
        format!("{}-{}", p.lo, p.hi)
    };
    assert_eq!(PortSpec::parse(&printed, |_| None), Ok(p), "{s:?}");
    if let Ok(n) = s.parse::<u16>() {
        assert_eq!(p, PortSpec { lo: n, hi: n }, "{s:?}");
    }
}

fn prefix(s: &str) {
    let Ok(p) = s.parse::<Prefix>() else {
        return;
    };
    assert_eq!(p, p.canonical(), "{s:?} is kept canonical");
    let max = if p.addr.is_ipv4() { 32 } else { 128 };
    assert!(p.len <= max, "{s:?}: {p:?}");
    for printed in [
        format!("{}/{}", p.addr, p.len),
        format!("[{}]/{}", p.addr, p.len),
    ] {
        assert_eq!(
            printed.parse::<Prefix>(),
            Ok(p),
            "{s:?} printed {printed:?}"
        );
    }
    // a prefix holds its own address, but for a mapped one shorter than /96,
    // which is IPv6 while mapped addresses compare as IPv4
    let mapped = match p.addr {
        std::net::IpAddr::V6(a) => a.to_ipv4_mapped().is_some(),
        std::net::IpAddr::V4(_) => false,
    };
    if !mapped {
        assert!(p.contains(p.addr), "{s:?}: {p:?}");
    }
}

fn words(s: &str) {
    if let Ok(d) = parse_direction(s) {
        assert_eq!(parse_direction(&s.to_ascii_uppercase()), Ok(d), "{s:?}");
    }
    if let Ok(c) = parse_class(s) {
        assert_eq!(parse_class(&s.to_ascii_uppercase()), Ok(c), "{s:?}");
    }
}

/// The input as a command line: arguments between NUL bytes.
fn command_line(data: &[u8]) {
    let args = std::iter::once("sockwho".to_string()).chain(
        data.split(|&b| b == 0)
            .take(24)
            .map(|a| String::from_utf8_lossy(a).into_owned()),
    );
    let Ok(cli) = Cli::try_parse_from(args) else {
        return;
    };
    let Ok(cfg) = Config::new(&cli, &Environment::default(), service) else {
        return;
    };
    let request = cfg.request();
    if let Some(kf) = &request.kernel_filter {
        for bc in [&kf.inet, &kf.inet6].into_iter().flatten() {
            if let Err(e) = audit(bc) {
                panic!("the kernel would refuse {:?}: {e}: {bc:?}", cfg.filter);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Each parser on the whole input, then on each comma-separated piece,
    // the way clap hands them over one value at a time.
    for s in std::iter::once(&*text).chain(text.split(',').take(8)) {
        states(s);
        ports(s);
        prefix(s);
        words(s);
    }
    command_line(data);
    expression(&text);
});

/// ss's filter expressions: what parses prints back to an expression that
/// parses to the same one, and compiles to bytecode the kernel's audit takes.
fn expression(text: &str) {
    use sockwho::collect::bytecode::{compile_expr_in, kernel};
    use sockwho::filter::expr;
    use sockwho::model::Family;
    let split = |t: &str| t.split_whitespace().map(String::from).collect::<Vec<_>>();
    let Ok(query) = expr::parse(&split(text)) else {
        return;
    };
    let Some(e) = &query.expr else {
        return;
    };
    let printed = e.to_string();
    let again = expr::parse(&split(&printed))
        .unwrap_or_else(|err| panic!("{printed:?} does not parse again: {err}"));
    assert_eq!(
        again.expr.as_ref().map(ToString::to_string).as_deref(),
        Some(printed.as_str())
    );
    for family in [Family::Inet, Family::Inet6] {
        if let Some(bc) = compile_expr_in(e, family, sockwho_fuzz::all_states()).bytecode {
            kernel::audit(&bc).unwrap_or_else(|why| panic!("{printed}: {why}"));
        }
    }
}
