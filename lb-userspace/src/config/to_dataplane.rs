//! The configuration as data-plane services (`crate::model::ServiceSpec`):
//! one per virtual address and port (a virtual_server_group gives several),
//! with every configured real server at its configured weight. Health state
//! is the caller's business: this is the topology as written.

use std::net::IpAddr;

use super::{
    diag::{Diagnostic, Diags, Pos},
    model::{Config, ForwardingMethod, Granularity, VirtualServer, VsProtocol},
    resolve,
    services::{self, describe, Endpoint, EndpointError},
    values,
};
use crate::model::{Persistence, Protocol, RealSpec, SchedulerKind, ServiceId, ServiceSpec};

/// Builds the services. `mac_of` resolves a real server's next-hop MAC (the
/// neighbour table); `is_local` says whether an address is this director's
/// own, whose traffic goes to the local stack instead.
pub fn service_specs(
    config: &Config,
    mac_of: impl Fn(IpAddr) -> Option<[u8; 6]>,
    is_local: impl Fn(IpAddr) -> bool,
) -> Result<Vec<ServiceSpec>, Vec<Diagnostic>> {
    let mut d = Diags::new(false);
    let mut specs = Vec::new();
    for vs in &config.virtual_servers {
        specs.extend(virtual_server(config, vs, &mac_of, &is_local, &mut d));
    }
    if d.has_errors() {
        Err(d.into_vec())
    } else {
        Ok(specs)
    }
}

fn virtual_server(
    config: &Config,
    vs: &VirtualServer,
    mac_of: &impl Fn(IpAddr) -> Option<[u8; 6]>,
    is_local: &impl Fn(IpAddr) -> bool,
    d: &mut Diags,
) -> Vec<ServiceSpec> {
    let (Some(proto), Some(scheduler)) = (protocol(vs, d), scheduler(vs, d)) else {
        return Vec::new();
    };
    if vs.forwarding_method() != ForwardingMethod::Dr {
        d.error(
            &vs.pos,
            "only DR virtual servers can be given to the data plane",
        );
        return Vec::new();
    }
    let endpoints = match services::endpoints(config, vs) {
        Ok(e) => e,
        Err(errors) => {
            for e in errors {
                let pos = match e {
                    EndpointError::Fwmark(p) | EndpointError::UnknownGroup(_, p) => p,
                    EndpointError::RangeTooLarge(_, p) => p,
                };
                d.error(
                    &pos,
                    "this virtual server cannot be given to the data plane",
                );
            }
            return Vec::new();
        }
    };
    let persistence = persistence(vs, d);
    endpoints
        .iter()
        .filter_map(|e| {
            let Some(port) = e.port else {
                d.error(&e.pos, "a virtual server needs a port for the data plane");
                return None;
            };
            Some(ServiceSpec {
                id: ServiceId {
                    vip: e.addr,
                    port,
                    proto,
                },
                scheduler,
                persistence,
                reals: reals(config, vs, e, mac_of, is_local, d),
            })
        })
        .collect()
}

fn protocol(vs: &VirtualServer, d: &mut Diags) -> Option<Protocol> {
    match vs.protocol() {
        VsProtocol::Tcp => Some(Protocol::Tcp),
        VsProtocol::Udp => Some(Protocol::Udp),
        VsProtocol::Sctp => {
            d.error(&vs.pos, "SCTP is not supported by the data plane");
            None
        }
    }
}

fn scheduler(vs: &VirtualServer, d: &mut Diags) -> Option<SchedulerKind> {
    match vs.scheduler() {
        "rr" => Some(SchedulerKind::Rr),
        "wrr" => Some(SchedulerKind::Wrr),
        "sh" => Some(SchedulerKind::Sh {
            fallback: vs.sh_fallback.is_some(),
            port: vs.sh_port.is_some(),
        }),
        other => {
            d.error(
                &vs.pos,
                format!("scheduler '{other}' is not supported by the data plane"),
            );
            None
        }
    }
}

/// `persistence_timeout` with `persistence_granularity` as a prefix length
/// (`ipvsadm -p T -M MASK`); per client address by default.
fn persistence(vs: &VirtualServer, d: &mut Diags) -> Option<Persistence> {
    let timeout_s = vs.persistence();
    if timeout_s == 0 {
        return None;
    }
    let full = match &vs.address {
        super::model::VsAddress::Ip { addr, .. } if addr.is_ipv6() => 128,
        _ => 32,
    };
    let prefix_len = match vs
        .persistence_granularity
        .as_ref()
        .map(|g| (g.value, &g.pos))
    {
        None => full,
        Some((Granularity::V6Prefix(n), _)) => n,
        Some((Granularity::V4Mask(mask), pos)) => match values::netmask_prefix(mask) {
            Ok(n) => n,
            Err(message) => {
                d.error(pos, message);
                full
            }
        },
    };
    Some(Persistence {
        timeout_s,
        prefix_len,
    })
}

fn reals(
    config: &Config,
    vs: &VirtualServer,
    e: &Endpoint,
    mac_of: &impl Fn(IpAddr) -> Option<[u8; 6]>,
    is_local: &impl Fn(IpAddr) -> bool,
    d: &mut Diags,
) -> Vec<RealSpec> {
    let mut out: Vec<RealSpec> = Vec::new();
    for rs in &vs.real_servers {
        let port = services::real_port(e, rs).unwrap_or(0);
        if out.iter().any(|r| r.addr == rs.addr && r.port == port) {
            d.error(&rs.pos, "real server listed twice");
            continue;
        }
        let local = is_local(rs.addr);
        let mac = match (mac_of(rs.addr), local) {
            (Some(mac), _) => mac,
            (None, true) => [0; 6],
            (None, false) => {
                no_mac(&rs.pos, rs.addr, vs, e, d);
                continue;
            }
        };
        out.push(RealSpec {
            addr: rs.addr,
            port,
            weight: resolve::real_server(&config.global, vs, rs).weight,
            mac,
            local,
        });
    }
    out
}

fn no_mac(pos: &Pos, addr: IpAddr, vs: &VirtualServer, e: &Endpoint, d: &mut Diags) {
    let service = describe(vs.protocol(), e.addr, e.port);
    d.error(
        pos,
        format!("no MAC address for real server {addr} of {service}; DR needs it on a directly connected network"),
    );
}
