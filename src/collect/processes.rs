//! Socket owners: walk `/proc/PID/fd/*`, keep the links that read
//! `socket:[INODE]` for the inodes we were asked about, and name each owner
//! from `/proc/PID/comm`.
//!
//! This walk is most of the cost of `-p` (one `readlink` per descriptor on
//! the host), so it allocates nothing per descriptor: it opens `proc_root`
//! once and each `PID/fd` relative to it from a path built on the stack,
//! lists that directory with `getdents64` into one buffer per thread
//! (rustix's `RawDir`; its `Dir` would allocate a `CString` per entry), and
//! reads each link with `readlinkat` on the directory's fd into a stack
//! buffer. The processes are split over two threads. ss and netstat look
//! every socket up in fixed tables of 256 and 211 buckets; a `HashSet`
//! keeps this linear. All of it goes through rustix's safe calls, so this
//! file has no `unsafe`.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{CWD, Mode, OFlags, RawDir};
use rustix::io::Errno;

use crate::model::Process;

#[derive(Debug, Default)]
pub struct Owners {
    /// (inode, owner) pairs, sorted by inode then PID, each pair once: a
    /// flat vector rather than a map of vectors, which for 200,000 sockets
    /// is the difference that keeps `-p` under 64 MiB.
    pub by_inode: Vec<(u64, Process)>,
    /// Processes whose descriptors we were not allowed to read.
    pub denied: usize,
}

/// What a walk of `/proc` found: (inode, pid) pairs of socket descriptors,
/// and how many processes' descriptors could not be read.
#[derive(Debug, Default)]
pub struct Walked {
    pairs: Vec<(u64, u32)>,
    pub denied: usize,
}

/// Bytes of `getdents64` output fetched per call, the size glibc's
/// `readdir` uses: a process with a thousand descriptors is listed in one
/// or two calls. Allocated once per thread, not per process.
const DIRENT_BUF: usize = 32 * 1024;

/// Finds the owners of the sockets in `wanted`. Only a `proc_root` that cannot
/// be listed at all is an error; processes that vanish mid-scan are skipped.
pub fn find_owners(proc_root: &Path, wanted: &HashSet<u64>) -> io::Result<Owners> {
    if wanted.is_empty() {
        return Ok(Owners::default());
    }
    owners_among(proc_root, walk(proc_root, Some(wanted))?, wanted)
}

/// Walks every process's descriptors, on two threads, keeping the sockets
/// in `wanted` (all of them for `None`: a walk that begins before the dump
/// has ended, to run beside it, does not know yet which it wants).
pub fn walk(proc_root: &Path, wanted: Option<&HashSet<u64>>) -> io::Result<Walked> {
    let root = open_dir(CWD, proc_root)?;
    let pids = list_pids(root.as_fd());
    let threads = if pids.len() > 64 { 2 } else { 1 };
    // each thread takes the next process as it is done with one: a few
    // processes hold most descriptors (a server's), and halves of the list
    // left one thread idle while the other walked them
    let next = AtomicUsize::new(0);
    let found: Vec<Walked> = std::thread::scope(|scope| {
        let (root, pids, next) = (root.as_fd(), &pids[..], &next);
        // this thread is one of them
        let handles: Vec<_> = (1..threads)
            .filter_map(|_| {
                let scan = move || scan(root, pids, next, wanted);
                std::thread::Builder::new().spawn_scoped(scope, scan).ok()
            })
            .collect();
        // where no other thread could be made, this one walks all
        let here = scan(root, pids, next, wanted);
        let there = handles.into_iter().filter_map(|h| h.join().ok());
        there.chain([here]).collect()
    });
    let mut walked = Walked {
        pairs: Vec::with_capacity(found.iter().map(|f| f.pairs.len()).sum()),
        denied: 0,
    };
    for f in found {
        walked.denied += f.denied;
        walked.pairs.extend(f.pairs);
    }
    Ok(walked)
}

