//! Finding the MAC address of a real server: the route to it (RTM_GETROUTE),
//! the neighbour table, and making the kernel resolve what it does not know.
//!
//! Resolution is triggered with an RTM_NEWNEIGH carrying `NTF_USE` on the
//! route's output interface: the kernel treats it exactly as a packet waiting
//! for that neighbour (`neigh_event_send`), so it sends the ARP request or
//! neighbour solicitation itself, with its own retries and source-address
//! rules, and no datagram ever reaches the real. It works the same for IPv4
//! and IPv6 and restarts a FAILED entry. It needs CAP_NET_ADMIN; without it
//! we fall back to what any process may do: an empty UDP datagram to the
//! discard port, which the kernel holds while it resolves the address.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket},
    time::{Duration, Instant},
};

use netlink_packet_core::NLM_F_CREATE;
use netlink_packet_route::{
    neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteType},
    RouteNetlinkMessage,
};
use serde::Serialize;

use super::{
    family_of, host_prefix_len,
    neigh::{neighbours, NeighbourChange, NeighbourWatcher, NUD_FAILED},
    socket::RouteSocket,
    with_context,
};

/// How often the table is re-read while waiting, in case a notification was
/// lost.
const RECHECK_INTERVAL: Duration = Duration::from_millis(200);

/// The discard service: whatever reaches it is dropped.
const DISCARD_PORT: u16 = 9;

/// How this host reaches an address (one RTM_GETROUTE lookup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The output interface (`lo` for a local address).
    pub ifindex: u32,
    /// The next hop, when the address is not on a directly attached link.
    pub gateway: Option<IpAddr>,
    /// The address is one of this host's own.
    pub local: bool,
    /// The source address the kernel would pick.
    pub source: Option<IpAddr>,
}

/// The outcome of [`resolve_mac`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Resolution {
    /// An on-link neighbour, and the interface it is reached through.
    Mac { mac: [u8; 6], ifindex: u32 },
    /// One of this host's own addresses: the real is the director itself.
    Local,
    /// On-link through `ifindex`, but no answer before the timeout.
    Unresolved { ifindex: u32 },
}

impl Resolution {
    /// The MAC and interface, when resolved.
    pub fn mac(&self) -> Option<([u8; 6], u32)> {
        match *self {
            Resolution::Mac { mac, ifindex } => Some((mac, ifindex)),
            _ => None,
        }
    }
}

/// Looks up the route the kernel would use to send to `addr`.
pub fn route_to(addr: IpAddr) -> io::Result<Route> {
    let mut message = RouteMessage::default();
    message.header.address_family = family_of(addr);
    message.header.destination_prefix_length = host_prefix_len(addr);
    message
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::from(addr)));
    let replies = RouteSocket::open()
        .and_then(|mut socket| socket.request(RouteNetlinkMessage::GetRoute(message), 0))
        .map_err(|error| with_context(error, format_args!("RTM_GETROUTE {addr}")))?;
    let route = replies.into_iter().find_map(|reply| match reply {
        RouteNetlinkMessage::NewRoute(route) => Some(route),
        _ => None,
    });
    route
        .ok_or_else(|| io::Error::other(format!("RTM_GETROUTE {addr}: the kernel sent no route")))
        .and_then(|route| route_of(addr, route))
}

/// Finds the MAC address of `addr`, asking the kernel to resolve it if its
/// neighbour table has no usable entry, and waiting up to `timeout`.
///
/// An address of this host is [`Resolution::Local`]. An address reached
/// through a gateway is an error: direct routing only rewrites MACs, so a
/// real must be on a link the director is attached to.
pub fn resolve_mac(addr: IpAddr, timeout: Duration) -> io::Result<Resolution> {
    let route = route_to(addr)?;
    if route.local {
        return Ok(Resolution::Local);
    }
    if let Some(gateway) = route.gateway {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{addr} is not on-link (routed via {gateway} on ifindex {}): \
                 a direct-routing real must share a link with the director",
                route.ifindex
            ),
        ));
    }
    wait_for_neighbour(addr, route.ifindex, Instant::now() + timeout)
}

