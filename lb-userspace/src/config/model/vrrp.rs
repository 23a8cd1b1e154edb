//! `vrrp_script`, `vrrp_sync_group` and `vrrp_instance`.

use std::{net::IpAddr, time::Duration};

use super::{Script, ScriptUser};
use crate::config::diag::{Pos, Spanned};

/// keepalived's defaults (keepalived/include/vrrp.h, vrrp_track.h).
pub const DEFAULT_PRIORITY: u8 = 100;
pub const DEFAULT_ADVERT_INT: Duration = Duration::from_secs(1);
pub const DEFAULT_SCRIPT_INTERVAL: Duration = Duration::from_secs(1);

/// `vrrp_script NAME { }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpScript {
    pub name: String,
    pub script: Option<Script>,
    pub interval: Duration,
    /// Default: the interval.
    pub timeout: Option<Duration>,
    /// -253..253, default 0 (a failure means FAULT).
    pub weight: i32,
    pub reverse: bool,
    /// Default 1.
    pub rise: u32,
    /// Default 1.
    pub fall: u32,
    pub user: Option<ScriptUser>,
    pub init_fail: bool,
    pub pos: Pos,
}

/// `vrrp_sync_group NAME { group { ... } ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpSyncGroup {
    pub name: String,
    pub group: Vec<Spanned<String>>,
    pub notify_master: Option<Script>,
    pub notify_backup: Option<Script>,
    pub notify_fault: Option<Script>,
    pub notify_stop: Option<Script>,
    pub notify: Option<Script>,
    pub smtp_alert: Option<bool>,
    pub track_interfaces: Vec<TrackInterface>,
    pub track_scripts: Vec<TrackScript>,
    pub pos: Pos,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VrrpState {
    Master,
    Backup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthType {
    Pass,
    Ah,
}

/// `authentication { auth_type PASS|AH; auth_pass SECRET }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authentication {
    pub auth_type: Option<Spanned<AuthType>>,
    /// Only the first 8 characters are used.
    pub auth_pass: Option<String>,
    pub pos: Pos,
}

/// One entry of `virtual_ipaddress { }` / `virtual_ipaddress_excluded { }`:
/// `ADDR[/PREFIX] [brd ADDR] [dev IF] [scope SCOPE] [label LABEL]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualIp {
    pub addr: IpAddr,
    /// Default /32 or /128.
    pub prefix_len: u8,
    pub brd: Option<String>,
    pub dev: Option<String>,
    pub scope: Option<String>,
    pub label: Option<String>,
    pub pos: Pos,
}

/// `unicast_peer { ADDR [min_ttl N] [max_ttl N] }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnicastPeer {
    pub addr: IpAddr,
    pub min_ttl: Option<u8>,
    pub max_ttl: Option<u8>,
    pub pos: Pos,
}

/// `track_interface { IF [weight N [reverse]] }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackInterface {
    pub name: String,
    /// -253..253; none means a failure puts the instance in FAULT.
    pub weight: Option<i32>,
    pub reverse: bool,
    pub pos: Pos,
}

/// `track_script { NAME [weight N] [reverse|noreverse] }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackScript {
    pub name: String,
    /// Default: the script's own weight.
    pub weight: Option<i32>,
    pub reverse: Option<bool>,
    pub pos: Pos,
}

/// `vrrp_instance NAME { }`
#[derive(Clone, Debug, PartialEq)]
pub struct VrrpInstance {
    pub name: String,
    /// Default: BACKUP (MASTER at once if priority is 255).
    pub state: Option<Spanned<VrrpState>>,
    pub interface: Option<Spanned<String>>,
    /// Required, 1..255.
    pub virtual_router_id: Option<Spanned<u8>>,
    /// 1..255, default 100.
    pub priority: Spanned<u8>,
    pub advert_int: Duration,
    pub authentication: Option<Authentication>,
    pub virtual_ipaddress: Vec<VirtualIp>,
    pub virtual_ipaddress_excluded: Vec<VirtualIp>,
    pub mcast_src_ip: Option<Spanned<IpAddr>>,
    pub unicast_src_ip: Option<Spanned<IpAddr>>,
    pub unicast_peers: Vec<UnicastPeer>,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    pub track_interfaces: Vec<TrackInterface>,
    pub track_scripts: Vec<TrackScript>,
    /// These default to the global vrrp_garp_* values.
    pub garp_master_delay: Option<Duration>,
    pub garp_master_repeat: Option<u32>,
    pub garp_master_refresh: Option<Duration>,
    pub garp_master_refresh_repeat: Option<u32>,
    pub garp_lower_prio_delay: Option<Duration>,
    pub garp_lower_prio_repeat: Option<u32>,
    pub notify_master: Option<Script>,
    pub notify_backup: Option<Script>,
    pub notify_fault: Option<Script>,
    pub notify_stop: Option<Script>,
    pub notify: Option<Script>,
    pub smtp_alert: Option<bool>,
    /// Default: global vrrp_version (3 for IPv6).
    pub version: Option<u8>,
    pub dont_track_primary: bool,
    /// Deprecated: the global lvs_sync_daemon replaces it.
    pub lvs_sync_daemon_interface: Option<Spanned<String>>,
    /// Defaults: global vrrp_skip_check_adv_addr, vrrp_strict.
    pub skip_check_adv_addr: Option<bool>,
    pub strict_mode: Option<bool>,
    pub check_unicast_src: bool,
    /// VRRPv3 over IPv4: checksum without the pseudo-header (keepalived
    /// 2.2.8's `v3_checksum_as_v2`, for Cisco/Juniper peers).
    pub v3_checksum_as_v2: bool,
    pub pos: Pos,
}

impl VrrpInstance {
    pub fn new(name: String, pos: Pos) -> VrrpInstance {
        VrrpInstance {
            name,
            state: None,
            interface: None,
            virtual_router_id: None,
            priority: Spanned::new(DEFAULT_PRIORITY, pos.clone()),
            advert_int: DEFAULT_ADVERT_INT,
            authentication: None,
            virtual_ipaddress: Vec::new(),
            virtual_ipaddress_excluded: Vec::new(),
            mcast_src_ip: None,
            unicast_src_ip: None,
            unicast_peers: Vec::new(),
            nopreempt: false,
            preempt_delay: Duration::ZERO,
            track_interfaces: Vec::new(),
            track_scripts: Vec::new(),
            garp_master_delay: None,
            garp_master_repeat: None,
            garp_master_refresh: None,
            garp_master_refresh_repeat: None,
            garp_lower_prio_delay: None,
            garp_lower_prio_repeat: None,
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            notify_stop: None,
            notify: None,
            smtp_alert: None,
            version: None,
            dont_track_primary: false,
            lvs_sync_daemon_interface: None,
            skip_check_adv_addr: None,
            strict_mode: None,
            check_unicast_src: false,
            v3_checksum_as_v2: false,
            pos,
        }
    }
}
