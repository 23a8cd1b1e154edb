//! LVS checks: virtual servers, their groups and real servers.

use std::{collections::HashMap, net::IpAddr};

use crate::config::{
    diag::{Diags, Pos},
    model::{
        Config, ForwardingMethod, Granularity, VirtualServer, VsAddress, VsProtocol,
        DEFAULT_SCHEDULER,
    },
    services::{self, describe, describe_vs, Endpoint, EndpointError, MAX_RANGE_ADDRESSES},
};

/// The schedulers the XVS data plane implements.
pub(crate) const XVS_SCHEDULERS: &[&str] = &["rr", "wrr", "sh"];

pub(super) fn check(c: &Config, d: &mut Diags) {
    groups(c, d);
    let mut services: HashMap<(IpAddr, Option<u16>, VsProtocol), Pos> = HashMap::new();
    for vs in &c.virtual_servers {
        let endpoints = endpoints(c, vs, d);
        scheduler(vs, d);
        forwarding(vs, d);
        protocol(vs, d);
        options(vs, d);
        quorum(vs, d);
        let Some(endpoints) = endpoints else {
            continue;
        };
        granularity_family(vs, &endpoints, d);
        for e in &endpoints {
            let key = (e.addr, e.port, vs.protocol());
            if let Some(first) = services.get(&key) {
                let name = describe(vs.protocol(), e.addr, e.port);
                d.error(
                    &e.pos,
                    format!("duplicate virtual server {name} (first defined at {first})"),
                );
            } else {
                services.insert(key, e.pos.clone());
            }
        }
        real_servers(vs, &endpoints, d);
        sorry_server(vs, &endpoints, d);
    }
}

fn groups(c: &Config, d: &mut Diags) {
    let mut names: HashMap<&str, &Pos> = HashMap::new();
    for g in &c.virtual_server_groups {
        if let Some(first) = names.insert(&g.name, &g.pos) {
            d.error(
                &g.pos,
                format!(
                    "virtual_server_group {} is defined twice (first at {first})",
                    g.name
                ),
            );
        }
        if g.entries.is_empty() {
            d.error(
                &g.pos,
                format!("virtual_server_group {} has no entries", g.name),
            );
        }
    }
}

/// The endpoints, reporting why there are none.
fn endpoints(c: &Config, vs: &VirtualServer, d: &mut Diags) -> Option<Vec<Endpoint>> {
    let endpoints = match services::endpoints(c, vs) {
        Ok(e) => e,
        Err(errors) => {
            for e in errors {
                endpoint_error(e, d);
            }
            return None;
        }
    };
    for e in endpoints.iter().filter(|e| e.port.is_none()) {
        d.error(
            &e.pos,
            "a virtual server without a port (all ports, persistent) is not supported by XVS yet",
        );
    }
    Some(endpoints).filter(|e| e.iter().all(|x| x.port.is_some()))
}

fn endpoint_error(e: EndpointError, d: &mut Diags) {
    match e {
        EndpointError::Fwmark(pos) => d.error(&pos, "fwmark virtual servers are not supported yet"),
        EndpointError::UnknownGroup(name, pos) => {
            d.error(&pos, format!("'{name}' does not name a virtual_server_group"))
        }
        EndpointError::RangeTooLarge(count, pos) => d.error(
            &pos,
            format!("this range has {count} addresses; XVS takes at most {MAX_RANGE_ADDRESSES} per entry"),
        ),
    }
}

fn scheduler(vs: &VirtualServer, d: &mut Diags) {
    let supported = XVS_SCHEDULERS.join(", ").replacen(", sh", " or sh", 1);
    match &vs.lvs_sched {
        None => {
            d.warning(
                &vs.pos,
                format!(
                    "{} has no lb_algo/lvs_sched; keepalived falls back to '{DEFAULT_SCHEDULER}'",
                    describe_vs(vs)
                ),
            );
            d.error(
                &vs.pos,
                format!(
                    "scheduler '{DEFAULT_SCHEDULER}' (keepalived's default when lb_algo is missing) is not supported by XVS yet; use {supported}"
                ),
            );
        }
        Some(s) if !XVS_SCHEDULERS.contains(&s.value.as_str()) => d.error(
            &s.pos,
            format!(
                "scheduler '{}' is not supported by XVS yet; use {supported}",
                s.value
            ),
        ),
        Some(_) => {}
    }
}

fn forwarding(vs: &VirtualServer, d: &mut Diags) {
    match &vs.lvs_method {
        None => {
            d.warning(
                &vs.pos,
                format!(
                    "{} has no lb_kind/lvs_method; keepalived falls back to NAT",
                    describe_vs(vs)
                ),
            );
            not_dr(ForwardingMethod::Nat, &vs.pos, d);
        }
        Some(m) if m.value != ForwardingMethod::Dr => not_dr(m.value, &m.pos, d),
        Some(_) => {}
    }
    for rs in &vs.real_servers {
        if let Some(m) = rs
            .lvs_method
            .as_ref()
            .filter(|m| m.value != ForwardingMethod::Dr)
        {
            not_dr(m.value, &m.pos, d);
        }
    }
}

