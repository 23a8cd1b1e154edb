//! Header parsing. Each step checks bounds against `data_end` (the verifier
//! insists, and a truncated frame must pass untouched) and stops as soon as a
//! packet can no longer be ours.

use aya_ebpf::programs::XdpContext;
use core::mem::size_of;
use lb_common::{Verdict, FAMILY_V4, FAMILY_V6, PROTO_TCP, PROTO_UDP};

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const IPV4_HLEN_MIN: usize = 20;
const IPV6_HLEN: usize = 40;
const TCP_HLEN_MIN: usize = 20;
const UDP_HLEN: usize = 8;
/// IPv4 "more fragments" flag and fragment offset bits.
const IPV4_FRAG_MASK: u16 = 0x3FFF;

/// A pointer to `T` at `off`, if the frame holds all of it.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*mut T> {
    let start = ctx.data();
    if start + off + size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some((start + off) as *mut T)
}

#[inline(always)]
fn load<T: Copy>(ctx: &XdpContext, off: usize) -> Option<T> {
    ptr_at::<T>(ctx, off).map(|p| unsafe { p.read_unaligned() })
}

/// What the IP header says, enough to decide whether the packet is ours.
pub struct L3 {
    pub family: u8,
    pub proto: u8,
    pub l4_off: usize,
    /// The IP packet's own length (header included): what IPVS counts, and
    /// where the L4 header must end. Trailing frame bytes are not ours.
    pub ip_len: u32,
    /// Offset just past the IP packet.
    pub ip_end: usize,
    pub saddr: [u32; 4],
    pub daddr: [u32; 4],
    /// IPv4 fragment (first or later): never balanced.
    pub fragment: bool,
}

/// Ethernet, one optional 802.1Q tag, then IPv4 or IPv6 up to the L4 offset.
#[inline(always)]
pub fn parse_l3(ctx: &XdpContext) -> Result<L3, Verdict> {
    let mut ethertype = u16::from_be(load::<u16>(ctx, 12).ok_or(Verdict::PassMalformed)?);
    let mut l3_off = ETH_HLEN;
    if ethertype == ETH_P_8021Q {
        ethertype = u16::from_be(load::<u16>(ctx, ETH_HLEN + 2).ok_or(Verdict::PassMalformed)?);
        l3_off += VLAN_HLEN;
    }
    let frame_len = (ctx.data_end() - ctx.data()) as u32;
    match ethertype {
        ETH_P_IP => parse_ipv4(ctx, l3_off, frame_len),
        ETH_P_IPV6 => parse_ipv6(ctx, l3_off, frame_len),
        _ => Err(Verdict::PassNotIp),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, off: usize, frame_len: u32) -> Result<L3, Verdict> {
    let hdr = ptr_at::<[u8; IPV4_HLEN_MIN]>(ctx, off).ok_or(Verdict::PassMalformed)?;
    let hdr = unsafe { &*hdr };
    if hdr[0] >> 4 != 4 {
        return Err(Verdict::PassMalformed);
    }
    let ihl = ((hdr[0] & 0x0F) as usize) * 4;
    let tot_len = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
    let available = (frame_len - off as u32) as usize;
    if ihl < IPV4_HLEN_MIN || tot_len < ihl || tot_len > available {
        return Err(Verdict::PassMalformed);
    }
    let frag = u16::from_be_bytes([hdr[6], hdr[7]]) & IPV4_FRAG_MASK != 0;
    let word = |i: usize| u32::from_ne_bytes([hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]]);
    Ok(L3 {
        family: FAMILY_V4,
        proto: hdr[9],
        l4_off: off + ihl,
        ip_len: tot_len as u32,
        ip_end: off + tot_len,
        saddr: [word(12), 0, 0, 0],
        daddr: [word(16), 0, 0, 0],
        fragment: frag,
    })
}

/// IPv6 without extension headers; any other next header is passed.
#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, off: usize, frame_len: u32) -> Result<L3, Verdict> {
    let hdr = ptr_at::<[u32; IPV6_HLEN / 4]>(ctx, off).ok_or(Verdict::PassMalformed)?;
    let hdr = unsafe { hdr.read_unaligned() };
    let first = u32::from_be(hdr[0]);
    if first >> 28 != 6 {
        return Err(Verdict::PassMalformed);
    }
    let ip_len = (u32::from_be(hdr[1]) >> 16) + IPV6_HLEN as u32;
    if ip_len > frame_len - off as u32 {
        return Err(Verdict::PassMalformed);
    }
    Ok(L3 {
        family: FAMILY_V6,
        proto: (u32::from_be(hdr[1]) >> 8) as u8,
        l4_off: off + IPV6_HLEN,
        ip_len,
        ip_end: off + ip_len as usize,
        saddr: [hdr[2], hdr[3], hdr[4], hdr[5]],
        daddr: [hdr[6], hdr[7], hdr[8], hdr[9]],
        fragment: false,
    })
}

/// Ports (network order) and TCP flags.
pub struct L4 {
    pub sport_be: u16,
    pub dport_be: u16,
    /// TCP flags byte; 0 for UDP.
    pub tcp_flags: u8,
}

/// The L4 header must lie inside the IP packet, not merely inside the frame.
#[inline(always)]
pub fn parse_l4(ctx: &XdpContext, l3: &L3) -> Result<L4, Verdict> {
    let hlen = match l3.proto {
        PROTO_TCP => TCP_HLEN_MIN,
        PROTO_UDP => UDP_HLEN,
        _ => return Err(Verdict::PassNotTcpUdp),
    };
    if l3.l4_off + hlen > l3.ip_end {
        return Err(Verdict::PassMalformed);
    }
    match l3.proto {
        PROTO_TCP => {
            let hdr = ptr_at::<[u8; TCP_HLEN_MIN]>(ctx, l3.l4_off).ok_or(Verdict::PassMalformed)?;
            let hdr = unsafe { &*hdr };
            if ((hdr[12] >> 4) as usize) * 4 < TCP_HLEN_MIN {
                return Err(Verdict::PassMalformed);
            }
            Ok(L4 {
                sport_be: u16::from_ne_bytes([hdr[0], hdr[1]]),
                dport_be: u16::from_ne_bytes([hdr[2], hdr[3]]),
                tcp_flags: hdr[13],
            })
        }
        PROTO_UDP => {
            let hdr = ptr_at::<[u8; UDP_HLEN]>(ctx, l3.l4_off).ok_or(Verdict::PassMalformed)?;
            let hdr = unsafe { &*hdr };
            Ok(L4 {
                sport_be: u16::from_ne_bytes([hdr[0], hdr[1]]),
                dport_be: u16::from_ne_bytes([hdr[2], hdr[3]]),
                tcp_flags: 0,
            })
        }
        _ => Err(Verdict::PassNotTcpUdp),
    }
}
