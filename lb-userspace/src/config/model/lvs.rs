//! `virtual_server_group`, `virtual_server` and `real_server`.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::{Checker, Script};
use crate::config::diag::{Pos, Spanned};

/// keepalived's defaults (keepalived/check/check_data.c, ipvswrapper.h).
pub const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// `persistence_timeout` without a value, or implied by a granularity.
pub const DEFAULT_PERSISTENCE_TIMEOUT: u32 = 360;
pub const DEFAULT_QUORUM: u32 = 1;
pub const DEFAULT_WEIGHT: u32 = 1;

/// The schedulers keepalived accepts for lvs_sched.
pub const KEEPALIVED_SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos",
];

/// `virtual_server_group NAME { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServerGroup {
    pub name: String,
    pub entries: Vec<VsgEntry>,
    pub pos: Pos,
}

/// One line of a virtual server group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VsgEntry {
    /// `IP [PORT]`, `A.B.C.D-E [PORT]`, `A-B [PORT]` or `A/N [PORT]`:
    /// every address from `first` to `last` inclusive.
    Range {
        first: IpAddr,
        last: IpAddr,
        port: Option<u16>,
        pos: Pos,
    },
    /// `fwmark N [inet|inet6]`
    Fwmark { mark: u32, pos: Pos },
}

/// What a `virtual_server` line names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VsAddress {
    /// `virtual_server IP [PORT]`; no port (or 0) means all ports.
    Ip { addr: IpAddr, port: Option<u16> },
    /// `virtual_server group NAME`
    Group(String),
    /// `virtual_server fwmark N`
    Fwmark(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VsProtocol {
    Tcp,
    Udp,
    Sctp,
}

/// `lvs_method NAT|DR|TUN`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardingMethod {
    Nat,
    Dr,
    Tun,
}

impl ForwardingMethod {
    pub fn name(self) -> &'static str {
        match self {
            ForwardingMethod::Nat => "NAT",
            ForwardingMethod::Dr => "DR",
            ForwardingMethod::Tun => "TUN",
        }
    }
}

/// `persistence_granularity`: a netmask for IPv4, a prefix length for IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    V4Mask(Ipv4Addr),
    V6Prefix(u8),
}

/// `sorry_server IP [PORT]` with `sorry_server_inhibit` and
/// `sorry_server_lvs_method`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SorryServer {
    pub addr: IpAddr,
    pub port: Option<u16>,
    pub inhibit: bool,
    pub lvs_method: Option<Spanned<ForwardingMethod>>,
    pub pos: Pos,
}

/// `virtual_server ... { }`
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualServer {
    pub address: VsAddress,
    /// Default 60 s.
    pub delay_loop: Option<Duration>,
    /// Default `wlc` (with a warning).
    pub lvs_sched: Option<Spanned<String>>,
    /// Default NAT (with a warning).
    pub lvs_method: Option<Spanned<ForwardingMethod>>,
    /// Default UDP (keepalived's kernel default, with a warning).
    pub protocol: Option<Spanned<VsProtocol>>,
    /// Seconds; 0 (or none) means no persistence.
    pub persistence_timeout: Option<Spanned<u32>>,
    pub persistence_granularity: Option<Spanned<Granularity>>,
    pub virtualhost: Option<String>,
    pub sorry_server: Option<SorryServer>,
    /// Default 1.
    pub quorum: u32,
    /// Default 0.
    pub hysteresis: u32,
    pub quorum_up: Option<Script>,
    pub quorum_down: Option<Script>,
    pub inhibit_on_failure: bool,
    pub alpha: bool,
    pub omega: bool,
    pub ha_suspend: bool,
    /// One-packet scheduling (UDP).
    pub ops: Option<Pos>,
    /// sh scheduler flags (`sh-port`/`flag-2`, `sh-fallback`/`flag-1`).
    pub sh_port: Option<Pos>,
    pub sh_fallback: Option<Pos>,
    /// Checker defaults for the real servers.
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    /// Default 5 s.
    pub connect_timeout: Option<Duration>,
    pub smtp_alert: Option<bool>,
    /// Default weight of the real servers, default 1.
    pub weight: Option<u32>,
    pub real_servers: Vec<RealServer>,
    pub pos: Pos,
}

impl VirtualServer {
    pub fn new(address: VsAddress, pos: Pos) -> VirtualServer {
        VirtualServer {
            address,
            delay_loop: None,
            lvs_sched: None,
            lvs_method: None,
            protocol: None,
            persistence_timeout: None,
            persistence_granularity: None,
            virtualhost: None,
            sorry_server: None,
            quorum: DEFAULT_QUORUM,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            inhibit_on_failure: false,
            alpha: false,
            omega: false,
            ha_suspend: false,
            ops: None,
            sh_port: None,
            sh_fallback: None,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            connect_timeout: None,
            smtp_alert: None,
            weight: None,
            real_servers: Vec::new(),
            pos,
        }
    }

    /// The scheduler in effect: as written, else keepalived's default.
    pub fn scheduler(&self) -> &str {
        self.lvs_sched
            .as_ref()
            .map_or(DEFAULT_SCHEDULER, |s| s.value.as_str())
    }

    /// The forwarding method in effect: as written, else NAT.
    pub fn forwarding_method(&self) -> ForwardingMethod {
        self.lvs_method
            .as_ref()
            .map_or(ForwardingMethod::Nat, |m| m.value)
    }

    /// The protocol in effect: as written, else UDP as keepalived does.
    pub fn protocol(&self) -> VsProtocol {
        self.protocol.as_ref().map_or(VsProtocol::Udp, |p| p.value)
    }

    /// The persistence timeout in effect (0: none). A granularity without a
    /// timeout implies keepalived's default timeout.
    pub fn persistence(&self) -> u32 {
        match (&self.persistence_timeout, &self.persistence_granularity) {
            (Some(t), _) => t.value,
            (None, Some(_)) => DEFAULT_PERSISTENCE_TIMEOUT,
            (None, None) => 0,
        }
    }
}

/// `real_server IP [PORT] { }`
#[derive(Clone, Debug, PartialEq)]
pub struct RealServer {
    pub addr: IpAddr,
    /// None: the virtual server's port.
    pub port: Option<u16>,
    /// 0..65535; default the virtual server's weight (1).
    pub weight: Option<Spanned<u32>>,
    /// Default: the virtual server's.
    pub lvs_method: Option<Spanned<ForwardingMethod>>,
    pub inhibit_on_failure: Option<bool>,
    pub notify_up: Option<Script>,
    pub notify_down: Option<Script>,
    pub uthreshold: Option<Spanned<u32>>,
    pub lthreshold: Option<Spanned<u32>>,
    pub alpha: Option<bool>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub delay_loop: Option<Duration>,
    pub smtp_alert: Option<bool>,
    pub virtualhost: Option<String>,
    pub checkers: Vec<Checker>,
    pub pos: Pos,
}

impl RealServer {
    pub fn new(addr: IpAddr, port: Option<u16>, pos: Pos) -> RealServer {
        RealServer {
            addr,
            port,
            weight: None,
            lvs_method: None,
            inhibit_on_failure: None,
            notify_up: None,
            notify_down: None,
            uthreshold: None,
            lthreshold: None,
            alpha: None,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            connect_timeout: None,
            delay_loop: None,
            smtp_alert: None,
            virtualhost: None,
            checkers: Vec::new(),
            pos,
        }
    }
}
