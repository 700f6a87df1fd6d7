//! The classifier and the renderers alone, on a synthetic snapshot of
//! 200,000 sockets built in code, so their cost is watched apart from the
//! kernel's (`benches/compare.py` times the whole program on real sockets).
//!
//! `cargo bench --bench pipeline`
//!
//! The snapshot is what `sockwho -an` would collect on a busy host: 100
//! listeners (the load generator's 32 on 127.1.0.1-4:10000-10007, well-known
//! and registered ports on wildcards, IPv4 and IPv6), 99,000 loopback
//! connections with both ends (198,000 sockets, a tenth of them over `::1`),
//! 1,850 TIME_WAIT sockets and 50 UDP sockets: 200,000 in all.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use clap::Parser;
use sockwho::classify::{self, Classified};
use sockwho::cli::Cli;
use sockwho::collect::names::Names;
use sockwho::config::{Config, Environment};
use sockwho::model::{
    Endpoint, PortRange, Proto, Snapshot, Socket, Source, State, Timer, TimerKind,
};
use sockwho::render::{json, metrics, palette::Palette, summary, table::Table};
use sockwho::view::Part;

const LISTENERS: usize = 100;
const PAIRS: usize = 99_000;
const TIME_WAIT: usize = 1_850;
const UDP: usize = 50;
const TOTAL: usize = LISTENERS + 2 * PAIRS + TIME_WAIT + UDP;

fn main() {
    assert_eq!(SNAPSHOT.sockets.len(), TOTAL);
    divan::main();
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// The synthetic snapshot: deterministic, in the order a dump gives (listeners first).
fn snapshot() -> Snapshot {
    let range = PortRange::default();
    let mut sockets = Vec::with_capacity(TOTAL);
    // Listeners: the load generator's 4 addresses x 8 ports, then wildcards.
    let mut listeners = Vec::new();
    for port in 10000..10008 {
        for d in 1..=4 {
            listeners.push(Endpoint::new(v4(127, 1, 0, d), port));
        }
    }
    let wildcard_ports = [22, 25, 53, 80, 443, 631, 3306, 5432, 6379, 8080, 9090];
    for (i, port) in (0..).zip(wildcard_ports.iter().cycle()) {
        if listeners.len() == LISTENERS {
            break;
        }
        let port = port + 20_000 * (i / wildcard_ports.len() as u16 / 2);
        let addr = if i % 2 == 0 {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        listeners.push(Endpoint::new(addr, port));
    }
    for &ep in &listeners {
        let mut s = Socket::new(Proto::Tcp, ep, None).uid(1000).backlog(4096);
        s.v6only = ep.addr.is_ipv6().then_some(false);
        sockets.push(s);
    }
    // Connected pairs: the client on an ephemeral port (both parities, as
    // connect() and bind(0) give), the server on the listener's port.
    let span = u32::from(range.high - range.low) + 1;
    for k in 0..PAIRS {
        let server = listeners[k % LISTENERS];
        let eph = range.low + ((k as u32 / 16 * 7) % span) as u16;
        let (client_addr, server_addr) = if k % 10 == 9 {
            (
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            )
        } else if server.addr.is_unspecified() {
            (v4(127, 0, 0, 1), v4(127, 0, 0, 1))
        } else {
            (v4(127, 2, 0, 1 + (k % 16) as u8), server.addr)
        };
        let client = Endpoint::new(client_addr, eph);
        let server = Endpoint::new(server_addr, server.port);
        let inode = 100_000 + 2 * k as u64;
        for (local, remote, inode) in [(client, server, inode), (server, client, inode + 1)] {
            let mut s = Socket::new(Proto::Tcp, local, Some(remote))
                .uid(1000)
                .inode(inode)
                .cookie(inode);
            if k % 3 == 0 {
                s.timer = Timer {
                    kind: TimerKind::Keepalive,
                    expires_ms: 7_185_120,
                    retransmits: 0,
                };
            }
            if k % 50 == 0 {
                s.recv_q = 17;
                s.send_q = 1_448;
            }
            sockets.push(s);
        }
    }
    // TIME_WAIT: closed by the client side, no inode.
    for k in 0..TIME_WAIT {
        let server = Endpoint::new(v4(127, 1, 0, 1 + (k % 4) as u8), 10000 + (k % 8) as u16);
        let client = Endpoint::new(v4(127, 4, 0, 1 + (k % 16) as u8), range.low + k as u16);
        let s = Socket::new(Proto::Tcp, client, Some(server))
            .state(State::TimeWait)
            .uid(1000)
            .timer(Timer {
                kind: TimerKind::TimeWait,
                expires_ms: 59_000,
                retransmits: 0,
            });
        sockets.push(s);
    }
    // UDP: a few servers, the rest connected clients.
    for k in 0..UDP {
        let s = if k < 10 {
            let port = [53, 123, 5353, 67, 500][k % 5] + (k / 5) as u16;
            Socket::new(Proto::Udp, Endpoint::new(v4(0, 0, 0, 0), port), None).uid(1000)
        } else {
            let local = Endpoint::new(v4(127, 0, 0, 1), range.low + 1000 + k as u16);
            let remote = Endpoint::new(v4(127, 0, 0, 53), 53);
            Socket::new(Proto::Udp, local, Some(remote)).uid(1000)
        };
        sockets.push(s);
    }
    Snapshot {
        sockets,
        port_range: range,
        source: Source::Netlink,
        selected: None,
        dumped: None,
    }
}

static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(snapshot);

/// `sockwho -tan`'s configuration, without a terminal.
static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    Config::new(
        &Cli::parse_from(["sockwho", "-tan"]),
        &Environment::default(),
        |_| None,
    )
    .unwrap()
});

