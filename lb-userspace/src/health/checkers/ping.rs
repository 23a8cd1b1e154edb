//! PING_CHECK, as keepalived's check_ping.c: one ICMP (or ICMPv6) echo
//! request with keepalived's 128-byte filler; an echo reply within
//! connect_timeout is up. keepalived widens net.ipv4.ping_group_range to
//! use unprivileged ICMP datagram sockets; XVS leaves the sysctl alone and
//! falls back to a raw socket (root) when the range excludes it.

use std::{
    io,
    net::SocketAddr,
    sync::atomic::{AtomicU16, Ordering},
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::{io::unix::AsyncFd, time::timeout};

use super::socket::{self, secs, ConnOpts};
use crate::health::{BoxFuture, Checker, Outcome};

/// keepalived's ICMP_BUFSIZE.
const PAYLOAD_LEN: usize = 128;
const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

/// Echo sequence numbers, shared by all checkers as keepalived's seq_no.
static SEQUENCE: AtomicU16 = AtomicU16::new(0);

pub struct PingCheck {
    conn: ConnOpts,
}

/// An ICMP socket and whether the kernel handles the echo identifier
/// (datagram "ping" socket) or we must (raw socket).
struct IcmpSocket {
    fd: AsyncFd<Socket>,
    raw: bool,
}

impl PingCheck {
    pub fn new(conn: ConnOpts) -> PingCheck {
        PingCheck { conn }
    }

    async fn probe(&self) -> io::Result<bool> {
        let sock = open(&self.conn)?;
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let ident = std::process::id() as u16;
        let v4 = self.conn.dst.is_ipv4();
        let packet = echo_request(v4, sock.raw, ident, seq);
        sock.fd
            .async_io(tokio::io::Interest::WRITABLE, |s| s.send(&packet))
            .await?;
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
        loop {
            let n = sock
                .fd
                .async_io(tokio::io::Interest::READABLE, |s| s.recv(&mut buf))
                .await?;
            // SAFETY: recv initialised the first n bytes.
            let data: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
            if is_our_reply(data, v4, sock.raw, ident, seq) {
                return Ok(true);
            }
        }
    }
}

impl Checker for PingCheck {
    fn describe(&self) -> String {
        format!("PING_CHECK {}", self.conn.dst.ip())
    }

    fn check(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let t = self.conn.timeout;
            match timeout(t, self.probe()).await {
                Ok(Ok(_)) => Outcome::up("echo reply"),
                Ok(Err(e)) => Outcome::down(socket::describe(&e)),
                Err(_) => Outcome::down(format!("no echo reply within {}", secs(t))),
            }
        })
    }
}

/// A connected ICMP socket: a datagram one if ping_group_range allows,
/// else a raw one. bindto and bind_if apply (keepalived ignores them).
fn open(conn: &ConnOpts) -> io::Result<IcmpSocket> {
    let (domain, proto) = match conn.dst {
        SocketAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        SocketAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let (socket, raw) = match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => (s, false),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
            (Socket::new(domain, Type::RAW, Some(proto))?, true)
        }
        Err(e) => return Err(e),
    };
    let icmp = ConnOpts {
        bind_port: None,
        ..conn.clone()
    };
    icmp.prepare(&socket)?;
    // Connected: the kernel then only passes us packets from the target.
    let mut target = icmp.target()?;
    target.set_port(0);
    socket.connect(&SockAddr::from(target))?;
    // SAFETY: the Socket owns its fd, which stays open and the same for
    // as long as the AsyncFd holds it.
    let fd = unsafe { AsyncFd::register(socket) }?;
    Ok(IcmpSocket { fd, raw })
}

/// Type, code, checksum, identifier, sequence, then the filler. The kernel
/// fills the checksum for ICMPv6 and for datagram sockets, and the
/// identifier for datagram sockets.
fn echo_request(v4: bool, raw: bool, ident: u16, seq: u16) -> Vec<u8> {
    let kind = if v4 { ECHO_REQUEST_V4 } else { ECHO_REQUEST_V6 };
    let mut p = vec![kind, 0, 0, 0];
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&socket::filler(PAYLOAD_LEN));
    if v4 && raw {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// A raw IPv4 socket also hands us the IP header; raw sockets see every
/// ICMP packet from the target (our own request on loopback too).
fn is_our_reply(data: &[u8], v4: bool, raw: bool, ident: u16, seq: u16) -> bool {
    let icmp = if v4 && raw {
        let ihl = usize::from(data.first().map_or(0, |b| b & 0x0f)) * 4;
        data.get(ihl..).unwrap_or_default()
    } else {
        data
    };
    let Some(hdr) = icmp.get(..8) else {
        return false;
    };
    let reply = if v4 { ECHO_REPLY_V4 } else { ECHO_REPLY_V6 };
    let same_ident = !raw || hdr[4..6] == ident.to_be_bytes();
    hdr[0] == reply && same_ident && hdr[6..8] == seq.to_be_bytes()
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_request_verifies() {
        let p = echo_request(true, true, 0x1234, 7);
        assert_eq!(checksum(&p), 0);
    }
}
