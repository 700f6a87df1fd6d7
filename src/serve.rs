//! `--serve ADDR:PORT`: Prometheus metrics over HTTP, collected on each
//! scrape; and [`once`], the timed look of `--format prometheus`.
//!
//! Two sides. One collector thread owns the [`Pipeline`] in watch mode's
//! form (owners and what earlier looks saw are kept between scrapes) and
//! does every scrape: requests that arrive while a scrape runs wait, and
//! the next scrape answers all of them at once, so a scrape never runs
//! twice at the same time however many scrapers ask (two Prometheus
//! servers of an HA pair, a person with curl). The HTTP side is one
//! current-thread tokio runtime serving HTTP/1.1 with hyper:
//!
//! - read-only: `GET` and `HEAD /metrics` (any query string); 404 for
//!   other paths, 405 with `Allow` for other methods;
//! - at most [`MAX_CONNECTIONS`] connections; more wait in the kernel's
//!   accept queue until one ends;
//! - a request's headers must arrive within [`HEADER_TIMEOUT`] and fit in
//!   [`MAX_REQUEST`] bytes (a late one is closed, a larger one answered
//!   431; a keep-alive connection idle that long is closed too), and a
//!   connection lives at most [`CONNECTION_LIFETIME`], then finishes its
//!   request within [`GRACE`] or is dropped: a slow client, one that
//!   sends a byte a second or never reads its response, holds a
//!   connection slot for a bounded time and never the collector;
//! - what goes wrong is said on stderr, one line per kind of problem at
//!   most every [`PROBLEM_WINDOW`] with the count of those not said; never
//!   a line per request.
//!
//! Why hyper and not tiny_http: tiny_http 0.12 gives every connection a
//! thread of its own, with no upper bound and no read timeout (measured:
//! 300 clients that send half a request line hold 302 threads, still there
//! 40 s later), so slow clients cannot be bounded from outside it. hyper's
//! HTTP/1 server has a header read timeout, a header size limit and
//! graceful shutdown of a connection, and the connection limit is a
//! semaphore in front of `accept`.
//!
//! Closed connections (`sockwho_connections_closed_total`) come from the
//! kernel's sock_diag destroy events, between scrapes: the server owns a
//! [`ClosedCounts`] behind a mutex, and the event source records each
//! destroyed connection into it (see `run`, where it is made).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::classify::direction::Direction;
use crate::collect::Notices;
use crate::config::Config;
use crate::error::{self, Error};
use crate::model::{NetnsId, Proto};
use crate::pipeline::Pipeline;
use crate::render::metrics::{self, ClosedCounts, ErrorCounts, ErrorReason, Scrape};
use crate::view::Part;

/// Connections served at once. Prometheus keeps one per target; 64 leaves
/// room for several servers and people, and bounds memory (hyper's buffers
/// are at most [`MAX_REQUEST`] each).
pub const MAX_CONNECTIONS: usize = 64;

/// How long a client may take to send a request's headers, or leave a
/// keep-alive connection idle. Prometheus sends its request at once.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection is asked to close after this long (after the request in
/// flight, if any)...
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// ...and dropped if it has not closed this much later: a client that does
/// not read its response holds its slot no longer.
pub const GRACE: Duration = Duration::from_secs(10);

/// The largest request head read (hyper's minimum buffer): a GET for
/// /metrics needs a few hundred bytes; larger heads are answered 431.
pub const MAX_REQUEST: usize = 8192;

/// Headers in a request, at most.
pub const MAX_HEADERS: usize = 64;

/// A kind of problem is said at most this often.
pub const PROBLEM_WINDOW: Duration = Duration::from_secs(60);

