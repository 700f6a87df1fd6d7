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
}

impl Services {
    /// Loads a services file; a missing or unreadable one gives no names,
    /// as with netstat.
    pub fn load(path: &Path) -> Services {
        std::fs::read_to_string(path)
            .map(|text| Services::parse(&text))
            .unwrap_or_default()
    }

    /// `name port/proto [aliases] [# comment]`; the first name for a port wins.
    pub fn parse(text: &str) -> Services {
        let mut by_port = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut f = line.split_ascii_whitespace();
            let (Some(name), Some(port_proto)) = (f.next(), f.next()) else {
                continue;
            };
            let Some((port, proto)) = port_proto.split_once('/') else {
                continue;
            };
            let proto = match proto {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => continue,
            };
            if let Ok(port) = port.parse() {
                by_port
                    .entry((port, proto))
                    .or_insert_with(|| name.to_string());
            }
        }
        Services { by_port }
    }

    pub fn name(&self, port: u16, proto: Proto) -> Option<&str> {
        self.by_port.get(&(port, proto)).map(String::as_str)
    }

    /// The port of a service name (TCP first, then UDP).
    pub fn port(&self, name: &str) -> Option<u16> {
        [Proto::Tcp, Proto::Udp].iter().find_map(|&proto| {
            self.by_port
                .iter()
                .find(|((_, p), n)| *p == proto && n.as_str() == name)
                .map(|((port, _), _)| *port)
        })
    }
}

#[derive(Debug, Default)]
pub struct Users {
    by_uid: HashMap<u32, String>,
}

impl Users {
    pub fn load(path: &Path) -> Users {
        std::fs::read_to_string(path)
            .map(|text| Users::parse(&text))
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
            if let Ok(uid) = uid.parse() {
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
            "# comment\nssh 22/tcp # SSH\nftp 21/tcp\nftp-alt 21/tcp\ndomain 53/udp\nbad x/tcp\n",
        );
        assert_eq!(s.name(22, Proto::Tcp), Some("ssh"));
        assert_eq!(s.name(21, Proto::Tcp), Some("ftp"));
        assert_eq!(s.name(53, Proto::Udp), Some("domain"));
        assert_eq!(s.name(53, Proto::Tcp), None);
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