/// The owners of the sockets in `wanted` among what a walk found, each
/// named from `/proc/PID/comm` and its argv[0].
pub fn owners_among(proc_root: &Path, walked: Walked, wanted: &HashSet<u64>) -> io::Result<Owners> {
    let root = open_dir(CWD, proc_root)?;
    let mut pairs = walked.pairs;
    pairs.retain(|(inode, _)| wanted.contains(inode));
    pairs.sort_unstable();
    pairs.dedup();
    type Names = Option<(Arc<str>, Option<Arc<str>>)>;
    let mut names: HashMap<u32, Names> = HashMap::new();
    let by_inode = pairs
        .into_iter()
        .filter_map(|(inode, pid)| {
            // exited between the two reads: skipped
            let (name, program) = names
                .entry(pid)
                .or_insert_with(|| Some((comm(root.as_fd(), pid)?, program(root.as_fd(), pid))))
                .clone()?;
            Some((inode, Process { pid, name, program }))
        })
        .collect();
    Ok(Owners {
        by_inode,
        denied: walked.denied,
    })
}

/// Joins `by_inode` (sorted) with `keys`, (inode, item) pairs sorted by
/// inode: `found` gets each item with where its inode's owners are in
/// `by_inode`, where it has any. One pass over both, in memory's order: a
/// binary search per socket missed the cache at every step (a third of
/// `-tanp` at 200,000 sockets).
pub fn join_owners<T>(
    by_inode: &[(u64, Process)],
    keys: impl IntoIterator<Item = (u64, T)>,
    mut found: impl FnMut(T, std::ops::Range<usize>),
) {
    let mut at = 0;
    for (inode, item) in keys {
        while by_inode.get(at).is_some_and(|(i, _)| *i < inode) {
            at += 1;
        }
        let end = at
            + by_inode[at..]
                .iter()
                .take_while(|(i, _)| *i == inode)
                .count();
        if end > at {
            found(item, at..end);
        }
    }
}

fn open_dir<P: rustix::path::Arg>(dir: BorrowedFd<'_>, path: P) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The numeric entries of `proc_root`. A listing that fails part way keeps
/// what it read, as `read_dir` with its errors filtered out did.
fn list_pids(root: BorrowedFd<'_>) -> Vec<u32> {
    let mut buf = Box::<[u8]>::new_uninit_slice(DIRENT_BUF);
    let mut dir = RawDir::new(root, &mut buf);
    let mut pids = Vec::new();
    while let Some(Ok(entry)) = dir.next() {
        pids.extend(parse_decimal::<u32>(entry.file_name().to_bytes()));
    }
    pids
}

/// `PID/leaf` as a C string in `buf`, relative to `proc_root`: no allocation.
/// `None` only if it does not fit, which a u32 and our short leaves cannot.
fn pid_path<'a>(buf: &'a mut [u8; 32], pid: u32, leaf: &str) -> Option<&'a CStr> {
    let mut rest = &mut buf[..];
    write!(rest, "{pid}/{leaf}\0").ok()?;
    let unused = rest.len();
    let len = buf.len() - unused;
    CStr::from_bytes_with_nul(&buf[..len]).ok()
}

