//! Names for addresses and ports, as ipvsadm looks them up without `-n`
//! (ipvsadm.c:2219-2339): host names through the system resolver, port names
//! from /etc/services with `getservbyport`/`getservbyname` semantics.
//!
//! Listing and parsing take a `&dyn Resolver`, so tests can inject a fixed
//! table and never touch DNS.

use std::{
    ffi::CStr,
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs},
    path::Path,
    sync::OnceLock,
};

use crate::model::Protocol;

/// Where ipvsadm gets names from.
pub trait Resolver {
    /// Reverse lookup of an address (`gethostbyaddr`, ipvsadm.c:2235).
    fn host_name(&self, addr: IpAddr) -> Option<String>;
    /// Forward lookup of a host name to IPv4 (`gethostbyname`, ipvsadm.c:2219:
    /// ipvsadm only takes names for IPv4).
    fn host_addr(&self, name: &str) -> Option<Ipv4Addr>;
    /// The service name of a port (`getservbyport`, ipvsadm.c:2283).
    fn service_name(&self, port: u16, proto: Protocol) -> Option<String>;
    /// The port of a service name (`getservbyname`, ipvsadm.c:2265).
    fn service_port(&self, name: &str, proto: Protocol) -> Option<u16>;
}

/// The protocol column of /etc/services.
fn services_proto(proto: Protocol) -> &'static str {
    match proto {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// One line of /etc/services: `name port/proto [aliases...] [# comment]`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ServiceEntry {
    name: String,
    aliases: Vec<String>,
    port: u16,
    proto: String,
}

/// The services database, searched like glibc's `files` backend does: the
/// first line in file order that matches wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicesDb {
    entries: Vec<ServiceEntry>,
}

impl ServicesDb {
    /// Parse services(5) text; malformed lines are skipped as glibc does.
    pub fn parse(text: &str) -> Self {
        let entries = text.lines().filter_map(parse_services_line).collect();
        ServicesDb { entries }
    }

    /// Read a services(5) file, e.g. /etc/services.
    pub fn load(path: &Path) -> io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    /// `getservbyport(port, proto)->s_name`.
    pub fn name_of(&self, port: u16, proto: Protocol) -> Option<&str> {
        let proto = services_proto(proto);
        self.entries
            .iter()
            .find(|e| e.port == port && e.proto == proto)
            .map(|e| e.name.as_str())
    }

    /// `getservbyname(name, proto)->s_port`: the name or any alias.
    pub fn port_of(&self, name: &str, proto: Protocol) -> Option<u16> {
        let proto = services_proto(proto);
        self.entries
            .iter()
            .find(|e| e.proto == proto && (e.name == name || e.aliases.iter().any(|a| a == name)))
            .map(|e| e.port)
    }
}

fn parse_services_line(line: &str) -> Option<ServiceEntry> {
    let content = line.split('#').next().unwrap_or("");
    let mut fields = content.split_whitespace();
    let name = fields.next()?.to_string();
    let (port, proto) = fields.next()?.split_once('/')?;
    Some(ServiceEntry {
        name,
        port: port.parse().ok()?,
        proto: proto.to_string(),
        aliases: fields.map(str::to_string).collect(),
    })
}

/// The resolver ipvsadm uses: the system's (NSS) host lookups and
/// /etc/services, read once on first use.
#[derive(Debug, Default)]
pub struct SystemResolver {
    services: OnceLock<ServicesDb>,
}

impl SystemResolver {
    pub fn new() -> Self {
        Self::default()
    }

    fn services(&self) -> &ServicesDb {
        // No /etc/services means no port names, as getservbyport would say.
        self.services
            .get_or_init(|| ServicesDb::load(Path::new("/etc/services")).unwrap_or_default())
    }
}

impl Resolver for SystemResolver {
    fn host_name(&self, addr: IpAddr) -> Option<String> {
        reverse_lookup(addr)
    }

    fn host_addr(&self, name: &str) -> Option<Ipv4Addr> {
        // getaddrinfo through std; like gethostbyname, take the first IPv4.
        let addrs = (name, 0).to_socket_addrs().ok()?;
        addrs
            .filter_map(|a| match a {
                SocketAddr::V4(v4) => Some(*v4.ip()),
                SocketAddr::V6(_) => None,
            })
            .next()
    }

    fn service_name(&self, port: u16, proto: Protocol) -> Option<String> {
        self.services().name_of(port, proto).map(str::to_string)
    }

    fn service_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        self.services().port_of(name, proto)
    }
}

/// A resolver that knows no names: every lookup falls back to numbers.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNames;

impl Resolver for NoNames {
    fn host_name(&self, _: IpAddr) -> Option<String> {
        None
    }
    fn host_addr(&self, _: &str) -> Option<Ipv4Addr> {
        None
    }
    fn service_name(&self, _: u16, _: Protocol) -> Option<String> {
        None
    }
    fn service_port(&self, _: &str, _: Protocol) -> Option<u16> {
        None
    }
}

/// `getnameinfo(NI_NAMEREQD)`: the host name of an address, or None.
fn reverse_lookup(addr: IpAddr) -> Option<String> {
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        IpAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(v4).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(v6) => {
            // SAFETY: all-zero is a valid sockaddr_in6.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = v6.octets();
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    let mut host = [0 as libc::c_char; libc::NI_MAXHOST as usize];
    // SAFETY: storage holds a sockaddr of `len` bytes, host is a writable
    // buffer of the given length, and no service buffer is requested.
    let rc = unsafe {
        libc::getnameinfo(
            &storage as *const _ as *const libc::sockaddr,
            len as libc::socklen_t,
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
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into host.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &str = "\
# comment line
tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
domain\t\t53/tcp\t\t\t\t# Domain Name Server
domain\t\t53/udp
www-alt\t\t80/tcp
broken line
";

    #[test]
    fn first_entry_for_a_port_wins() {
        let db = ServicesDb::parse(SERVICES);
        assert_eq!(db.name_of(80, Protocol::Tcp), Some("http"));
        assert_eq!(db.name_of(80, Protocol::Udp), None);
        assert_eq!(db.name_of(53, Protocol::Udp), Some("domain"));
    }

    #[test]
    fn names_and_aliases_give_ports() {
        let db = ServicesDb::parse(SERVICES);
        assert_eq!(db.port_of("www", Protocol::Tcp), Some(80));
        assert_eq!(db.port_of("http", Protocol::Tcp), Some(80));
        assert_eq!(db.port_of("http", Protocol::Udp), None);
        assert_eq!(db.port_of("broken", Protocol::Tcp), None);
    }

    #[test]
    fn loopback_reverse_lookup_does_not_fail_badly() {
        // /etc/hosts usually names 127.0.0.1; either answer is acceptable,
        // the call just must not crash.
        let _ = SystemResolver::new().host_name(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
}
