//! Raw IP protocol 112 sockets: one per instance, bound to its interface.
//!
//! IPv4 builds its own IP header (`IP_HDRINCL`), as keepalived does, so the
//! source address, TTL 255 and TOS are exactly ours. IPv6 cannot: the
//! source goes in an `IPV6_PKTINFO` control message and the hop limit in
//! the socket options. Receiving needs the TTL / hop limit and the
//! destination, which IPv4 reads from the header and IPv6 from control
//! messages.

use std::{
    io,
    mem::{size_of, zeroed},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use super::packet::IPPROTO_VRRP;

/// keepalived's TOS for adverts (IPTOS_PREC_INTERNETCONTROL).
const TOS_INTERNETCONTROL: u8 = 0xc0;
pub const IPV4_HDR_LEN: usize = 20;

/// One received datagram, with what the checks need from the IP layer.
#[derive(Debug, Clone)]
pub struct Received {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    /// The VRRP message, IP header removed.
    pub payload: Vec<u8>,
    /// IPv4 only: the header's total length disagrees with what arrived.
    pub truncated: bool,
}

/// A non-blocking raw VRRP socket on one interface.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: OwnedFd,
    ifindex: u32,
    v6: bool,
}

impl AsRawFd for VrrpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl VrrpSocket {
    /// Opens the socket on `ifname` and joins `group` there (multicast
    /// mode; `None` for unicast peers only).
    pub fn open(ifname: &str, ifindex: u32, v6: bool, group: Option<IpAddr>) -> io::Result<Self> {
        let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe {
            libc::socket(
                domain,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(IPPROTO_VRRP),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = VrrpSocket { fd, ifindex, v6 };
        sock.bind_device(ifname)?;
        if v6 {
            sock.set(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255)?;
            sock.set(libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
            sock.set(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, 0)?;
            sock.set(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, ifindex as i32)?;
            sock.set(libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
            sock.set(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        } else {
            sock.set(libc::IPPROTO_IP, libc::IP_HDRINCL, 1)?;
            sock.set(libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, 0)?;
        }
        match group {
            Some(IpAddr::V4(g)) => sock.join_v4(g)?,
            Some(IpAddr::V6(g)) => sock.join_v6(g)?,
            None => {}
        }
        Ok(sock)
    }

    fn bind_device(&self, ifname: &str) -> io::Result<()> {
        // SAFETY: the name buffer and its length are valid for the call.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                ifname.as_ptr().cast(),
                ifname.len() as libc::socklen_t,
            )
        };
        check(rc)
    }

    fn set(&self, level: i32, name: i32, value: i32) -> io::Result<()> {
        setsockopt(self.fd.as_raw_fd(), level, name, &value)
    }

    fn join_v4(&self, group: Ipv4Addr) -> io::Result<()> {
        let mreq = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr {
                s_addr: u32::from_ne_bytes(group.octets()),
            },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: self.ifindex as i32,
        };
        setsockopt(
            self.fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_ADD_MEMBERSHIP,
            &mreq,
        )
    }

    fn join_v6(&self, group: Ipv6Addr) -> io::Result<()> {
        let mreq = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: group.octets(),
            },
            ipv6mr_interface: self.ifindex,
        };
        setsockopt(
            self.fd.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_ADD_MEMBERSHIP,
            &mreq,
        )
    }

    /// Sends one VRRP message from `src` to `dst` with TTL / hop limit 255.
    pub fn send(&self, src: IpAddr, dst: IpAddr, payload: &[u8]) -> io::Result<()> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.send_v4(s, d, payload),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.send_v6(s, d, payload),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination of different families",
            )),
        }
    }

    fn send_v4(&self, src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(IPV4_HDR_LEN + payload.len());
        frame.extend_from_slice(&ipv4_header(src, dst, payload.len()));
        frame.extend_from_slice(payload);
        // SAFETY: zeroed sockaddr_in is valid; fields set below.
        let mut sa: libc::sockaddr_in = unsafe { zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
        // SAFETY: buffer and address are valid for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        sent(n, frame.len())
    }

    fn send_v6(&self, src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_in6 is valid; fields set below.
        let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
        sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sa.sin6_addr.s6_addr = dst.octets();
        sa.sin6_scope_id = self.ifindex;
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: self.ifindex,
        };
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        };
        // SAFETY: msghdr is plain data; every pointer set below outlives the
        // sendmsg call, and the control buffer is large and aligned enough
        // for one in6_pktinfo message.
        let n = unsafe {
            let mut msg: libc::msghdr = zeroed();
            msg.msg_name = (&mut sa as *mut libc::sockaddr_in6).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
            (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
            libc::sendmsg(self.fd.as_raw_fd(), &msg, 0)
        };
        sent(n, payload.len())
    }

    /// Reads one datagram; `WouldBlock` when none is queued.
    pub fn recv(&self) -> io::Result<Received> {
        let mut buf = vec![0u8; 2048];
        let mut control = [0u64; 16];
        // SAFETY: zeroed sockaddr_in6 is large enough for either family.
        let mut from: libc::sockaddr_in6 = unsafe { zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; all pointers outlive the call.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control) as _;
        // SAFETY: `msg` describes valid buffers.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        if self.v6 {
            Ok(parse_v6(&msg, &from, buf))
        } else {
            parse_v4(buf)
        }
    }
}