/// The one look of `--format prometheus`: collected, timed and written as
/// the exposition. The notices of the look are its `partial` errors
/// (except with `-v`, whose notices are information).
pub fn once(cfg: &Config, out: &mut dyn Write, notices: &mut Notices) -> Result<(), Error> {
    let mut pipeline = Pipeline::once(cfg);
    let started = Instant::now();
    let parts = pipeline.look(notices)?;
    let duration = started.elapsed();
    let mut errors = ErrorCounts::default();
    if !cfg.verbose {
        errors.record(ErrorReason::Partial, notices.lines().len() as u64);
    }
    let scrape = Scrape {
        duration: Some(duration),
        errors: Some(&errors),
        closed: None,
    };
    metrics::write(cfg, &parts, &scrape, out)
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

/// Serves until SIGINT or SIGTERM (then `Ok`), or until it cannot go on.
/// Problems are said on stderr as they occur, not through `notices`.
pub fn run(cfg: &Config, addr: SocketAddr, _notices: &mut Notices) -> Result<(), Error> {
    let failed = |source| Error::Serve { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(failed)?;
    let log = Arc::new(Log::default());
    // Destroy events feed this between scrapes: the event source (the
    // events issue's reader, src/collect/events.rs) is started here, on a
    // thread of the scope below, with `Arc::clone(&closed)`, and for each
    // connection the kernel destroys calls
    // `lock(&closed).record_closed(proto, direction, netns)`.
    let closed = Arc::new(Mutex::new(ClosedCounts::new(cfg.names_namespaces())));
    let (scrapes, requests) = mpsc::channel::<Waiter>();
    let (alive, gone) = oneshot::channel::<()>();
    std::thread::scope(|scope| {
        let collector = scope.spawn({
            let (log, closed) = (Arc::clone(&log), Arc::clone(&closed));
            move || {
                // dropped as the thread ends, by return or by panic
                let _alive = alive;
                collect(cfg, &requests, &closed, &log);
            }
        });
        let shared = Arc::new(Shared { scrapes, log });
        let served = runtime.block_on(serve(listener, shared, gone));
        // the connections' tasks hold the last senders: dropping them ends
        // the collector's loop
        drop(runtime);
        let joined = collector.join();
        match (served, joined) {
            (Err(e), _) => Err(failed(e)),
            (Ok(()), Err(_)) => Err(failed(io::Error::other("the collector stopped"))),
            (Ok(()), Ok(())) => Ok(()),
        }
    })
}

/// Where a scrape's exposition goes: the request that waits for it.
type Waiter = oneshot::Sender<Bytes>;

/// What every connection shares.
struct Shared {
    scrapes: mpsc::Sender<Waiter>,
    log: Arc<Log>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // a panic elsewhere leaves counts that are still counts
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The collector: one scrape at a time, for everyone waiting.
fn collect(
    cfg: &Config,
    requests: &mpsc::Receiver<Waiter>,
    closed: &Mutex<ClosedCounts>,
    log: &Log,
) {
    let mut pipeline = Pipeline::watching(cfg);
    let mut errors = ErrorCounts::default();
    let mut listed = Listed::default();
    while let Ok(first) = requests.recv() {
        // everyone who asked while the last scrape ran gets this one
        let mut waiters = vec![first];
        waiters.extend(requests.try_iter());
        // scrapers that went away (a scrape timeout) need no scrape
        waiters.retain(|w| !w.is_closed());
        if waiters.is_empty() {
            continue;
        }
        let body = scrape(cfg, &mut pipeline, &mut errors, closed, &mut listed, log);
        for w in waiters {
            let _ = w.send(body.clone());
        }
    }
}

/// One scrape, rendered. A failed look still answers: the families of the
/// sockets are empty and `sockwho_scrape_errors_total` says why.
fn scrape(
    cfg: &Config,
    pipeline: &mut Pipeline,
    errors: &mut ErrorCounts,
    closed: &Mutex<ClosedCounts>,
    listed: &mut Listed,
    log: &Log,
) -> Bytes {
    let mut notices = Notices::default();
    let started = Instant::now();
    let looked = pipeline.look(&mut notices);
    let duration = started.elapsed();
    let problems = notices.take();
    if !cfg.verbose {
        errors.record(ErrorReason::Partial, problems.len() as u64);
    }
    for line in problems {
        log.say(Problem::Notice, line);
    }
    let mut parts = looked.unwrap_or_else(|e| {
        errors.record(ErrorReason::of(&e), 1);
        log.say(Problem::Scrape, format!("a scrape failed: {e}"));
        Vec::new()
    });
    let mut closed = lock(closed);
    count_closed(&parts, pipeline, listed, &mut closed);
    // the gauges are of what is there now
    crate::view::listed_only(&mut parts);
    let scrape = Scrape {
        duration: Some(duration),
        errors: Some(errors),
        closed: Some(&closed),
    };
    let mut body = Vec::with_capacity(16 * 1024);
    if let Err(e) = metrics::write(cfg, &parts, &scrape, &mut body) {
        log.say(Problem::Scrape, format!("a scrape failed: {e}"));
    }
    Bytes::from(body)
}

/// The connections the last scrape listed, by (namespace inode, cookie):
/// the labels a destroy event no longer carries.
#[derive(Debug, Default)]
struct Listed {
    now: HashMap<(u64, u64), Counted>,
    /// Listed before, gone from a later scrape with no destroy event yet
    /// (the kernel sends them from a work queue): a late one still counts,
    /// for [`LATE_SCRAPES`] scrapes.
    waiting: HashMap<(u64, u64), (Counted, u32)>,
}

type Counted = (Proto, Direction, Option<NetnsId>);

/// How many scrapes a listed connection that went waits for its destroy event.
const LATE_SCRAPES: u32 = 3;

/// Feeds `sockwho_connections_closed_total` from the kernel's destroy
/// events that the pipeline followed since the last scrape: connections
/// that opened and closed in between (`closed` in the snapshot, classified
/// like the others), and those the last scrape listed that the kernel
/// destroyed since (`Pipeline::departures`). Then remembers what this
/// scrape lists.
fn count_closed(
    parts: &[Part],
    pipeline: &Pipeline,
    listed: &mut Listed,
    closed: &mut ClosedCounts,
) {
    let departed = |key: &(u64, u64)| pipeline.departures().contains_key(key);
    listed
        .waiting
        .retain(|key, ((proto, direction, netns), left)| {
            if departed(key) {
                closed.record_closed(*proto, *direction, netns.as_ref());
                return false;
            }
            *left -= 1;
            *left > 0
        });
    for (key, counted) in listed.now.drain() {
        if departed(&key) {
            let (proto, direction, netns) = &counted;
            closed.record_closed(*proto, *direction, netns.as_ref());
        } else {
            listed.waiting.insert(key, (counted, LATE_SCRAPES));
        }
    }
    for p in parts {
        for r in p.rows() {
            let s = r.socket;
            let direction = r.labels.direction.direction;
            if s.closed {
                closed.record_closed(s.proto, direction, p.netns.as_ref());
            } else if let (Some(cookie), Some(_)) = (s.cookie, s.remote) {
                let key = (p.inode, cookie);
                // still listed: it waits for nothing
                listed.waiting.remove(&key);
                listed
                    .now
                    .insert(key, (s.proto, direction, p.netns.clone()));
            }
        }
    }
}

/// Accepts connections until a signal, or the collector is gone.
async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    gone: oneshot::Receiver<()>,
) -> io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let stop = async move {
        tokio::select! {
            _ = term.recv() => Ok(()),
            _ = int.recv() => Ok(()),
            _ = gone => Err(io::Error::other("the collector stopped")),
        }
    };
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            biased;
            r = &mut stop => return r,
            p = Arc::clone(&permits).acquire_owned() => p.map_err(io::Error::other)?,
        };
        let stream = tokio::select! {
            biased;
            r = &mut stop => return r,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: say so, and give the system a moment
                    shared.log.say(
                        Problem::Accept,
                        format!("cannot accept a connection: {}", error::reason(&e)),
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(stream, permit, Arc::clone(&shared)));
    }
}