fn wait_for_neighbour(addr: IpAddr, ifindex: u32, deadline: Instant) -> io::Result<Resolution> {
    // Subscribe before looking, so a change between the look and the wait
    // is not missed.
    let mut watcher = NeighbourWatcher::new()?;
    if let Some(mac) = known_mac(addr, ifindex)? {
        return Ok(Resolution::Mac { mac, ifindex });
    }
    trigger_resolution(addr, ifindex)?;
    let mut last_check = Instant::now();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(Resolution::Unresolved { ifindex });
        }
        let mut lost_changes = false;
        for change in watcher.wait(remaining.min(RECHECK_INTERVAL))? {
            match change {
                NeighbourChange::Updated(entry)
                    if entry.addr == addr && entry.ifindex == ifindex =>
                {
                    if let Some(mac) = entry.usable_mac() {
                        return Ok(Resolution::Mac { mac, ifindex });
                    }
                    if entry.state & NUD_FAILED != 0 {
                        // The kernel gave up for now; ask again while time remains.
                        trigger_resolution(addr, ifindex)?;
                    }
                }
                NeighbourChange::Overrun => lost_changes = true,
                _ => {}
            }
        }
        if lost_changes || last_check.elapsed() >= RECHECK_INTERVAL {
            last_check = Instant::now();
            if let Some(mac) = known_mac(addr, ifindex)? {
                return Ok(Resolution::Mac { mac, ifindex });
            }
        }
    }
}

/// The usable MAC of `addr` in the neighbour table, if any.
fn known_mac(addr: IpAddr, ifindex: u32) -> io::Result<Option<[u8; 6]>> {
    Ok(neighbours(Some(ifindex))?
        .into_iter()
        .find(|entry| entry.addr == addr)
        .and_then(|entry| entry.usable_mac()))
}

fn trigger_resolution(addr: IpAddr, ifindex: u32) -> io::Result<()> {
    match request_kernel_resolution(addr, ifindex) {
        Ok(()) => Ok(()),
        Err(error) => {
            log::debug!("{error}; resolving {addr} with a datagram instead");
            send_discard_datagram(addr)
                .map_err(|error| with_context(error, format_args!("UDP to {addr} port 9")))
        }
    }
}

/// RTM_NEWNEIGH with `NTF_USE` (`ip neigh replace ADDR dev DEV use`): see the
/// module's comment.
fn request_kernel_resolution(addr: IpAddr, ifindex: u32) -> io::Result<()> {
    let mut message = NeighbourMessage::default();
    message.header.family = family_of(addr);
    message.header.ifindex = ifindex;
    message.header.state = NeighbourState::None;
    message.header.flags = NeighbourFlags::Use;
    message
        .attributes
        .push(NeighbourAttribute::Destination(addr.into()));
    RouteSocket::open()
        .and_then(|mut socket| {
            socket.request(RouteNetlinkMessage::NewNeighbour(message), NLM_F_CREATE)
        })
        .map(drop)
        .map_err(|error| {
            with_context(
                error,
                format_args!("RTM_NEWNEIGH NTF_USE {addr} on ifindex {ifindex}"),
            )
        })
}

fn send_discard_datagram(addr: IpAddr) -> io::Result<()> {
    let any: IpAddr = match addr {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    UdpSocket::bind((any, 0))?.send_to(&[], (addr, DISCARD_PORT))?;
    Ok(())
}

fn route_of(addr: IpAddr, message: RouteMessage) -> io::Result<Route> {
    let local = match message.header.kind {
        RouteType::Local => true,
        RouteType::Unicast => false,
        other => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("RTM_GETROUTE {addr}: no unicast route (route type {other:?})"),
            ))
        }
    };
    let mut route = Route {
        ifindex: 0,
        gateway: None,
        local,
        source: None,
    };
    for attribute in message.attributes {
        match attribute {
            RouteAttribute::Oif(ifindex) => route.ifindex = ifindex,
            RouteAttribute::Gateway(gateway) => route.gateway = ip_of(gateway),
            RouteAttribute::PrefSource(source) => route.source = ip_of(source),
            _ => {}
        }
    }
    Ok(route)
}

fn ip_of(address: RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(ip.into()),
        RouteAddress::Inet6(ip) => Some(ip.into()),
        _ => None,
    }
}
