//! Socket owners: walk `/proc/PID/fd/*`, keep the links that read
//! `socket:[INODE]` for the inodes we were asked about, and name each owner
//! from `/proc/PID/comm`.
//!
//! This walk is most of the cost of `-p` (one `readlink` per descriptor on
//! the host), so it reads links with `readlinkat` on the directory's fd into
//! a stack buffer, allocates nothing per descriptor, and splits the
//! processes over two threads. ss and netstat look every socket up in
//! fixed tables of 256 and 211 buckets; a `HashSet` keeps this linear.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

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

/// What one thread found: (inode, pid) pairs, and the denied count.
#[derive(Default)]
struct Found {
    pairs: Vec<(u64, u32)>,
    denied: usize,
}

/// Finds the owners of the sockets in `wanted`. Only a `proc_root` that cannot
/// be listed at all is an error; processes that vanish mid-scan are skipped.
pub fn find_owners(proc_root: &Path, wanted: &HashSet<u64>) -> io::Result<Owners> {
    let mut owners = Owners::default();
    if wanted.is_empty() {
        return Ok(owners);
    }
    let pids: Vec<u32> = std::fs::read_dir(proc_root)?
        .filter_map(|e| parse_decimal(e.ok()?.file_name().as_bytes()))
        .collect();
    let threads = if pids.len() > 64 { 2 } else { 1 };
    let chunk = pids.len().div_ceil(threads).max(1);
    let found: Vec<Found> = std::thread::scope(|scope| {
        let handles: Vec<_> = pids
            .chunks(chunk)
            .map(|pids| scope.spawn(move || scan(proc_root, pids, wanted)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(found.iter().map(|f| f.pairs.len()).sum());
    for f in found {
        owners.denied += f.denied;
        pairs.extend(f.pairs);
    }
    pairs.sort_unstable();
    pairs.dedup();
    let mut names: HashMap<u32, Option<Arc<str>>> = HashMap::new();
    owners.by_inode = pairs
        .into_iter()
        .filter_map(|(inode, pid)| {
            // exited between the two reads: skipped
            let name = names
                .entry(pid)
                .or_insert_with(|| comm(proc_root, pid))
                .clone()?;
            Some((inode, Process { pid, name }))
        })
        .collect();
    Ok(owners)
}

/// The owners of `inode` in a sorted `by_inode`.
pub fn owners_of(by_inode: &[(u64, Process)], inode: u64) -> &[(u64, Process)] {
    let start = by_inode.partition_point(|(i, _)| *i < inode);
    let end = start + by_inode[start..].partition_point(|(i, _)| *i == inode);
    &by_inode[start..end]
}

fn comm(proc_root: &Path, pid: u32) -> Option<Arc<str>> {
    let mut comm = std::fs::read(proc_root.join(pid.to_string()).join("comm")).ok()?;
    if comm.last() == Some(&b'\n') {
        comm.pop();
    }
    Some(Arc::from(String::from_utf8_lossy(&comm).as_ref()))
}

/// Scans the descriptors of `pids`.
fn scan(proc_root: &Path, pids: &[u32], wanted: &HashSet<u64>) -> Found {
    let mut found = Found::default();
    let mut link = [0u8; 64];
    for &pid in pids {
        let Ok(path) = CString::new(
            proc_root
                .join(pid.to_string())
                .join("fd")
                .as_os_str()
                .as_bytes(),
        ) else {
            continue;
        };
        // SAFETY: a NUL-terminated path; the fd is closed by closedir below.
        let dfd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if dfd < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::PermissionDenied {
                found.denied += 1;
            }
            continue; // gone, or a kernel thread
        }
        // SAFETY: dfd is an open directory; fdopendir takes it over.
        let dir = unsafe { libc::fdopendir(dfd) };
        if dir.is_null() {
            // SAFETY: dfd is still ours when fdopendir fails.
            unsafe { libc::close(dfd) };
            continue;
        }
        loop {
            // SAFETY: dir is a valid DIR*; the entry lives until the next readdir.
            let entry = unsafe { libc::readdir(dir) };
            if entry.is_null() {
                break;
            }
            // SAFETY: d_name is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
            if name.to_bytes().first() == Some(&b'.') {
                continue;
            }
            // SAFETY: reading at most link.len() bytes into our buffer.
            let n = unsafe {
                libc::readlinkat(dfd, name.as_ptr(), link.as_mut_ptr().cast(), link.len())
            };
            if n <= 0 {
                continue;
            }
            if let Some(inode) = socket_inode(&link[..n as usize]).filter(|i| wanted.contains(i)) {
                found.pairs.push((inode, pid));
            }
        }
        // SAFETY: closes dir and dfd with it.
        unsafe { libc::closedir(dir) };
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

    #[test]
    fn socket_links_parse() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"socket:[4294967296]"), Some(4294967296));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"socket:[12a]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    #[test]
    fn finds_this_process_as_the_owner_of_its_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).unwrap();
        let inode = socket_inode(link.as_os_str().as_bytes()).unwrap();
        let owners = find_owners(Path::new("/proc"), &HashSet::from([inode])).unwrap();
        let list = owners_of(&owners.by_inode, inode);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].1.pid, std::process::id());
    }
}
