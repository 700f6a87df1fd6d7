//! Network namespaces: naming one (`--netns NAME|PATH|PID`), finding them
//! all (`--all-netns`: /run/netns, /run/docker/netns and every process's
//! /proc/PID/ns/net, each namespace once), and running the collection inside
//! one on a thread of its own, so the rest of the run stays where it was.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Inputs;
use crate::model::NetnsId;

/// A namespace to look into. `file` is `None` for the one sockwho runs in.
#[derive(Debug)]
pub struct Target {
    pub id: NetnsId,
    file: Option<File>,
}

impl Target {
    /// The namespace sockwho runs in, or the one a replayed /proc tree shows:
    /// nothing to enter, nothing to name.
    pub fn replayed() -> Target {
        Target {
            id: NetnsId {
                name: None,
                inode: 0,
                pid: None,
            },
            file: None,
        }
    }
}

/// What `--all-netns` could not look into.
#[derive(Debug, Default)]
pub struct Unseen {
    /// /proc/PID/ns/net links of other users' processes.
    pub denied: usize,
    /// Namespaces that went away between listing and entering: a process
    /// that exited, a name that `ip netns del` removed.
    pub vanished: usize,
    /// Namespaces found but not entered for want of privilege.
    pub not_entered: usize,
}

impl Unseen {
    /// One line for all of it, or nothing.
    pub fn notice(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.not_entered > 0 {
            parts.push(format!(
                "could not enter {} network namespaces",
                self.not_entered
            ));
        }
        if self.denied > 0 {
            parts.push(format!(
                "could not see the namespaces of {} processes (permission denied)",
                self.denied
            ));
        }
        if let Some(last) = parts.last_mut() {
            last.push_str(if crate::error::is_root() {
                " (refused even to root: other user namespaces, or a security module)"
            } else {
                " (run as root)"
            });
        }
        if self.vanished > 0 {
            parts.push(format!(
                "skipped {} network namespaces that went away during the scan",
                self.vanished
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

fn inode_of(path: &Path) -> io::Result<u64> {
    Ok(std::fs::metadata(path)?.ino())
}

/// The namespace this process runs in.
pub fn current(inputs: &Inputs) -> io::Result<Target> {
    let inode = inode_of(&inputs.proc.join("thread-self/ns/net"))?;
    Ok(Target {
        id: NetnsId {
            name: named(&names(&inputs.run), inode),
            inode,
            pid: Some(std::process::id()),
        },
        file: None,
    })
}

/// Where namespaces are named under /run: `ip netns` and Docker.
const NAMED: [(&str, &str); 2] = [("netns", ""), ("docker/netns", "docker/")];

/// Names under /run/netns and /run/docker/netns, by inode.
fn names(run: &Path) -> HashMap<u64, String> {
    let mut found = HashMap::new();
    for (dir, prefix) in NAMED {
        let Ok(entries) = std::fs::read_dir(run.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(inode) = inode_of(&entry.path()) {
                let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                found.entry(inode).or_insert(name);
            }
        }
    }
    found
}

fn named(names: &HashMap<u64, String>, inode: u64) -> Option<String> {
    names.get(&inode).cloned()
}

/// `--netns NAME|PATH|PID`: a name under /run/netns, a path to a namespace
/// file, or a process whose namespace to use.
pub fn resolve(spec: &str, inputs: &Inputs) -> io::Result<Target> {
    let (path, pid) = if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        (inputs.proc.join(spec).join("ns/net"), spec.parse().ok())
    } else if spec.contains('/') {
        (PathBuf::from(spec), None)
    } else {
        (inputs.run.join("netns").join(spec), None)
    };
    let file = File::open(&path)?;
    let inode = file.metadata()?.ino();
    if inode == inode_of(&inputs.proc.join("thread-self/ns/net"))? {
        return current(inputs);
    }
    Ok(Target {
        id: NetnsId {
            name: named(&names(&inputs.run), inode)
                .or_else(|| pid.is_none().then(|| spec.to_string())),
            inode,
            pid,
        },
        file: Some(file),
    })
}

/// Every network namespace on the host, each once: the current one first,
/// then named ones, then those only a process holds.
pub fn discover(inputs: &Inputs) -> io::Result<(Vec<Target>, Unseen)> {
    let names = names(&inputs.run);
    let mut targets = vec![current(inputs)?];
    let mut seen: HashMap<u64, usize> = HashMap::from([(targets[0].id.inode, 0)]);
    let mut unseen = Unseen::default();
    for (dir, prefix) in NAMED {
        let Ok(entries) = std::fs::read_dir(inputs.run.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(file) = File::open(entry.path()) else {
                continue;
            };
            let Ok(inode) = file.metadata().map(|m| m.ino()) else {
                continue;
            };
            if seen.contains_key(&inode) {
                continue;
            }
            seen.insert(inode, targets.len());
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            targets.push(Target {
                id: NetnsId {
                    name: Some(name),
                    inode,
                    pid: None,
                },
                file: Some(file),
            });
        }
    }
    for entry in std::fs::read_dir(&inputs.proc)?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path().join("ns/net");
        let inode = match inode_of(&path) {
            Ok(inode) => inode,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                unseen.denied += 1;
                continue;
            }
            Err(_) => continue, // exited before we looked: nothing to say
        };
        if let Some(&i) = seen.get(&inode) {
            targets[i].id.pid.get_or_insert(pid);
            continue;
        }
        match File::open(&path) {
            Ok(file) => {
                seen.insert(inode, targets.len());
                targets.push(Target {
                    id: NetnsId {
                        name: named(&names, inode),
                        inode,
                        pid: Some(pid),
                    },
                    file: Some(file),
                });
            }
            // Its only process exited between the two looks: the namespace
            // is gone with it.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => unseen.denied += 1,
            Err(_) => unseen.vanished += 1,
        }
    }
    Ok((targets, unseen))
}

/// Runs `f` inside the target's namespace, on a thread of its own (entering
/// a namespace moves only the calling thread), and returns what it returned.
/// `Err` is the namespace that could not be entered.
pub fn run_in<R: Send>(target: &Target, f: impl FnOnce() -> R + Send) -> io::Result<R> {
    let Some(file) = &target.file else {
        return Ok(f());
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this
                // thread, which ends when `f` returns.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    })
}
