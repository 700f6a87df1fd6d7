//! Socket owners: walk `/proc/PID/fd/*`, keep the links that read
//! `socket:[INODE]` for the inodes we were asked about, and name each owner
//! from `/proc/PID/comm`.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::model::Process;

#[derive(Debug, Default)]
pub struct Owners {
    /// inode -> its owners, ordered by PID, each PID once.
    pub by_inode: HashMap<u64, Vec<Process>>,
    /// Processes whose descriptors we were not allowed to read.
    pub denied: usize,
}

/// Finds the owners of the sockets in `wanted`. Only a `proc_root` that cannot
/// be listed at all is an error; processes that vanish mid-scan are skipped.
pub fn find_owners(proc_root: &Path, wanted: &HashSet<u64>) -> io::Result<Owners> {
    let mut owners = Owners::default();
    if wanted.is_empty() {
        return Ok(owners);
    }
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = parse_pid(entry.file_name().as_bytes()) else {
            continue;
        };
        let pid_dir = entry.path();
        let fds = match std::fs::read_dir(pid_dir.join("fd")) {
            Ok(fds) => fds,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                owners.denied += 1;
                continue;
            }
            Err(_) => continue, // gone, or a kernel thread
        };
        let mut found: Vec<u64> = fds
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter_map(|target| socket_inode(target.as_os_str().as_bytes()))
            .filter(|inode| wanted.contains(inode))
            .collect();
        if found.is_empty() {
            continue;
        }
        found.sort_unstable();
        found.dedup();
        let name = match std::fs::read(pid_dir.join("comm")) {
            Ok(mut comm) => {
                if comm.last() == Some(&b'\n') {
                    comm.pop();
                }
                String::from_utf8_lossy(&comm).into_owned()
            }
            Err(_) => continue, // exited between the two reads
        };
        for inode in found {
            owners.by_inode.entry(inode).or_default().push(Process {
                pid,
                name: name.clone(),
            });
        }
    }
    for list in owners.by_inode.values_mut() {
        list.sort_by_key(|p| p.pid);
    }
    Ok(owners)
}

fn parse_pid(name: &[u8]) -> Option<u32> {
    parse_decimal(name)
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
}
