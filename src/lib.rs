//! sockwho: the kernel's TCP and UDP sockets as `netstat -an` lists them,
//! with port classes, the direction of every connection, and FTP sessions.
//!
//! The pipeline: [`collect`] reads the kernel (sock_diag netlink, or
//! /proc/net; owners; conntrack), in one network namespace or several,
//! [`classify`] labels each socket with pure functions, and [`render`]
//! writes a table, the FTP view or JSON. [`pipeline`] drives the first two
//! and hands the renderers a [`view`]; [`watch`] repeats it all, and
//! [`serve`] does it on every scrape of an HTTP server.

pub mod classify;
pub mod cli;
pub mod collect;
pub mod config;
pub mod error;
pub mod filter;
pub mod model;
pub mod pipeline;
pub mod render;
pub mod serve;
pub mod view;
pub mod watch;

use std::cell::OnceCell;
use std::io::Write;

use cli::Cli;
use collect::Notices;
use config::{Config, Environment};
use error::Error;
use pipeline::Pipeline;

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
    let services = OnceCell::new();
    let service = |name: &str| services.get_or_init(|| env.inputs.services()).port(name);
    let cfg = Config::new(cli, env, service).map_err(Error::Usage)?;
    if cfg.watch {
        return watch::run(&cfg, out, notices);
    }
    if let Some(addr) = cfg.serve {
        return serve::run(&cfg, addr, notices);
    }
    if cfg.format == cli::Format::Prometheus {
        return serve::once(&cfg, out, notices);
    }
    let mut pipeline = Pipeline::once(&cfg);
    let parts = pipeline.look(notices)?;
    let no_names = collect::names::Names::default();
    let names = if render::needs_names(&cfg) {
        pipeline.names(&parts)
    } else {
        &no_names
    };
    let written = render::write(&cfg, &parts, names, out)
        .and_then(|()| out.flush())
        .map_err(Error::Output);
    // The process ends after this: freeing 200,000 sockets one by one took
    // 20 ms of `-tanp` (4% of it) in the thread that then flushes and
    // exits. Another thread frees them (a longer-lived caller gets its
    // memory back all the same; an exiting process does not wait for it).
    // Where no thread can be made, they are freed here.
    let _ = std::thread::Builder::new().spawn(move || drop(parts));
    written
}
