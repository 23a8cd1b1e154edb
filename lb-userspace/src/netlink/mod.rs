//! A small synchronous rtnetlink layer: interface indexes, addresses,
//! neighbours, and finding the MAC address of a real server.
//!
//! Every call opens its own socket, and a netlink socket belongs to the
//! network namespace of the *thread* that opens it: a thread that did
//! `setns(CLONE_NEWNET)` works on that namespace.
//!
//! Errors are `io::Error`s of the kernel's kind, their message naming the
//! request and the address it was about.

mod addr;
mod neigh;
mod resolve;
mod socket;

use std::{ffi::CString, fmt::Display, io, net::IpAddr};

use netlink_packet_route::AddressFamily;

pub use addr::{add_addr, del_addr, list_addrs, AddrEntry};
pub use neigh::{
    neighbours, Neighbour, NeighbourChange, NeighbourWatcher, NUD_DELAY, NUD_FAILED,
    NUD_INCOMPLETE, NUD_NOARP, NUD_PERMANENT, NUD_PROBE, NUD_REACHABLE, NUD_STALE,
};
pub use resolve::{resolve_mac, route_to, Resolution, Route};

/// The index of the interface called `name` (in the calling thread's
/// network namespace).
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c_name = CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} contains a NUL byte"),
        )
    })?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call.
    match unsafe { libc::if_nametoindex(c_name.as_ptr()) } {
        0 => Err(with_context(
            io::Error::last_os_error(),
            format_args!("interface {name}"),
        )),
        index => Ok(index),
    }
}

/// Prefixes `error`'s message with what was being done, keeping its kind.
fn with_context(error: io::Error, context: impl Display) -> io::Error {
    io::Error::new(error.kind(), format!("{context}: {error}"))
}

fn family_of(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The host-route prefix length of `addr`'s family: 32 or 128.
pub fn host_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}
