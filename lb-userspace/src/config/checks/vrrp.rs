//! VRRP checks: instances, sync groups, scripts.

use std::collections::{HashMap, HashSet};

use crate::config::{
    diag::{Diags, Pos},
    model::{AuthType, Config, TrackScript, VrrpInstance, VrrpState},
};

pub(super) fn check(c: &Config, d: &mut Diags) {
    let mut names: HashMap<&str, &Pos> = HashMap::new();
    for v in &c.vrrp_instances {
        if let Some(first) = names.insert(&v.name, &v.pos) {
            d.error(
                &v.pos,
                format!(
                    "vrrp_instance {} is defined twice (first at {first})",
                    v.name
                ),
            );
        }
        instance(c, v, d);
    }
    duplicate_vrids(c, d);
    sync_groups(c, d);
    scripts(c, d);
    sync_daemon(c, d);
}

fn instance(c: &Config, v: &VrrpInstance, d: &mut Diags) {
    let name = &v.name;
    if v.interface.is_none() && v.unicast_peers.is_empty() {
        d.error(&v.pos, format!("vrrp_instance {name} has no interface"));
    }
    if v.virtual_ipaddress.is_empty() {
        d.warning(
            &v.pos,
            format!("vrrp_instance {name} has no virtual_ipaddress"),
        );
    }
    vip_families(v, d);
    authentication(v, d);
    preemption(v, d);
    track_scripts(c, &v.track_scripts, d);
}

/// All VIPs of an instance share one family; IPv6 needs VRRP version 3.
fn vip_families(v: &VrrpInstance, d: &mut Diags) {
    let Some(first) = v.virtual_ipaddress.first() else {
        return;
    };
    for vip in &v.virtual_ipaddress[1..] {
        if vip.addr.is_ipv4() != first.addr.is_ipv4() {
            d.error(
                &vip.pos,
                "all virtual_ipaddress entries must be of one address family; put the others in virtual_ipaddress_excluded",
            );
        }
    }
    if first.addr.is_ipv6() && v.version == Some(2) {
        d.error(
            &first.pos,
            format!(
                "vrrp_instance {} has IPv6 addresses, which need VRRP version 3",
                v.name
            ),
        );
    }
}

fn authentication(v: &VrrpInstance, d: &mut Diags) {
    let Some(auth) = &v.authentication else {
        return;
    };
    if let Some(t) = &auth.auth_type {
        if t.value == AuthType::Ah {
            d.error(
                &t.pos,
                "auth_type AH is not supported by XVS; use PASS (or no authentication)",
            );
        }
    }
    if auth.auth_pass.is_none() {
        d.error(&auth.pos, "authentication without auth_pass");
    }
    if v.version == Some(3) {
        d.error(&auth.pos, "VRRP version 3 does not support authentication");
    }
}

fn preemption(v: &VrrpInstance, d: &mut Diags) {
    if !v.nopreempt {
        return;
    }
    if v.priority.value == 255 {
        d.error(
            &v.priority.pos,
            "nopreempt is incompatible with priority 255 (the address owner)",
        );
    }
    if let Some(state) = &v.state {
        if state.value == VrrpState::Master {
            d.warning(
                &state.pos,
                "nopreempt does not work with state MASTER; use state BACKUP",
            );
        }
    }
}

fn track_scripts(c: &Config, tracks: &[TrackScript], d: &mut Diags) {
    for t in tracks {
        if !c.vrrp_scripts.iter().any(|s| s.name == t.name) {
            d.error(
                &t.pos,
                format!("track_script '{}' does not name a vrrp_script", t.name),
            );
        }
    }
}

/// Two instances with one VRID on one interface and family would fight.
fn duplicate_vrids(c: &Config, d: &mut Diags) {
    let mut used: HashMap<(&str, u8, bool), &VrrpInstance> = HashMap::new();
    for v in &c.vrrp_instances {
        let (Some(interface), Some(vrid)) = (&v.interface, &v.virtual_router_id) else {
            continue;
        };
        let ipv6 = v
            .virtual_ipaddress
            .first()
            .is_some_and(|vip| vip.addr.is_ipv6());
        let key = (interface.value.as_str(), vrid.value, ipv6);
        if let Some(first) = used.insert(key, v) {
            d.error(
                &vrid.pos,
                format!(
                    "virtual_router_id {} is already used on {} by vrrp_instance {}",
                    vrid.value, interface.value, first.name
                ),
            );
        }
    }
}

fn sync_groups(c: &Config, d: &mut Diags) {
    let mut member_of: HashMap<&str, &str> = HashMap::new();
    for g in &c.vrrp_sync_groups {
        if g.group.is_empty() {
            d.error(
                &g.pos,
                format!("vrrp_sync_group {} has no group {{ }} members", g.name),
            );
        }
        for m in &g.group {
            if !c.vrrp_instances.iter().any(|v| v.name == m.value) {
                d.error(
                    &m.pos,
                    format!("'{}' does not name a vrrp_instance", m.value),
                );
            }
            if let Some(other) = member_of.insert(&m.value, &g.name) {
                d.error(
                    &m.pos,
                    format!(
                        "vrrp_instance {} is already in vrrp_sync_group {other}",
                        m.value
                    ),
                );
            }
        }
        track_scripts(c, &g.track_scripts, d);
    }
}

fn scripts(c: &Config, d: &mut Diags) {
    let used: HashSet<&str> = c
        .vrrp_instances
        .iter()
        .flat_map(|v| v.track_scripts.iter())
        .chain(
            c.vrrp_sync_groups
                .iter()
                .flat_map(|g| g.track_scripts.iter()),
        )
        .map(|t| t.name.as_str())
        .collect();
    for s in &c.vrrp_scripts {
        if !used.contains(s.name.as_str()) {
            d.warning(
                &s.pos,
                format!(
                    "vrrp_script {} is not used by any instance or sync group",
                    s.name
                ),
            );
        }
    }
}

/// The IPVS sync daemon is set once: globally, or (deprecated) on one instance.
fn sync_daemon(c: &Config, d: &mut Diags) {
    let mut first: Option<&Pos> = c.global.lvs_sync_daemon.as_ref().map(|s| &s.pos);
    for v in &c.vrrp_instances {
        let Some(interface) = &v.lvs_sync_daemon_interface else {
            continue;
        };
        match first {
            Some(at) => d.warning(
                &interface.pos,
                format!("the LVS sync daemon is already set at {at}; this one is ignored"),
            ),
            None => first = Some(&interface.pos),
        }
    }
    if let Some(sync) = &c.global.lvs_sync_daemon {
        if let Some(inst) = &sync.instance {
            if !c.vrrp_instances.iter().any(|v| &v.name == inst) {
                d.error(
                    &sync.pos,
                    format!("lvs_sync_daemon: '{inst}' does not name a vrrp_instance"),
                );
            }
        }
    }
}
