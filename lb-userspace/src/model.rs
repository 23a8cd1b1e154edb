//! What the data plane is asked to carry: virtual services and their reals,
//! independent of how a backend (XDP, IPVS) represents them.

use serde::{Deserialize, Serialize};
use std::{fmt, net::IpAddr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => lb_common::PROTO_TCP,
            Protocol::Udp => lb_common::PROTO_UDP,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// A virtual service's identity: VIP, port and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceId {
    pub vip: IpAddr,
    pub port: u16,
    pub proto: Protocol,
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vip {
            IpAddr::V4(a) => write!(f, "{} {}:{}", self.proto, a, self.port),
            IpAddr::V6(a) => write!(f, "{} [{}]:{}", self.proto, a, self.port),
        }
    }
}

/// The scheduler a service uses, with its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SchedulerKind {
    Rr,
    Wrr,
    Sh { fallback: bool, port: bool },
}

impl SchedulerKind {
    /// The name ipvsadm and keepalived use.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Sh { .. } => "sh",
        }
    }
}

/// `persistence_timeout` and `persistence_granularity` / `ipvsadm -p T -M M`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Persistence {
    pub timeout_s: u32,
    /// Prefix length applied to the client address (32 or 128 = per client).
    pub prefix_len: u8,
}

/// One real server of a service, in DR mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RealSpec {
    pub addr: IpAddr,
    pub port: u16,
    /// 0 drains: no new flows, existing ones continue.
    pub weight: u32,
    /// Next-hop MAC of the real (resolved through the neighbour table).
    pub mac: [u8; 6],
    /// The real is this director: its packets go to the local stack.
    pub local: bool,
}

/// A virtual service. `reals` are in the order they were added, as
/// keepalived adds them; IPVS keeps its own list newest-first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub id: ServiceId,
    pub scheduler: SchedulerKind,
    pub persistence: Option<Persistence>,
    pub reals: Vec<RealSpec>,
}