fn comm(root: BorrowedFd<'_>, pid: u32) -> Option<Arc<str>> {
    let mut path = [0u8; 32];
    let path = pid_path(&mut path, pid, "comm")?;
    let fd =
        rustix::fs::openat(root, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut comm = Vec::new();
    File::from(fd).read_to_end(&mut comm).ok()?;
    if comm.last() == Some(&b'\n') {
        comm.pop();
    }
    Some(Arc::from(String::from_utf8_lossy(&comm).as_ref()))
}

/// The base name of argv[0], as netstat takes it from `/proc/PID/cmdline`
/// (`prg_cache_load()` in net-tools' netstat.c: `strrchr(cmdline, '/')`,
/// which stops at argv[0]'s NUL). `None` for an empty cmdline (kernel
/// threads, zombies).
fn program(root: BorrowedFd<'_>, pid: u32) -> Option<Arc<str>> {
    let mut path = [0u8; 32];
    let path = pid_path(&mut path, pid, "cmdline")?;
    let fd =
        rustix::fs::openat(root, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    // argv[0] is all we want: the first 4 KiB hold it for any sane program
    let mut cmdline = Vec::with_capacity(256);
    File::from(fd).take(4096).read_to_end(&mut cmdline).ok()?;
    let argv0 = cmdline
        .split(|&b| b == 0)
        .next()
        .filter(|a| !a.is_empty())?;
    let base = match argv0.iter().rposition(|&b| b == b'/') {
        Some(i) => &argv0[i + 1..],
        None => argv0,
    };
    (!base.is_empty()).then(|| Arc::from(String::from_utf8_lossy(base).as_ref()))
}

/// Scans the descriptors of the processes of `pids` it takes, one at a
/// time, from `next`.
fn scan(
    root: BorrowedFd<'_>,
    pids: &[u32],
    next: &AtomicUsize,
    wanted: Option<&HashSet<u64>>,
) -> Walked {
    let mut found = Walked::default();
    let mut dirents = Box::<[u8]>::new_uninit_slice(DIRENT_BUF);
    // "socket:[18446744073709551615]" is 29 bytes; a longer link is some
    // other file, and cut short it still does not parse as a socket.
    let mut link = [0u8; 64];
    let mut path = [0u8; 32];
    while let Some(&pid) = pids.get(next.fetch_add(1, Ordering::Relaxed)) {
        let Some(path) = pid_path(&mut path, pid, "fd") else {
            continue;
        };
        let dfd = match open_dir(root, path) {
            Ok(fd) => fd,
            // another user's process (EACCES), or EPERM: the two errnos
            // io::ErrorKind::PermissionDenied stands for
            Err(Errno::ACCESS | Errno::PERM) => {
                found.denied += 1;
                continue;
            }
            Err(_) => continue, // gone, or a kernel thread
        };
        // a read error (the process exited mid-listing) ends this process
        let mut dir = RawDir::new(&dfd, &mut dirents);
        while let Some(Ok(entry)) = dir.next() {
            let name = entry.file_name();
            if name.to_bytes().first() == Some(&b'.') {
                continue;
            }
            let Ok(n) = rustix::fs::readlinkat_raw(&dfd, name, &mut link) else {
                continue;
            };
            let inode = socket_inode(&link[..n]);
            if let Some(inode) = inode.filter(|i| wanted.is_none_or(|w| w.contains(i))) {
                found.pairs.push((inode, pid));
            }
        }
    }
    found
}

fn parse_decimal<T: std::str::FromStr>(digits: &[u8]) -> Option<T> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `socket:[12345]` -> 12345
pub fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    parse_decimal(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn socket_links_parse() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"socket:[4294967296]"), Some(4294967296));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"socket:[12a]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    #[test]
    fn pid_paths_fit_the_stack_buffer() {
        let mut buf = [0u8; 32];
        assert_eq!(pid_path(&mut buf, 42, "fd"), Some(c"42/fd"));
        assert_eq!(
            pid_path(&mut buf, u32::MAX, "comm"),
            Some(c"4294967295/comm")
        );
    }

    #[test]
    fn finds_this_process_as_the_owner_of_its_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).unwrap();
        let inode = socket_inode(link.as_os_str().as_bytes()).unwrap();
        let owners = find_owners(Path::new("/proc"), &HashSet::from([inode])).unwrap();
        let mut pids = Vec::new();
        join_owners(&owners.by_inode, [(inode, ())], |(), at| {
            pids.extend(owners.by_inode[at].iter().map(|(_, p)| p.pid));
        });
        assert_eq!(pids, [std::process::id()]);
    }
}
