//! The neighbour (ARP/NDP) table: a dump (RTM_GETNEIGH) and a watcher of its
//! changes (RTNLGRP_NEIGH).

use std::{
    io,
    net::IpAddr,
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    time::Duration,
};

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::{
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage},
    RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use serde::Serialize;

use super::{
    socket::{parse_datagram, receive_datagram, RouteSocket},
    with_context,
};

// Neighbour states (`NUD_*` in linux/neighbour.h), a bit each.
pub const NUD_INCOMPLETE: u16 = 0x01;
pub const NUD_REACHABLE: u16 = 0x02;
pub const NUD_STALE: u16 = 0x04;
pub const NUD_DELAY: u16 = 0x08;
pub const NUD_PROBE: u16 = 0x10;
pub const NUD_FAILED: u16 = 0x20;
pub const NUD_NOARP: u16 = 0x40;
pub const NUD_PERMANENT: u16 = 0x80;

/// States whose link-layer address the kernel itself sends to. STALE, DELAY
/// and PROBE are being re-confirmed but their MAC is still the best known.
const NUD_HAS_VALID_MAC: u16 = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT;

/// `RTNLGRP_NEIGH` in linux/rtnetlink.h.
const RTNLGRP_NEIGH: u32 = 3;

/// One entry of the neighbour table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    pub ifindex: u32,
    pub addr: IpAddr,
    /// None while incomplete or failed (and on links without MACs).
    pub mac: Option<[u8; 6]>,
    /// `NUD_*` bits.
    pub state: u16,
}

impl Neighbour {
    /// The MAC, if the entry is in a state the kernel would send to it.
    pub fn usable_mac(&self) -> Option<[u8; 6]> {
        self.mac
            .filter(|mac| self.state & NUD_HAS_VALID_MAC != 0 && *mac != [0; 6])
    }
}

/// The neighbour table (IPv4 and IPv6), of one interface or all.
pub fn neighbours(ifindex: Option<u32>) -> io::Result<Vec<Neighbour>> {
    let request = RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default());
    let replies = RouteSocket::open()
        .and_then(|mut socket| socket.dump(request))
        .map_err(|error| with_context(error, "RTM_GETNEIGH dump"))?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewNeighbour(message) => neighbour_of(message),
            _ => None,
        })
        .filter(|entry| ifindex.is_none_or(|wanted| entry.ifindex == wanted))
        .collect())
}

/// What a [`NeighbourWatcher`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeighbourChange {
    /// An entry was created or changed state or MAC.
    Updated(Neighbour),
    /// An entry was removed.
    Deleted(Neighbour),
    /// The kernel dropped notifications (the socket's buffer overflowed):
    /// re-read the table with [`neighbours`].
    Overrun,
}

/// A socket subscribed to neighbour-table changes. Its fd is non-blocking:
/// the daemon can register it with its event loop (`AsyncFd`) and call
/// [`read`](Self::read) when it is readable; a plain thread can
/// [`wait`](Self::wait).
pub struct NeighbourWatcher {
    socket: Socket,
    buffer: Vec<u8>,
}

impl NeighbourWatcher {
    pub fn new() -> io::Result<Self> {
        Self::subscribe().map_err(|error| with_context(error, "RTNLGRP_NEIGH subscription"))
    }

    fn subscribe() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, 0))?;
        socket.add_membership(RTNLGRP_NEIGH)?;
        socket.set_non_blocking(true)?;
        // Room for a burst (a link flap touches every entry of the link).
        socket.set_rx_buf_sz(1 << 20)?;
        Ok(Self {
            socket,
            buffer: Vec::new(),
        })
    }

    /// The changes queued so far; empty when there are none.
    pub fn read(&mut self) -> io::Result<Vec<NeighbourChange>> {
        let mut changes = Vec::new();
        loop {
            match receive_datagram(&self.socket, &mut self.buffer, libc::MSG_DONTWAIT) {
                Ok(()) => changes.extend(parse_datagram(&self.buffer).filter_map(change_of)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(changes),
                Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                    changes.push(NeighbourChange::Overrun)
                }
                Err(error) => return Err(with_context(error, "RTNLGRP_NEIGH read")),
            }
        }
    }

    /// Blocks until a change arrives or `timeout` passes, then returns what
    /// is queued (possibly nothing).
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Vec<NeighbourChange>> {
        let mut poll_fd = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = timeout.as_millis().min(libc::c_int::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd, for the duration of the call.
        if unsafe { libc::poll(&mut poll_fd, 1, millis) } < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(with_context(error, "poll on RTNLGRP_NEIGH"));
            }
        }
        self.read()
    }
}

impl AsRawFd for NeighbourWatcher {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for NeighbourWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is open for as long as `self.socket` lives.
        unsafe { BorrowedFd::borrow_raw(self.socket.as_raw_fd()) }
    }
}

fn change_of(message: io::Result<super::socket::Message>) -> Option<NeighbourChange> {
    let message = message
        .inspect_err(|error| log::warn!("neighbour watcher: skipped: {error}"))
        .ok()?;
    match message.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(neighbour)) => {
            neighbour_of(neighbour).map(NeighbourChange::Updated)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(neighbour)) => {
            neighbour_of(neighbour).map(NeighbourChange::Deleted)
        }
        _ => None,
    }
}

/// The IP entries of a neighbour message (bridge FDB entries have none).
fn neighbour_of(message: NeighbourMessage) -> Option<Neighbour> {
    let mut addr = None;
    let mut mac = None;
    for attribute in message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => addr = Some(ip.into()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => addr = Some(ip.into()),
            NeighbourAttribute::LinkLayerAddress(bytes) => mac = <[u8; 6]>::try_from(bytes).ok(),
            _ => {}
        }
    }
    Some(Neighbour {
        ifindex: message.header.ifindex,
        addr: addr?,
        mac,
        state: message.header.state.into(),
    })
}
