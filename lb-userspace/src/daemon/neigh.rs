//! MACs of the reals from the kernel: the route says whether a real is on
//! a directly attached link (DR needs that) or this host itself; the
//! neighbour table gives the MAC, probed with ARP/ND when missing.

use super::director::Neighbours;
use crate::netlink::{self, Resolution};
use std::{collections::HashSet, net::IpAddr, time::Duration};

pub struct KernelNeighbours {
    /// How long one resolution may wait for an ARP/ND answer.
    pub timeout: Duration,
}

impl Neighbours for KernelNeighbours {
    fn mac(&mut self, addr: IpAddr) -> Option<[u8; 6]> {
        match netlink::resolve_mac(addr, self.timeout) {
            Ok(Resolution::Mac { mac, .. }) => Some(mac),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(real = %addr, error = %e, "cannot resolve MAC");
                None
            }
        }
    }

    fn local_addrs(&mut self) -> HashSet<IpAddr> {
        match netlink::list_addrs(None) {
            Ok(addrs) => addrs.into_iter().map(|a| a.addr).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list local addresses");
                HashSet::new()
            }
        }
    }
}
