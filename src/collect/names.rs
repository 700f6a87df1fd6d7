//! Names for numbers: services from `/etc/services`, users from
//! `/etc/passwd`, and host names by reverse lookup (only with `-r`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use crate::model::Proto;

/// The names the renderers may show, looked up once before rendering.
#[derive(Debug, Default)]
pub struct Names {
    pub services: Option<Services>,
    pub users: Option<Users>,
    pub hosts: HashMap<IpAddr, String>,
    /// Addresses already asked about, with or without an answer.
    pub looked_up: std::collections::HashSet<IpAddr>,
}

impl Names {
    pub fn service(&self, port: u16, proto: Proto) -> Option<&str> {
        self.services.as_ref()?.name(port, proto)
    }

    pub fn user(&self, uid: u32) -> Option<&str> {
        self.users.as_ref()?.name(uid)
    }

    pub fn host(&self, addr: IpAddr) -> Option<&str> {
        self.hosts.get(&addr).map(String::as_str)
    }
}

#[derive(Debug, Default)]
pub struct Services {
    by_port: HashMap<(u16, Proto), String>,
    /// Every name and alias, with the first port listed for it (TCP and
    /// UDP apart), as `getservbyname()` answers.
    by_name: HashMap<(String, Proto), u16>,
    /// Lines that could not be read (not UTF-8, a bad port), said once.
    pub skipped: usize,
}

impl Services {
    /// Loads a services file; a missing or unreadable one gives no names,
    /// as with netstat.
    pub fn load(path: &Path) -> Services {
        std::fs::read(path)
            .map(|bytes| Services::parse(&bytes))
            .unwrap_or_default()
    }

    /// `name port/proto [aliases] [# comment]`; the first name for a port
    /// wins, and the first port for a name. A line that is not UTF-8 is
    /// skipped alone. A name made of digits is no name: shown for another
    /// port it would read as that port.
    pub fn parse(bytes: &[u8]) -> Services {
        let mut services = Services::default();
        for line in bytes.split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                services.skipped += 1;
                continue;
            };
            let line = line.split('#').next().unwrap_or("");
            let mut f = line.split_ascii_whitespace();
            let (Some(name), Some(port_proto)) = (f.next(), f.next()) else {
                continue;
            };
            let parsed = port_proto.split_once('/').and_then(|(port, proto)| {
                let proto = match proto {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    _ => return None,
                };
                Some((port.parse::<u16>().ok()?, proto))
            });
            let Some((port, proto)) = parsed else {
                // sctp, ddp and the like are no error
                if !port_proto.ends_with("/tcp") && !port_proto.ends_with("/udp") {
                    continue;
                }
                services.skipped += 1;
                continue;
            };
            let numeric = |n: &str| n.bytes().all(|b| b.is_ascii_digit());
            if numeric(name) {
                continue;
            }
            services
                .by_port
                .entry((port, proto))
                .or_insert_with(|| name.to_string());
            for alias in std::iter::once(name).chain(f).filter(|n| !numeric(n)) {
                services
                    .by_name
                    .entry((alias.to_string(), proto))
                    .or_insert(port);
            }
        }
        services
    }

    pub fn name(&self, port: u16, proto: Proto) -> Option<&str> {
        self.by_port.get(&(port, proto)).map(String::as_str)
    }

    /// The port of a service name or alias (TCP first, then UDP).
    pub fn port(&self, name: &str) -> Option<u16> {
        [Proto::Tcp, Proto::Udp]
            .iter()
            .find_map(|&proto| self.by_name.get(&(name.to_string(), proto)).copied())
    }
}

#[derive(Debug, Default)]
pub struct Users {
    by_uid: HashMap<u32, String>,
}

