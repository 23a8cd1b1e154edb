//! The (address, port) pairs a virtual server stands for: its own address,
//! or every address of its virtual_server_group.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    diag::Pos,
    model::{Config, RealServer, VirtualServer, VsAddress, VsProtocol, VsgEntry},
};

/// A group entry may stand for at most this many addresses in XVS.
pub const MAX_RANGE_ADDRESSES: u128 = 4096;

/// One address and port a virtual server listens on, and where it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub addr: IpAddr,
    pub port: Option<u16>,
    pub pos: Pos,
}

/// Why a virtual server has no usable endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EndpointError {
    Fwmark(Pos),
    UnknownGroup(String, Pos),
    RangeTooLarge(u128, Pos),
}

/// The endpoints of a virtual server, in the order written.
pub(crate) fn endpoints(
    c: &Config,
    vs: &VirtualServer,
) -> Result<Vec<Endpoint>, Vec<EndpointError>> {
    match &vs.address {
        VsAddress::Ip { addr, port } => Ok(vec![Endpoint {
            addr: *addr,
            port: *port,
            pos: vs.pos.clone(),
        }]),
        VsAddress::Fwmark(_) => Err(vec![EndpointError::Fwmark(vs.pos.clone())]),
        VsAddress::Group(name) => group_endpoints(c, name, &vs.pos),
    }
}

fn group_endpoints(c: &Config, name: &str, at: &Pos) -> Result<Vec<Endpoint>, Vec<EndpointError>> {
    let Some(group) = c.virtual_server_groups.iter().find(|g| g.name == name) else {
        return Err(vec![EndpointError::UnknownGroup(
            name.to_owned(),
            at.clone(),
        )]);
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for entry in &group.entries {
        match entry {
            VsgEntry::Fwmark { pos, .. } => errors.push(EndpointError::Fwmark(pos.clone())),
            VsgEntry::Range {
                first,
                last,
                port,
                pos,
            } => match expand_range(*first, *last) {
                Ok(addrs) => out.extend(addrs.into_iter().map(|addr| Endpoint {
                    addr,
                    port: *port,
                    pos: pos.clone(),
                })),
                Err(size) => errors.push(EndpointError::RangeTooLarge(size, pos.clone())),
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Every address from `first` to `last`; Err(count) if there are too many.
pub(crate) fn expand_range(first: IpAddr, last: IpAddr) -> Result<Vec<IpAddr>, u128> {
    let (lo, hi, v4) = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            (u128::from(u32::from(a)), u128::from(u32::from(b)), true)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), false),
        _ => return Ok(vec![first]),
    };
    let count = hi.saturating_sub(lo).saturating_add(1);
    if count > MAX_RANGE_ADDRESSES {
        return Err(count);
    }
    Ok((lo..=hi)
        .map(|v| {
            if v4 {
                IpAddr::V4(Ipv4Addr::from(v as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(v))
            }
        })
        .collect())
}

/// The port a real server is reached on in DR mode: the virtual port
/// (DR cannot rewrite ports; keepalived resets a different one).
pub(crate) fn real_port(endpoint: &Endpoint, rs: &RealServer) -> Option<u16> {
    endpoint.port.or(rs.port)
}

pub(crate) fn protocol_name(p: VsProtocol) -> &'static str {
    match p {
        VsProtocol::Tcp => "TCP",
        VsProtocol::Udp => "UDP",
        VsProtocol::Sctp => "SCTP",
    }
}

/// "TCP 10.0.0.1:80", "UDP [2001:db8::1]:53".
pub(crate) fn describe(proto: VsProtocol, addr: IpAddr, port: Option<u16>) -> String {
    let port = port.unwrap_or(0);
    match addr {
        IpAddr::V4(a) => format!("{} {a}:{port}", protocol_name(proto)),
        IpAddr::V6(a) => format!("{} [{a}]:{port}", protocol_name(proto)),
    }
}

/// How messages name a virtual server.
pub(crate) fn describe_vs(vs: &VirtualServer) -> String {
    match &vs.address {
        VsAddress::Ip { addr, port } => {
            format!("virtual server {}", describe(vs.protocol(), *addr, *port))
        }
        VsAddress::Group(name) => format!("virtual server group {name}"),
        VsAddress::Fwmark(mark) => format!("virtual server fwmark {mark}"),
    }
}