fn not_dr(method: ForwardingMethod, pos: &Pos, d: &mut Diags) {
    d.error(
        pos,
        format!(
            "lb_kind {} is not supported yet; XVS does DR only",
            method.name()
        ),
    );
}

fn protocol(vs: &VirtualServer, d: &mut Diags) {
    match &vs.protocol {
        None if !matches!(vs.address, VsAddress::Fwmark(_)) => d.warning(
            &vs.pos,
            format!(
                "{} has no protocol; keepalived defaults to UDP",
                describe_vs(vs)
            ),
        ),
        Some(p) if p.value == VsProtocol::Sctp => d.error(
            &p.pos,
            "protocol SCTP is not supported by XVS yet; use TCP or UDP",
        ),
        _ => {}
    }
}

/// Flags that need a particular scheduler or protocol.
fn options(vs: &VirtualServer, d: &mut Diags) {
    if let Some(pos) = &vs.ops {
        if vs.protocol() != VsProtocol::Udp {
            d.warning(
                pos,
                "'ops' (one-packet scheduling) needs protocol UDP; keepalived ignores it",
            );
        }
        d.keyword_not_implemented(pos, "ops");
    }
    if vs.scheduler() != "sh" {
        for (name, pos) in [("sh-port", &vs.sh_port), ("sh-fallback", &vs.sh_fallback)] {
            if let Some(pos) = pos {
                d.warning(
                    pos,
                    format!("'{name}' only applies to the sh scheduler; ignored"),
                );
            }
        }
    }
}

/// keepalived lowers a quorum above the total weight, and a hysteresis at
/// or above the quorum.
fn quorum(vs: &VirtualServer, d: &mut Diags) {
    let total: u64 = vs
        .real_servers
        .iter()
        .map(|rs| {
            u64::from(
                rs.weight
                    .as_ref()
                    .map_or(vs.weight.unwrap_or(1), |w| w.value),
            )
        })
        .sum();
    if !vs.real_servers.is_empty() && u64::from(vs.quorum) > total {
        d.warning(
            &vs.pos,
            format!("quorum {} exceeds the total weight {total} of the real servers; keepalived lowers it", vs.quorum),
        );
    }
    if vs.hysteresis >= vs.quorum {
        d.warning(
            &vs.pos,
            format!(
                "hysteresis {} is not below quorum {}; keepalived lowers it",
                vs.hysteresis, vs.quorum
            ),
        );
    }
}

fn granularity_family(vs: &VirtualServer, endpoints: &[Endpoint], d: &mut Diags) {
    let Some(g) = &vs.persistence_granularity else {
        return;
    };
    let v4 = matches!(g.value, Granularity::V4Mask(_));
    if endpoints.iter().any(|e| e.addr.is_ipv4() != v4) {
        let expected = if v4 {
            "an IPv6 prefix length"
        } else {
            "an IPv4 netmask"
        };
        d.error(
            &g.pos,
            format!("persistence_granularity must be {expected} for this virtual server"),
        );
    }
}

fn real_servers(vs: &VirtualServer, endpoints: &[Endpoint], d: &mut Diags) {
    let Some(first_endpoint) = endpoints.first() else {
        return;
    };
    let mut seen: HashMap<(IpAddr, Option<u16>), &Pos> = HashMap::new();
    for rs in &vs.real_servers {
        if rs.addr.is_ipv4() != first_endpoint.addr.is_ipv4() {
            d.error(
                &rs.pos,
                format!(
                    "real server {} is not of the virtual server's address family",
                    rs.addr
                ),
            );
            continue;
        }
        if let (Some(port), Some(vport)) = (rs.port, first_endpoint.port) {
            if endpoints.iter().any(|e| e.port != Some(port)) {
                d.warning(
                    &rs.pos,
                    format!("real server port {port} differs from the virtual server port {vport}; DR cannot change ports, so the virtual port is used"),
                );
            }
        }
        let port = services::real_port(first_endpoint, rs);
        if let Some(first) = seen.insert((rs.addr, port), &rs.pos) {
            d.error(
                &rs.pos,
                format!(
                    "real server {} is listed twice in {} (first at {first})",
                    describe_real(rs.addr, port),
                    describe_vs(vs)
                ),
            );
        }
        if let Some(t) = &rs.uthreshold {
            d.keyword_not_implemented(&t.pos, "uthreshold");
        }
        if let Some(t) = &rs.lthreshold {
            d.keyword_not_implemented(&t.pos, "lthreshold");
        }
    }
}

fn describe_real(addr: IpAddr, port: Option<u16>) -> String {
    match (addr, port) {
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, Some(p)) => format!("{a}:{p}"),
        (a, None) => a.to_string(),
    }
}

fn sorry_server(vs: &VirtualServer, endpoints: &[Endpoint], d: &mut Diags) {
    let (Some(sorry), Some(e)) = (&vs.sorry_server, endpoints.first()) else {
        return;
    };
    if sorry.addr.is_ipv4() != e.addr.is_ipv4() {
        d.error(
            &sorry.pos,
            "the sorry server is not of the virtual server's address family",
        );
    }
    if let Some(m) = sorry
        .lvs_method
        .as_ref()
        .filter(|m| m.value != ForwardingMethod::Dr)
    {
        not_dr(m.value, &m.pos, d);
    }
}
