//! What the VRRP runtime needs of keepalived.conf, with keepalived's
//! defaults filled in: one [`InstanceSpec`] per `vrrp_instance`.

use std::{net::IpAddr, time::Duration};

use super::packet::{Auth, Family, Version};
use crate::config::{
    diag::Pos,
    model::{AuthType, Config, Script, VirtualIp, VrrpInstance, VrrpScript, VrrpState},
};

/// When and how often a new MASTER announces its VIPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarpTiming {
    /// Second burst this long after becoming MASTER (0: none).
    pub delay: Duration,
    /// Announcements per burst.
    pub repeat: u32,
    /// Periodic re-announcement while MASTER (0: none).
    pub refresh: Duration,
    pub refresh_repeat: u32,
}

/// The scripts run on state changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifies {
    pub master: Option<Script>,
    pub backup: Option<Script>,
    pub fault: Option<Script>,
    pub stop: Option<Script>,
    /// Run with `INSTANCE|GROUP NAME STATE PRIORITY` appended.
    pub generic: Option<Script>,
}

/// Something tracked whose failure lowers the priority or means FAULT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// Index into [`Spec::scripts`], or an interface name.
    pub what: TrackedObject,
    /// None or 0: failure means FAULT. Otherwise keepalived's rule: a
    /// positive weight is added while OK, a negative one while failed.
    pub weight: Option<i32>,
    pub reverse: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrackedObject {
    Interface(String),
    Script(usize),
}

