//! Interface addresses: list (RTM_GETADDR), add (RTM_NEWADDR), delete
//! (RTM_DELADDR), IPv4 and IPv6.

use std::{io, net::IpAddr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::{
    address::{AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope},
    RouteNetlinkMessage,
};
use serde::Serialize;

use super::{family_of, host_prefix_len, socket::RouteSocket, with_context};

/// One address configured on an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddrEntry {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// The IPv4 label (`lo:xvs`); IPv6 addresses have none.
    pub label: Option<String>,
}

/// The addresses of one interface, or of all of them.
pub fn list_addrs(ifindex: Option<u32>) -> io::Result<Vec<AddrEntry>> {
    let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
    let replies = RouteSocket::open()
        .and_then(|mut socket| socket.dump(request))
        .map_err(|error| with_context(error, "RTM_GETADDR dump"))?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewAddress(message) => addr_entry(message),
            _ => None,
        })
        .filter(|entry| ifindex.is_none_or(|wanted| entry.ifindex == wanted))
        .collect())
}

/// Adds `addr/prefix_len` to the interface. Already present is success.
/// IPv6 addresses skip duplicate address detection: a VIP that moves between
/// hosts must be usable at once, not "tentative" for a second or two.
pub fn add_addr(ifindex: u32, addr: IpAddr, prefix_len: u8, label: Option<&str>) -> io::Result<()> {
    let context = || format!("RTM_NEWADDR {addr}/{prefix_len} on ifindex {ifindex}");
    let mut message =
        address_message(ifindex, addr, prefix_len).map_err(|e| with_context(e, context()))?;
    if let (IpAddr::V4(_), Some(label)) = (addr, label) {
        message
            .attributes
            .push(AddressAttribute::Label(label.to_string()));
    }
    if addr.is_ipv6() {
        message.header.flags = AddressHeaderFlags::Nodad;
    }
    let result = RouteSocket::open().and_then(|mut socket| {
        socket.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    });
    match result {
        Ok(_) => Ok(()),
        Err(error) if error.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(error) => Err(with_context(error, context())),
    }
}

/// Deletes `addr/prefix_len` from the interface. Already absent is success.
pub fn del_addr(ifindex: u32, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
    let context = || format!("RTM_DELADDR {addr}/{prefix_len} on ifindex {ifindex}");
    let message =
        address_message(ifindex, addr, prefix_len).map_err(|e| with_context(e, context()))?;
    let result = RouteSocket::open()
        .and_then(|mut socket| socket.request(RouteNetlinkMessage::DelAddress(message), 0));
    match result {
        Ok(_) => Ok(()),
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(libc::ENOENT | libc::EADDRNOTAVAIL)
            ) =>
        {
            Ok(())
        }
        Err(error) => Err(with_context(error, context())),
    }
}

/// The message naming one address, as `ip addr add|del` builds it: the
/// address as both IFA_LOCAL and IFA_ADDRESS (no peer), global scope.
fn address_message(ifindex: u32, addr: IpAddr, prefix_len: u8) -> io::Result<AddressMessage> {
    if prefix_len > host_prefix_len(addr) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("prefix length {prefix_len} is too long"),
        ));
    }
    let mut message = AddressMessage::default();
    message.header.family = family_of(addr);
    message.header.prefix_len = prefix_len;
    message.header.index = ifindex;
    message.header.scope = AddressScope::Universe;
    message.attributes.push(AddressAttribute::Local(addr));
    message.attributes.push(AddressAttribute::Address(addr));
    Ok(message)
}

fn addr_entry(message: AddressMessage) -> Option<AddrEntry> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on a
    // point-to-point link, and the only one IPv6 usually sends.
    let mut local = None;
    let mut address = None;
    let mut label = None;
    for attribute in message.attributes {
        match attribute {
            AddressAttribute::Local(addr) => local = Some(addr),
            AddressAttribute::Address(addr) => address = Some(addr),
            AddressAttribute::Label(text) => label = Some(text),
            _ => {}
        }
    }
    Some(AddrEntry {
        ifindex: message.header.index,
        addr: local.or(address)?,
        prefix_len: message.header.prefix_len,
        label,
    })
}
