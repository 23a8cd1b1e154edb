//! MACs of the reals from the kernel's neighbour table. One dump answers a
//! whole batch; an address without a usable entry gets a resolution request
//! (the kernel then sends ARP/ND itself, as for a waiting packet), and a
//! later batch finds the answer. Nothing here waits.

use super::director::Neighbours;
use crate::netlink::{self, Resolution};
use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

pub struct KernelNeighbours;

impl Neighbours for KernelNeighbours {
    fn macs(&mut self, addrs: &[IpAddr]) -> HashMap<IpAddr, [u8; 6]> {
        let table: HashMap<IpAddr, [u8; 6]> = match netlink::neighbours(None) {
            Ok(entries) => entries
                .into_iter()
                .filter_map(|n| n.usable_mac().map(|mac| (n.addr, mac)))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the neighbour table");
                HashMap::new()
            }
        };
        let mut found = HashMap::new();
        for &addr in addrs {
            if let Some(mac) = table.get(&addr) {
                found.insert(addr, *mac);
                continue;
            }
            // Zero wait: this only asks the kernel to resolve.
            match netlink::resolve_mac(addr, Duration::ZERO) {
                Ok(Resolution::Mac { mac, .. }) => {
                    found.insert(addr, mac);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(real = %addr, error = %e, "cannot resolve MAC"),
            }
        }
        found
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
