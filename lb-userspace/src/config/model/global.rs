//! `global_defs { }`.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use crate::config::diag::Pos;

/// keepalived's defaults (keepalived/core/global_data.c).
pub const DEFAULT_SMTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_VRRP_MCAST_GROUP4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
pub const DEFAULT_VRRP_MCAST_GROUP6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
pub const DEFAULT_VRRP_GARP_MASTER_DELAY: Duration = Duration::from_secs(5);
pub const DEFAULT_VRRP_GARP_MASTER_REPEAT: u32 = 5;
pub const DEFAULT_VRRP_GARP_MASTER_REFRESH_REPEAT: u32 = 1;
pub const DEFAULT_VRRP_VERSION: u8 = 2;

#[derive(Clone, Debug, PartialEq)]
pub struct GlobalDefs {
    /// Default: the host name (left to the daemon).
    pub router_id: Option<String>,
    pub notification_email: Vec<String>,
    pub notification_email_from: Option<String>,
    pub smtp_server: Option<SmtpServer>,
    pub smtp_helo_name: Option<String>,
    pub smtp_connect_timeout: Duration,
    pub smtp_alert: Option<bool>,
    pub smtp_alert_vrrp: Option<bool>,
    pub smtp_alert_checker: Option<bool>,
    pub no_email_faults: bool,
    pub checker_log_all_failures: bool,
    pub vrrp_mcast_group4: Ipv4Addr,
    pub vrrp_mcast_group6: Ipv6Addr,
    pub vrrp_garp_master_delay: Duration,
    pub vrrp_garp_master_repeat: u32,
    /// Zero: no periodic refresh.
    pub vrrp_garp_master_refresh: Duration,
    pub vrrp_garp_master_refresh_repeat: u32,
    /// Default: `vrrp_garp_master_delay`.
    pub vrrp_garp_lower_prio_delay: Option<Duration>,
    /// Default: `vrrp_garp_master_repeat`.
    pub vrrp_garp_lower_prio_repeat: Option<u32>,
    pub vrrp_garp_interval: Duration,
    pub vrrp_gna_interval: Duration,
    pub vrrp_version: u8,
    pub vrrp_check_unicast_src: bool,
    pub vrrp_skip_check_adv_addr: bool,
    pub vrrp_strict: bool,
    /// Process nice value, -20..19.
    pub vrrp_priority: Option<i32>,
    pub checker_priority: Option<i32>,
    pub lvs_timeouts: LvsTimeouts,
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    pub lvs_flush: bool,
    pub lvs_flush_on_stop: Option<FlushOnStop>,
    pub script_user: Option<ScriptUser>,
    pub enable_script_security: bool,
}

impl Default for GlobalDefs {
    fn default() -> GlobalDefs {
        GlobalDefs {
            router_id: None,
            notification_email: Vec::new(),
            notification_email_from: None,
            smtp_server: None,
            smtp_helo_name: None,
            smtp_connect_timeout: DEFAULT_SMTP_CONNECT_TIMEOUT,
            smtp_alert: None,
            smtp_alert_vrrp: None,
            smtp_alert_checker: None,
            no_email_faults: false,
            checker_log_all_failures: false,
            vrrp_mcast_group4: DEFAULT_VRRP_MCAST_GROUP4,
            vrrp_mcast_group6: DEFAULT_VRRP_MCAST_GROUP6,
            vrrp_garp_master_delay: DEFAULT_VRRP_GARP_MASTER_DELAY,
            vrrp_garp_master_repeat: DEFAULT_VRRP_GARP_MASTER_REPEAT,
            vrrp_garp_master_refresh: Duration::ZERO,
            vrrp_garp_master_refresh_repeat: DEFAULT_VRRP_GARP_MASTER_REFRESH_REPEAT,
            vrrp_garp_lower_prio_delay: None,
            vrrp_garp_lower_prio_repeat: None,
            vrrp_garp_interval: Duration::ZERO,
            vrrp_gna_interval: Duration::ZERO,
            vrrp_version: DEFAULT_VRRP_VERSION,
            vrrp_check_unicast_src: false,
            vrrp_skip_check_adv_addr: false,
            vrrp_strict: false,
            vrrp_priority: None,
            checker_priority: None,
            lvs_timeouts: LvsTimeouts::default(),
            lvs_sync_daemon: None,
            lvs_flush: false,
            lvs_flush_on_stop: None,
            script_user: None,
            enable_script_security: false,
        }
    }
}

/// `smtp_server HOST [PORT]`: an address or a host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpServer {
    pub host: String,
    /// Default 25.
    pub port: u16,
}

/// `lvs_timeouts [tcp S] [tcpfin S] [udp S]`: unset values are left as the
/// kernel has them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LvsTimeouts {
    pub tcp: Option<u32>,
    pub tcpfin: Option<u32>,
    pub udp: Option<u32>,
}

/// `lvs_sync_daemon IF [[inst] VRRP] [id N] [maxlen N] [port N] [ttl N] [group IP]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvsSyncDaemon {
    pub interface: String,
    pub instance: Option<String>,
    /// Default: the VRID of the instance, or 0.
    pub sync_id: Option<u8>,
    pub maxlen: Option<u16>,
    /// Default 8848.
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    /// Default 224.0.0.81.
    pub group: Option<IpAddr>,
    pub pos: Pos,
}

/// `lvs_flush_on_stop [VS]`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushOnStop {
    /// Flush the whole IPVS table.
    All,
    /// Remove only keepalived's virtual servers.
    VirtualServers,
}

/// `script_user USER [GROUP]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptUser {
    pub user: String,
    pub group: Option<String>,
}