/// The classified snapshot as the renderers take it, built as
/// `Pipeline::look` builds it: every row; the renderers pick what `-tan` shows.
static PARTS: LazyLock<[Part; 1]> = LazyLock::new(|| {
    let Classified {
        labels,
        sessions,
        crossings,
    } = classify::classify(&SNAPSHOT, Default::default());
    [Part {
        inode: 0,
        netns: None,
        port_range: SNAPSHOT.port_range.clone(),
        source: SNAPSHOT.source,
        sockets: SNAPSHOT.sockets.clone(),
        labels,
        sessions,
        crossings,
        conntrack: None,
        selected: None,
    }]
});

/// How many rows `-tan` shows.
fn shown() -> usize {
    sockwho::view::shown(&CONFIG, &*PARTS).count()
}

#[divan::bench(sample_count = 20)]
fn classify_200k() -> Classified {
    classify::classify(black_box(&SNAPSHOT), Default::default())
}

#[divan::bench(sample_count = 20)]
fn table_tan(bencher: divan::Bencher) {
    let names = Names::default();
    let table = Table {
        cfg: &CONFIG,
        names: &names,
        palette: Palette::new(CONFIG.color),
    };
    bencher
        .counter(divan::counter::ItemsCount::new(shown()))
        .bench(|| {
            table
                .write(black_box(&*PARTS), &mut std::io::sink())
                .unwrap()
        });
}

#[divan::bench(sample_count = 20)]
fn json_tan(bencher: divan::Bencher) {
    bencher
        .counter(divan::counter::ItemsCount::new(shown()))
        .bench(|| json::write(&CONFIG, black_box(&*PARTS), &mut std::io::sink()).unwrap());
}

/// `sockwho --format prometheus`'s configuration: every socket counted.
static METRICS: LazyLock<Config> = LazyLock::new(|| {
    Config::new(
        &Cli::parse_from(["sockwho", "--format", "prometheus"]),
        &Environment::default(),
        |_| None,
    )
    .unwrap()
});

/// One scrape's render stage: the exposition of all 200,000 sockets.
#[divan::bench(sample_count = 20)]
fn metrics_200k(bencher: divan::Bencher) {
    bencher
        .counter(divan::counter::ItemsCount::new(TOTAL))
        .bench(|| {
            metrics::write(
                &METRICS,
                black_box(&*PARTS),
                &metrics::Scrape::default(),
                &mut std::io::sink(),
            )
            .unwrap()
        });
}

/// `sockwho -s` on the same sockets.
#[divan::bench(sample_count = 20)]
fn summary_200k(bencher: divan::Bencher) {
    let cfg = Config::new(
        &Cli::parse_from(["sockwho", "-s"]),
        &Environment::default(),
        |_| None,
    )
    .unwrap();
    bencher
        .counter(divan::counter::ItemsCount::new(TOTAL))
        .bench(|| summary::write(&cfg, black_box(&*PARTS), &mut std::io::sink()).unwrap());
}