impl Users {
    pub fn load(path: &Path) -> Users {
        std::fs::read(path)
            .map(|bytes| Users::parse(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default()
    }

    /// `name:password:uid:gid:...`; the first name for a uid wins.
    pub fn parse(text: &str) -> Users {
        let mut by_uid = HashMap::new();
        for line in text.lines() {
            let mut f = line.split(':');
            let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            // an empty name would be an empty table cell: the uid stays
            // (found by fuzzing)
            if let (Ok(uid), false) = (uid.parse(), name.is_empty()) {
                by_uid.entry(uid).or_insert_with(|| name.to_string());
            }
        }
        Users { by_uid }
    }

    pub fn name(&self, uid: u32) -> Option<&str> {
        self.by_uid.get(&uid).map(String::as_str)
    }
}

/// The name of `addr` by the system's resolver (`/etc/hosts`, then DNS as
/// `nsswitch.conf` says), or `None` where it has none.
pub fn host_name(addr: IpAddr) -> Option<String> {
    let sa = raw_sockaddr(addr);
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: `sa` is a valid sockaddr of the given length and `host` a
    // writable buffer of the given length; getnameinfo writes a NUL-terminated
    // string into it on success.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr(),
            sa.len,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo succeeded, so `host` holds a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

struct RawSockaddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawSockaddr {
    fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }
}

fn raw_sockaddr(addr: IpAddr) -> RawSockaddr {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned
            // for any sockaddr type.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(v6) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = v6.octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    RawSockaddr {
        storage,
        len: len as libc::socklen_t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_first_name_wins_and_comments_are_skipped() {
        let s = Services::parse(
            b"# comment\nssh 22/tcp # SSH\nftp 21/tcp\nftp-alt 21/tcp\ndomain 53/udp\nbad x/tcp\n",
        );
        assert_eq!(s.name(22, Proto::Tcp), Some("ssh"));
        assert_eq!(s.name(21, Proto::Tcp), Some("ftp"));
        assert_eq!(s.name(53, Proto::Udp), Some("domain"));
        assert_eq!(s.name(53, Proto::Tcp), None);
    }

    /// Issue 13, item 8: a name on several ports is its first port, as
    /// getservbyname() says, and aliases are names.
    #[test]
    fn a_name_is_its_first_port_and_aliases_count_regression_13() {
        let text = b"svc 30007/tcp\nsvc 30008/tcp\nsvc 30009/tcp\nsvc 30010/tcp\nhttp 80/tcp www www-http\n";
        for _ in 0..20 {
            let s = Services::parse(text);
            assert_eq!(s.port("svc"), Some(30007));
            assert_eq!(s.port("www"), Some(80));
            assert_eq!(s.port("www-http"), Some(80));
            assert_eq!(
                s.name(80, Proto::Tcp),
                Some("http"),
                "an alias is not shown"
            );
        }
    }

    /// Issue 13, item 2: a service named `30013` for port 30014 would show
    /// that port as `:30013`.
    #[test]
    fn a_numeric_service_name_is_no_name_regression_13() {
        let s = Services::parse(b"30013 30014/tcp\nok 30015/tcp 30016\n");
        assert_eq!(s.name(30014, Proto::Tcp), None);
        assert_eq!(s.port("30016"), None);
        assert_eq!(s.port("ok"), Some(30015));
    }

    /// Issue 13, item 9: one bad byte skips its line, not the file.
    #[test]
    fn a_line_that_is_not_utf8_skips_alone_regression_13() {
        let s = Services::parse(b"ssh 22/tcp\nbad\xff 23/tcp\nftp 21/tcp\n");
        assert_eq!(s.name(22, Proto::Tcp), Some("ssh"));
        assert_eq!(s.name(21, Proto::Tcp), Some("ftp"));
        assert_eq!(s.skipped, 1);
    }

    /// Found by fuzzing (fuzz/seeds/render/empty-user-name): `:x:1000:...`
    /// gave an empty User cell, and awk read the next column in its place.
    #[test]
    fn an_empty_user_name_is_no_name_regression_13() {
        let u = Users::parse(":x:1000:1000::/:/bin/sh\nlater:x:1000:1000::/:/bin/sh\n");
        assert_eq!(u.name(1000), Some("later"));
        assert_eq!(Users::parse(":x:7:7::/:/bin/sh\n").name(7), None);
    }

    #[test]
    fn users_parse_passwd() {
        let u = Users::parse(
            "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false\nbroken\n",
        );
        assert_eq!(u.name(0), Some("root"));
        assert_eq!(u.name(65534), Some("nobody"));
        assert_eq!(u.name(1), None);
    }
}
