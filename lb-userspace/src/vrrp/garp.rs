//! Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6):
//! how a new MASTER tells the segment that the VIPs now live at its MAC.
//!
//! As keepalived: an ARP *request* from and for the VIP, broadcast; an NA
//! with the Override flag and the target link-layer option, to all-nodes.

use std::{
    io,
    mem::{size_of, zeroed},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use super::socket::setsockopt;

const ETH_P_ARP: u16 = 0x0806;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ND_NEIGHBOR_ADVERT: u8 = 136;
const NA_FLAG_OVERRIDE: u8 = 0x20;
const ND_OPT_TARGET_LINKADDR: u8 = 2;

/// Sends the announcements for one interface.
pub struct Announcer {
    ifindex: u32,
    mac: [u8; 6],
    arp: Option<OwnedFd>,
    ndp: Option<OwnedFd>,
}

impl Announcer {
    pub fn new(ifname: &str) -> anyhow::Result<Self> {
        let (ifindex, mac) = crate::dataplane::xdp::iface_index_and_mac(ifname)?;
        Ok(Announcer {
            ifindex,
            mac,
            arp: None,
            ndp: None,
        })
    }

    /// One announcement for `vip`.
    pub fn announce(&mut self, vip: IpAddr) -> io::Result<()> {
        match vip {
            IpAddr::V4(v4) => self.garp(v4),
            IpAddr::V6(v6) => self.unsolicited_na(v6),
        }
    }

    fn garp(&mut self, vip: Ipv4Addr) -> io::Result<()> {
        if self.arp.is_none() {
            self.arp = Some(socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from(ETH_P_ARP.to_be()),
            )?);
        }
        let fd = self.arp.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
        let frame = garp_frame(self.mac, vip);
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ARP.to_be();
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: frame and address are valid for the call.
        let n = unsafe {
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn unsolicited_na(&mut self, vip: Ipv6Addr) -> io::Result<()> {
        if self.ndp.is_none() {
            let fd = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6)?;
            let raw = fd.as_raw_fd();
            setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &255i32)?;
            setsockopt(
                raw,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                &(self.ifindex as i32),
            )?;
            self.ndp = Some(fd);
        }
        let fd = self.ndp.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
        let message = na_message(self.mac, vip);
        // SAFETY: zeroed sockaddr_in6 is valid; fields set below.
        let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
        sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sa.sin6_addr.s6_addr = ALL_NODES.octets();
        sa.sin6_scope_id = self.ifindex;
        // SAFETY: message and address are valid for the call. The kernel
        // fills the ICMPv6 checksum on raw ICMPv6 sockets.
        let n = unsafe {
            libc::sendto(
                fd,
                message.as_ptr().cast(),
                message.len(),
                0,
                (&sa as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Ethernet + ARP request: sender and target protocol address both `vip`.
fn garp_frame(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&vip.octets());
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&vip.octets());
    f
}

/// ICMPv6 NA for `vip` (checksum left to the kernel).
fn na_message(mac: [u8; 6], vip: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![ND_NEIGHBOR_ADVERT, 0, 0, 0, NA_FLAG_OVERRIDE, 0, 0, 0];
    m.extend_from_slice(&vip.octets());
    m.extend_from_slice(&[ND_OPT_TARGET_LINKADDR, 1]);
    m.extend_from_slice(&mac);
    m
}

fn socket(domain: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked.
    let raw = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Whether the interface is up and has carrier (IFF_UP and IFF_RUNNING).
pub fn link_up(ifname: &str) -> io::Result<bool> {
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: as in interface_mac.
    let mut req: libc::ifreq = unsafe { zeroed() };
    if ifname.len() >= req.ifr_name.len() {
        return Ok(false);
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills `req` in place.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        let e = io::Error::last_os_error();
        // A vanished interface is a down one.
        return if e.raw_os_error() == Some(libc::ENODEV) {
            Ok(false)
        } else {
            Err(e)
        };
    }
    // SAFETY: the kernel set ifru_flags for this request.
    let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
    Ok(flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_is_a_broadcast_request_for_the_vip() {
        let mac = [2, 0, 0, 0, 0, 1];
        let f = garp_frame(mac, Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "opcode request");
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[10, 0, 0, 100]);
        assert_eq!(&f[38..42], &[10, 0, 0, 100]);
    }

    #[test]
    fn na_overrides_and_carries_the_mac() {
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let m = na_message([2, 0, 0, 0, 0, 1], vip);
        assert_eq!((m[0], m[4]), (136, 0x20));
        assert_eq!(&m[8..24], &vip.octets());
        assert_eq!(&m[24..26], &[2, 1]);
        assert_eq!(m.len(), 32);
    }

    #[test]
    fn loopback_is_up_and_nonsense_is_down() {
        assert!(link_up("lo").unwrap());
        assert!(!link_up("xvs-no-such-if").unwrap());
    }
}
