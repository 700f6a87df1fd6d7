//! The kernel's side of port and address filters: a `Filter` built from
//! the input (ports, port ranges, IPv4, IPv6 and IPv4-mapped prefixes,
//! several of each, and now and then states), compiled with
//! `bytecode::compile` for each family, checked with the model of the
//! kernel's audit, then run with the model of its interpreter on sockets
//! built from the input, their ends near the filter's boundaries.
//!
//! The contract (src/collect/bytecode/mod.rs): the program passes the
//! audit, and never rejects a socket that `Filter::matches_socket` accepts;
//! it may let more through, since user space filters again (it does with
//! `states`, which the dump's state mask applies instead). The unit tests
//! hold it to exact agreement on filters without states; so does this
//! target when `SOCKWHO_FUZZ_EXACT=1` is set.
//!
//! The input's bytes are also run as a program of their own: the models
//! must not panic on anything.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sockwho::collect::bytecode::compile;
use sockwho::collect::bytecode::kernel::{audit, entry, run};
use sockwho::filter::{Filter, PortSpec, Prefix};
use sockwho::model::{Family, Socket};
use sockwho_fuzz::{Result, Unstructured, addr, all_states, port, socket};

static EXACT: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("SOCKWHO_FUZZ_EXACT").is_some_and(|v| v == "1"));

fn port_specs(u: &mut Unstructured<'_>) -> Result<Vec<PortSpec>> {
    let n = u.int_in_range(0..=4u8)?;
    (0..n)
        .map(|_| {
            let a = port(u, &[])?;
            Ok(if u.arbitrary()? {
                PortSpec { lo: a, hi: a }
            } else {
                let b = port(u, &[])?;
                PortSpec {
                    lo: a.min(b),
                    hi: a.max(b),
                }
            })
        })
        .collect()
}

fn prefixes(u: &mut Unstructured<'_>) -> Result<Vec<Prefix>> {
    let n = u.int_in_range(0..=4u8)?;
    (0..n)
        .map(|_| {
            let addr = match u.int_in_range(0..=3u8)? {
                0 => addr(u, Family::Inet, &[])?,
                1 => addr(u, Family::Inet6, &[])?,
                2 => IpAddr::V6(Ipv4Addr::from(u.arbitrary::<u32>()?).to_ipv6_mapped()),
                // 0/N, ::/N, ::ffff:0:0/N: they hold a missing remote end
                _ => *u.choose(&[
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0)),
                ])?,
            };
            let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
            let len = u.int_in_range(0..=max)?;
            // as `Prefix::from_str` gives it
            Ok(Prefix { addr, len }.canonical())
        })
        .collect()
}

fn filter(u: &mut Unstructured<'_>) -> Result<Filter> {
    Ok(Filter {
        sport: port_specs(u)?,
        dport: port_specs(u)?,
        port: port_specs(u)?,
        src: prefixes(u)?,
        dst: prefixes(u)?,
        states: if u.ratio(1, 8)? {
            Some(u.arbitrary::<u32>()? & all_states())
        } else {
            None
        },
        ..Filter::default()
    })
}

/// Addresses and ports at the filter's edges, for sockets to sit on.
fn edges(f: &Filter) -> (Vec<IpAddr>, Vec<u16>) {
    let addrs = f.src.iter().chain(&f.dst).map(|p| p.addr).collect();
    let ports = f
        .sport
        .iter()
        .chain(&f.dport)
        .chain(&f.port)
        .flat_map(|p| [p.lo, p.hi])
        .collect();
    (addrs, ports)
}

fn check(u: &mut Unstructured<'_>) -> Result<()> {
    let f = filter(u)?;
    let (addrs, ports) = edges(&f);
    let n = u.int_in_range(1..=8u8)?;
    let sockets: Vec<Socket> = (0..n)
        .map(|_| socket(u, &addrs, &ports))
        .collect::<Result<_>>()?;
    for family in [Family::Inet, Family::Inet6] {
        let program = compile(&f, family);
        if !f.has_endpoint_filters() {
            assert_eq!(program, None, "nothing to filter, yet a program: {f:?}");
        }
        if let Some(bc) = &program {
            // nla_len is a u16 and counts its 4-byte header
            assert!(bc.len() <= usize::from(u16::MAX) - 4, "{}", bc.len());
            if let Err(e) = audit(bc) {
                panic!("the kernel would refuse the program for {family:?}: {e}\n{f:?}\n{bc:?}");
            }
        }
        for s in sockets.iter().filter(|s| s.family == family) {
            let user = f.matches_socket(s);
            let kernel = program.as_deref().is_none_or(|bc| run(bc, &entry(s)));
            assert!(
                kernel || !user,
                "the kernel would drop a socket the filter keeps ({family:?}):\n\
                 socket {:?} -> {:?}\n{f:?}\n{program:?}",
                s.local,
                s.remote
            );
            if *EXACT && f.states.is_none() {
                assert_eq!(
                    kernel, user,
                    "the kernel lets through a socket the filter drops ({family:?}):\n\
                     socket {:?} -> {:?}\n{f:?}\n{program:?}",
                    s.local, s.remote
                );
            }
        }
    }
    Ok(())
}

/// A socket to run the input's bytes on, as a program.
static PROBE: LazyLock<Socket> = LazyLock::new(|| {
    socket(&mut Unstructured::new(&[7; 64]), &[], &[]).expect("enough bytes for a socket")
});

fuzz_target!(|data: &[u8]| {
    // Any bytes as a program: the models end, and do not panic, whatever
    // the bytes (the kernel runs only what its audit passed).
    let _ = audit(data);
    let _ = run(data, &entry(&PROBE));
    let _ = check(&mut Unstructured::new(data));
});