/// keepalived `vrrp_build_ip4`: no options, DF clear, TTL 255; the kernel
/// fills the id and checksum. Public for tests that send adverts.
pub fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> [u8; IPV4_HDR_LEN] {
    let mut h = [0u8; IPV4_HDR_LEN];
    h[0] = 0x45;
    h[1] = TOS_INTERNETCONTROL;
    h[2..4].copy_from_slice(&((IPV4_HDR_LEN + payload_len) as u16).to_be_bytes());
    h[8] = super::packet::VRRP_TTL;
    h[9] = IPPROTO_VRRP;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    h
}

fn parse_v4(buf: Vec<u8>) -> io::Result<Received> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "short IPv4 header");
    if buf.len() < IPV4_HDR_LEN {
        return Err(bad());
    }
    let ihl = usize::from(buf[0] & 0x0f) * 4;
    if ihl < IPV4_HDR_LEN || buf.len() < ihl {
        return Err(bad());
    }
    let tot_len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let addr = |at: usize| {
        IpAddr::V4(Ipv4Addr::new(
            buf[at],
            buf[at + 1],
            buf[at + 2],
            buf[at + 3],
        ))
    };
    Ok(Received {
        src: addr(12),
        dst: addr(16),
        ttl: buf[8],
        truncated: tot_len != buf.len(),
        payload: buf[ihl..].to_vec(),
    })
}

fn parse_v6(msg: &libc::msghdr, from: &libc::sockaddr_in6, payload: Vec<u8>) -> Received {
    let mut ttl = 0u8;
    let mut dst = Ipv6Addr::UNSPECIFIED;
    // SAFETY: the kernel filled `msg`'s control buffer; CMSG_* walk it
    // within msg_controllen, and each data read matches its cmsg_type.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let data = libc::CMSG_DATA(cmsg);
            match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                    let v: i32 = std::ptr::read_unaligned(data.cast());
                    ttl = v.clamp(0, 255) as u8;
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info: libc::in6_pktinfo = std::ptr::read_unaligned(data.cast());
                    dst = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    Received {
        src: IpAddr::V6(Ipv6Addr::from(from.sin6_addr.s6_addr)),
        dst: IpAddr::V6(dst),
        ttl,
        payload,
        truncated: false,
    }
}

pub(crate) fn setsockopt<T>(fd: RawFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    check(rc)
}

fn check(rc: i32) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn sent(n: isize, want: usize) -> io::Result<()> {
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != want {
        return Err(io::Error::other(format!("sent {n} of {want} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_is_keepalived_shaped() {
        let h = ipv4_header(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(224, 0, 0, 18), 20);
        assert_eq!(h[0], 0x45);
        assert_eq!(h[1], 0xc0);
        assert_eq!(u16::from_be_bytes([h[2], h[3]]), 40);
        assert_eq!((h[8], h[9]), (255, 112));
        let parsed = parse_v4([h.to_vec(), vec![0; 20]].concat()).unwrap();
        assert_eq!(parsed.dst, IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)));
        assert_eq!(
            (parsed.ttl, parsed.payload.len(), parsed.truncated),
            (255, 20, false)
        );
    }

    #[test]
    fn short_or_lying_ipv4_headers_are_refused_or_flagged() {
        assert!(parse_v4(vec![0x45; 10]).is_err());
        assert!(parse_v4(vec![0x4f; 20]).is_err());
        let h = ipv4_header(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 40);
        assert!(
            parse_v4([h.to_vec(), vec![0; 20]].concat())
                .unwrap()
                .truncated
        );
    }
}