/// One connection, its requests, and its time limits.
async fn connection(
    stream: tokio::net::TcpStream,
    _permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_REQUEST)
        .max_headers(MAX_HEADERS);
    let service = {
        let shared = Arc::clone(&shared);
        service_fn(move |request| respond(request, Arc::clone(&shared)))
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        () = tokio::time::sleep(CONNECTION_LIFETIME) => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(GRACE, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => {
                    shared.log.say(
                        Problem::Slow,
                        format!(
                            "a client kept a connection past {} s without finishing: dropped",
                            (CONNECTION_LIFETIME + GRACE).as_secs()
                        ),
                    );
                    return;
                }
            }
        }
    };
    if let Err(e) = ended {
        shared.log.client(&e);
    }
}

type Answer = Response<Full<Bytes>>;

fn plain(status: StatusCode, text: &'static str) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `GET /metrics` (and `HEAD`, whose body hyper leaves out): waits for the
/// collector's next scrape.
async fn respond(request: Request<Incoming>, shared: Arc<Shared>) -> Result<Answer, Infallible> {
    if request.uri().path() != "/metrics" {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            "Not Found: sockwho serves /metrics only\n",
        ));
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed: GET or HEAD /metrics\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let (waiter, answer) = oneshot::channel();
    if shared.scrapes.send(waiter).is_err() {
        return Ok(unavailable());
    }
    match answer.await {
        Ok(body) => {
            let mut r = Response::new(Full::new(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            Ok(r)
        }
        Err(_) => Ok(unavailable()),
    }
}

fn unavailable() -> Answer {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable: the collector stopped\n",
    )
}

/// The kinds of problem said on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Problem {
    Accept,
    Malformed,
    Timeout,
    Slow,
    Gone,
    Scrape,
    Notice,
}

