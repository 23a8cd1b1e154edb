//! Builds Ethernet frames byte by byte, with valid IP/TCP/UDP checksums, so
//! tests can state exactly what went in and what must come out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// The layer-4 part of a frame.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// Any other IP protocol, with raw payload bytes.
    Other {
        proto: u8,
    },
}

/// A frame description; `build()` turns it into bytes.
#[derive(Clone, Debug)]
pub struct Frame {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    /// IPv4 options (padded to 4 bytes by the caller).
    pub ipv4_options: Vec<u8>,
    /// IPv4 flags+fragment offset field (e.g. 0x2000 = MF, 0x4000 = DF).
    pub ipv4_frag: u16,
    pub l4: L4,
    pub payload: Vec<u8>,
}

pub const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0x1e, 0x00, 0x00, 0x01];
pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0xd1, 0x00, 0x00, 0x00, 0x01];

impl Frame {
    pub fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: u8) -> Frame {
        Frame::new(
            src,
            dst,
            L4::Tcp {
                sport,
                dport,
                flags,
            },
        )
    }

    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Frame {
        Frame::new(src, dst, L4::Udp { sport, dport })
    }

    pub fn new(src: IpAddr, dst: IpAddr, l4: L4) -> Frame {
        Frame {
            eth_dst: DIRECTOR_MAC,
            eth_src: CLIENT_MAC,
            vlan: None,
            src,
            dst,
            ttl: 64,
            ipv4_options: Vec::new(),
            ipv4_frag: 0x4000,
            l4,
            payload: b"xvs".to_vec(),
        }
    }

    pub fn vlan(mut self, id: u16) -> Frame {
        self.vlan = Some(id);
        self
    }

    pub fn payload(mut self, payload: &[u8]) -> Frame {
        self.payload = payload.to_vec();
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&self.eth_dst);
        f.extend_from_slice(&self.eth_src);
        if let Some(id) = self.vlan {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&(id & 0x0fff).to_be_bytes());
        }
        let ethertype: u16 = if self.src.is_ipv4() { 0x0800 } else { 0x86dd };
        f.extend_from_slice(&ethertype.to_be_bytes());
        let l4 = self.l4_bytes();
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => f.extend(self.ipv4(s, d, &l4)),
            (IpAddr::V6(s), IpAddr::V6(d)) => f.extend(self.ipv6(s, d, &l4)),
            _ => panic!("mixed address families"),
        }
        f
    }

    fn proto(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Other { proto } => proto,
        }
    }

    /// L4 header + payload, checksum field zero (filled per family).
    fn l4_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&1u32.to_be_bytes()); // seq
                b.extend_from_slice(&0u32.to_be_bytes()); // ack
                b.push(5 << 4);
                b.push(flags);
                b.extend_from_slice(&64240u16.to_be_bytes());
                b.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
            }
            L4::Udp { sport, dport } => {
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                b.extend_from_slice(&[0, 0]);
            }
            L4::Other { .. } => {}
        }
        b.extend_from_slice(&self.payload);
        b
    }

    fn checksum_at(&self) -> Option<usize> {
        match self.l4 {
            L4::Tcp { .. } => Some(16),
            L4::Udp { .. } => Some(6),
            L4::Other { .. } => None,
        }
    }

    fn ipv4(&self, s: Ipv4Addr, d: Ipv4Addr, l4: &[u8]) -> Vec<u8> {
        let hlen = 20 + self.ipv4_options.len();
        let mut h = vec![0u8; 20];
        h[0] = 0x40 | (hlen / 4) as u8;
        h[2..4].copy_from_slice(&((hlen + l4.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        h[6..8].copy_from_slice(&self.ipv4_frag.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.proto();
        h[12..16].copy_from_slice(&s.octets());
        h[16..20].copy_from_slice(&d.octets());
        h.extend_from_slice(&self.ipv4_options);
        let c = checksum(&h, 0);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let mut l4 = l4.to_vec();
        if let Some(at) = self.checksum_at() {
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, self.proto()]);
            pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            let c = checksum(&l4, sum(&pseudo));
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        h.extend(l4);
        h
    }

    fn ipv6(&self, s: Ipv6Addr, d: Ipv6Addr, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 40];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
        h[6] = self.proto();
        h[7] = self.ttl;
        h[8..24].copy_from_slice(&s.octets());
        h[24..40].copy_from_slice(&d.octets());
        let mut l4 = l4.to_vec();
        if let Some(at) = self.checksum_at() {
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, self.proto()]);
            let c = checksum(&l4, sum(&pseudo));
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        h.extend(l4);
        h
    }
}

fn sum(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum()
}

/// The Internet checksum of `data`, starting from a partial sum.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut s = initial + sum(data);
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// What DR forwarding must turn `frame` into: the same bytes with the
/// destination MAC set to the real's and the source to the director's.
pub fn expected_dr(frame: &[u8], real_mac: [u8; 6], director_mac: [u8; 6]) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[0..6].copy_from_slice(&real_mac);
    out[6..12].copy_from_slice(&director_mac);
    out
}