impl Tracked {
    /// The instance's priority change and whether it is in FAULT, given the
    /// object's state.
    pub fn effect(&self, ok: bool) -> (i32, bool) {
        match self.weight {
            None | Some(0) => (0, !ok),
            Some(w) => {
                let w = if self.reverse { -w } else { w };
                match (w > 0, ok) {
                    (true, true) | (false, false) => (w, false),
                    _ => (0, false),
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: Version,
    pub family: Family,
    pub priority: u8,
    pub advert_int: Duration,
    pub start_master: bool,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    pub auth: Auth,
    pub vips: Vec<VirtualIp>,
    pub excluded: Vec<VirtualIp>,
    /// `unicast_src_ip` or `mcast_src_ip`; else the interface's address.
    pub src: Option<IpAddr>,
    /// Unicast peers; empty means multicast to `group`.
    pub peers: Vec<IpAddr>,
    pub group: IpAddr,
    pub check_unicast_src: bool,
    pub v3_checksum_as_v2: bool,
    pub garp: GarpTiming,
    pub notify: Notifies,
    pub tracked: Vec<Tracked>,
    pub sync_group: Option<usize>,
    pub pos: Pos,
}

impl InstanceSpec {
    /// The addresses put in adverts (not the excluded ones).
    pub fn advertised(&self) -> Vec<IpAddr> {
        self.vips.iter().map(|v| v.addr).collect()
    }

    /// Every address the instance adds and removes.
    pub fn all_vips(&self) -> impl Iterator<Item = &VirtualIp> {
        self.vips.iter().chain(&self.excluded)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupSpec {
    pub name: String,
    /// Indexes into [`Spec::instances`].
    pub members: Vec<usize>,
    pub notify: Notifies,
}

/// The whole VRRP side of a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    pub instances: Vec<InstanceSpec>,
    pub groups: Vec<SyncGroupSpec>,
    pub scripts: Vec<VrrpScript>,
}

impl Spec {
    /// The configuration's VRRP part. The config checks have already
    /// refused what cannot run (no VRID, AH, mixed families...).
    pub fn from_config(c: &Config) -> Spec {
        let scripts = c.vrrp_scripts.clone();
        let mut instances: Vec<InstanceSpec> = c
            .vrrp_instances
            .iter()
            .map(|v| instance(c, v, &scripts))
            .collect();
        let groups = c
            .vrrp_sync_groups
            .iter()
            .enumerate()
            .map(|(gi, g)| {
                let members: Vec<usize> = g
                    .group
                    .iter()
                    .filter_map(|m| instances.iter().position(|i| i.name == m.value))
                    .collect();
                for &m in &members {
                    instances[m].sync_group = Some(gi);
                }
                SyncGroupSpec {
                    name: g.name.clone(),
                    members,
                    notify: Notifies {
                        master: g.notify_master.clone(),
                        backup: g.notify_backup.clone(),
                        fault: g.notify_fault.clone(),
                        stop: g.notify_stop.clone(),
                        generic: g.notify.clone(),
                    },
                }
            })
            .collect();
        Spec {
            instances,
            groups,
            scripts,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}

fn instance(c: &Config, v: &VrrpInstance, scripts: &[VrrpScript]) -> InstanceSpec {
    let g = &c.global;
    let family = match v.virtual_ipaddress.first().map(|a| a.addr) {
        Some(IpAddr::V6(_)) => Family::V6,
        _ => Family::V4,
    };
    // keepalived: IPv6 is always VRRPv3.
    let version = match (family, v.version.unwrap_or(g.vrrp_version)) {
        (Family::V6, _) | (_, 3) => Version::V3,
        _ => Version::V2,
    };
    let auth = match (&v.authentication, version) {
        (Some(a), Version::V2) if a.auth_type.as_ref().map(|t| t.value) == Some(AuthType::Pass) => {
            Auth::pass(a.auth_pass.as_deref().unwrap_or(""))
        }
        _ => Auth::None,
    };
    let group = match family {
        Family::V4 => IpAddr::V4(g.vrrp_mcast_group4),
        Family::V6 => IpAddr::V6(g.vrrp_mcast_group6),
    };
    InstanceSpec {
        name: v.name.clone(),
        interface: v
            .interface
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default(),
        vrid: v.virtual_router_id.as_ref().map(|s| s.value).unwrap_or(0),
        version,
        family,
        priority: v.priority.value,
        advert_int: advert_int(v.advert_int, version),
        start_master: match &v.state {
            Some(s) => s.value == VrrpState::Master,
            None => v.priority.value == super::fsm::PRIO_OWNER,
        },
        nopreempt: v.nopreempt,
        preempt_delay: v.preempt_delay,
        auth,
        vips: v.virtual_ipaddress.clone(),
        excluded: v.virtual_ipaddress_excluded.clone(),
        src: v
            .unicast_src_ip
            .as_ref()
            .or(v.mcast_src_ip.as_ref())
            .map(|s| s.value),
        peers: v.unicast_peers.iter().map(|p| p.addr).collect(),
        group,
        check_unicast_src: v.check_unicast_src || g.vrrp_check_unicast_src,
        v3_checksum_as_v2: v.v3_checksum_as_v2,
        garp: GarpTiming {
            delay: v.garp_master_delay.unwrap_or(g.vrrp_garp_master_delay),
            repeat: v.garp_master_repeat.unwrap_or(g.vrrp_garp_master_repeat),
            refresh: v.garp_master_refresh.unwrap_or(g.vrrp_garp_master_refresh),
            refresh_repeat: v
                .garp_master_refresh_repeat
                .unwrap_or(g.vrrp_garp_master_refresh_repeat),
        },
        notify: Notifies {
            master: v.notify_master.clone(),
            backup: v.notify_backup.clone(),
            fault: v.notify_fault.clone(),
            stop: v.notify_stop.clone(),
            generic: v.notify.clone(),
        },
        tracked: tracked(v, scripts),
        sync_group: None,
        pos: v.pos.clone(),
    }
}

/// VRRPv2 carries whole seconds: keepalived rounds to the nearest, at
/// least one.
fn advert_int(d: Duration, version: Version) -> Duration {
    match version {
        Version::V3 => d,
        Version::V2 => Duration::from_secs((d.as_secs_f64().round() as u64).max(1)),
    }
}

fn tracked(v: &VrrpInstance, scripts: &[VrrpScript]) -> Vec<Tracked> {
    let mut out = Vec::new();
    // keepalived tracks the instance's own interface unless told not to.
    if let (Some(i), false) = (&v.interface, v.dont_track_primary) {
        out.push(Tracked {
            what: TrackedObject::Interface(i.value.clone()),
            weight: None,
            reverse: false,
        });
    }
    for t in &v.track_interfaces {
        out.push(Tracked {
            what: TrackedObject::Interface(t.name.clone()),
            weight: t.weight,
            reverse: t.reverse,
        });
    }
    for t in &v.track_scripts {
        let Some(idx) = scripts.iter().position(|s| s.name == t.name) else {
            continue; // refused by the config checks
        };
        let script = &scripts[idx];
        out.push(Tracked {
            what: TrackedObject::Script(idx),
            weight: Some(t.weight.unwrap_or(script.weight)),
            reverse: t.reverse.unwrap_or(script.reverse),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Spec {
        let (config, diags) =
            crate::config::parse_str("test.conf", text, &crate::config::LoadOptions::default());
        let config = config.unwrap_or_else(|| panic!("{diags:?}"));
        Spec::from_config(&config)
    }

    #[test]
    fn keepalived_defaults_fill_in() {
        let s = spec(
            "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n advert_int 1.4\n \
             authentication {\n auth_type PASS\n auth_pass 123456789\n }\n \
             virtual_ipaddress {\n 10.0.0.100/24 dev eth1 label eth1:vip\n }\n}\n",
        );
        let i = &s.instances[0];
        assert_eq!((i.vrid, i.priority, i.version), (51, 100, Version::V2));
        assert_eq!(i.advert_int, Duration::from_secs(1));
        assert_eq!(i.auth, Auth::pass("12345678"));
        assert!(!i.start_master);
        assert_eq!(i.group, "224.0.0.18".parse::<IpAddr>().unwrap());
        assert_eq!((i.garp.delay, i.garp.repeat), (Duration::from_secs(5), 5));
        assert_eq!(i.vips[0].dev.as_deref(), Some("eth1"));
        assert_eq!(i.tracked.len(), 1, "its own interface");
    }

    #[test]
    fn v3_checksum_as_v2_and_unicast_carry_over() {
        let s = spec(
            "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 9\n version 3\n \
             v3_checksum_as_v2\n unicast_src_ip 10.0.0.1\n unicast_peer {\n 10.0.0.2\n }\n \
             virtual_ipaddress {\n 10.0.0.100\n }\n}\n",
        );
        let i = &s.instances[0];
        assert!(i.v3_checksum_as_v2);
        assert_eq!(i.src, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(i.peers, vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn ipv6_is_v3_and_the_owner_starts_master() {
        let s = spec(
            "vrrp_instance V6 {\n interface eth0\n virtual_router_id 7\n priority 255\n \
             advert_int 0.1\n virtual_ipaddress {\n 2001:db8::100\n }\n}\n",
        );
        let i = &s.instances[0];
        assert_eq!((i.version, i.family), (Version::V3, Family::V6));
        assert_eq!(i.advert_int, Duration::from_millis(100));
        assert!(i.start_master);
    }

    #[test]
    fn weights_follow_keepalived() {
        let t = |weight, reverse| Tracked {
            what: TrackedObject::Script(0),
            weight,
            reverse,
        };
        assert_eq!(t(None, false).effect(false), (0, true));
        assert_eq!(t(Some(10), false).effect(true), (10, false));
        assert_eq!(t(Some(10), false).effect(false), (0, false));
        assert_eq!(t(Some(-20), false).effect(false), (-20, false));
        assert_eq!(t(Some(-20), false).effect(true), (0, false));
        assert_eq!(t(Some(10), true).effect(false), (-10, false));
    }

    #[test]
    fn sync_groups_name_their_members() {
        let s = spec(
            "vrrp_sync_group G {\n group {\n A\n B\n }\n}\n\
             vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n\
             vrrp_instance B {\n interface eth1\n virtual_router_id 2\n virtual_ipaddress {\n 10.0.1.1\n }\n}\n",
        );
        assert_eq!(s.groups[0].members, vec![0, 1]);
        assert_eq!(s.instances[1].sync_group, Some(0));
    }
}