#[derive(Debug)]
struct Said {
    at: Instant,
    /// Problems of the kind not said since.
    more: u64,
}

/// stderr, one line per kind of problem per [`PROBLEM_WINDOW`].
struct Log {
    said: Mutex<HashMap<Problem, Said>>,
    to: Mutex<Box<dyn Write + Send>>,
}

impl Default for Log {
    fn default() -> Log {
        Log {
            said: Mutex::default(),
            to: Mutex::new(Box::new(io::stderr())),
        }
    }
}

impl Log {
    fn say(&self, problem: Problem, line: String) {
        let now = Instant::now();
        let mut said = lock(&self.said);
        let more = match said.get_mut(&problem) {
            Some(s) if now.duration_since(s.at) < PROBLEM_WINDOW => {
                s.more += 1;
                return;
            }
            Some(s) => std::mem::replace(s, Said { at: now, more: 0 }).more,
            None => {
                said.insert(problem, Said { at: now, more: 0 });
                0
            }
        };
        drop(said);
        let mut to = lock(&self.to);
        let _ = match more {
            0 => writeln!(to, "sockwho: {line}"),
            n => writeln!(to, "sockwho: {line} ({n} more like it not said)"),
        };
    }

    /// A connection that ended in an error: the client's doing, said so.
    fn client(&self, e: &hyper::Error) {
        let (problem, what) = if e.is_timeout() {
            (
                Problem::Timeout,
                format!(
                    "a client sent no complete request within {} s: closed",
                    HEADER_TIMEOUT.as_secs()
                ),
            )
        } else if e.is_parse() || e.is_parse_too_large() || e.is_parse_version_h2() {
            (Problem::Malformed, format!("a malformed request: {e}"))
        } else {
            (
                Problem::Gone,
                format!("a client went away before its answer was written: {e}"),
            )
        };
        self.say(problem, what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::collect::Inputs;
    use crate::config::Environment;
    use clap::Parser;

    /// `--serve` on the saved /proc tree of the fixtures: no kernel needed.
    fn replayed() -> Config {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let env = Environment {
            inputs: Inputs {
                proc: root.join("proc"),
                ..Inputs::live()
            },
            ..Environment::default()
        };
        let cli = Cli::parse_from(["sockwho", "--serve", ":9823"]);
        Config::new(&cli, &env, |_| None).unwrap()
    }

    #[test]
    fn requests_that_wait_together_share_one_scrape() {
        let cfg = replayed();
        let (scrapes, requests) = mpsc::channel::<Waiter>();
        // ten scrapers ask before the collector looks, one gives up
        let mut answers = Vec::new();
        for _ in 0..10 {
            let (waiter, answer) = oneshot::channel();
            scrapes.send(waiter).unwrap();
            answers.push(answer);
        }
        let (gone, _) = oneshot::channel();
        scrapes.send(gone).unwrap();
        drop(scrapes);
        let closed = Mutex::new(ClosedCounts::new(false));
        let log = Log::default();
        collect(&cfg, &requests, &closed, &log);
        let bodies: Vec<Bytes> = answers
            .into_iter()
            .map(|a| a.blocking_recv().unwrap())
            .collect();
        // one buffer, shared: one scrape answered them all
        assert!(bodies.iter().all(|b| b.as_ptr() == bodies[0].as_ptr()));
        let text = std::str::from_utf8(&bodies[0]).unwrap();
        assert!(text.contains("# TYPE sockwho_sockets gauge\n"), "{text}");
        assert!(text.contains("sockwho_connections_closed_total"), "{text}");
    }

    /// What a [`Log`] wrote, for a test to read.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_kind_of_problem_is_said_once_a_window() {
        let lines = Lines::default();
        let log = Log {
            said: Mutex::default(),
            to: Mutex::new(Box::new(lines.clone())),
        };
        log.say(Problem::Timeout, "first".into());
        log.say(Problem::Timeout, "second".into());
        log.say(Problem::Malformed, "other kind".into());
        // a window later, the next one says how many were not said
        if let Some(s) = lock(&log.said).get_mut(&Problem::Timeout) {
            s.at = s.at.checked_sub(PROBLEM_WINDOW).unwrap();
        }
        log.say(Problem::Timeout, "third".into());
        let text = String::from_utf8(lock(&lines.0).clone()).unwrap();
        assert_eq!(
            text,
            "sockwho: first\nsockwho: other kind\nsockwho: third (1 more like it not said)\n"
        );
    }
}
