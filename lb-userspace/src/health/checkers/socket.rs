//! Sockets for the probes, set up as keepalived's `socket_bind_connect`
//! does (core/layer4.c): fwmark (SO_MARK), bind_if (SO_BINDTODEVICE), bind
//! to bindto:bind_port, then connect, bounded by connect_timeout.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6},
    time::Duration,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use crate::config::resolve::EffectiveChecker;

/// Where and how a checker connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnOpts {
    /// The address probed (connect_ip:connect_port).
    pub dst: SocketAddr,
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub bind_if: Option<String>,
    pub fwmark: Option<u32>,
    pub timeout: Duration,
}

impl ConnOpts {
    /// The options of an effective checker, to `port` (0 for PING_CHECK).
    pub fn new(e: &EffectiveChecker, port: u16) -> ConnOpts {
        ConnOpts {
            dst: SocketAddr::new(e.connect_ip, port),
            bindto: e.bindto,
            bind_port: e.bind_port,
            bind_if: e.bind_if.clone(),
            fwmark: e.fwmark,
            timeout: e.connect_timeout,
        }
    }

    pub fn domain(&self) -> Domain {
        Domain::for_address(self.dst)
    }

    /// A non-blocking, close-on-exec socket with the mark, device and
    /// source address applied, not yet connected.
    pub fn socket(&self, ty: Type, proto: Protocol) -> io::Result<Socket> {
        let socket = Socket::new(self.domain(), ty, Some(proto))?;
        self.prepare(&socket)?;
        Ok(socket)
    }

    /// Applies fwmark, bind_if and the source address to `socket`.
    pub fn prepare(&self, socket: &Socket) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        if let Some(mark) = self.fwmark {
            socket.set_mark(mark)?;
        }
        if let Some(dev) = &self.bind_if {
            socket.bind_device(Some(dev.as_bytes()))?;
        }
        if let Some(src) = self.source()? {
            // A fixed source port would stay in TIME_WAIT after each check.
            if self.bind_port.is_some() {
                socket.set_reuse_address(true)?;
            }
            socket.bind(&SockAddr::from(src))?;
        }
        Ok(())
    }

    /// The address to bind to: bindto and/or bind_port. keepalived ignores
    /// a bind_port without bindto; XVS binds the wildcard address then.
    fn source(&self) -> io::Result<Option<SocketAddr>> {
        if self.bindto.is_none() && self.bind_port.is_none() {
            return Ok(None);
        }
        let any = match self.dst {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let addr = SocketAddr::new(self.bindto.unwrap_or(any), self.bind_port.unwrap_or(0));
        self.scoped(addr).map(Some)
    }

    /// The destination, with the bind_if's index as scope of an IPv6
    /// link-local address (keepalived requires bind_if for those).
    pub fn target(&self) -> io::Result<SocketAddr> {
        self.scoped(self.dst)
    }

    fn scoped(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        match (addr, &self.bind_if) {
            (SocketAddr::V6(v6), Some(dev)) if is_link_local(v6.ip()) => {
                let scope = if_index(dev)?;
                Ok(SocketAddrV6::new(*v6.ip(), v6.port(), 0, scope).into())
            }
            _ => Ok(addr),
        }
    }
}

fn is_link_local(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

fn if_index(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// A TCP connection to `opts.dst` within `opts.timeout`; the error is the
/// reason to report.
pub async fn connect_tcp(opts: &ConnOpts) -> Result<TcpStream, String> {
    let socket = opts
        .socket(Type::STREAM, Protocol::TCP)
        .map_err(|e| format!("socket setup failed: {}", describe(&e)))?;
    let target = opts.target().map_err(|e| describe(&e))?;
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(socket));
    match tokio::time::timeout(opts.timeout, socket.connect(target)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("connect timeout ({})", secs(opts.timeout))),
    }
}

/// A UDP socket connected to `opts.dst`, with ICMP errors reported
/// (IP_RECVERR, as keepalived's udp_bind_connect), so that a port
/// unreachable shows as ECONNREFUSED on the next recv.
pub fn connect_udp(opts: &ConnOpts) -> Result<UdpSocket, String> {
    let setup = || -> io::Result<UdpSocket> {
        let socket = opts.socket(Type::DGRAM, Protocol::UDP)?;
        set_recverr(&socket, opts.dst.is_ipv4())?;
        socket.connect(&SockAddr::from(opts.target()?))?;
        UdpSocket::from_std(socket.into())
    };
    setup().map_err(|e| format!("socket setup failed: {}", describe(&e)))
}

fn set_recverr(socket: &Socket, v4: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (level, name) = if v4 {
        (libc::SOL_IP, libc::IP_RECVERR)
    } else {
        (libc::SOL_IPV6, libc::IPV6_RECVERR)
    };
    let on: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A short reason for a socket error, e.g. "connection refused".
pub fn describe(e: &io::Error) -> String {
    use io::ErrorKind::*;
    let text = match e.kind() {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        ConnectionAborted => "connection aborted",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        NetworkDown => "network down",
        TimedOut => "timeout",
        AddrInUse => "address in use",
        AddrNotAvailable => "address not available",
        PermissionDenied => "permission denied",
        _ => return e.to_string(),
    };
    text.to_owned()
}

/// "0.3s", "5s": a duration for reasons.
pub fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// keepalived's filler for probes without a payload (layer4.c set_buf):
/// "keepalived check - " repeated, so no stack content leaks.
pub fn filler(len: usize) -> Vec<u8> {
    b"keepalived check - "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}
